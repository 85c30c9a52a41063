"""The `/` filter bar: typing filters live; Enter keeps the filter, Escape clears it."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.widgets import Input

from bigend.ui.messages import FilterChanged, FilterClosed

PLACEHOLDER = (
    "filter: text  status=blocked  phase=review  project=name  type=  source=   (Enter keep, Esc clear)"
)


class FilterBar(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter", id="filter.clear"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        # No select-on-focus: `t` in the event viewport opens the bar with `type=` to type after.
        super().__init__(placeholder=PLACEHOLDER, id=id, select_on_focus=False)
        self.cursor_blink = False

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(FilterChanged(event.value))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(FilterClosed(keep=True))

    def action_clear_filter(self) -> None:
        self.value = ""
        self.post_message(FilterClosed(keep=False))
