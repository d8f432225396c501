"""`python -m benchmarks [--quick] [--repeat N] [--only NAME[,NAME]] [--output DIR]` (make bench)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures import Figure
from benchmarks.harness import MP_START_METHOD, local_bench
from benchmarks.report import machine_info, table_text, write_chart, write_json
from benchmarks.workloads import FULL, QUICK, TINY, WORKLOADS, cluster_warm_up, scaled

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results"


def workload_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {', '.join(unknown) or '(none)'}; choose from {', '.join(WORKLOADS)}"
        )
    return names


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="farpool vs multiprocessing.Pool vs a naive Celery group, on a local cluster "
        "this command starts (bundled Valkey on a free port + one prefork worker, one process per core).",
    )
    size = cli.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the stream workload on 200k items, 3 repetitions")
    size.add_argument("--tiny", action="store_true", help="toy sizes, 1 repetition (the smoke test)")
    cli.add_argument("--repeat", type=positive, help="timed repetitions per workload (medians reported)")
    cli.add_argument(
        "--only", type=workload_names, metavar="NAME[,NAME]", help=f"among: {', '.join(WORKLOADS)}"
    )
    cli.add_argument(
        "--stream-items", type=positive, metavar="N", help="items in the imap_unordered stream (10M full)"
    )
    cli.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where latest.json/.png go")
    cli.add_argument(
        "--no-hosts",
        action="store_true",
        help="skip the hosts section (run by default, as root, when network namespaces can be made)",
    )
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    sizes = scaled(TINY if args.tiny else QUICK if args.quick else FULL, args.repeat, args.stream_items)
    names: list[str] = args.only or list(WORKLOADS)
    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(
        f"farpool benchmarks ({sizes.name}, {sizes.repeat} repetitions): {machine['cores']} cores, "
        f"{machine['cpu_model']}, Python {machine['python']}",
        file=sys.stderr,
    )
    started = datetime.datetime.now(datetime.UTC)
    began = time.perf_counter()
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    with local_bench() as bench:
        print(
            f"local cluster: Valkey {bench.server_version} on {bench.settings.broker_url}, "
            f"1 worker × {bench.processes} processes",
            file=sys.stderr,
        )
        cluster_warm_up(bench)
        for name in names:
            print(f"  {name} ...", end="", flush=True, file=sys.stderr)
            workload_began = time.perf_counter()
            figures += WORKLOADS[name](bench, sizes)
            durations[name] = time.perf_counter() - workload_began
            print(f" {durations[name]:.1f} s", file=sys.stderr)
        processes = bench.processes
        server = bench.server_version
    print(table_text(figures))
    hosts = run_hosts(args.no_hosts or args.tiny or bool(args.only))
    run = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - began,
        "sizes": dataclasses.asdict(sizes),
        "workloads": names,
        "workload_seconds": durations,
        "processes": processes,
        "worker": f"1 × celery -A tasks worker --concurrency {processes} (prefork)",
        "multiprocessing_start_method": MP_START_METHOD,
        "server": f"valkey {server}",
        "statistic": "median of the timed repetitions (apply: percentiles of all calls)",
        "hosts": hosts,
    }
    json_path = output / "latest.json"
    write_json(json_path, figures, run)
    written = [json_path]
    if importlib.util.find_spec("matplotlib") is not None:
        png_path = output / "latest.png"
        title = f"farpool benchmarks — {machine['cores']} cores, {machine['cpu_model']}, {started:%Y-%m-%d}"
        write_chart(png_path, figures, title)
        written.append(png_path)
    else:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')", file=sys.stderr)
    print(f"\nwrote {', '.join(str(path) for path in written)}", file=sys.stderr)
    return 0


def run_hosts(skip: bool) -> dict[str, dict[str, float]] | None:
    """The hosts section (benchmarks/hosts.py), printed; None when skipped or unavailable."""
    from benchmarks import hosts

    why_not = "skipped" if skip else hosts.unavailable()
    if why_not is not None:
        print(f"\nhosts: not run ({why_not})", file=sys.stderr)
        return None
    print("  hosts ...", end="", flush=True, file=sys.stderr)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="farpool-bench-hosts-") as folder:
        results = hosts.run_hosts_section(Path(folder))
    print(f" {time.perf_counter() - began:.1f} s", file=sys.stderr)
    print(hosts.hosts_table(results))
    return results


if __name__ == "__main__":
    raise SystemExit(main())
