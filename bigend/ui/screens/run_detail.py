"""The narrow-terminal overlay: the selected run's detail full screen; Escape returns to the list.

It is made with the state the main screen shows and renders itself: on mount, on every `StateArrived`
the app posts to the screens on the stack, and on its own time-in-phase tick (stopped with it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from bigend.core.snapshot import KernelState
from bigend.ui import selectors
from bigend.ui.messages import StateArrived
from bigend.ui.screens import NARROW_BELOW, TICK_SECONDS
from bigend.ui.widgets.run_detail import RunDetail


class RunDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back to runs", id="overlay.back"),
    ]

    def __init__(
        self,
        project: str,
        run_id: str | None,
        state: KernelState,
        *,
        clock: Callable[[], float] = time.time,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        super().__init__(id="run-detail-screen")
        self.project = project
        self.run_id = run_id
        self.state = state
        self.clock = clock
        self.tick_seconds = tick_seconds

    def compose(self) -> ComposeResult:
        yield RunDetail(id="overlay-detail", classes="pane", names_run=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.detail.focus()
        self.set_interval(self.tick_seconds, self.render_run)
        self.render_run()

    @property
    def detail(self) -> RunDetail:
        return self.query_one(RunDetail)

    def on_state_arrived(self, message: StateArrived) -> None:
        self.state = message.state
        self.render_run()

    def render_run(self) -> None:
        project = selectors.find_project(self.state, self.project)
        run = selectors.find_run(project, self.run_id)
        members = selectors.portfolio_members(self.state, project, run)
        self.detail.show_run(project, run, self.clock(), members=members)

    def on_resize(self) -> None:
        """Widening past the narrow threshold returns to the two-pane view (which shows the detail)."""
        if self.size.width >= NARROW_BELOW and self.is_current:
            self.dismiss(None)

    def action_back(self) -> None:
        self.dismiss(None)
