"""The main screen: Dashboard, Projects and Events tabs, the filter bar, a status line and the footer.

The screen owns what it shows: the latest KernelState (each arrives as a `StateArrived` message), the
operator's selection, the filter and the history toggle (reactives with watchers that re-render), the
activity feed both event viewports are fed from, the time-in-phase tick and the filter's debounce
timer. Its timers stop with it, so nothing renders into its widgets after they are gone. It also owns
pane focus (Tab / shift+Tab / h / l cycle the panes of the visible tab) and the narrow layout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import ClassVar

from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from bigend.core.feed import ActivityFeed
from bigend.core.snapshot import KernelState, ProjectState, RunInfo
from bigend.ui import selectors
from bigend.ui.filtering import FilterQuery, parse_filter
from bigend.ui.focus import focus_now
from bigend.ui.messages import (
    FilterChanged,
    FilterClosed,
    OpenRun,
    ProjectChosen,
    ProjectHighlighted,
    RunChosen,
    RunHighlighted,
    StateArrived,
)
from bigend.ui.render import dashboard_row
from bigend.ui.screens import NARROW_BELOW, TICK_SECONDS
from bigend.ui.screens.run_detail import RunDetailScreen
from bigend.ui.text import clean
from bigend.ui.widgets.active_runs_table import ActiveRunsTable
from bigend.ui.widgets.event_viewport import EventViewport
from bigend.ui.widgets.filter_bar import FilterBar
from bigend.ui.widgets.project_sidebar import ProjectSidebar
from bigend.ui.widgets.run_detail import RunDetail
from bigend.ui.widgets.run_list import RunList
from bigend.ui.widgets.stats_row import StatsRow

TABS = ("dashboard", "projects", "events")
FILTER_DEBOUNCE = 0.15
DASHBOARD_EVENT_LINES = 500


class MainScreen(Screen[None]):
    # The tab keys are priority bindings: they act as the key arrives, so keys typed right behind
    # them (`3s`) are looked up on the new tab's pane instead of the old one. In the filter bar they
    # stand aside (SkipAction) and type themselves. (Pane keys need no priority: a binding key is
    # resolved against the focus at the time it is handled, so `lj` already moves the new pane.)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "next_pane", "Next pane", id="pane.next"),
        Binding("shift+tab", "previous_pane", "Previous pane", show=False, id="pane.previous"),
        Binding("l", "next_pane", "Next pane", show=False, id="pane.next"),
        Binding("h", "previous_pane", "Previous pane", show=False, id="pane.previous"),
        Binding("1", "show_tab('dashboard')", "Dashboard", show=False, priority=True, id="tab.dashboard"),
        Binding("2", "show_tab('projects')", "Projects", show=False, priority=True, id="tab.projects"),
        Binding("3", "show_tab('events')", "Events", show=False, priority=True, id="tab.events"),
        Binding("left_square_bracket", "cycle_project(-1)", "Previous project", key_display="[",
                show=False, id="project.previous"),
        Binding("right_square_bracket", "cycle_project(1)", "Next project", key_display="]",
                show=False, id="project.next"),
    ]  # fmt: skip

    # The operator's view of the data. `var`: no automatic repaint; each watcher renders what changed.
    selected_project: var[str | None] = var(None, init=False)
    show_all: var[bool] = var(False, init=False)
    filter_query: var[FilterQuery] = var(FilterQuery(), init=False)

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        live: bool = False,
        state: KernelState | None = None,
        event_lines: int = 2000,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        """`live`: the app follows a data source (else the status line says "static snapshot");
        `state`: a picture to show from the start (a static snapshot); `event_lines`: the Events tab's
        buffer, and the activity feed's limit."""
        super().__init__(id="main")
        self.clock = clock
        self.live = live
        self.event_lines = event_lines
        self.tick_seconds = tick_seconds
        self.state: KernelState | None = None
        self.selected_runs: dict[str, str | None] = {}
        self.feed = ActivityFeed(limit=event_lines)
        self._initial_state = state
        self._filter_timer: Timer | None = None
        self._focus_before_filter: Widget | None = None

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="dashboard", id="tabs"):
            with TabPane("Dashboard", id="dashboard"):
                yield StatsRow(id="stats")
                active = ActiveRunsTable(id="active-runs", classes="pane")
                active.border_title = "Active runs"
                yield active
                stream = EventViewport(max_lines=DASHBOARD_EVENT_LINES, id="dashboard-events")
                stream.border_title = "Event stream"
                yield stream
            with TabPane("Projects", id="projects"), Horizontal(id="project-view"):
                sidebar = ProjectSidebar(id="sidebar", classes="pane")
                sidebar.border_title = "Projects"
                yield sidebar
                with Vertical(id="project-main"):
                    runs = RunList(id="run-list", classes="pane")
                    runs.border_title = "Runs"
                    yield runs
                    detail = RunDetail(id="run-detail", classes="pane")
                    detail.border_title = "Detail"
                    yield detail
            with TabPane("Events", id="events"):
                viewport = EventViewport(max_lines=self.event_lines, id="event-viewport")
                viewport.border_title = "Events"
                yield viewport
        yield FilterBar(id="filter")
        yield Static(id="status-line")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.tabs.query_one("Tabs").can_focus = False
        self.filter_bar.display = False
        focus_now(self.active_runs)
        self.set_interval(self.tick_seconds, self._tick)
        if self._initial_state is not None:
            self.apply_state(self._initial_state)

    # -- the widgets -------------------------------------------------------------------------------
    @property
    def tabs(self) -> TabbedContent:
        return self.query_one("#tabs", TabbedContent)

    @property
    def stats(self) -> StatsRow:
        return self.query_one(StatsRow)

    @property
    def active_runs(self) -> ActiveRunsTable:
        return self.query_one(ActiveRunsTable)

    @property
    def dashboard_stream(self) -> EventViewport:
        return self.query_one("#dashboard-events", EventViewport)

    @property
    def sidebar(self) -> ProjectSidebar:
        return self.query_one(ProjectSidebar)

    @property
    def run_list(self) -> RunList:
        return self.query_one(RunList)

    @property
    def run_detail(self) -> RunDetail:
        return self.query_one(RunDetail)

    @property
    def event_viewport(self) -> EventViewport:
        return self.query_one("#event-viewport", EventViewport)

    @property
    def filter_bar(self) -> FilterBar:
        return self.query_one(FilterBar)

    @property
    def status_line(self) -> Static:
        return self.query_one("#status-line", Static)

    # -- data in -----------------------------------------------------------------------------------
    def on_state_arrived(self, message: StateArrived) -> None:
        self.apply_state(message.state)

    def apply_state(self, state: KernelState) -> None:
        """Show a new picture: the feed reports the events not seen before (only those are sorted),
        both viewports append them, and every pane is re-rendered by key (unchanged rows cost nothing)."""
        self.state = state
        fresh = self.feed.ingest(state)
        if fresh:
            self.dashboard_stream.add_items(fresh)
            self.event_viewport.add_items(fresh)
        self.render_state()

    def _tick(self) -> None:
        """Time in phase moves on even when nothing is written."""
        if self.state is not None:
            self.render_state()

    # -- rendering ---------------------------------------------------------------------------------
    def render_state(self) -> None:
        """Every pane from the current state and view (the status line even before the first state)."""
        state = self.state
        if state is None:
            self.render_status_line()
            return
        now = self.clock()
        query = self.filter_query
        self.stats.update_metrics(state.metrics)
        active = selectors.dashboard_runs(state, now)
        if not query.empty:
            active = [(p, r) for p, r in active if query.matches_run(r, p.name)]
        self.active_runs.update_rows([dashboard_row(p, r) for p, r in active], now)
        projects = [p for p in state.projects if query.matches_project(p.name)]
        sidebar = self.sidebar
        sidebar.update_projects(projects)
        if self.selected_project not in {p.path for p in projects}:
            wanted = sidebar.selected_key or (projects[0].path if projects else None)
            self.set_reactive(MainScreen.selected_project, wanted)
        self.render_project(now)
        self.render_status_line()

    def visible_runs(
        self, project: ProjectState, now: float, child_names: Mapping[str, str] | None = None
    ) -> list[RunInfo]:
        runs = selectors.project_runs(project, now, self.show_all, child_names)
        query = self.filter_query
        if query.empty:
            return runs
        return [r for r in runs if query.matches_run(r, project.name)]

    def render_project(self, now: float | None = None) -> None:
        if self.state is None:
            return
        now = self.clock() if now is None else now
        project = selectors.find_project(self.state, self.selected_project)
        run_list = self.run_list
        if project is not None and project.portfolio:
            names = selectors.child_projects(self.state, project)
            runs = self.visible_runs(project, now, names)
            children = selectors.portfolio_children(project)
            run_list.update_runs(project.path, runs, now, child_of=names, children=children)
        else:
            runs = self.visible_runs(project, now) if project is not None else []
            run_list.update_runs(project.path if project else None, runs, now)
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
        project = selectors.find_project(self.state, self.selected_project)
        run = selectors.find_run(project, self.run_list.selected_key)
        members = selectors.portfolio_members(self.state, project, run)
        self.run_detail.show_run(project, run, now, members=members)

    def render_status_line(self) -> None:
        parts = ["all runs" if self.show_all else "active + last 24 h (a: all)"]
        if not self.filter_query.empty:
            parts.append(f"filter: {clean(self.filter_query.text)}")
        if self.state is not None and self.state.metrics.kernel_errors:
            parts.append(f"! {len(self.state.metrics.kernel_errors)} project(s) failed to read")
        if not self.live:
            parts.append("static snapshot")
        self.status_line.update(Text(" · ".join(parts)))

    # -- watchers: the operator's view changed -----------------------------------------------------
    def watch_selected_project(self) -> None:
        self.render_project()

    def watch_show_all(self) -> None:
        self.render_project()
        self.render_status_line()

    def watch_filter_query(self, query: FilterQuery) -> None:
        keep = None if query.empty else query.matches_event
        for viewport in (self.dashboard_stream, self.event_viewport):
            viewport.filter_events(keep, query.text)
        self.render_state()

    # -- messages from the widgets -----------------------------------------------------------------
    def on_project_highlighted(self, message: ProjectHighlighted) -> None:
        self.selected_project = message.project

    def on_run_highlighted(self, message: RunHighlighted) -> None:
        if message.project is not None and message.project == self.selected_project:
            self.selected_runs[message.project] = message.run_id
        self.render_detail()

    def on_project_chosen(self, _: ProjectChosen) -> None:
        focus_now(self.run_list)

    def on_run_chosen(self, message: RunChosen) -> None:
        if not self.narrow:
            focus_now(self.run_detail)
        elif self.state is not None:
            overlay = RunDetailScreen(
                message.project, message.run_id, self.state, clock=self.clock, tick_seconds=self.tick_seconds
            )
            self.app.push_screen(overlay)

    def on_open_run(self, message: OpenRun) -> None:
        self.open_run(message.project, message.run_id)

    def open_project(self, project: str) -> None:
        self.open_run(project, None)

    def open_run(self, project: str, run_id: str | None) -> None:
        """Projects tab, that project in the sidebar, that run under the cursor, focus on the run list.

        The filter is cleared and the history shown when they would hide the target; the selection
        and the toggle are set without their watchers and rendered once, at the end.
        """
        if self.state is None:
            return
        target = selectors.find_project(self.state, project)
        if target is None:
            return
        if not self.filter_query.matches_project(target.name):
            self.set_filter("")
        self.sidebar.select_key(project)
        self.set_reactive(MainScreen.selected_project, project)
        if run_id is not None:
            self.selected_runs[project] = run_id
            run = selectors.find_run(target, run_id)
            if run is not None and run not in self.visible_runs(target, self.clock()):
                if not self.filter_query.matches_run(run, target.name):
                    self.set_filter("")
                if run not in self.visible_runs(target, self.clock()):
                    self.set_reactive(MainScreen.show_all, True)
        self.render_project()
        run_list = self.run_list
        if run_id is not None:
            run_list.select_key(run_id)
        self.show_tab("projects", focus=run_list)
        self.render_detail()
        self.render_status_line()

    # -- the filter --------------------------------------------------------------------------------
    def open_filter(self) -> None:
        """Show the filter bar and type into it; closing it gives the focus back."""
        bar = self.filter_bar
        if not bar.display:
            self._focus_before_filter = self.focused
        bar.display = True
        focus_now(bar)

    def action_filter_term(self, key: str) -> None:
        """Open the filter bar with `key=` ready for its value, replacing a `key=` term already there."""
        if isinstance(self.focused, Input):
            raise SkipAction  # `t`, `s` or `p` typed into the filter bar
        self.open_filter()
        bar = self.filter_bar
        kept = [token for token in bar.value.split() if not token.lower().startswith(f"{key}=")]
        bar.value = " ".join([*kept, f"{key}="])
        bar.cursor_position = len(bar.value)

    def set_filter(self, text: str) -> None:
        """Put `text` in the bar (without a FilterChanged echo) and filter by it now."""
        bar = self.filter_bar
        with bar.prevent(FilterBar.Changed):
            bar.value = text
        self.filter_query = parse_filter(text)

    def on_filter_changed(self, message: FilterChanged) -> None:
        """Typing re-filters after a short pause, so a burst of keys costs one re-render."""
        if self._filter_timer is not None:
            self._filter_timer.stop()
        text = message.text
        self._filter_timer = self.set_timer(FILTER_DEBOUNCE, lambda: self._apply_typed_filter(text))

    def _apply_typed_filter(self, text: str) -> None:
        self.filter_query = parse_filter(text)

    def on_filter_closed(self, message: FilterClosed) -> None:
        bar = self.filter_bar
        if self._filter_timer is not None:
            self._filter_timer.stop()
            self._filter_timer = None
        self.filter_query = parse_filter(bar.value if message.keep else "")
        bar.display = False
        before = self._focus_before_filter
        focus_now(before if before is not None and before.is_attached else self.panes()[0])

    # -- layout ------------------------------------------------------------------------------------
    @property
    def narrow(self) -> bool:
        return self.has_class("-narrow")

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW_BELOW
        if narrow == self.narrow:
            return
        self.set_class(narrow, "-narrow")
        if narrow and self.focused in (self.sidebar, self.run_detail):
            focus_now(self.run_list)

    # -- tabs and panes ----------------------------------------------------------------------------
    @property
    def active_tab(self) -> str:
        return self.tabs.active

    def panes(self) -> list[Widget]:
        """The focusable panes of the visible tab, in Tab order."""
        tab = self.active_tab
        if tab == "dashboard":
            return [self.active_runs, self.dashboard_stream.log_widget]
        if tab == "projects":
            if self.narrow:
                return [self.run_list]
            return [self.sidebar, self.run_list, self.run_detail]
        return [self.event_viewport.log_widget]

    def _current_pane_index(self, panes: list[Widget]) -> int:
        focused = self.focused
        while focused is not None:
            if focused in panes:
                return panes.index(focused)
            parent = focused.parent
            focused = parent if isinstance(parent, Widget) else None
        return -1

    def action_next_pane(self) -> None:
        self._cycle(1)

    def action_previous_pane(self) -> None:
        self._cycle(-1)

    def _cycle(self, step: int) -> None:
        panes = self.panes()
        index = self._current_pane_index(panes)
        if index < 0:
            index = -1 if step > 0 else 0
        focus_now(panes[(index + step) % len(panes)])

    def action_show_tab(self, tab: str) -> None:
        if isinstance(self.focused, Input):
            raise SkipAction  # a digit typed into the filter bar
        self.show_tab(tab)

    def show_tab(self, tab: str, focus: Widget | None = None) -> None:
        self.tabs.active = tab
        focus_now(focus or self.panes()[0 if tab != "projects" else (0 if self.narrow else 1)])

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A tab chosen with the mouse: focus its first pane (unless the operator is already typing
        a filter, e.g. `3/` typed fast: this message arrives after the bar took focus)."""
        panes = self.panes()
        if self._current_pane_index(panes) < 0 and not isinstance(self.focused, Input):
            focus_now(panes[0 if self.active_tab != "projects" or self.narrow else 1])

    def action_cycle_project(self, step: int) -> None:
        sidebar = self.sidebar
        if sidebar.row_count:
            sidebar.move_cursor(row=(sidebar.cursor_row + step) % sidebar.row_count, animate=False)
