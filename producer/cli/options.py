"""The `farpool` command's shared parts: its global options, logging, and how it reads items."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from config import mask_url

if TYPE_CHECKING:
    from producer.pool import Pool
    from producer.sending.references import MainScript


def _set_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[f"farpool.{param.name}"] = True


# Accepted before the subcommand and after it (`farpool map --debug ...`).
GLOBAL_OPTIONS = [
    click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_flag, help="Show tracebacks."),
    click.Option(
        ["-q", "--quiet"], is_flag=True, expose_value=False, callback=_set_flag, help="Only errors on stderr."
    ),
    click.Option(
        ["-v", "--verbose"], is_flag=True, expose_value=False, callback=_set_flag, help="More on stderr."
    ),
]


def flag(ctx: click.Context, name: str) -> bool:
    return bool(ctx.meta.get(f"farpool.{name}"))


def setup_logging(ctx: click.Context) -> None:
    """farpool's messages (the `farpool` logger) on stderr: INFO, WARNING with -q, DEBUG with -v."""
    level = logging.INFO
    if flag(ctx, "quiet") or flag(ctx, "verbose"):
        level = logging.WARNING if flag(ctx, "quiet") else logging.DEBUG
    logger = logging.getLogger("farpool")
    if not any(getattr(handler, "farpool_cli", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("farpool: %(message)s"))
        handler.farpool_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    if level == logging.DEBUG:
        from tasks import app

        settings = app.settings
        logger.debug(
            "broker %s, result backend %s, queue %r, data %s",
            mask_url(settings.broker_url),
            mask_url(settings.backend_url),
            settings.queue,
            settings.data_dir,
        )


def parse_json(values: Sequence[str], what: str) -> list[Any]:
    parsed = []
    for index, text in enumerate(values):
        try:
            parsed.append(json.loads(text))
        except json.JSONDecodeError as error:
            hint = ""
            if text and text[0] not in '[{"-0123456789' and text not in ("true", "false", "null"):
                hint = f"; a string is quoted twice, once for the shell: '\"{text}\"'"
            raise click.UsageError(f"{what} {index} is not JSON ({error.msg}): {text!r}{hint}") from None
    return parsed


def parse_range(text: str) -> range:
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        return range(*(int(part) for part in parts))
    except ValueError:
        raise click.UsageError(f"bad --range {text!r}: expected START:STOP or START:STOP:STEP") from None


def items_from(items: Sequence[str], span: str | None) -> list[Any] | range:
    if span is not None and items:
        raise click.UsageError("give ITEMS or --range, not both")
    if span is not None:
        return parse_range(span)
    if not items:
        raise click.UsageError("no items: give ITEMS (JSON values) or --range START:STOP")
    return parse_json(items, "item")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value))


def map_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.argument("task"),
            click.argument("items", nargs=-1),
            click.option("--range", "span", metavar="A:B", help="Map over range(A, B[, STEP])."),
            click.option("--chunksize", type=click.IntRange(min=1), help="Items per chunk."),
        ]
    ):
        command = option(command)
    return command


def task_script(task: str) -> MainScript | None:
    """For a plain function `module:function` whose module the current folder holds (as
    `python -c 'import module'` would find it there), that module and folder: allowed on this
    machine's local workers as a script's own functions are (producer/local/script_access.py)."""
    from producer.sending.references import working_folder_module
    from tasks.contract import is_reference

    return working_folder_module(task.partition(":")[0]) if is_reference(task) else None


def pool_for(task: str, start_local: bool = True) -> Pool:
    """The Pool a subcommand calls `task` with; see task_script."""
    from producer.pool import Pool

    return Pool(start_local=start_local, script=task_script(task))
