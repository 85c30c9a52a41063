"""The help screen (`?` or F1): every key binding of the app, grouped by where it applies."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def keys_table() -> Table:
    from bigend.ui.keys import all_sections

    table = Table(box=None, show_header=False, padding=(0, 2), expand=False)
    table.add_column("keys", style="bold", no_wrap=True, min_width=18)
    table.add_column("description")
    for title, entries in all_sections():
        table.add_row(Text(title, style="bold underline"), "")
        for entry in entries:
            table.add_row(Text(entry.keys), Text(entry.description))
        table.add_row("", "")
    return table


FILTER_HELP = (
    "Filter syntax: free words match id, goal, phase, project and reason; "
    "key=value terms narrow further: status=blocked  phase=review  project=name  (runs)   "
    "type=advance  source=dispatch  project=name  (events)."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close help", id="help.close"),
        Binding("question_mark", "dismiss", "Close help", key_display="?", id="help.close"),
        Binding("f1", "dismiss", "Close help", id="help.close"),
        Binding("j", "scroll_down", "Scroll down", show=False, id="help.down"),
        Binding("k", "scroll_up", "Scroll up", show=False, id="help.up"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Bigend keys"
            yield Static(keys_table(), id="help-keys")
            yield Static(Text(FILTER_HELP, style="dim"), id="help-filter")

    def action_scroll_down(self) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_up(animate=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
