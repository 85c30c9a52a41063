"""The dashboard's cross-project table of live runs, Blocked and Error first; Enter opens the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from bigend.core.snapshot import ProjectState, RunInfo
from bigend.ui.messages import OpenRun
from bigend.ui.text import literal
from bigend.ui.widgets.keyed_table import KeyedTable
from bigend.ui.widgets.run_list import run_signature, time_in_phase


def row_key(project: str, run_id: str) -> str:
    return f"{project}\x00{run_id}"


def active_cells(project: ProjectState, run: RunInfo, now: float) -> tuple[Text, ...]:
    age, age_style = time_in_phase(run, now)
    return (
        literal(project.name[:16]),
        literal(run.id[:8]),
        literal(run.goal),
        literal(run.phase[:12]),
        Text(age, style=age_style, justify="right"),
        Text(run.unified.glyph, style=run.unified.color),
    )


class ActiveRunsTable(KeyedTable):
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

    def show(self, rows: Sequence[tuple[ProjectState, RunInfo]], now: float) -> None:
        self._targets = {row_key(p.path, r.id): (p.path, r.id) for p, r in rows}
        self.sync(
            rows,
            key=lambda pr: row_key(pr[0].path, pr[1].id),
            signature=lambda pr: (pr[0].name, *run_signature(pr[1], now)),
            cells=lambda pr: active_cells(pr[0], pr[1], now),
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        target = self._targets.get(event.row_key.value or "")
        if target is not None:
            self.post_message(OpenRun(*target, "dashboard"))
