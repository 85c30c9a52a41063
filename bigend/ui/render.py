"""How snapshot data looks on screen: figures, cells, event lines, the ribbon: the widgets' one source.

Every widget builds what it shows from snapshot objects through this module and nothing else, so a run
looks the same on the dashboard, in the run list and in the detail, and no widget reaches into another
for a helper. Untrusted text goes through `bigend.ui.text` (the sanitiser) before it lands in a `Text`;
nothing here parses markup.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from rich.text import Text

from bigend.core.snapshot import EventInfo, ProjectState, RunInfo
from bigend.core.status import UnifiedStatus
from bigend.ui.selectors import attention_reason, blocked_count, portfolio_children
from bigend.ui.text import clean, literal
from kernel.phase import walked_in

HOUR = 3600


# -- figures ----------------------------------------------------------------------------------------
def duration(seconds: float) -> str:
    """At most 6 characters: `45s`, `12m`, `3h05m`, `2d04h`; never negative."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < HOUR:
        return f"{s // 60}m"
    if s < 24 * HOUR:
        hours, rest = divmod(s, HOUR)
        return f"{hours}h{rest // 60:02d}m"
    days, rest = divmod(s, 24 * HOUR)
    if days < 100:
        return f"{days}d{rest // HOUR:02d}h"
    return f"{days}d"


def age_style(seconds: float) -> str:
    """Colour of a time in phase: green, yellow past one hour, red past four."""
    if seconds > 4 * HOUR:
        return "red"
    if seconds > HOUR:
        return "yellow"
    return "green"


def tokens(value: int) -> str:
    return f"{value:,}"


def tokens_compact(value: int) -> str:
    """At most 5 characters for narrow screens: `950`, `9.5k`, `729k`, `1.2M`."""
    if value < 1000:
        return str(max(0, value))
    if value < 9_950:
        return f"{value / 1000:.1f}k"
    if value < 999_500:
        return f"{round(value / 1000)}k"
    return f"{value / 1_000_000:.1f}M"


def clock_time(timestamp: float) -> str:
    """HH:MM:SS in local time (tests pin TZ for stable screenshots)."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def walked_chain(run: RunInfo) -> list[str]:
    """The phases this run actually walks, by the kernel's own rule (kernel.phase.walked_in).

    A run sitting on a phase outside its complexity subset (force_full, which the snapshot does not
    carry, or a rollback) walks the full chain.
    """
    subset = walked_in(run.phases, run.complexity, force_full=False)
    return subset if run.phase in subset else list(run.phases)


def progress(run: RunInfo) -> float:
    """Fraction of the walked chain behind the run: 0 at the first phase, 1 at the terminal one."""
    chain = walked_chain(run)
    if run.phase not in chain or len(chain) < 2:
        return 1.0 if run.completed_at else 0.0
    return chain.index(run.phase) / (len(chain) - 1)


_EIGHTHS = " ▏▎▍▌▋▊▉"


def progress_bar(fraction: float, width: int = 8) -> str:
    """A bar of exactly `width` cells with eighth-block resolution."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full
    if full < width and part:
        bar += _EIGHTHS[part]
    return bar.ljust(width, "·")[:width]


# -- runs -------------------------------------------------------------------------------------------
_FINISHED = frozenset({UnifiedStatus.DONE, UnifiedStatus.ERROR})


def time_in_phase(run: RunInfo, now: float) -> tuple[str, str]:
    """(text, style) of the time-in-phase cell; a finished run is no longer "in" its phase."""
    if run.unified in _FINISHED:
        return "·", "dim"
    in_phase = now - run.phase_entered_at
    return duration(in_phase), age_style(in_phase)


def run_signature(run: RunInfo, now: float) -> tuple[object, ...]:
    """Everything a run row shows, cheaply: equal signatures mean the row needs no work at all."""
    return (run.unified, run.phase, time_in_phase(run, now), run.complexity, run.goal, run.phases)


def status_cell(status: UnifiedStatus) -> Text:
    return Text(status.glyph, style=status.color)


def goal_cell(
    run: RunInfo, *, child_of: str | None = None, children: int = 0, why: str | None = None
) -> Text:
    """The goal with what the operator needs next to it.

    A portfolio parent says how many projects it coordinates; a portfolio's copy of a child run is
    named by its child project (its goal is the parent's); on the dashboard a Blocked or failed run
    carries a second line saying why, so "which agent is blocked, and why" is answered without opening
    anything.
    """
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    if child_of is not None:
        text.append("↳ ", style="dim")
        text.append(clean(child_of), style="bold")
    else:
        text.append(clean(run.goal))
        if children:
            text.append(f"  · portfolio of {children}", style="dim")
    if why is not None:
        text.append("\n")
        text.append("↳ ", style="dim")
        text.append(clean(why), style=run.unified.color)
    return text


def run_cells(
    run: RunInfo, now: float, *, child_of: str | None = None, children: int = 0
) -> tuple[Text, ...]:
    """The seven cells of a run-list row: ID, status, phase, time in phase, progress, complexity, goal."""
    age, style = time_in_phase(run, now)
    return (
        literal(run.id[:8]),
        status_cell(run.unified),
        literal(run.phase[:12]),
        Text(age, style=style, justify="right"),
        Text(progress_bar(progress(run)), style=run.unified.color),
        Text(str(run.complexity), justify="right"),
        goal_cell(run, child_of=child_of, children=children),
    )


class DashboardRow(NamedTuple):
    """One row of the dashboard's Active runs table."""

    project: ProjectState
    run: RunInfo
    why: str | None  # selectors.attention_reason: shown under the goal
    children: int  # a portfolio parent: how many child runs it coordinates


def dashboard_row(project: ProjectState, run: RunInfo) -> DashboardRow:
    children = portfolio_children(project).get(run.id, 0) if project.portfolio else 0
    return DashboardRow(project, run, attention_reason(project, run), children)


def dashboard_signature(row: DashboardRow, now: float) -> tuple[object, ...]:
    return (row.project.name, row.why, row.children, *run_signature(row.run, now))


def dashboard_cells(row: DashboardRow, now: float) -> tuple[Text, ...]:
    """Project, run id, goal (and why, for a run that needs the operator), phase, time in phase, status."""
    project, run = row.project, row.run
    age, style = time_in_phase(run, now)
    return (
        literal(project.name[:16]),
        literal(run.id[:8]),
        goal_cell(run, children=row.children, why=row.why),
        literal(run.phase[:12]),
        Text(age, style=style, justify="right"),
        status_cell(run.unified),
    )


def ribbon(run: RunInfo) -> Text:
    """The walked chain: the phases behind (ticked), the current one highlighted, those ahead dim."""
    chain = walked_chain(run)
    current = chain.index(run.phase) if run.phase in chain else -1
    text = Text(end="")
    for n, phase in enumerate(chain):
        if n:
            text.append(" › ", style="dim")
        name = clean(phase)
        if n < current:
            text.append(f"✓ {name}", style="dim")
        elif n == current:
            text.append(f" {name} ", style=f"bold reverse {run.unified.color}")
        else:
            text.append(name, style="dim italic")
    if current < 0:
        text.append("  (at ", style="dim")
        text.append(clean(run.phase), style=f"bold {run.unified.color}")
        text.append(")", style="dim")
    return text


# -- projects ---------------------------------------------------------------------------------------
def run_count(project: ProjectState) -> tuple[int, str]:
    """(count, noun) of the badge: a portfolio counts its parent runs (its child copies are shown in
    their own projects); a project counts every run in its database, not only the ones the core loaded."""
    if project.portfolio:
        return sum(1 for r in project.runs if r.parent_run_id is None), "portfolio"
    return max(project.runs_total, len(project.runs)), "run"


def badge(project: ProjectState) -> Text:
    """`[N runs]`, then `!` when its data failed and `■N` for its blocked runs."""
    count, noun = run_count(project)
    text = Text(f"[{count} {noun}{'' if count == 1 else 's'}]", style="dim", end="")
    if project.error:
        text.append(" !", style="bold red")
    blocked = blocked_count(project)
    if blocked:
        text.append(f" ■{blocked}", style="bold yellow")
    return text


# -- events -----------------------------------------------------------------------------------------
# Source prefix and its colour: kernel events blue, tmux grey, messaging green.
_TMUX_SOURCES = frozenset({"tmux"})
_MESSAGING_SOURCES = frozenset({"messaging", "message", "mail", "chat", "slack"})

# The family each prefix stands for: `source=kernel` in the filter keeps every [K] line.
SOURCE_FAMILIES = {"K": "kernel", "T": "tmux", "M": "messaging"}


def source_tag(source: str) -> tuple[str, str]:
    lowered = source.lower()
    if lowered in _TMUX_SOURCES:
        return "T", "bright_black"
    if lowered in _MESSAGING_SOURCES:
        return "M", "green"
    return "K", "blue"


def source_family(source: str) -> str:
    return SOURCE_FAMILIES[source_tag(source)[0]]


def event_detail(event: EventInfo) -> str:
    parts: list[str] = []
    if event.from_state or event.to_state:
        parts.append(f"{clean(event.from_state) or '·'}→{clean(event.to_state) or '·'}")
    if event.reason:
        parts.append(clean(event.reason))
    return " ".join(parts)


def event_line(event: EventInfo, project_name: str | None) -> Text:
    """`HH:MM:SS [K] project run type detail`, the same in every view. Every piece of data is appended
    as plain text, so no markup in it can style anything."""
    tag, colour = source_tag(event.source)
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    line.append(clock_time(event.timestamp), style="dim")
    line.append(" ")
    line.append(f"[{tag}]", style=f"bold {colour}")
    if project_name is not None:
        line.append(" ")
        line.append(clean(project_name), style="bold")
    line.append(" ")
    line.append(clean(event.run_id) or "-", style="cyan")
    line.append(" ")
    line.append(clean(event.type), style="magenta" if event.kind == "Unknown" else "")
    detail = event_detail(event)
    if detail:
        line.append(" ")
        line.append(detail, style="dim")
    return line
