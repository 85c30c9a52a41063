"""The dashboard's cross-project table of live runs, Blocked and Error first; Enter opens the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.widgets import DataTable

from bigend.ui.messages import OpenRun
from bigend.ui.render import DashboardRow, dashboard_cells, dashboard_signature
from bigend.ui.widgets.keyed_table import KeyedTable


def row_key(project: str, run_id: str) -> str:
    return f"{project}\x00{run_id}"


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

    def update_rows(self, rows: Sequence[DashboardRow], now: float) -> None:
        self._targets = {row_key(r.project.path, r.run.id): (r.project.path, r.run.id) for r in rows}
        self.sync(
            rows,
            key=lambda row: row_key(row.project.path, row.run.id),
            signature=lambda row: dashboard_signature(row, now),
            cells=lambda row: dashboard_cells(row, now),
            height=lambda row: 1 if row.why is None else 2,
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        target = self._targets.get(event.row_key.value or "")
        if target is not None:
            self.post_message(OpenRun(*target))
