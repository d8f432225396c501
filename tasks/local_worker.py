"""`python -m tasks.local_worker worker ARGS`: `celery -A tasks worker ARGS`, 0.3 s sooner.

Celery's command line imports every subcommand and plugin before it starts a worker: Flower's
(0.14 s here), the amqp shell's prompt_toolkit (0.12 s), migrate, control... A local cluster
(producer/local/cluster.py) starts its worker with this instead: Celery's own `worker` command, the
same options, under a root group also named `celery` (tasks/app.py's one-line errors look for
that name) whose context holds farpool's app, as `-A tasks` would.
"""

from __future__ import annotations

import click
from celery.bin.base import CLIContext
from celery.bin.worker import worker


@click.group(name="celery")
@click.pass_context
def celery(ctx: click.Context) -> None:
    from tasks import app

    ctx.obj = CLIContext(app=app, no_color=False, workdir=None)


celery.add_command(worker)

if __name__ == "__main__":
    celery(prog_name="celery")
