"""Stress under chaos: concurrent maps while workers are SIGKILLed; nothing may be lost.

`python -m benchmarks.stress [--seconds N]` (`make stress`) starts its own embedded broker (a
free loopback port, a temporary data dir) and two `celery -A tasks worker` processes (distinct
node names). Several producer threads, each with its own Pool, map a counted task over 200
items again and again (map, imap_unordered and map_async in turn) while a chaos thread, at
random intervals, SIGKILLs a random prefork child or a whole worker (main process and children)
and restarts every worker it killed. With the default settings (an hour's visibility timeout):
a dead worker's chunks go to another one once its liveness key expires (tasks/inflight.py).

When the time is up the chaos stops, every worker is back, and the maps still in flight get
`--drain` seconds to finish. It prints maps run, tasks run, faults injected, results lost (must
be 0) and duplicates delivered to the producer (must be 0), and exits 1 if any result was lost
or duplicated (a map that failed or never finished loses all its results).

The workers import this module (FARPOOL_INCLUDE=benchmarks.stress) for its task: its top level
imports only `tasks` and the standard library; the producer side is imported in `run`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.stress_cluster import Workers, kill_broker
from tasks import app

if TYPE_CHECKING:
    from producer import Pool
    from producer.local.embedded import EmbeddedServer

TASK = "benchmarks.stress.counted"
REPO_ROOT = Path(__file__).resolve().parent.parent
MODES = ("map", "imap_unordered", "map_async")


@app.task(name=TASK)
def counted(item: list[Any]) -> int:
    """x * x for item [x, runs_file, nap], after appending x to runs_file (one write(2) on an
    O_APPEND file is atomic), then napping `nap` seconds."""
    x, runs_file, nap = item
    fd = os.open(runs_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{x}\n".encode())
    finally:
        os.close(fd)
    time.sleep(nap)
    return int(x) * int(x)


# -- bookkeeping ------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the producers saw; updated under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    maps: int = 0
    maps_failed: int = 0
    items_expected: int = 0
    lost: int = 0
    duplicates: int = 0
    wrong: int = 0
    durations: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    by_mode: collections.Counter[str] = field(default_factory=collections.Counter)

    def record(self, mode: str, n: int, got: list[Any] | None, elapsed: float, error: str | None) -> None:
        expected = collections.Counter(x * x for x in range(n))
        with self.lock:
            self.maps += 1
            self.by_mode[mode] += 1
            self.items_expected += n
            self.durations.append(elapsed)
            if got is None:
                self.maps_failed += 1
                self.lost += n
                self.errors[error or "?"] += 1
                return
            seen = collections.Counter(got)
            self.lost += sum((expected - seen).values())
            extra = seen - expected
            self.duplicates += sum(count for value, count in extra.items() if value in expected)
            self.wrong += sum(count for value, count in extra.items() if value not in expected)
            if mode != "imap_unordered" and got != [x * x for x in range(n)] and not (expected - seen):
                self.wrong += 1  # every value there, but out of order


@dataclass
class Chaos:
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    restarts: int = 0


def chaos_loop(
    workers: Workers,
    chaos: Chaos,
    stop: threading.Event,
    rng: random.Random,
    gap: float,
    server: EmbeddedServer | None = None,
    broker_share: float = 0.0,
) -> None:
    """Every gap/2..3gap/2 s: SIGKILL the broker (broker_share of the faults), else a random
    prefork child (2/3) or a whole worker main process and its children (1/3)."""
    from producer.local.cluster import child_pids

    while not stop.wait(rng.uniform(gap / 2, 3 * gap / 2)):
        if server is not None and rng.random() < broker_share:
            kill_broker(server)
            chaos.faults["broker"] += 1
            continue
        slot = rng.randrange(len(workers.slots))
        pid = workers.main_pid(slot)
        if pid is None:
            continue
        if rng.random() < 2 / 3:
            kids = child_pids(pid)
            if not kids:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(kids), signal.SIGKILL)
                chaos.faults["child"] += 1
        else:
            workers.kill(slot)
            chaos.faults["worker"] += 1
            workers.start(slot)
            chaos.restarts += 1


# -- the producers ----------------------------------------------------------------------------------


@dataclass
class Producers:
    """The producer threads and the map each is in the middle of (for the final count)."""

    threads: list[threading.Thread] = field(default_factory=list)
    current: dict[int, tuple[str, int]] = field(default_factory=dict)


def producer_loop(
    pool: Pool,
    index: int,
    runs_dir: Path,
    tally: Tally,
    producers: Producers,
    stop: threading.Event,
    n: int,
    chunksize: int,
    nap: float,
) -> None:
    round_ = 0
    while not stop.is_set():
        mode = MODES[(index + round_) % len(MODES)]
        round_ += 1
        runs_file = str(runs_dir / f"p{index}-{round_}")
        items = [[x, runs_file, nap] for x in range(n)]
        producers.current[index] = (mode, n)
        began = time.monotonic()
        got: list[Any] | None = None
        error: str | None = None
        try:
            if mode == "map":
                got = pool.map(TASK, items, chunksize)
            elif mode == "map_async":
                got = pool.map_async(TASK, items, chunksize).get()
            else:
                got = list(pool.imap_unordered(TASK, items, chunksize))
        except Exception as failure:
            error = f"{type(failure).__name__}: {str(failure)[:160]}"
        del producers.current[index]
        tally.record(mode, n, got, time.monotonic() - began, error)


def count_runs(runs_dir: Path) -> tuple[int, int]:
    """(task runs, distinct items run) over every map's runs file."""
    runs = distinct = 0
    for path in runs_dir.iterdir():
        lines = path.read_text().split()
        runs += len(lines)
        distinct += len(set(lines))
    return runs, distinct


# -- the run ----------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stress", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=120, help="chaos period (default 120)")
    parser.add_argument("--producers", type=int, default=4, help="producer threads (default 4)")
    parser.add_argument("--items", type=int, default=200, help="items per map (default 200)")
    parser.add_argument("--chunksize", type=int, default=10, help="items per chunk (default 10)")
    parser.add_argument("--nap", type=float, default=0.005, help="seconds each item sleeps (default 0.005)")
    parser.add_argument("--workers", type=int, default=2, help="workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker (default 2)")
    parser.add_argument(
        "--fault-every", type=float, default=4.0, help="mean seconds between faults (default 4)"
    )
    parser.add_argument("--visibility-timeout", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument(
        "--drain", type=float, default=60, help="seconds the last maps get to finish (default 60)"
    )
    parser.add_argument(
        "--paths",
        default="farpool",
        help="consume paths battled in turn, comma-separated: farpool, kombu (Celery's stock Redis "
        "transport, for comparison: its losses are printed, they do not fail the run)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--broker-kills",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the faults that SIGKILL the broker (AOF, appendfsync always), e.g. 0.2 (default 0)",
    )
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    options = parse(argv)
    seed = options.seed if options.seed is not None else random.randrange(2**32)
    paths = [path.strip() for path in options.paths.split(",") if path.strip()]
    unknown = sorted(set(paths) - {"farpool", "kombu"})
    if unknown or not paths:
        print(f"--paths: unknown consume path(s) {unknown}: give farpool and/or kombu", file=sys.stderr)
        return 2
    outcomes = {path: battle(options, path, seed) for path in paths}
    if len(outcomes) > 1:
        print("\nside by side (same seed, same faults schedule, default settings):")
        for path, tally in outcomes.items():
            print(
                f"  {path:8} results lost {tally.lost}, duplicates {tally.duplicates}, "
                f"maps failed or unfinished {tally.maps_failed} of {tally.maps}"
            )
    farpool = outcomes.get("farpool")
    return 1 if farpool is not None and (farpool.lost or farpool.duplicates or farpool.wrong) else 0


def battle(options: argparse.Namespace, consume_path: str, seed: int) -> Tally:
    """One chaos run on `consume_path`; its tally (reported, and its data kept if it lost any)."""
    import redis

    from config import load_settings
    from producer import Pool
    from producer.local.embedded import EmbeddedServer, ServerAddress, free_port
    from tasks import create_app

    rng = random.Random(seed)
    data_dir = Path(tempfile.mkdtemp(prefix="farpool-stress-"))
    runs_dir = data_dir / "runs"
    runs_dir.mkdir()
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *([before] if before else [])])
    server = EmbeddedServer(ServerAddress("127.0.0.1", free_port(), None), data_dir)
    server.start()
    redis.Redis.from_url(server.url).config_set("appendfsync", "always")  # what kill_broker keeps
    settings = load_settings(
        broker_url=server.url,
        result_backend=server.url,
        queue=f"farpool-stress-{uuid.uuid4().hex[:6]}",
        concurrency=options.concurrency,
        embedded_broker="never",
        data_dir=str(data_dir),
        include=("benchmarks.stress",),
        visibility_timeout=options.visibility_timeout,
        result_expires=600,
        consume_path=consume_path,
    )
    cluster_app = create_app(settings)
    workers = Workers(settings, cluster_app, options.workers)
    tally, chaos, producers = Tally(), Chaos(), Producers()
    stop_producers, stop_chaos = threading.Event(), threading.Event()
    pools: list[Pool] = []
    print(
        f"stress ({consume_path}'s consume path): {options.seconds:.0f} s, "
        f"{options.producers} producers × {options.items} items "
        f"(chunksize {options.chunksize}), {options.workers} workers × {options.concurrency} processes, "
        f"a fault every ~{options.fault_every:.0f} s, visibility timeout {options.visibility_timeout} s, "
        f"seed {seed}; data in {data_dir}",
        flush=True,
    )
    try:
        for slot in range(options.workers):
            workers.start(slot)
        for index in range(options.producers):
            pool = Pool(app=cluster_app)
            pools.append(pool)
            thread = threading.Thread(
                target=producer_loop,
                args=(pool, index, runs_dir, tally, producers, stop_producers),
                kwargs={"n": options.items, "chunksize": options.chunksize, "nap": options.nap},
                name=f"producer-{index}",
                daemon=True,
            )
            producers.threads.append(thread)
        chaos_thread = threading.Thread(
            target=chaos_loop,
            args=(workers, chaos, stop_chaos, rng, options.fault_every, server, options.broker_kills),
            name="chaos",
            daemon=True,
        )
        began = time.monotonic()
        for thread in producers.threads:
            thread.start()
        chaos_thread.start()
        time.sleep(options.seconds)  # the chaos period: the length of the run, nothing to poll for
        stop_producers.set()
        stop_chaos.set()
        chaos_thread.join()
        for slot in range(options.workers):  # a worker killed by the last fault is back already
            if workers.main_pid(slot) is None:
                workers.start(slot)
        deadline = time.monotonic() + options.drain
        for thread in producers.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        elapsed = time.monotonic() - began
        unfinished = dict(producers.current)
        for mode, n in unfinished.values():
            tally.record(mode, n, None, options.drain, f"not finished {options.drain:.0f} s after the chaos")
        runs, distinct = count_runs(runs_dir)
        client = cluster_app.backend.client
        leftover = sum(
            1 for key in client.scan_iter(match=b"celery-task*-meta-*", count=1000) if not key.endswith(b".c")
        )
    finally:
        for pool in pools:
            with contextlib.suppress(Exception):
                pool.terminate()
        workers.stop()
        server.stop()
        cluster_app.close()
    report(tally, chaos, runs, distinct, leftover, elapsed)
    if consume_path == "farpool" and (tally.lost or tally.duplicates or tally.wrong):
        print(f"FAILED: worker logs and runs files kept in {data_dir}")
    else:  # kombu's losses are expected: its figures are the comparison
        shutil.rmtree(data_dir, ignore_errors=True)
    return tally


def report(tally: Tally, chaos: Chaos, runs: int, distinct: int, leftover: int, elapsed: float) -> None:
    durations = sorted(tally.durations) or [0.0]
    modes = ", ".join(f"{mode} {tally.by_mode[mode]}" for mode in MODES)
    faults = sum(chaos.faults.values())
    rows = [
        ("maps run", f"{tally.maps} ({modes}); {tally.maps_failed} failed or unfinished"),
        ("items mapped", f"{tally.items_expected}"),
        ("tasks run", f"{runs} ({runs - distinct} of them re-runs of a redelivered chunk)"),
        (
            "faults injected",
            f"{faults} ({chaos.faults['child']} prefork children, {chaos.faults['worker']} whole workers, "
            f"{chaos.faults['broker']} broker kills; "
            f"{chaos.restarts} restarts)",
        ),
        ("results lost", f"{tally.lost}"),
        ("duplicates delivered", f"{tally.duplicates}"),
        ("wrong results", f"{tally.wrong}"),
        (
            "map time",
            f"median {statistics.median(durations):.2f} s, max {durations[-1]:.2f} s over {elapsed:.0f} s",
        ),
        ("result keys left", f"{leftover} (re-runs after collection; they expire with result_expires)"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    for error, count in tally.errors.most_common():
        print(f"  {count} × {error}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
