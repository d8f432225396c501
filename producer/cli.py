"""The `farpool` command (also `python -m producer`)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import click

from config import SettingsError, mask_url
from producer.errors import FarpoolError

USAGE_ERROR, TASK_ERROR = 2, 1


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"farpool: {message}", err=True)
    sys.exit(code)


class FarpoolGroup(click.Group):
    """Turns every error into one line on stderr and an exit code (a traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except (SettingsError, FarpoolError) as error:
            if debug:
                raise
            fail(str(error), USAGE_ERROR)
        except Exception as error:
            if debug:
                raise
            fail(f"{type(error).__name__}: {error}", TASK_ERROR)


@click.group(cls=FarpoolGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def cli(debug: bool) -> None:
    """farpool: multiprocessing.Pool's API on a Celery cluster."""


@cli.command()
def demo() -> None:
    """The seed example: square over 1..14 on Pool(5) with chunksize=3."""
    from producer.pool import Pool
    from tasks.examples import square

    dataset = list(range(1, 15))
    with Pool(processes=5) as pool:
        result = pool.map(square, dataset, chunksize=3)
    click.echo(f"Dataset: {dataset}")
    click.echo(f"Result: {result}")


@cli.command()
@click.option("--flower", is_flag=True, help="Also run Flower (FARPOOL_FLOWER_* settings).")
def up(flower: bool) -> None:
    """Run a local cluster in the foreground: broker (if none answers), worker [, Flower]."""
    from producer.cluster import LocalCluster
    from tasks import app

    stop = threading.Event()
    _on_signals(lambda: stop.set())
    cluster = LocalCluster(app.settings, app, flower=flower, quiet=False)
    with cluster.start():
        where = mask_url(app.settings.broker_url)
        flower_url = f"http://{app.settings.flower_address}:{app.settings.flower_port}"
        extra = f", Flower on {flower_url}" if flower else ""
        click.echo(f"farpool: cluster up on {where}{extra}; Ctrl-C stops it", err=True)
        while not stop.wait(0.5):
            if any(process.poll() is not None for process in cluster.processes):
                fail("a cluster process exited; stopping", TASK_ERROR)
    click.echo("farpool: cluster stopped", err=True)


def _on_signals(handler: Callable[[], None]) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: handler())


def main() -> None:
    try:
        cli(prog_name="farpool")
    except SettingsError as error:
        fail(str(error), USAGE_ERROR)


if __name__ == "__main__":
    main()
