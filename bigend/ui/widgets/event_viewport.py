"""The event viewport: the activity feed's items, the first load (history) and then each new one.

It is handed items the core's feed (`bigend.core.feed.ActivityFeed`) has already merged in time order
and deduplicated, so it only appends; its buffer keeps at most `max_lines`. The log is virtual: it
stores items and renders only the rows on screen, so a bootstrap of thousands of events or a filter
change costs no per-line rendering. The view follows the newest line unless the operator scrolled up;
then a "paused" marker shows until End (or scrolling back to the bottom) resumes following.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from bigend.core.feed import FeedItem
from bigend.core.snapshot import EventInfo
from bigend.ui.render import event_line
from bigend.ui.text import clean

PAUSED_TEXT = "⏸ paused — End to follow"
# Which events a filter keeps: (event, project name) -> shown?
EventPredicate = Callable[[EventInfo, str], bool]


class EventLog(ScrollView, can_focus=True):
    """The scrolling part: a virtual list of event lines, rendered on demand."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "scroll_down", "Scroll down", show=False, id="events.down"),
        Binding("j", "scroll_down", "Scroll down", show=False, id="events.down"),
        Binding("up", "scroll_up", "Scroll up (pauses following)", show=False, id="events.up"),
        Binding("k", "scroll_up", "Scroll up (pauses following)", show=False, id="events.up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="events.page_down"),
        Binding("pageup", "page_up", "Page up", show=False, id="events.page_up"),
        Binding("end", "follow", "Follow", id="events.follow"),
        Binding("home", "scroll_home", "Oldest", show=False, id="events.home"),
        # Short descriptions for the footer; the help screen shows the tooltips. Priority, like `/`:
        # the focus moves to the filter bar as the key arrives, so what is typed behind it lands there.
        Binding("t", "screen.filter_term('type')", "type=", id="events.filter_type", priority=True,
                tooltip="Filter by type: opens / with type= (advance, block, spawned…)"),
        Binding("s", "screen.filter_term('source')", "source=", id="events.filter_source", priority=True,
                tooltip="Filter by source: opens / with source= (kernel, tmux, messaging…)"),
        Binding("p", "screen.filter_term('project')", "project=", id="events.filter_project", priority=True,
                tooltip="Filter by project: opens / with project= (part of a name)"),
    ]  # fmt: skip

    def __init__(self, *, max_lines: int, show_project: bool) -> None:
        super().__init__()
        self.show_project = show_project
        self.entries: deque[FeedItem] = deque(maxlen=max_lines)
        self.following = True
        self.empty_text = "no events yet"

    @property
    def line_count(self) -> int:
        return len(self.entries)

    def set_entries(self, entries: Iterable[FeedItem]) -> None:
        """Replace what is shown (a filter change)."""
        self.entries.clear()
        self.entries.extend(entries)
        self._resized()

    def append(self, entries: Sequence[FeedItem]) -> None:
        if not entries:
            return
        full = self.entries.maxlen is not None and len(self.entries) == self.entries.maxlen
        dropped = max(0, len(self.entries) + len(entries) - (self.entries.maxlen or 0)) if full else 0
        self.entries.extend(entries)
        if not self.following and dropped:
            # The lines above the view moved out: keep the view on the same lines.
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self._resized()

    def _resized(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.entries))
        if self.following:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self.refresh()

    def on_resize(self) -> None:
        self._resized()

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_y) + y
        width = self.scrollable_content_region.width
        rich_style = self.rich_style
        if not self.entries and y == 0 and width > 0:
            return self._line(Text(self.empty_text, style="dim italic"), width)
        if index >= len(self.entries) or width <= 0:
            return Strip.blank(max(0, width), rich_style)
        item = self.entries[index]
        return self._line(event_line(item.event, item.project_name if self.show_project else None), width)

    def _line(self, text: Text, width: int) -> Strip:
        rich_style = self.rich_style
        text.truncate(width, overflow="ellipsis")
        text.style = rich_style
        return Strip(text.render(self.app.console), text.cell_len).extend_cell_length(width, rich_style)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y
        viewport = self.parent
        if isinstance(viewport, EventViewport):
            viewport.paused = not self.following

    def action_follow(self) -> None:
        self.following = True
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        viewport = self.parent
        if isinstance(viewport, EventViewport):
            viewport.paused = False


class EventViewport(Vertical):
    paused: reactive[bool] = reactive(False)

    def __init__(self, *, max_lines: int = 2000, show_project: bool = True, id: str | None = None) -> None:
        super().__init__(id=id, classes="event-viewport")
        self.max_lines = max_lines
        self.show_project = show_project
        self._buffer: deque[FeedItem] = deque(maxlen=max_lines)
        self._keep: EventPredicate | None = None
        self._filter_text = ""

    def compose(self) -> ComposeResult:
        yield Static(PAUSED_TEXT, classes="paused-marker")
        yield EventLog(max_lines=self.max_lines, show_project=self.show_project)

    @property
    def log_widget(self) -> EventLog:
        return self.query_one(EventLog)

    @property
    def items(self) -> list[FeedItem]:
        """What the buffer holds, oldest first; filters do not drop items."""
        return list(self._buffer)

    def on_mount(self) -> None:
        self._describe()

    def watch_paused(self, paused: bool) -> None:
        self.set_class(paused, "-paused")

    def add_items(self, items: Sequence[FeedItem]) -> None:
        """Append the feed's new items (already deduplicated and in time order)."""
        if not items:
            return
        self._buffer.extend(items)
        keep = self._keep
        self.log_widget.append(items if keep is None else [i for i in items if keep(i.event, i.project_name)])
        self._describe()

    def filter_events(self, keep: EventPredicate | None, text: str) -> None:
        """Show the buffer under a new filter, `keep` None for everything; `text` is what the operator
        typed, shown on the border (cheap: nothing is rendered until it is on screen)."""
        self._keep = keep
        self._filter_text = text
        log = self.log_widget
        buffer = self._buffer
        log.set_entries(buffer if keep is None else (i for i in buffer if keep(i.event, i.project_name)))
        log.empty_text = "no events yet" if keep is None else f"no event matches {clean(text)}"
        self._describe()

    def _describe(self) -> None:
        """The bottom border: how much the filter keeps, and the keys that filter."""
        if self._keep is None:
            self.border_subtitle = Text(f"{len(self._buffer)} events · t type=  s source=  p project=")
        else:
            kept = f"{self.log_widget.line_count} of {len(self._buffer)}"
            self.border_subtitle = Text(f"{kept} · filter: {clean(self._filter_text)}")
