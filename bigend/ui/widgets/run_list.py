"""The run list of one project: ID, status, phase, time in phase, progress, complexity, goal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from bigend.core.snapshot import RunInfo
from bigend.core.status import UnifiedStatus
from bigend.ui import format as fmt
from bigend.ui.goal import goal_cell
from bigend.ui.messages import OpenRun, RunHighlighted
from bigend.ui.text import literal
from bigend.ui.widgets.keyed_table import KeyedTable

_FINISHED = frozenset({UnifiedStatus.DONE, UnifiedStatus.ERROR})


def time_in_phase(run: RunInfo, now: float) -> tuple[str, str]:
    """(text, style) of the time-in-phase cell; a finished run is no longer "in" its phase."""
    if run.unified in _FINISHED:
        return "·", "dim"
    in_phase = now - run.phase_entered_at
    return fmt.duration(in_phase), fmt.age_style(in_phase)


def run_signature(run: RunInfo, now: float) -> tuple[object, ...]:
    """Everything a row shows, cheaply: equal signatures mean the row needs no work at all."""
    return (run.unified, run.phase, time_in_phase(run, now), run.complexity, run.goal, run.phases)


def run_cells(
    run: RunInfo, now: float, *, child_of: str | None = None, children: int = 0
) -> tuple[Text, ...]:
    """The seven cells of one run row (a portfolio's child copy is named by its project)."""
    age, age_style = time_in_phase(run, now)
    return (
        literal(run.id[:8]),
        Text(run.unified.glyph, style=run.unified.color),
        literal(run.phase[:12]),
        Text(age, style=age_style, justify="right"),
        Text(fmt.progress_bar(fmt.progress(run)), style=run.unified.color),
        Text(str(run.complexity), justify="right"),
        goal_cell(run, child_of=child_of, children=children),
    )


class RunList(KeyedTable):
    """Posts RunHighlighted as the cursor moves and OpenRun on Enter."""

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = (
        ("id", "ID", 8),
        ("status", "S", 1),
        ("phase", "Phase", 12),
        ("age", "In ph", 6),
        ("progress", "Progress", 8),
        ("cx", "Cx", 2),
        ("goal", "Goal", 20),
    )
    FILL_COLUMN = "goal"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.project: str | None = None

    def show(
        self,
        project: str | None,
        runs: Sequence[RunInfo],
        now: float,
        *,
        child_of: Mapping[str, str] | None = None,
        children: Mapping[str, int] | None = None,
    ) -> None:
        """Show `runs` of `project`; switching project resets the cursor, a live update never does.

        `child_of` and `children` label a portfolio project's rows (views.child_projects and
        views.portfolio_children); an ordinary project has neither.
        """
        if project != self.project:
            self.project = project
            self.sync_rows([])
            self.move_cursor(row=0, animate=False)
        labels, counts = child_of or {}, children or {}
        if labels or counts:

            def signature(run: RunInfo) -> tuple[object, ...]:
                return (*run_signature(run, now), labels.get(run.id), counts.get(run.id, 0))

            def cells(run: RunInfo) -> tuple[Text, ...]:
                return run_cells(run, now, child_of=labels.get(run.id), children=counts.get(run.id, 0))

        else:

            def signature(run: RunInfo) -> tuple[object, ...]:
                return run_signature(run, now)

            def cells(run: RunInfo) -> tuple[Text, ...]:
                return run_cells(run, now)

        self.sync(runs, key=lambda run: run.id, signature=signature, cells=cells)
        if not runs:
            self.post_message(RunHighlighted(project, None))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(RunHighlighted(self.project, event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.project is not None:
            self.post_message(OpenRun(self.project, event.row_key.value, "run-list"))
