"""Real brokers and real workers for the suite.

Every integration test runs against a Valkey server the suite starts from the bundled binary
on a free port and, when FARPOOL_TEST_REDIS_URL is set, against that server as well, in a
queue of its own (nothing is flushed). Workers are `celery -A tasks worker` subprocesses.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The default app must never reach a server the suite did not start.
os.environ["FARPOOL_BROKER_URL"] = "redis://127.0.0.1:1/0"
os.environ["FARPOOL_EMBEDDED_BROKER"] = "never"
# Workers import the user task module tests/usertasks.py, as FARPOOL_INCLUDE lets users do.
TESTS_DIR = str(Path(__file__).parent)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")]))

from helpers import free_port

from config import Settings, load_settings, settings_env
from producer import Pool
from producer.local.cluster import LocalCluster
from producer.local.embedded import EmbeddedServer, server_address
from tasks import create_app
from tasks.app import FarpoolCelery

TEST_REDIS_URL = os.environ.get("FARPOOL_TEST_REDIS_URL")
TARGETS = ["valkey", *(["redis"] if TEST_REDIS_URL else [])]


@dataclass
class Cluster:
    """A broker and a worker the suite started (the broker may be FARPOOL_TEST_REDIS_URL's)."""

    name: str
    settings: Settings
    app: FarpoolCelery
    local: LocalCluster

    @property
    def env(self) -> dict[str, str]:
        """The environment a subprocess (the CLI, another worker) needs to join this cluster."""
        return {**os.environ, **settings_env(self.settings)}

    def pool(self, **options: object) -> Pool:
        return Pool(app=self.app, **options)  # type: ignore[arg-type]


def cluster_settings(broker_url: str, data_dir: Path, **overrides: object) -> Settings:
    return load_settings(
        broker_url=broker_url,
        result_backend=broker_url,
        queue=f"farpool-test-{uuid.uuid4().hex[:8]}",
        concurrency=2,
        embedded_broker="never",
        data_dir=str(data_dir),
        include=("usertasks", "userhelpers", "userarrays"),
        **overrides,
    )


def broker_and_app(data_dir: Path) -> tuple[EmbeddedServer, FarpoolCelery]:
    """A bundled Valkey of the test's own on a free port, started, and an app on it: the caller
    stops the one and closes the other."""
    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    server = EmbeddedServer(address, data_dir)
    server.start()
    return server, create_app(cluster_settings(server.url, data_dir))


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    server = EmbeddedServer(address, tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=TARGETS)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if request.param == "valkey":
        url = request.getfixturevalue("valkey_server").url
    else:
        assert TEST_REDIS_URL is not None
        url = TEST_REDIS_URL
    settings = cluster_settings(url, tmp_path_factory.mktemp(f"cluster-{request.param}"))
    app = create_app(settings)
    local = LocalCluster(settings, app)
    local.start_worker()
    yield Cluster(request.param, settings, app, local)
    local.stop()
    queue = settings.queue
    app.backend.client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    close_app(app)


def close_app(app: FarpoolCelery) -> None:
    """Close the app's broker connections and its result backend's sockets."""
    app.backend.client.connection_pool.disconnect()
    app.close()


@pytest.fixture
def pool(cluster: Cluster) -> Iterator[Pool]:
    with cluster.pool() as pool:
        yield pool


@pytest.fixture(scope="module")
def module_pool(cluster: Cluster) -> Iterator[Pool]:
    """One pool for a module's tests that only call it (a Pool() costs a worker broadcast, ~1 s)."""
    with cluster.pool() as pool:
        yield pool
