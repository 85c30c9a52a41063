"""What the operator sees while the loop runs: agent output scrolling, one live status line per issue.

On a terminal a rich `Live` region keeps a line per issue (issue, phase, cycle, elapsed, tokens)
below the scrolling agent output; elsewhere (a pipe, CI) the same information is printed as plain
lines. Agent text is shown literally: it goes through `kernel.terminal` (control characters and
direction overrides as visible escapes, never obeyed) and into `Text`, so nothing is read as markup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kernel.terminal import one_line, visible

MAX_SHOWN = 400

GLYPHS = {
    "waiting": ("◌", "cyan"),
    "running": ("●", "green"),
    "passed": ("✓", "bright_black"),
    "skipped": ("✓", "bright_black"),
    "capped": ("■", "yellow"),
    "blocked": ("■", "yellow"),
    "over-budget": ("■", "yellow"),
    "held": ("■", "yellow"),
    "failed": ("✗", "red"),
    "interrupted": ("✗", "red"),
}


def format_tokens(input_tokens: int, output_tokens: int) -> str:
    return f"{input_tokens:,} in / {output_tokens:,} out"


def format_elapsed(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


@dataclass
class IssueLine:
    issue_id: str
    title: str
    state: str = "waiting"
    phase: str = "-"
    cycle: int = 0
    started: float | None = None
    ended: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    note: str = ""

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started


class StatusBoard:
    def __init__(self, console: Console, *, max_cycles: int, show_output: bool = True) -> None:
        self.console = console
        self.max_cycles = max_cycles
        self.show_output = show_output
        self.lines: dict[str, IssueLine] = {}
        self._live: Live | None = None

    def __enter__(self) -> StatusBoard:
        if self.console.is_terminal:
            self._live = Live(
                get_renderable=self._render, console=self.console, refresh_per_second=4, transient=False
            )
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def track(self, issue_id: str, title: str) -> None:
        self.lines.setdefault(issue_id, IssueLine(issue_id, title))

    def start(self, issue_id: str) -> None:
        line = self.lines[issue_id]
        line.state, line.started = "running", time.monotonic()

    def phase(self, issue_id: str, phase: str, cycle: int, attempt: int) -> None:
        line = self.lines[issue_id]
        line.phase, line.cycle = phase, cycle
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        self._plain(issue_id, f"{phase} cycle {cycle}{retry} started")

    def tokens(self, issue_id: str, input_tokens: int, output_tokens: int) -> None:
        line = self.lines[issue_id]
        line.input_tokens, line.output_tokens = input_tokens, output_tokens

    def finish(self, issue_id: str, state: str, note: str) -> None:
        line = self.lines[issue_id]
        line.state, line.note, line.ended = state, note, time.monotonic()
        self._plain(issue_id, f"{state}: {note}")

    def output(self, issue_id: str, text: str) -> None:
        """One piece of agent output, shown above the status lines."""
        if not self.show_output:
            return
        for raw in text.splitlines() or [""]:
            shown = visible(raw)
            if len(shown) > MAX_SHOWN:
                shown = shown[:MAX_SHOWN] + " …"
            if shown.strip():
                prefix = Text(f"[{one_line(issue_id)}] ", style="dim")
                self.console.print(prefix + Text(shown), soft_wrap=True)

    def note(self, issue_id: str, text: str) -> None:
        """An orchestrator message about an issue (commit made, verdict, worktree adopted...)."""
        self._plain(issue_id, text)

    def _plain(self, issue_id: str, text: str) -> None:
        prefix = Text(f"[{one_line(issue_id)}] ", style="bold")
        self.console.print(prefix + Text(one_line(text)), soft_wrap=True)

    def _render(self) -> RenderableType:
        grid = Table.grid(padding=(0, 2))
        for line in self.lines.values():
            glyph, color = GLYPHS.get(line.state, ("?", "magenta"))
            title = one_line(line.title)
            grid.add_row(
                Text(glyph, style=color),
                Text(one_line(line.issue_id), style="bold"),
                Text(title[:40] + ("…" if len(title) > 40 else "")),
                Text(one_line(line.phase if line.state == "running" else line.state)),
                Text(f"cycle {line.cycle}/{self.max_cycles}"),
                Text(format_elapsed(line.elapsed())),
                Text(format_tokens(line.input_tokens, line.output_tokens)),
            )
        return grid
