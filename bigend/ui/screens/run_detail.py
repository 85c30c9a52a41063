"""The narrow-terminal overlay: the selected run's detail full screen; Escape returns to the list."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer

from bigend.ui.widgets.run_detail import RunDetail


class RunDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back to runs", id="overlay.back"),
    ]

    class Ready(Message):
        """Posted to the app once mounted, so it fills the detail with the current state."""

    def __init__(self, project: str, run_id: str | None) -> None:
        super().__init__(id="run-detail-screen")
        self.project = project
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield RunDetail(id="overlay-detail", classes="pane", names_run=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(RunDetail).focus()
        self.app.post_message(self.Ready())

    def on_resize(self) -> None:
        """Widening past the narrow threshold returns to the two-pane view (which shows the detail)."""
        from bigend.ui.screens.main import NARROW_BELOW

        if self.size.width >= NARROW_BELOW and self.is_current:
            self.dismiss(None)

    @property
    def detail(self) -> RunDetail:
        return self.query_one(RunDetail)

    def action_back(self) -> None:
        self.dismiss(None)
