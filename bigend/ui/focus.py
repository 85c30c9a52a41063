"""Move focus now, not on the next idle tick.

`Widget.focus()` defers the change; keys the operator already typed (a fast `/status=blocked`, or
`tab tab`) would then reach the old widget. Setting it synchronously keeps keystrokes in order.
"""

from __future__ import annotations

from textual.dom import NoScreen
from textual.widget import Widget


def focus_now(widget: Widget) -> None:
    try:
        widget.screen.set_focus(widget)
    except NoScreen:  # not on a screen yet: fall back to the deferred focus
        widget.focus()
        return
    if widget.screen.focused is not widget:
        widget.focus()
