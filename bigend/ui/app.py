"""Bigend: the full-screen mission control over every kernel project under the configured roots.

The app owns the data: it takes a KernelState from the core (the aggregator's live notifications, a
refresh worker, or a fixed state for tests and screenshots) and pushes it into the widgets, which
update row by row. Database reads happen only inside the aggregator's async tasks, never here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rich.text import Text
from textual import work
from textual.actions import SkipAction
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Static
from textual.worker import Worker

from bigend.core.snapshot import KernelState, ProjectState, RunInfo
from bigend.ui import views
from bigend.ui.commands import BigendCommands
from bigend.ui.filtering import FilterQuery, parse_filter
from bigend.ui.focus import focus_now
from bigend.ui.messages import FilterChanged, FilterClosed, OpenRun, ProjectHighlighted, RunHighlighted
from bigend.ui.screens.help import HelpScreen
from bigend.ui.screens.main import MainScreen
from bigend.ui.screens.run_detail import RunDetailScreen
from bigend.ui.text import clean
from bigend.ui.widgets.active_runs_table import ActiveRunsTable
from bigend.ui.widgets.event_viewport import EventViewport
from bigend.ui.widgets.filter_bar import FilterBar
from bigend.ui.widgets.project_sidebar import ProjectSidebar
from bigend.ui.widgets.run_detail import RunDetail
from bigend.ui.widgets.run_list import RunList
from bigend.ui.widgets.stats_row import StatsRow

if TYPE_CHECKING:
    from bigend.core.config import BigendConfig

STYLESHEET = Path(__file__).resolve().parents[2] / "styles" / "bigend.tcss"
TICK_SECONDS = 15.0
FILTER_DEBOUNCE = 0.15


class StateSource(Protocol):
    """What the app needs from the core's Aggregator (kept structural so tests can pass the real one)."""

    @property
    def state(self) -> KernelState: ...

    async def refresh(self, *, force: bool = False, only: Any = None) -> KernelState: ...

    async def run_live(self, on_state: Callable[[KernelState], None]) -> None: ...

    async def close(self) -> None: ...


class StateArrived(Message):
    """A new KernelState is waiting in `BigendApp._pending` (coalesced: only the newest is applied)."""


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
        on_ready: Callable[[BigendApp], None] | None = None,
        title: str = "Bigend",
    ) -> None:
        super().__init__()
        if aggregator is None and state is None:
            raise ValueError("BigendApp needs an aggregator (live) or a state (static)")
        self.source = aggregator
        self.state: KernelState | None = None
        self._initial_state = state
        self.clock = clock
        self.event_lines = event_lines
        self.show_all = False
        self.filter: FilterQuery = parse_filter("")
        self.selected_project: str | None = None
        self.selected_runs: dict[str, str | None] = {}
        self.updates_applied = 0
        self._pending: KernelState | None = None
        self._ui_thread = threading.get_ident()
        self._on_ready = on_ready
        self._focus_before_filter: Any = None
        self._filter_timer: Timer | None = None
        self._live_worker: Worker[None] | None = None
        self.title = title

    # -- lifecycle ---------------------------------------------------------------------------------
    def get_default_screen(self) -> MainScreen:
        return MainScreen(event_lines=self.event_lines)

    def on_main_screen_ready(self, _: MainScreen.Ready) -> None:
        """The widgets exist: show the fixed state, or start listening to the core."""
        self._ui_thread = threading.get_ident()
        self.set_interval(TICK_SECONDS, self._tick)
        if self._initial_state is not None:
            self.apply_state(self._initial_state)
        if self.source is not None:
            self._live_worker = self._live()

    async def on_unmount(self) -> None:
        if self.source is not None:
            await self.source.close()

    @work(exclusive=True, group="live", exit_on_error=False)
    async def _live(self) -> None:
        """The core's first picture, then its change notifications; all reads stay in its async tasks."""
        assert self.source is not None
        try:
            await self.source.run_live(self._deliver)
        except Exception as exc:  # the core failed: say so on screen instead of freezing silently
            self.notify(
                f"live updates stopped: {clean(str(exc))}; press r to retry", severity="error", markup=False
            )
            raise

    def _deliver(self, state: KernelState) -> None:
        """Called by the core after each refresh that changed something; safe from any thread."""
        first = self._pending is None
        self._pending = state
        if not first:
            return
        if threading.get_ident() == self._ui_thread:
            self.post_message(StateArrived())
        else:
            self.call_from_thread(self.post_message, StateArrived())

    def on_run_detail_screen_ready(self, _: RunDetailScreen.Ready) -> None:
        self.render_detail()

    def on_state_arrived(self, _: StateArrived) -> None:
        state, self._pending = self._pending, None
        if state is not None:
            self.apply_state(state)

    def _tick(self) -> None:
        """Time in phase moves on even when nothing is written."""
        if self.state is not None:
            self.render_state()

    # -- rendering ---------------------------------------------------------------------------------
    @property
    def main(self) -> MainScreen:
        """The main screen, also while the help or the narrow overlay is on top of it."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    def apply_state(self, state: KernelState) -> None:
        first = self.state is None
        self.state = state
        self.render_state()
        self.updates_applied += 1
        if first and self._on_ready is not None:
            self.call_after_refresh(self._on_ready, self)

    def render_state(self) -> None:
        state = self.state
        if state is None:
            return
        now = self.clock()
        main = self.main
        main.query_one("#stats", StatsRow).show(state.metrics)
        active = views.dashboard_runs(state, now)
        if not self.filter.empty:
            active = [(p, r) for p, r in active if self.filter.matches_run(r, p.name)]
        rows = [views.dashboard_row(p, r) for p, r in active]
        main.query_one("#active-runs", ActiveRunsTable).show(rows, now)
        projects = [p for p in state.projects if self.filter.matches_project(p.name)]
        sidebar = main.query_one("#sidebar", ProjectSidebar)
        sidebar.show(projects)
        if self.selected_project not in {p.path for p in projects}:
            self.selected_project = sidebar.selected_key or (projects[0].path if projects else None)
        self.render_project(now)
        names = views.project_names(state)
        events = views.all_events(state.projects)
        for viewport_id in ("#dashboard-events", "#event-viewport"):
            viewport = main.query_one(viewport_id, EventViewport)
            viewport.ingest(events, names)
        self.render_status_line()

    def visible_runs(
        self, project: ProjectState, now: float, child_names: Mapping[str, str] | None = None
    ) -> list[RunInfo]:
        runs = views.project_runs(project, now, self.show_all, child_names)
        if self.filter.empty:
            return runs
        return [r for r in runs if self.filter.matches_run(r, project.name)]

    def render_project(self, now: float | None = None) -> None:
        if self.state is None:
            return
        now = self.clock() if now is None else now
        main = self.main
        project = views.find_project(self.state, self.selected_project)
        run_list = main.query_one("#run-list", RunList)
        if project is not None and project.portfolio:
            names = views.child_projects(self.state, project)
            runs = self.visible_runs(project, now, names)
            run_list.show(project.path, runs, now, child_of=names, children=views.portfolio_children(project))
        else:
            runs = self.visible_runs(project, now) if project is not None else []
            run_list.show(project.path if project else None, runs, now)
        if project is not None:
            remembered = self.selected_runs.get(project.path)
            if remembered is not None and run_list.project == project.path:
                run_list.select_key(remembered, scroll=False)
            run_list.border_title = Text.assemble("Runs · ", clean(project.name))
        self.render_detail(now)

    def render_detail(self, now: float | None = None) -> None:
        if self.state is None:
            return
        now = self.clock() if now is None else now
        project = views.find_project(self.state, self.selected_project)
        run_id = self.main.query_one("#run-list", RunList).selected_key
        run = views.find_run(project, run_id)
        members = views.portfolio_members(self.state, project, run)
        self.main.query_one("#run-detail", RunDetail).show(project, run, now, members=members)
        overlay = self.screen
        if isinstance(overlay, RunDetailScreen):
            overlay_project = views.find_project(self.state, overlay.project)
            overlay_run = views.find_run(overlay_project, overlay.run_id)
            overlay_members = views.portfolio_members(self.state, overlay_project, overlay_run)
            overlay.detail.show(overlay_project, overlay_run, now, members=overlay_members)

    def render_status_line(self) -> None:
        state = self.state
        parts = ["all runs" if self.show_all else "active + last 24 h (a: all)"]
        if not self.filter.empty:
            parts.append(f"filter: {clean(self.filter.text)}")
        if state is not None:
            errors = state.metrics.kernel_errors
            if errors:
                parts.append(f"! {len(errors)} project(s) failed to read")
        if self.source is None:
            parts.append("static snapshot")
        self.main.query_one("#status-line", Static).update(Text(" · ".join(parts)))

    # -- messages from widgets ---------------------------------------------------------------------
    def on_project_highlighted(self, message: ProjectHighlighted) -> None:
        if message.project != self.selected_project:
            self.selected_project = message.project
            self.render_project()

    def on_run_highlighted(self, message: RunHighlighted) -> None:
        if message.project is not None and message.project == self.selected_project:
            self.selected_runs[message.project] = message.run_id
        self.render_detail()

    def on_open_run(self, message: OpenRun) -> None:
        main = self.main
        if message.origin == "sidebar":
            focus_now(main.query_one("#run-list", RunList))
            return
        if message.origin == "run-list":
            if main.narrow:
                self.push_screen(RunDetailScreen(message.project, message.run_id))
            else:
                focus_now(main.query_one("#run-detail", RunDetail))
            return
        self.open_run(message.project, message.run_id)

    def open_project(self, project: str) -> None:
        self.open_run(project, None)

    def open_run(self, project: str, run_id: str | None) -> None:
        """Projects tab, that project in the sidebar, that run under the cursor, focus on the run list."""
        if self.state is None:
            return
        main = self.main
        target = views.find_project(self.state, project)
        if target is None:
            return
        if not self.filter.matches_project(target.name):
            self.set_filter("")
        sidebar = main.query_one("#sidebar", ProjectSidebar)
        sidebar.select_key(project)
        self.selected_project = project
        if run_id is not None:
            self.selected_runs[project] = run_id
            run = views.find_run(target, run_id)
            if run is not None and run not in self.visible_runs(target, self.clock()):
                if not self.filter.matches_run(run, target.name):
                    self.set_filter("")
                if run not in self.visible_runs(target, self.clock()):
                    self.show_all = True
        self.render_project()
        run_list = main.query_one("#run-list", RunList)
        if run_id is not None:
            run_list.select_key(run_id)
        main.show_tab("projects", focus=run_list)
        self.render_detail()
        self.render_status_line()

    def on_filter_changed(self, message: FilterChanged) -> None:
        """Typing re-filters after a short pause, so a burst of keys costs one re-render."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
        text = message.text
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE, lambda: self._apply_typed_filter(text))

    def _apply_typed_filter(self, text: str) -> None:
        """The debounce timer's end; the app may be shutting down by then (its screens gone)."""
        if any(isinstance(screen, MainScreen) for screen in self.screen_stack):
            self._apply_filter(text)

    def on_filter_closed(self, message: FilterClosed) -> None:
        bar = self.main.query_one("#filter", FilterBar)
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self._apply_filter(bar.value if message.keep else "")
        bar.display = False
        if self._focus_before_filter is not None and self._focus_before_filter.is_attached:
            focus_now(self._focus_before_filter)
        else:
            focus_now(self.main.panes()[0])

    # -- actions -----------------------------------------------------------------------------------
    def action_filter(self) -> None:
        if isinstance(self.focused, Input):
            raise SkipAction  # typing a `/` into the filter bar or the palette
        if isinstance(self.screen, RunDetailScreen | HelpScreen):
            self.screen.dismiss(None)  # the filter bar lives on the main screen
        bar = self.main.query_one("#filter", FilterBar)
        if not bar.display:
            self._focus_before_filter = self.focused
        bar.display = True
        focus_now(bar)

    def action_filter_term(self, key: str) -> None:
        """Open the filter bar with `key=` ready for its value, replacing a `key=` term already there."""
        self.action_filter()
        bar = self.main.query_one("#filter", FilterBar)
        kept = [token for token in bar.value.split() if not token.lower().startswith(f"{key}=")]
        bar.value = " ".join([*kept, f"{key}="])
        bar.cursor_position = len(bar.value)

    def set_filter(self, text: str) -> None:
        bar = self.main.query_one("#filter", FilterBar)
        with bar.prevent(FilterBar.Changed):
            bar.value = text
        self._apply_filter(text)

    def _apply_filter(self, text: str) -> None:
        query = parse_filter(text)
        if query == self.filter:
            return
        self.filter = query
        main = self.main
        for viewport_id in ("#dashboard-events", "#event-viewport"):
            main.query_one(viewport_id, EventViewport).set_filter(query)
        self.render_state()

    def action_toggle_all(self) -> None:
        self.show_all = not self.show_all
        self.render_project()
        self.render_status_line()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def show_tab(self, tab: str) -> None:
        self.main.show_tab(tab)

    def action_refresh(self) -> None:
        if self.source is None:
            self.notify("Static snapshot: nothing to refresh", timeout=2)
            return
        self._refresh_now()

    @work(exclusive=True, group="refresh", exit_on_error=False)
    async def _refresh_now(self) -> None:
        assert self.source is not None
        try:
            state = await self.source.refresh(force=True)
        except Exception as exc:
            self.notify(f"refresh failed: {clean(str(exc))}", severity="error", markup=False)
            return
        self._deliver(state)
        if self._live_worker is not None and self._live_worker.is_finished:
            self._live_worker = self._live()  # live updates had stopped on an error: try again


def run_app(config: BigendConfig, *, demo_dir: Path | None = None) -> int:
    """Run the TUI on the projects under `config.roots` (and keep a demo workspace alive if given)."""
    from bigend.ui.launch import launch

    return launch(config, demo_dir=demo_dir)
