"""Untrusted text (goals, reasons, names) for the widgets: `kernel.terminal`'s one policy, in a `Text`.

The policy (control characters and direction overrides shown as visible escapes) is the kernel's, so
the TUI shows a hostile name exactly as `ic` and `bigend --once` print it. What this module adds is
the Rich side: data always goes into `Text` (never parsed as markup), so `[bold]` in a goal stays
literal and no style comes from data.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from kernel.terminal import one_line


def clean(value: str | None) -> str:
    """The one-line, inert form of untrusted text (`kernel.terminal.one_line`); `None` is empty."""
    return one_line(value) if value else ""


def literal(value: str | None, style: str | Style = "") -> Text:
    """A `Text` that shows `value` exactly (after `clean`), whatever brackets it contains."""
    return Text(clean(value), style=style, no_wrap=True, overflow="ellipsis", end="")
