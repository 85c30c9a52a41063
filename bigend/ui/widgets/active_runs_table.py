"""The dashboard's cross-project table of live runs, Blocked and Error first; Enter opens the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from bigend.ui.goal import goal_cell
from bigend.ui.messages import OpenRun
from bigend.ui.text import literal
from bigend.ui.views import DashboardRow
from bigend.ui.widgets.keyed_table import KeyedTable
from bigend.ui.widgets.run_list import run_signature, time_in_phase


def row_key(project: str, run_id: str) -> str:
    return f"{project}\x00{run_id}"


def active_cells(row: DashboardRow, now: float) -> tuple[Text, ...]:
    project, run = row.project, row.run
    age, age_style = time_in_phase(run, now)
    return (
        literal(project.name[:16]),
        literal(run.id[:8]),
        goal_cell(run, children=row.children, why=row.why),
        literal(run.phase[:12]),
        Text(age, style=age_style, justify="right"),
        Text(run.unified.glyph, style=run.unified.color),
    )


class ActiveRunsTable(KeyedTable):
    """A Blocked or failed run takes two lines: its goal, then why it needs the operator."""

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = (
        ("project", "Project", 16),
        ("id", "Run", 8),
        ("goal", "Goal", 20),
        ("phase", "Phase", 12),
        ("age", "In phase", 8),
        ("status", "S", 1),
    )
    IDENTITY_COLUMNS: ClassVar[tuple[str, ...]] = ("project", "id")
    FILL_COLUMN = "goal"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._targets: dict[str, tuple[str, str]] = {}

    def show(self, rows: Sequence[DashboardRow], now: float) -> None:
        self._targets = {row_key(r.project.path, r.run.id): (r.project.path, r.run.id) for r in rows}
        self.sync(
            rows,
            key=lambda row: row_key(row.project.path, row.run.id),
            signature=lambda row: (row.project.name, row.why, row.children, *run_signature(row.run, now)),
            cells=lambda row: active_cells(row, now),
            height=lambda row: 1 if row.why is None else 2,
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        target = self._targets.get(event.row_key.value or "")
        if target is not None:
            self.post_message(OpenRun(*target, "dashboard"))
