"""Bigend: the full-screen mission control over every kernel project under the configured roots.

The app keeps the data source (the aggregator, or a fixed state for tests and screenshots), the
workers that read it, and the keys that work everywhere. Each KernelState goes to the screens as a
`StateArrived` message; the main screen owns the selection, the filter, the history toggle, the
rendering and the tick (see `bigend.ui.screens.main`). Database reads happen only inside the
aggregator's async tasks, never here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from textual import work
from textual.actions import SkipAction
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.widgets import Input
from textual.worker import Worker

from bigend.core.snapshot import KernelState
from bigend.ui.commands import BigendCommands
from bigend.ui.messages import StateArrived
from bigend.ui.screens import TICK_SECONDS
from bigend.ui.screens.help import HelpScreen
from bigend.ui.screens.main import MainScreen
from bigend.ui.screens.run_detail import RunDetailScreen
from bigend.ui.text import clean

if TYPE_CHECKING:
    from bigend.core.config import BigendConfig

STYLESHEET = Path(__file__).resolve().parents[2] / "styles" / "bigend.tcss"


class StateSource(Protocol):
    """What the app needs from the core's Aggregator (kept structural so tests can pass the real one)."""

    async def refresh(self, *, force: bool = False, only: Any = None) -> KernelState: ...

    async def run_live(self, on_state: Callable[[KernelState], None]) -> None: ...

    async def close(self) -> None: ...


class BigendApp(App[int]):
    CSS_PATH = str(STYLESHEET)
    TITLE = "Bigend"
    # One provider: it lists Textual's system commands too, after the app's own.
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {BigendCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        # In the order the footer shows them: what a newcomer needs first, quit last.
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("f1", "help", "Help", show=False, id="app.help"),
        # Priority: handled as the key arrives, before it is queued for the focused pane, so the
        # keys typed right behind it already go to the filter bar (see action_filter).
        Binding("slash", "filter", "Filter", key_display="/", priority=True, id="app.filter"),
        Binding("a", "toggle_all", "All runs", id="app.toggle_all"),
        Binding("r", "refresh", "Refresh", id="app.refresh"),
        Binding("ctrl+p", "command_palette", "Commands", id="app.palette"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        *,
        aggregator: StateSource | None = None,
        state: KernelState | None = None,
        clock: Callable[[], float] = time.time,
        event_lines: int = 2000,
        tick_seconds: float = TICK_SECONDS,
        title: str = "Bigend",
    ) -> None:
        """Live on an `aggregator`, or a fixed `state` (tests, screenshots); `clock` and
        `tick_seconds` are the screens' (a frozen clock keeps snapshots stable)."""
        super().__init__()
        if aggregator is None and state is None:
            raise ValueError("BigendApp needs an aggregator (live) or a state (static)")
        self.source = aggregator
        self.title = title
        self.clock = clock
        self.event_lines = event_lines
        self.tick_seconds = tick_seconds
        self._initial_state = state
        self._main: MainScreen | None = None
        self._live_worker: Worker[None] | None = None

    @property
    def main_screen(self) -> MainScreen:
        """The main screen, also while the help, the palette or the narrow overlay is on top of it."""
        if self._main is None:
            raise LookupError("the app is not running: no main screen yet")
        return self._main

    def get_default_screen(self) -> MainScreen:
        self._main = MainScreen(
            clock=self.clock,
            live=self.source is not None,
            state=self._initial_state,
            event_lines=self.event_lines,
            tick_seconds=self.tick_seconds,
        )
        return self._main

    def on_mount(self) -> None:
        if self.source is not None:
            self._live_worker = self._live()

    async def on_unmount(self) -> None:
        if self.source is not None:
            await self.source.close()

    # -- the data source ---------------------------------------------------------------------------
    @work(exclusive=True, group="live", exit_on_error=False)
    async def _live(self) -> None:
        """The core's first picture, then its change notifications; all reads stay in its async tasks."""
        assert self.source is not None
        try:
            await self.source.run_live(self.deliver)
        except Exception as exc:  # the core failed: say so on screen instead of freezing silently
            self.notify(
                f"live updates stopped: {clean(str(exc))}; press r to retry", severity="error", markup=False
            )
            raise

    def deliver(self, state: KernelState) -> None:
        """Hand a new state to every screen on the stack; the ones that show state handle it. A queued
        state that a newer one overtakes is dropped unseen (`StateArrived.can_replace`)."""
        for screen in self.screen_stack:
            screen.post_message(StateArrived(state))

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def _refresh_now(self) -> None:
        assert self.source is not None
        try:
            state = await self.source.refresh(force=True)
        except Exception as exc:
            self.notify(f"refresh failed: {clean(str(exc))}", severity="error", markup=False)
            return
        self.deliver(state)
        if self._live_worker is not None and self._live_worker.is_finished:
            self._live_worker = self._live()  # live updates had stopped on an error: try again

    # -- keys that work everywhere -----------------------------------------------------------------
    def action_filter(self) -> None:
        if isinstance(self.focused, Input):
            raise SkipAction  # typing a `/` into the filter bar or the palette
        if isinstance(self.screen, RunDetailScreen | HelpScreen):
            self.screen.dismiss(None)  # the filter bar lives on the main screen
        self.main_screen.open_filter()

    def action_toggle_all(self) -> None:
        self.main_screen.show_all = not self.main_screen.show_all

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_refresh(self) -> None:
        if self.source is None:
            self.notify("Static snapshot: nothing to refresh", timeout=2)
            return
        self._refresh_now()


def run_app(config: BigendConfig, *, demo_dir: Path | None = None) -> int:
    """Run the TUI on the projects under `config.roots` (and keep a demo workspace alive if given)."""
    from bigend.ui.launch import launch

    return launch(config, demo_dir=demo_dir)
