"""The cluster `make stress` (benchmarks/stress.py) injects its faults into: workers killed and
restarted by slot, a broker SIGKILLed and started again on its append-only file."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producer.local.cluster import LocalCluster
    from producer.local.embedded import EmbeddedServer
    from tasks.app import FarpoolCelery


class Workers:
    """Two (or more) local workers on one broker; kill and restart them by slot."""

    def __init__(self, settings: Any, app: FarpoolCelery, count: int) -> None:
        self.settings = settings
        self.app = app
        self.slots: list[LocalCluster | None] = [None] * count
        self.lock = threading.Lock()

    def start(self, slot: int) -> None:
        from producer.local.cluster import LocalCluster

        worker = LocalCluster(self.settings, self.app)
        worker.start_worker()
        with self.lock:
            self.slots[slot] = worker

    def main_pid(self, slot: int) -> int | None:
        worker = self.slots[slot]
        if worker is None or not worker.children or not worker.worker.running():
            return None
        return worker.worker.pid

    def kill(self, slot: int) -> None:
        """SIGKILL the worker's whole process group, then forget it."""
        with self.lock:
            worker, self.slots[slot] = self.slots[slot], None
        if worker is None:
            return
        worker.kill_worker()
        worker.stop()

    def stop(self) -> None:
        for slot in range(len(self.slots)):
            worker, self.slots[slot] = self.slots[slot], None
            if worker is not None:
                worker.stop()


def kill_broker(server: EmbeddedServer) -> None:
    """SIGKILL the broker and start it again on its AOF (`appendfsync always`: nothing it
    acknowledged is lost, so whatever goes missing is the clients' doing)."""
    import redis

    process = server.process
    process.kill()
    process.wait()
    server.stop()
    server.start()
    redis.Redis.from_url(server.url).config_set("appendfsync", "always")
