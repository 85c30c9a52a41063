"""The goal cell of a run row, with what the operator needs next to it.

A portfolio parent says how many projects it coordinates; a portfolio's copy of a child run is named
by its child project (its goal is the parent's); on the dashboard a Blocked or failed run carries a
second line saying why, so "which agent is blocked, and why" is answered without opening anything.
"""

from __future__ import annotations

from rich.text import Text

from bigend.core.snapshot import RunInfo
from bigend.ui.text import clean


def goal_cell(
    run: RunInfo, *, child_of: str | None = None, children: int = 0, why: str | None = None
) -> Text:
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
