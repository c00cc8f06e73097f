"""Values passed between the compute, render and write steps of the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Missing:
    """An input a figure needs and did not find, and the command that makes it."""

    what: str
    path: str
    command: str
    columns: tuple[str, ...] = ()

    def sentence(self) -> str:
        cols = f" (columns {', '.join(self.columns)})" if self.columns else ""
        return f"{self.what} not found at {self.path}{cols}: run `{self.command}`"


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report: the plot (None when nothing could be drawn) and what made it.

    `produced_by` holds the provenance shown in index.html (device, dtype, input size, dates,
    source files); `summary` the figure's headline numbers in one line.
    """

    slug: str  # file stem, unique in the report
    section: str  # paper | pareto | evidence
    title: str
    figure: Any | None  # plotly.graph_objects.Figure
    produced_by: dict[str, Any] = field(default_factory=dict)
    missing: tuple[Missing, ...] = ()
    summary: str = ""

    @property
    def drawn(self) -> bool:
        return self.figure is not None
