"""A plain Celery result collected after its server has gone: nothing to unsubscribe from.

Celery's Redis backend subscribes a process to a task's result channel as it sends it, and
unsubscribes when the AsyncResult is collected. Collected after the server stopped, that
unsubscribe retried a reconnect for 20 s and raised from `__del__`.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

from conftest import close_app, cluster_settings, free_port

from producer.local.cluster import LocalCluster
from producer.local.embedded import EmbeddedServer, server_address
from tasks import create_app


def collected_later(tmp_path: Path, stop: Any) -> list[str]:
    """Send a task with nothing to run it, keep its result in a cycle, `stop`, then collect."""
    address = server_address(f"redis://127.0.0.1:{free_port()}/0")
    assert address is not None
    server = EmbeddedServer(address, tmp_path)
    server.start()
    app = create_app(cluster_settings(server.url, tmp_path))
    try:
        # one unsubscribe goes out on the dead socket; the next meets the closed connection
        queue = f"nobody-{free_port()}"
        results = [app.send_task("tasks.examples.square", args=(3,), queue=queue) for _ in range(3)]
        cycle: dict[str, Any] = {"results": results}
        cycle["self"] = cycle
        del results, cycle
        stop(app, server)
    finally:
        server.stop()
    raised: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: raised.append(repr(unraisable.exc_value))
    try:
        gc.collect()
    finally:
        sys.unraisablehook = previous
        close_app(app)
    return raised


def test_a_result_collected_after_its_app_closed_raises_nothing(tmp_path: Path) -> None:
    def stop_then_close(app: Any, server: EmbeddedServer) -> None:
        server.stop()
        app.close()

    assert collected_later(tmp_path, stop_then_close) == []


def test_a_result_collected_after_its_local_cluster_stopped_raises_nothing(tmp_path: Path) -> None:
    def stop_the_cluster(app: Any, server: EmbeddedServer) -> None:
        cluster = LocalCluster(app.settings, app)
        cluster.servers.append(server)  # as if it had started it: no worker needed here
        cluster.stop()

    assert collected_later(tmp_path, stop_the_cluster) == []
