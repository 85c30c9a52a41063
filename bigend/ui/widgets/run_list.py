"""The run list of one project: ID, status, phase, time in phase, progress, complexity, goal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from bigend.core.snapshot import RunInfo
from bigend.core.status import UnifiedStatus
from bigend.ui import format as fmt
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


def run_cells(run: RunInfo, now: float) -> tuple[Text, ...]:
    """The seven cells of one run row."""
    age, age_style = time_in_phase(run, now)
    return (
        literal(run.id[:8]),
        Text(run.unified.glyph, style=run.unified.color),
        literal(run.phase[:12]),
        Text(age, style=age_style, justify="right"),
        Text(fmt.progress_bar(fmt.progress(run)), style=run.unified.color),
        Text(str(run.complexity), justify="right"),
        literal(run.goal),
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

    def show(self, project: str | None, runs: Sequence[RunInfo], now: float) -> None:
        """Show `runs` of `project`; switching project resets the cursor, a live update never does."""
        if project != self.project:
            self.project = project
            self.sync_rows([])
            self.move_cursor(row=0, animate=False)
        self.sync(
            runs,
            key=lambda run: run.id,
            signature=lambda run: run_signature(run, now),
            cells=lambda run: run_cells(run, now),
        )
        if not runs:
            self.post_message(RunHighlighted(project, None))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(RunHighlighted(self.project, event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.project is not None:
            self.post_message(OpenRun(self.project, event.row_key.value, "run-list"))
