"""The main screen: Dashboard, Projects and Events tabs, the filter bar, a status line and the footer.

It owns pane focus (Tab / shift+Tab / h / l cycle the panes of the visible tab) and the narrow layout;
the app owns the data and pushes it into the widgets.
"""

from __future__ import annotations

from typing import ClassVar

from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from bigend.ui.focus import focus_now
from bigend.ui.widgets.active_runs_table import ActiveRunsTable
from bigend.ui.widgets.event_viewport import EventLog, EventViewport
from bigend.ui.widgets.filter_bar import FilterBar
from bigend.ui.widgets.project_sidebar import ProjectSidebar
from bigend.ui.widgets.run_detail import RunDetail
from bigend.ui.widgets.run_list import RunList
from bigend.ui.widgets.stats_row import StatsRow

NARROW_BELOW = 100
TABS = ("dashboard", "projects", "events")


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

    class Ready(Message):
        """Posted to the app once the screen's widgets are mounted."""

    def __init__(self, *, event_lines: int = 2000) -> None:
        super().__init__(id="main")
        self.event_lines = event_lines

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="dashboard", id="tabs"):
            with TabPane("Dashboard", id="dashboard"):
                yield StatsRow(id="stats")
                active = ActiveRunsTable(id="active-runs", classes="pane")
                active.border_title = "Active runs"
                yield active
                stream = EventViewport(max_lines=500, id="dashboard-events")
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
        self.query_one("#tabs", TabbedContent).query_one("Tabs").can_focus = False
        self.query_one("#filter", FilterBar).display = False
        focus_now(self.query_one("#active-runs", ActiveRunsTable))
        self.app.post_message(self.Ready())

    # -- layout ------------------------------------------------------------------------------------
    @property
    def narrow(self) -> bool:
        return self.has_class("-narrow")

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW_BELOW
        if narrow == self.narrow:
            return
        self.set_class(narrow, "-narrow")
        if narrow and self.focused in (self.query_one("#sidebar"), self.query_one("#run-detail")):
            focus_now(self.query_one("#run-list", RunList))

    # -- tabs and panes ----------------------------------------------------------------------------
    @property
    def active_tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active

    def panes(self) -> list[Widget]:
        """The focusable panes of the visible tab, in Tab order."""
        tab = self.active_tab
        if tab == "dashboard":
            return [self.query_one("#active-runs"), self.query_one("#dashboard-events").query_one(EventLog)]
        if tab == "projects":
            if self.narrow:
                return [self.query_one("#run-list")]
            return [self.query_one("#sidebar"), self.query_one("#run-list"), self.query_one("#run-detail")]
        return [self.query_one("#event-viewport").query_one(EventLog)]

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
        self.query_one("#tabs", TabbedContent).active = tab
        focus_now(focus or self.panes()[0 if tab != "projects" else (0 if self.narrow else 1)])

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A tab chosen with the mouse: focus its first pane (unless the operator is already typing
        a filter, e.g. `3/` typed fast: this message arrives after the bar took focus)."""
        panes = self.panes()
        if self._current_pane_index(panes) < 0 and not isinstance(self.focused, Input):
            focus_now(panes[0 if self.active_tab != "projects" or self.narrow else 1])

    def action_cycle_project(self, step: int) -> None:
        sidebar = self.query_one("#sidebar", ProjectSidebar)
        if sidebar.row_count:
            sidebar.move_cursor(row=(sidebar.cursor_row + step) % sidebar.row_count, animate=False)
