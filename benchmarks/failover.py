"""Sentinel failover, repeated: what a map loses when its broker's master host is killed mid-map.

`python -m benchmarks.failover [--runs N]` (`make failover`, root: it makes network namespaces)
builds the bed of tests/sentinel_bed.py (a master and a replica on two hosts, three Sentinels,
two worker hosts, a producer host), then, N times: a producer maps 24 items of 300 ms, the
current master's host loses power once a chunk runs, and the map's end is recorded: completed
(each item exactly once?), or failed with which error, and the seconds from the kill to the end.
The killed host comes back as a replica before the next run, so each run fails over again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
ITEMS = 24
MILLISECONDS = 300
LIMIT = 150.0  # seconds after the kill: a map still running then counts as hung


def one_run(cluster: object, number: int) -> dict[str, object]:
    from helpers import poll

    master = cluster.master()  # type: ignore[attr-defined]
    run = cluster.start_map(MILLISECONDS, ITEMS)  # type: ignore[attr-defined]
    poll(lambda: _running_on(cluster, "host1"), "host1 to run a chunk", 60)
    killed = time.monotonic()
    master.power_off()
    try:
        stdout, stderr = run.communicate(timeout=LIMIT)
    except Exception:
        run.kill()
        run.communicate()
        return {"run": number, "outcome": "hung", "seconds": LIMIT}
    seconds = round(time.monotonic() - killed, 1)
    if run.returncode != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {run.returncode}"
        return {"run": number, "outcome": "failed", "seconds": seconds, "error": last[:200]}
    counts = Counter(index for index, _ in json.loads(stdout))
    lost = [index for index in range(ITEMS) if counts[index] == 0]
    twice = [index for index, count in counts.items() if count > 1]
    outcome = "completed" if not lost and not twice else "wrong"
    return {"run": number, "outcome": outcome, "seconds": seconds, "lost": lost, "duplicated": twice}


def _running_on(cluster: object, host: str) -> bool | None:
    import redis

    try:
        return cluster.running_on(host)  # type: ignore[attr-defined,no-any-return]
    except redis.RedisError:  # this process's connection met the old master, back as a replica
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--logs", type=Path, help="keep the servers' and workers' logs in this folder")
    arguments = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from hostbed import HostBed, unavailable
    from sentinel_bed import sentinel_cluster

    why_not = unavailable()
    if why_not is not None:
        print(f"failover: skipped ({why_not})")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="farpool-failover-") as temporary:
        folder = arguments.logs or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        bed = HostBed(Path(folder))
        try:
            cluster = sentinel_cluster(bed, Path(folder))
            for number in range(1, arguments.runs + 1):
                result = one_run(cluster, number)
                results.append(result)
                print(json.dumps(result), flush=True)
                killed = [host for host in cluster.servers if not host.processes]
                for host in killed:
                    cluster.restart(host)
            cluster.app.close()
        finally:
            bed.close()
    outcomes = Counter(str(result["outcome"]) for result in results)
    seconds = sorted(float(str(result["seconds"])) for result in results)
    print(
        f"failover: {len(results)} runs: {dict(outcomes)}; seconds from the kill to the map's end: "
        f"min {seconds[0]}, median {seconds[len(seconds) // 2]}, max {seconds[-1]}"
    )
    return 0 if outcomes["hung"] == 0 and outcomes["wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
