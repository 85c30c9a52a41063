"""Every key binding of the app, in one place, so the help screen and the docs list all of them.

Each widget or screen declares its own `BINDINGS` (Textual needs them on the class); this module only
gathers them into titled sections, in the order the help screen shows them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class KeyHelp:
    keys: str
    description: str
    id: str


def _expand(bindings: Iterable[BindingType]) -> list[Binding]:
    return list(Binding.make_bindings(bindings))


def describe(bindings: Iterable[BindingType]) -> list[KeyHelp]:
    """One entry per binding id; keys that share an id are shown together (`?, f1`). A binding whose
    footer description is terse (`type=`) carries the help text in its tooltip."""
    merged: dict[str, KeyHelp] = {}
    for binding in _expand(bindings):
        key_display = binding.key_display or binding.key
        ident = binding.id or f"{binding.action}:{binding.key}"
        if ident in merged:
            old = merged[ident]
            merged[ident] = KeyHelp(f"{old.keys}, {key_display}", old.description, ident)
        else:
            merged[ident] = KeyHelp(key_display, binding.tooltip or binding.description, ident)
    return list(merged.values())


def all_sections() -> list[tuple[str, list[KeyHelp]]]:
    """(title, entries) for every place that declares bindings; imported lazily to avoid cycles."""
    from bigend.ui.app import BigendApp
    from bigend.ui.screens.help import HelpScreen
    from bigend.ui.screens.main import MainScreen
    from bigend.ui.screens.run_detail import RunDetailScreen
    from bigend.ui.widgets.event_viewport import EventLog
    from bigend.ui.widgets.filter_bar import FilterBar
    from bigend.ui.widgets.keyed_table import KeyedTable
    from bigend.ui.widgets.run_detail import RunDetail

    return [
        ("Everywhere", describe(BigendApp.BINDINGS)),
        ("Panes and tabs", describe(MainScreen.BINDINGS)),
        ("Tables (sidebar, run list, active runs)", describe(KeyedTable.BINDINGS)),
        ("Detail pane", describe(RunDetail.BINDINGS)),
        ("Event viewport", describe(EventLog.BINDINGS)),
        ("Filter bar", describe(FilterBar.BINDINGS)),
        ("Run detail (narrow overlay)", describe(RunDetailScreen.BINDINGS)),
        ("Help", describe(HelpScreen.BINDINGS)),
    ]
