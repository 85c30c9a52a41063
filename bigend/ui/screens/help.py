"""The help screen (`?` or F1): every key binding of the app, grouped by where it applies."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from bigend.ui.keys import KeyHelp

KEY_WIDTH = 16


def section_table(entries: list[KeyHelp]) -> Table:
    """One section's keys; every section has the same key column width so the descriptions line up."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=False)
    table.add_column("keys", style="bold", no_wrap=True, width=KEY_WIDTH)
    table.add_column("description")
    for entry in entries:
        table.add_row(Text(entry.keys), Text(entry.description))
    return table


def keys_help() -> Group:
    """Every section of bindings under its title, the filter syntax right after the global keys."""
    from bigend.ui.keys import all_sections

    parts: list[RenderableType] = []
    for n, (title, entries) in enumerate(all_sections()):
        parts.append(Text(title, style="bold underline"))
        parts.append(section_table(entries))
        parts.append(Text(""))
        if n == 0:
            parts.append(Text("Filter (/)", style="bold underline"))
            parts.append(Text(FILTER_HELP))
            parts.append(Text(""))
    return Group(*parts)


FILTER_HELP = (
    "Free words match id, goal, phase, project and reason; key=value terms narrow further.\n"
    "  runs:    status=blocked  phase=review  project=name\n"
    "  events:  type=advance  source=kernel|tmux|messaging|dispatch  project=name\n"
    "In the event viewport t, s and p open the bar with type=, source= or project= ready.\n"
    "Enter keeps the filter, Esc clears it; the status line shows the filter in force."
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
            body.border_subtitle = "Esc, ? or F1 closes · j/k scroll"
            yield Static(keys_help(), id="help-keys")

    def action_scroll_down(self) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_up(animate=False)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
