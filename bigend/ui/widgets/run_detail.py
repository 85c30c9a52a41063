"""The detail pane: a run (goal, ribbon, dispatches, events, tokens) or, with none, its project."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from bigend.core.snapshot import DispatchInfo, EventInfo, ProjectState, RunInfo, TokenSummary
from bigend.ui import render
from bigend.ui.text import clean
from bigend.ui.widgets.dispatch_table import DispatchTable

DETAIL_EVENTS = 30


def token_line(tokens: TokenSummary) -> Text:
    text = Text("Tokens  ", style="bold", end="")
    text.append(f"{render.tokens(tokens.input_tokens)} in / {render.tokens(tokens.output_tokens)} out")
    text.append(
        f"  · cache {render.tokens(tokens.cache_hits)}  · total {render.tokens(tokens.total_tokens)}", "dim"
    )
    return text


def run_meta(run: RunInfo, project: ProjectState, now: float) -> Text:
    text = Text(end="")
    text.append(run.unified.glyph + " " + run.unified.value, style=f"bold {run.unified.color}")
    text.append(" · ", style="dim")
    text.append(clean(run.id), style="cyan")
    text.append(" · ", style="dim")
    text.append(clean(project.name))
    text.append(" · ", style="dim")
    text.append(clean(run.phase))
    in_phase = now - run.phase_entered_at
    text.append(f" for {render.duration(in_phase)}", style=render.age_style(in_phase))
    text.append(f" · complexity {run.complexity}", style="dim")
    if run.blocked_reason:
        text.append("\nBlocked: ", style="bold yellow")
        text.append(clean(run.blocked_reason))
    return text


def local_day(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(timestamp))


def events_text(events: list[EventInfo], project_name: str | None) -> Text:
    """The lines under a dated heading per day: a line says only HH:MM:SS, and a run's history often
    spans days (created Monday, blocked since Wednesday)."""
    if not events:
        return Text("no events", style="dim")
    lines: list[Text] = []
    day = None
    for event in events:
        event_day = local_day(event.timestamp)
        if event_day != day:
            day = event_day
            lines.append(Text(f"── {day} ──", style="dim"))
        lines.append(render.event_line(event, project_name))
    return Text("\n", end="").join(lines)


def members_text(members: Sequence[tuple[str, RunInfo]], now: float) -> Text:
    """A portfolio parent's child runs: status, project, phase and time in phase, one per line."""
    text = Text(end="")
    for n, (name, run) in enumerate(members):
        if n:
            text.append("\n")
        text.append(run.unified.glyph, style=run.unified.color)
        text.append(f" {clean(name):<18} ", style="bold")
        text.append(f"{clean(run.phase):<20}")
        in_phase = now - run.phase_entered_at
        text.append(f"{render.duration(in_phase):>6}", style=render.age_style(in_phase))
        if run.blocked_reason:
            text.append("\n  ↳ ", style="dim")
            text.append(clean(run.blocked_reason), style=run.unified.color)
    return text


class RunDetail(VerticalScroll):
    """Focusable as one pane; arrows and j/k scroll it."""

    can_focus = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down", "scroll_down", "Scroll down", show=False, id="detail.down"),
        Binding("j", "scroll_down", "Scroll down", show=False, id="detail.down"),
        Binding("up", "scroll_up", "Scroll up", show=False, id="detail.up"),
        Binding("k", "scroll_up", "Scroll up", show=False, id="detail.up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="detail.page_down"),
        Binding("pageup", "page_up", "Page up", show=False, id="detail.page_up"),
        Binding("home", "scroll_home", "Top", show=False, id="detail.top"),
        Binding("end", "scroll_end", "Bottom", show=False, id="detail.bottom"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None, names_run: bool = False) -> None:
        """`names_run`: the border title names the run shown (the full-screen overlay has no run list
        above it saying which run this is)."""
        super().__init__(id=id, classes=classes)
        self.names_run = names_run

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        yield Static(id="detail-error")
        yield Static(id="detail-meta")
        yield Static(id="detail-ribbon")
        yield Static(id="detail-members-heading", classes="detail-heading")
        yield Static(id="detail-members")
        yield Static("Dispatches", id="detail-dispatches-heading", classes="detail-heading")
        yield DispatchTable(id="detail-dispatches")
        yield Static("Events", classes="detail-heading")
        yield Static(id="detail-events")
        yield Static(id="detail-tokens")

    def show_run(
        self,
        project: ProjectState | None,
        run: RunInfo | None,
        now: float,
        *,
        members: Sequence[tuple[str, RunInfo]] = (),
    ) -> None:
        """`members`: a portfolio parent's child runs (selectors.portfolio_members), under the ribbon."""
        self._members(members, now)
        if self.names_run and project is not None and run is not None:
            self.border_title = Text.assemble("Run ", clean(run.id), " · ", clean(project.name))
        self._error(project)
        title = self.query_one("#detail-title", Static)
        meta = self.query_one("#detail-meta", Static)
        ribbon = self.query_one("#detail-ribbon", Static)
        dispatches = self.query_one("#detail-dispatches", DispatchTable)
        heading = self.query_one("#detail-dispatches-heading", Static)
        events = self.query_one("#detail-events", Static)
        tokens = self.query_one("#detail-tokens", Static)
        if project is None:
            title.update(Text("No project selected", style="dim"))
            meta.update("")
            ribbon.display = False
            self._dispatches(heading, dispatches, [], now)
            events.update("")
            tokens.update("")
            return
        if run is None:
            title.update(Text(clean(project.name), style="bold"))
            meta.update(Text("No run selected: the project's dispatches and recent events", style="dim"))
            ribbon.display = False
            self._dispatches(heading, dispatches, project.dispatches[:50], now)
            events.update(events_text(project.events[-DETAIL_EVENTS:], None))
            tokens.update(token_line(project.tokens))
            return
        title.update(Text(clean(run.goal), style="bold"))
        meta.update(run_meta(run, project, now))
        ribbon.display = True
        ribbon.update(render.ribbon(run))
        self._dispatches(heading, dispatches, [d for d in project.dispatches if d.run_id == run.id], now)
        run_events = [e for e in project.events if e.run_id == run.id]
        events.update(events_text(run_events[-DETAIL_EVENTS:], None))
        tokens.update(token_line(run.tokens))

    def _error(self, project: ProjectState | None) -> None:
        """Why the sidebar shows `!` for this project, where the operator looks for it."""
        error = self.query_one("#detail-error", Static)
        error.display = bool(project and project.error)
        if project and project.error:
            text = Text("! Could not read this project: ", style="bold red")
            text.append(clean(project.error))
            text.append(". Showing its last good data; r reads it again.", style="dim")
            error.update(text)

    def _members(self, members: Sequence[tuple[str, RunInfo]], now: float) -> None:
        heading = self.query_one("#detail-members-heading", Static)
        body = self.query_one("#detail-members", Static)
        heading.display = body.display = bool(members)
        if members:
            heading.update(f"Portfolio: {len(members)} child run{'' if len(members) == 1 else 's'}")
            body.update(members_text(members, now))

    @staticmethod
    def _dispatches(
        heading: Static, table: DispatchTable, dispatches: list[DispatchInfo], now: float
    ) -> None:
        heading.update(f"Dispatches ({len(dispatches)})" if dispatches else "Dispatches: none")
        table.display = bool(dispatches)
        table.update_dispatches(dispatches, now)
