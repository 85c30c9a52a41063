"""The run list of one project: ID, status, phase, time in phase, progress, complexity, goal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from bigend.core.snapshot import RunInfo
from bigend.ui.messages import RunChosen, RunHighlighted
from bigend.ui.render import run_cells, run_signature
from bigend.ui.widgets.keyed_table import KeyedTable


class RunList(KeyedTable):
    """Posts RunHighlighted as the cursor moves and RunChosen on Enter."""

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

    def update_runs(
        self,
        project: str | None,
        runs: Sequence[RunInfo],
        now: float,
        *,
        child_of: Mapping[str, str] | None = None,
        children: Mapping[str, int] | None = None,
    ) -> None:
        """Show `runs` of `project`; switching project resets the cursor, a live update never does.

        `child_of` and `children` label a portfolio project's rows (selectors.child_projects and
        selectors.portfolio_children); an ordinary project has neither.
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
            self.post_message(RunChosen(self.project, event.row_key.value))
