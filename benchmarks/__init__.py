"""Reproducible comparisons of farpool with multiprocessing.Pool and a naive Celery group (DESIGN §6).

`python -m benchmarks` (`make bench`) starts its own local cluster (the bundled Valkey on a free
loopback port and one `celery -A tasks worker`, one process per core), runs the workloads on
farpool, on a `multiprocessing.Pool` of the same size and on plain Celery groups, prints a table
and writes `results/latest.json` and `results/latest.png`.

Keep this module free of imports: the worker imports `benchmarks.bench_tasks` through it.
"""
