"""The command palette (ctrl+p): the app's actions and one "Open project" command per project."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher
from textual.markup import escape

from bigend.ui.text import clean

if TYPE_CHECKING:
    from bigend.ui.app import BigendApp
    from bigend.ui.screens.main import MainScreen


@dataclass(frozen=True)
class PaletteCommand:
    name: str
    help: str
    run: Callable[[], object]


class BigendCommands(Provider):
    """The only provider: the app's own commands first, then Textual's (theme, keys, screenshot…).

    Textual's system provider would list its commands before ours and add a second "Quit"; listing
    them here keeps one ordered list.
    """

    def _commands(self) -> list[PaletteCommand]:
        from bigend.ui.app import BigendApp

        app = self.app
        if not isinstance(app, BigendApp):
            return []
        ours = palette_commands(app)
        names = {command.name.lower() for command in ours}
        system = [
            PaletteCommand(command.title, command.help, command.callback)
            for command in app.get_system_commands(self.screen)
            if command.title.lower() not in names and command.discover
        ]
        return ours + system

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(Content(command.name), command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, literal_highlight(matcher, command.name), command.run, help=command.help)


def literal_highlight(matcher: Matcher, candidate: str) -> Content:
    """Like `Matcher.highlight`, which parses the candidate as markup; a project name must stay literal."""
    content = Content(candidate)
    _, offsets = matcher.fuzzy_search.match(matcher.query, candidate)
    for offset in offsets:
        if not candidate[offset].isspace():
            content = content.stylize("bold underline", offset, offset + 1)
    return content


def palette_commands(app: BigendApp) -> list[PaletteCommand]:
    """The app's keys as commands, then one "Open project" per project of the main screen's state."""
    main = app.main_screen
    commands = [
        PaletteCommand(
            "Show blocked runs", "Filter: status=blocked", lambda: main.set_filter("status=blocked")
        ),
        PaletteCommand(
            "Show dashboard", "Stats, active runs and the event stream", lambda: main.show_tab("dashboard")
        ),
        PaletteCommand("Show projects", "Sidebar, run list and detail", lambda: main.show_tab("projects")),
        PaletteCommand("Show events", "The event viewport", lambda: main.show_tab("events")),
        PaletteCommand("Filter runs and events", "Open the / filter bar", app.action_filter),
        PaletteCommand(
            "Filter events by type",
            "Events tab, / with type= (advance, block…)",
            _events_filter(main, "type"),
        ),
        PaletteCommand(
            "Filter events by source",
            "Events tab, / with source= (kernel, tmux, messaging…)",
            _events_filter(main, "source"),
        ),
        PaletteCommand(
            "Filter events by project", "Events tab, / with project=", _events_filter(main, "project")
        ),
        PaletteCommand("Clear filter", "Show everything again", lambda: main.set_filter("")),
        PaletteCommand(
            "Toggle all run history", "Active and last-24h runs, or every run", app.action_toggle_all
        ),
        PaletteCommand("Refresh now", "Re-read every project's kernel database", app.action_refresh),
        PaletteCommand("Help: keys", "Every key binding", app.action_help),
        PaletteCommand("Quit", "Leave Bigend", app.action_quit),
    ]
    if main.state is not None:
        for project in main.state.projects:
            path = project.path
            name = f"Open project {clean(project.name)}"
            commands.append(PaletteCommand(name, escape(clean(path)), _opener(main, path)))
    return commands


def _opener(main: MainScreen, path: str) -> Callable[[], None]:
    return lambda: main.open_project(path)


def _events_filter(main: MainScreen, key: str) -> Callable[[], None]:
    def run() -> None:
        main.show_tab("events")
        main.action_filter_term(key)

    return run
