"""The dashboard's stats row: Projects | Active Runs | Blocked | Dispatches | Tokens."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from bigend.core.snapshot import Metrics
from bigend.ui import render


def projects_figure(metrics: Metrics) -> str:
    """`4 projects`, or `3/4 projects` when some project's data could not be read."""
    if metrics.projects_ok < metrics.projects_total:
        return f"{metrics.projects_ok}/{metrics.projects_total} projects"
    return f"{metrics.projects_total} project{'' if metrics.projects_total == 1 else 's'}"


# Below this width the five cells only fit their labels with the token figures abbreviated.
COMPACT_BELOW = 100


def tokens_figure(metrics: Metrics, *, compact: bool = False) -> str:
    figure = render.tokens_compact if compact else render.tokens
    return f"{figure(metrics.total_tokens_in)} in / {figure(metrics.total_tokens_out)} out"


class Stat(Static):
    """One labelled figure; the label is the border title so the figure keeps the whole cell."""

    def __init__(self, label: str, *, id: str) -> None:
        super().__init__("-", id=id, classes="stat")
        self.border_title = label


class StatsRow(Horizontal):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._metrics: Metrics | None = None

    def on_resize(self) -> None:
        if self._metrics is not None:
            self.update_metrics(self._metrics)

    def compose(self) -> ComposeResult:
        yield Stat("Projects", id="stat-projects")
        yield Stat("Active Runs", id="stat-active")
        yield Stat("Blocked", id="stat-blocked")
        yield Stat("Dispatches", id="stat-dispatches")
        yield Stat("Tokens", id="stat-tokens")

    def update_metrics(self, metrics: Metrics) -> None:
        self._metrics = metrics
        compact = self.size.width < COMPACT_BELOW
        self.set_class(compact, "-compact")
        self.query_one("#stat-projects", Stat).update(projects_figure(metrics))
        self.query_one("#stat-projects", Stat).set_class(
            metrics.projects_ok < metrics.projects_total, "-warning"
        )
        self.query_one("#stat-active", Stat).update(str(metrics.active_runs))
        blocked = self.query_one("#stat-blocked", Stat)
        blocked.update(str(metrics.blocked_agents))
        blocked.set_class(metrics.blocked_agents > 0, "-warning")
        self.query_one("#stat-dispatches", Stat).update(str(metrics.active_dispatches))
        self.query_one("#stat-tokens", Stat).update(tokens_figure(metrics, compact=compact))
