"""One event as one line: `HH:MM:SS [K] project run type detail`, the same in every view."""

from __future__ import annotations

from rich.text import Text

from bigend.core.snapshot import EventInfo
from bigend.ui import format as fmt
from bigend.ui.text import clean

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
    """Every piece of data is appended as plain text, so no markup in it can style anything."""
    tag, colour = source_tag(event.source)
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    line.append(fmt.clock_time(event.timestamp), style="dim")
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
