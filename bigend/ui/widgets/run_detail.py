"""The detail pane: a run (goal, ribbon, dispatches, events, tokens) or, with none, its project."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from bigend.core.snapshot import DispatchInfo, EventInfo, ProjectState, RunInfo, TokenSummary
from bigend.ui import format as fmt
from bigend.ui.eventlines import event_line
from bigend.ui.text import clean
from bigend.ui.widgets.dispatch_table import DispatchTable
from bigend.ui.widgets.phase_ribbon import PhaseRibbon

DETAIL_EVENTS = 30


def token_line(tokens: TokenSummary) -> Text:
    text = Text("Tokens  ", style="bold", end="")
    text.append(f"{fmt.tokens(tokens.input_tokens)} in / {fmt.tokens(tokens.output_tokens)} out")
    text.append(
        f"  · cache {fmt.tokens(tokens.cache_hits)}  · total {fmt.tokens(tokens.total_tokens)}", "dim"
    )
    return text


def run_meta(run: RunInfo, project: ProjectState, now: float) -> Text:
    text = Text(end="")
    text.append(run.unified.glyph + " " + run.unified.value, style=f"bold {run.unified.color}")
    text.append("  run ", style="dim")
    text.append(clean(run.id), style="cyan")
    text.append("  project ", style="dim")
    text.append(clean(project.name))
    text.append("  phase ", style="dim")
    text.append(clean(run.phase))
    text.append(
        f" for {fmt.duration(now - run.phase_entered_at)}", style=fmt.age_style(now - run.phase_entered_at)
    )
    text.append(f"  complexity {run.complexity}", style="dim")
    if run.blocked_reason:
        text.append("\nBlocked: ", style="bold yellow")
        text.append(clean(run.blocked_reason))
    return text


def events_text(events: list[EventInfo], project_name: str | None) -> Text:
    if not events:
        return Text("no events", style="dim")
    return Text("\n", end="").join(event_line(e, project_name) for e in events)


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

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        yield Static(id="detail-meta")
        yield PhaseRibbon(id="detail-ribbon")
        yield Static("Dispatches", id="detail-dispatches-heading", classes="detail-heading")
        yield DispatchTable(id="detail-dispatches")
        yield Static("Events", classes="detail-heading")
        yield Static(id="detail-events")
        yield Static(id="detail-tokens")

    def show(self, project: ProjectState | None, run: RunInfo | None, now: float) -> None:
        title = self.query_one("#detail-title", Static)
        meta = self.query_one("#detail-meta", Static)
        ribbon = self.query_one("#detail-ribbon", PhaseRibbon)
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
        ribbon.show(run)
        self._dispatches(heading, dispatches, [d for d in project.dispatches if d.run_id == run.id], now)
        run_events = [e for e in project.events if e.run_id == run.id]
        events.update(events_text(run_events[-DETAIL_EVENTS:], None))
        tokens.update(token_line(run.tokens))

    @staticmethod
    def _dispatches(
        heading: Static, table: DispatchTable, dispatches: list[DispatchInfo], now: float
    ) -> None:
        heading.update(f"Dispatches ({len(dispatches)})" if dispatches else "Dispatches: none")
        table.display = bool(dispatches)
        table.show(dispatches, now)
