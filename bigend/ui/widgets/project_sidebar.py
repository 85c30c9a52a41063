"""The project sidebar: every project with its `[N runs]` badge, `!` when its data failed, blocked count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from bigend.core.snapshot import ProjectState
from bigend.ui.messages import OpenRun, ProjectHighlighted
from bigend.ui.text import literal
from bigend.ui.views import blocked_count
from bigend.ui.widgets.keyed_table import KeyedTable


def run_count(project: ProjectState) -> tuple[int, str]:
    """(count, noun) of the badge: a portfolio counts its parent runs (its child copies are shown in
    their own projects); a project counts every run in its database, not only the ones the core loaded."""
    if project.portfolio:
        return sum(1 for r in project.runs if r.parent_run_id is None), "portfolio"
    return max(project.runs_total, len(project.runs)), "run"


def badge(project: ProjectState) -> Text:
    count, noun = run_count(project)
    text = Text(f"[{count} {noun}{'' if count == 1 else 's'}]", style="dim", end="")
    if project.error:
        text.append(" !", style="bold red")
    blocked = blocked_count(project)
    if blocked:
        text.append(f" ■{blocked}", style="bold yellow")
    return text


class ProjectSidebar(KeyedTable):
    """Posts ProjectHighlighted as the cursor moves; Enter moves on to the project's run list."""

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = (("name", "Project", 14), ("badge", "", 14))
    IDENTITY_COLUMNS: ClassVar[tuple[str, ...]] = ("name",)
    FILL_COLUMN = "name"
    FILL_MIN = 6
    SHOW_HEADER = False

    def show(self, projects: Sequence[ProjectState]) -> None:
        self.sync_rows([(p.path, (literal(p.name), badge(p))) for p in projects])

    @property
    def selected_project(self) -> str | None:
        return self.selected_key

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(ProjectHighlighted(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(OpenRun(event.row_key.value, None, "sidebar"))
