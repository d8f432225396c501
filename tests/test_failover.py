"""Redis Sentinel across hosts: the master's host is killed mid-map and farpool follows the failover.

The bed is tests/sentinel_bed.py's; `make stress` repeats the failover to measure what is lost.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from farpool_hosts import each_once
from helpers import poll
from hostbed import HostBed, unavailable
from sentinel_bed import Failover, sentinel_cluster

pytestmark = [pytest.mark.hosts, pytest.mark.integration]
WHY_NOT = unavailable()
if WHY_NOT is not None:
    pytestmark.append(pytest.mark.skip(reason=f"no multi-host bed: {WHY_NOT}"))

# How long a map may take to complete or fail once the master's host is gone: the producer
# gives up on a broker that has not answered for FARPOOL_BROKER_TIMEOUT (60 s by default).
FAILOVER_LIMIT = 60 + 30


@pytest.fixture(scope="module")
def failover(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Failover]:
    logs = tmp_path_factory.mktemp("failover")
    bed = HostBed(logs)
    try:
        cluster = sentinel_cluster(bed, logs)
        yield cluster
        cluster.app.close()
    finally:
        bed.close()


def test_the_master_host_is_killed_mid_map(failover: Failover) -> None:
    master, replica = failover.servers
    with failover.start_map(300, 24) as run:
        poll(lambda: failover.running_on("host1"), "host1 to run a chunk", 60)
        master.power_off()
        stdout, stderr = run.communicate(timeout=FAILOVER_LIMIT)  # completes or fails: never hangs
    poll(lambda: failover.role(replica) == "master", "the replica to be promoted", 30)
    if run.returncode == 0:
        assert set(each_once(stdout, 24)) == {"host1", "host2"}
    else:
        assert "BrokerUnavailable" in stderr.strip().splitlines()[-1], stderr
