"""The one status model of Bigend: every raw status of every source maps to one of five states.

`Unknown` is display-only and never counts as Active: a status we do not understand must not make
an idle fleet look busy.
"""

from __future__ import annotations

from enum import StrEnum


class UnifiedStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    WAITING = "waiting"
    DONE = "done"
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def glyph(self) -> str:
        return GLYPHS[self]

    @property
    def color(self) -> str:
        return COLORS[self]


_MAPPING: dict[str, UnifiedStatus] = {
    **dict.fromkeys(("working", "running", "active"), UnifiedStatus.ACTIVE),
    **dict.fromkeys(("blocked", "stalled", "permission-required"), UnifiedStatus.BLOCKED),
    **dict.fromkeys(("waiting", "idle", "queued", "spawned"), UnifiedStatus.WAITING),
    **dict.fromkeys(("completed", "done"), UnifiedStatus.DONE),
    **dict.fromkeys(("failed", "error", "cancelled", "timeout"), UnifiedStatus.ERROR),
}

# One glyph and one colour per state, used by every widget and by `bigend --once`.
GLYPHS: dict[UnifiedStatus, str] = {
    UnifiedStatus.ACTIVE: "●",
    UnifiedStatus.BLOCKED: "■",
    UnifiedStatus.WAITING: "◌",
    UnifiedStatus.DONE: "✓",
    UnifiedStatus.ERROR: "✗",
    UnifiedStatus.UNKNOWN: "?",
}
COLORS: dict[UnifiedStatus, str] = {
    UnifiedStatus.ACTIVE: "green",
    UnifiedStatus.BLOCKED: "yellow",
    UnifiedStatus.WAITING: "cyan",
    UnifiedStatus.DONE: "bright_black",
    UnifiedStatus.ERROR: "red",
    UnifiedStatus.UNKNOWN: "magenta",
}


def unify_status(raw: str | None) -> UnifiedStatus:
    """Map any raw status string (case-insensitive, surrounding space ignored) to a UnifiedStatus."""
    if not raw:
        return UnifiedStatus.UNKNOWN
    return _MAPPING.get(raw.strip().lower(), UnifiedStatus.UNKNOWN)
