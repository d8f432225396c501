"""The `farpool` command (also `python -m producer`)."""

from __future__ import annotations

import functools
import logging
import os
import runpy
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click
import redis
from kombu.exceptions import OperationalError

from config import DEMO_SCRIPT, SettingsError, mask_url
from producer.cli.options import (
    GLOBAL_OPTIONS,
    echo_json,
    flag,
    items_from,
    map_options,
    parse_json,
    pool_for,
    setup_logging,
    task_script,
)
from producer.errors import FarpoolError

USAGE_ERROR, TASK_ERROR = 2, 1
logger = logging.getLogger("farpool")
CLOSED_PIPE = 128 + signal.SIGPIPE  # what a shell reports for `ls | head`: a normal end


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"farpool: {message}", err=True)
    sys.exit(code)


class FarpoolGroup(click.Group):
    """Turns every error into one line on stderr and an exit code (a traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (`farpool cluster | head -1`): end quietly, as `ls` does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(CLOSED_PIPE)
        except (OperationalError, redis.ConnectionError) as error:
            if flag(ctx, "debug"):
                raise
            fail(f"cannot reach the broker or the result backend: {error}", USAGE_ERROR)
        except (SettingsError, FarpoolError) as error:
            if flag(ctx, "debug"):
                raise
            fail(str(error), USAGE_ERROR)
        except (TypeError, ValueError) as error:
            debug = flag(ctx, "debug")
            if debug or getattr(error, "__cause__", None) is not None:
                raise_task_error(error, debug)
            fail(str(error), USAGE_ERROR)
        except Exception as error:
            raise_task_error(error, flag(ctx, "debug"))


def raise_task_error(error: Exception, debug: bool) -> NoReturn:
    if debug:
        raise error
    fail(f"{type(error).__name__}: {error}", TASK_ERROR)


@click.group(cls=FarpoolGroup)
@click.version_option(package_name="farpool", prog_name="farpool")
def cli() -> None:
    """farpool: multiprocessing.Pool's API on a Celery cluster."""


def answering(url: str, what: str) -> None:
    """BrokerUnavailable unless a server answers at `url` (`what`: the broker, the result backend)."""
    from producer.errors import BrokerUnavailable
    from producer.local.embedded import reachable

    if not reachable(url):
        raise BrokerUnavailable(f"no {what} answers at {mask_url(url)}")


@cli.command()
def demo() -> None:
    """The seed's script, unchanged but for its import: square over 1..14 on Pool(5), chunksize 3."""
    # Run as the script it is, under its module name in farpool's package, which every worker
    # allows (config.DEMO_SCRIPT): the workers of any cluster can call its square.
    runpy.run_module(DEMO_SCRIPT, run_name="__main__", alter_sys=True)


@cli.command("map")
@map_options
@click.option("--unordered", is_flag=True, help="imap_unordered: print results as they arrive.")
@click.option("--lines", is_flag=True, help="One JSON value per line, streamed (imap).")
@click.option("--progress", is_flag=True, help="A progress bar on stderr.")
def map_command(
    task: str,
    items: Sequence[str],
    span: str | None,
    chunksize: int | None,
    unordered: bool,
    lines: bool,
    progress: bool,
) -> None:
    """TASK over ITEMS (JSON values) or --range; prints a JSON list, or JSON lines."""
    values = items_from(items, span)
    with pool_for(task) as pool:
        if unordered or lines:
            imap = pool.imap_unordered if unordered else pool.imap
            for value in imap(task, values, chunksize, progress=progress):
                echo_json(value)
        else:
            echo_json(pool.map(task, values, chunksize, progress=progress))


@cli.command()
@click.argument("task")
@click.argument("items", nargs=-1, required=True)
@click.option("--chunksize", type=click.IntRange(min=1), help="Items per chunk.")
@click.option("--progress", is_flag=True, help="A progress bar on stderr.")
def starmap(task: str, items: Sequence[str], chunksize: int | None, progress: bool) -> None:
    """TASK(*args) for each ITEM, a JSON array of arguments; prints a JSON list."""
    values = parse_json(items, "item")
    with pool_for(task) as pool:
        echo_json(pool.starmap(task, values, chunksize, progress=progress))


@cli.command()
@click.argument("task")
@click.argument("args", nargs=-1)
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
def apply(task: str, args: Sequence[str], kwargs_json: str) -> None:
    """One call TASK(*ARGS, **KWARGS); ARGS are JSON values. Prints the JSON result."""
    (kwargs,) = parse_json([kwargs_json], "--kwargs")
    if not isinstance(kwargs, dict):
        raise click.UsageError("--kwargs must be a JSON object")
    values = parse_json(args, "argument")
    with pool_for(task) as pool:
        echo_json(pool.apply(task, values, kwargs))


@cli.command()
@map_options
def submit(task: str, items: Sequence[str], span: str | None, chunksize: int | None) -> None:
    """map_async TASK over ITEMS or --range; prints the id for `farpool result ID`."""
    values = items_from(items, span)
    pool = pool_for(task, start_local=False)
    try:
        click.echo(pool.map_async(task, values, chunksize).id)
    finally:
        pool.detach()


@cli.command()
@click.argument("result_id")
@click.option("--timeout", type=float, help="Seconds to wait (exit 1 if not ready).")
def result(result_id: str, timeout: float | None) -> None:
    """The result of a `farpool submit` (or any map_async) by its id, as JSON.

    Needs only the result backend: no worker is looked for, none is started.
    """
    from producer.inflight.ledger import Ledger
    from producer.inflight.lost import missing_tasks
    from producer.results import attach_result
    from tasks import app

    answering(app.settings.backend_url, "result backend")
    lost = functools.partial(missing_tasks, app, app.settings.queue)  # when the broker answers
    ledger = Ledger(app, give_up_after=app.settings.broker_timeout, find_missing=lost)
    try:
        echo_json(attach_result(ledger, result_id).get(timeout))
    finally:
        ledger.close()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cluster(as_json: bool) -> None:
    """The online workers of FARPOOL_QUEUE: host, pool, processes, cores (physical/logical), CPU
    model, caches, load, memory, what runs; and the queue depth."""
    from producer.cli.display import cluster_json, cluster_lines
    from producer.local.cluster import announced_workers, queue_depth
    from tasks import app

    answering(app.settings.broker_url, "broker")
    workers = announced_workers(app, app.settings.queue)
    depth = queue_depth(app, app.settings.queue)
    if as_json:
        rows = [cluster_json(worker) for worker in workers]
        echo_json(
            {
                "broker": mask_url(app.settings.broker_url),
                "queue": app.settings.queue,
                "queue_depth": depth,
                "workers": rows,
            }
        )
        return
    click.echo(f"broker {mask_url(app.settings.broker_url)}, queue {app.settings.queue!r}: {depth} waiting")
    for line in cluster_lines(workers):
        click.echo(line)
    if not workers:
        fail("no worker online: start one with `celery -A tasks worker` (or `farpool up`)", TASK_ERROR)


@cli.command()
@click.argument("task")
@click.option("--sample", "sample", multiple=True, required=True, help="A sample item (JSON); repeat it.")
@click.option(
    "--items",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="How many items the real map has.",
)
@click.option(
    "--budget",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds the sample may take to run here.",
)
def advise(task: str, sample: Sequence[str], items: int, budget: float) -> None:
    """Whether mapping TASK over --items items pays off on this cluster, and the chunksize.

    TASK runs here, in this process, on each --sample item, for real (side effects included),
    until --budget seconds are spent; then the cluster moves the sample and its results (their
    size and time to send), and a few trivial tasks time its round trip. The verdict names the
    dominant cost, and says when an item exceeds the workers' L2 cache.
    """
    from producer.advice import measure, report
    from producer.sending.callables import local_function, task_name
    from tasks import app

    values = parse_json(sample, "--sample")
    name = task_name(task, app)
    script = task_script(name)
    if script is not None and script.folder not in sys.path:
        sys.path.append(script.folder)  # imported here as `python -c 'import module'` would, after farpool's
    func = local_function(name, app) if ":" in name else name  # a plain function runs here as it is
    with pool_for(name) as pool:
        advice, ran = measure(func, values, items, budget, pool)
    for line in report(name, advice, ran):
        click.echo(line)


@cli.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks_command(as_json: bool) -> None:
    """What each online worker can run: its registered tasks, and the modules whose plain
    functions it calls (its allowlist: FARPOOL_INCLUDE and farpool's examples)."""
    from producer.local.cluster import announced_workers
    from tasks import app

    answering(app.settings.broker_url, "broker")
    workers = announced_workers(app, app.settings.queue)
    if as_json:
        echo_json({w.name: {"tasks": list(w.tasks), "allowlist": list(w.allowlist)} for w in workers})
        return
    for worker in workers:
        click.echo(f"{worker.name}:")
        click.echo("  tasks:     " + (", ".join(worker.tasks) or "-"))
        click.echo("  functions: any plain function in " + (", ".join(worker.allowlist) or "-"))
    if not workers:
        fail("no worker online: start one with `celery -A tasks worker` (or `farpool up`)", TASK_ERROR)


@cli.command()
@click.option("--flower", is_flag=True, help="Also run Flower (FARPOOL_FLOWER_* settings).")
def up(flower: bool) -> None:
    """Run a local cluster in the foreground: broker (if none answers), worker [, Flower]."""
    from producer.local.cluster import LocalCluster
    from producer.local.running import UP
    from tasks import app

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if flower and not app.settings.flower_basic_auth:
        logger.warning(
            "Flower will serve without a password: set FARPOOL_FLOWER_BASIC_AUTH=user:password to require one"
        )
    cluster = LocalCluster(app.settings, app, flower=flower, quiet=False, owner=UP)
    with cluster:
        flower_url = f"http://{app.settings.flower_address}:{app.settings.flower_port}"
        extra = f", Flower on {flower_url}" if flower else ""
        logger.info("cluster up on %s%s; Ctrl-C stops it", mask_url(app.settings.broker_url), extra)
        while not stop.wait(0.5):
            exited = cluster.exited()
            if exited is not None:
                fail(f"{exited.exited_error()}\nstopping the cluster", TASK_ERROR)
    logger.info("cluster stopped")


def _with_global_options(group: click.Group) -> None:
    """--debug, -q and -v on the group and on every subcommand; logging set up before each runs."""
    group.params += GLOBAL_OPTIONS
    for command in group.commands.values():
        command.params += GLOBAL_OPTIONS
        callback = command.callback
        if callback is None:
            continue

        def with_logging(*args: Any, _callback: Callable[..., Any] = callback, **kwargs: Any) -> Any:
            setup_logging(click.get_current_context())
            return _callback(*args, **kwargs)

        command.callback = with_logging


@cli.command()
def down() -> None:
    """Stop what `farpool up`, or a pool's local cluster, runs under FARPOOL_DATA_DIR."""
    from producer.local.children import STOP_GRACE
    from producer.local.running import stop_recorded
    from tasks import app

    said = stop_recorded(app.settings.data_dir, STOP_GRACE)
    for line in said:
        click.echo(line)
    if not said:
        click.echo(f"nothing to stop under {app.settings.data_dir}")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="farpool", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", TASK_ERROR)
    except click.ClickException as error:
        fail(error.format_message(), USAGE_ERROR)
    except SettingsError as error:
        fail(str(error), USAGE_ERROR)
    sys.exit(code if isinstance(code, int) else 0)


_with_global_options(cli)
