"""Workload 6 in a fresh process: imap_unordered over an N-item generator; prints one JSON line.

    python -m benchmarks.stream_probe farpool N          (FARPOOL_* name the running cluster)
    python -m benchmarks.stream_probe multiprocessing N [PROCESSES]

A fresh process, so that the peak RSS (ru_maxrss) is this workload's alone.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from benchmarks import work

MP_START_METHOD = "forkserver"


def peak_rss_mb() -> float:
    """This process's peak resident set (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: this image's peak), None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def current_rss_mb() -> float:
    return proc_status_mb("VmRSS") or peak_rss_mb()


def generator(count: int) -> Iterator[int]:
    yield from range(count)


def consume(results: Iterable[Any]) -> tuple[int, int]:
    count = total = 0
    for value in results:
        count += 1
        total += value
    return count, total


def expected_total(count: int) -> int:
    """sum(x * x for x in range(count))."""
    return (count - 1) * count * (2 * count - 1) // 6


def run_farpool(count: int) -> dict[str, Any]:
    from config import load_settings
    from producer import Pool
    from tasks import create_app
    from tasks.examples import square

    app = create_app(load_settings())
    with Pool(app=app) as pool:
        baseline = current_rss_mb()
        began = time.perf_counter()
        done, total = consume(pool.imap_unordered(square, generator(count)))
        seconds = time.perf_counter() - began
        processes = pool.cluster_processes
    return report(count, done, total, seconds, baseline, processes)


def run_multiprocessing(count: int, processes: int | None) -> dict[str, Any]:
    context = multiprocessing.get_context(MP_START_METHOD)
    with context.Pool(processes) as pool:
        baseline = current_rss_mb()
        began = time.perf_counter()
        done, total = consume(pool.imap_unordered(work.square, generator(count)))
        seconds = time.perf_counter() - began
        processes = pool._processes  # type: ignore[attr-defined]
    return report(count, done, total, seconds, baseline, processes)


def report(
    count: int, done: int, total: int, seconds: float, baseline: float, processes: int
) -> dict[str, Any]:
    if done != count or total != expected_total(count):
        raise AssertionError(f"imap_unordered gave {done} results (sum {total}) for {count} items")
    return {
        "items": count,
        "seconds": seconds,
        "items_per_second": count / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "vm_hwm_mb": proc_status_mb("VmHWM"),
        "baseline_rss_mb": baseline,
        "processes": processes,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or args[0] not in ("farpool", "multiprocessing"):
        print(__doc__, file=sys.stderr)
        return 2
    count = int(args[1])
    if args[0] == "farpool":
        result = run_farpool(count)
    else:
        result = run_multiprocessing(count, int(args[2]) if len(args) == 3 else None)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
