"""One row of the report: a figure measured on farpool, multiprocessing.Pool and a Celery group."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

IMPLEMENTATIONS = ("farpool", "multiprocessing", "celery")


@dataclass(frozen=True)
class Goal:
    """farpool's target: on its own figure, on its ratio to multiprocessing.Pool's, or on its
    ratio to another farpool figure measured in the same workload (`baseline`, in details)."""

    on: Literal["farpool", "ratio", "baseline"]
    op: Literal["<=", ">="]
    value: float
    baseline: str = ""  # what the baseline is, for the goal's text

    def met(self, figure: Figure) -> bool | None:
        if self.on == "baseline":
            base = figure.details.get("baseline")
            measured = None if figure.farpool is None or not base else figure.farpool / base
        else:
            measured = figure.ratio if self.on == "ratio" else figure.farpool
        if measured is None:
            return None
        compare = operator.le if self.op == "<=" else operator.ge
        return bool(compare(measured, self.value))

    def text(self, unit: str) -> str:
        op = "≤" if self.op == "<=" else "≥"
        if self.on == "ratio":
            return f"{op} {self.value:g}×"
        if self.on == "baseline":
            return f"{op} {self.value:g}× {self.baseline}"
        return f"{op} {format_value(self.value, unit)}"


@dataclass
class Figure:
    """A figure (median unless said) per implementation; None where it does not apply."""

    key: str
    workload: str
    metric: str
    unit: str
    farpool: float | None
    multiprocessing: float | None = None
    celery: float | None = None
    goal: Goal | None = None
    notes: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def measured(
        cls,
        key: str,
        workload: str,
        metric: str,
        unit: str,
        values: Mapping[str, float | None],
        *,
        goal: Goal | None = None,
        notes: str = "",
        samples: dict[str, list[float]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> Figure:
        """A figure from {implementation: value}; implementations missing from `values` are None."""
        return cls(
            key,
            workload,
            metric,
            unit,
            values.get("farpool"),
            values.get("multiprocessing"),
            values.get("celery"),
            goal=goal,
            notes=notes,
            samples=samples or {},
            details=details or {},
        )

    @property
    def ratio(self) -> float | None:
        """farpool / multiprocessing.Pool for this figure."""
        if self.farpool is None or not self.multiprocessing:
            return None
        return self.farpool / self.multiprocessing

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self)

    def values(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in IMPLEMENTATIONS}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["goal"] = None if self.goal is None else {**asdict(self.goal), "text": self.goal.text(self.unit)}
        data["ratio"] = self.ratio
        data["met"] = self.met
        return data


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "":
        return f"{value:.2f}"
    return f"{value:g} {unit}"
