"""The project sidebar: every project with its `[N runs]` badge, `!` when its data failed, blocked count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.widgets import DataTable

from bigend.core.snapshot import ProjectState
from bigend.ui.messages import ProjectChosen, ProjectHighlighted
from bigend.ui.render import badge
from bigend.ui.text import literal
from bigend.ui.widgets.keyed_table import KeyedTable


class ProjectSidebar(KeyedTable):
    """Posts ProjectHighlighted as the cursor moves and ProjectChosen on Enter."""

    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = (("name", "Project", 14), ("badge", "", 14))
    IDENTITY_COLUMNS: ClassVar[tuple[str, ...]] = ("name",)
    FILL_COLUMN = "name"
    FILL_MIN = 6
    SHOW_HEADER = False

    def update_projects(self, projects: Sequence[ProjectState]) -> None:
        self.sync_rows([(p.path, (literal(p.name), badge(p))) for p in projects])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(ProjectHighlighted(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(ProjectChosen(event.row_key.value))
