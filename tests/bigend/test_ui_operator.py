"""The operator's questions, answered from the keyboard: who is blocked and why, what a portfolio is
doing, which events matter; and the screens staying readable (narrow, light theme)."""

from __future__ import annotations

from dataclasses import replace

from textual.command import CommandPalette
from textual.widgets import Footer
from textual.widgets.data_table import RowKey

from bigend.core.status import UnifiedStatus
from bigend.ui.app import BigendApp
from bigend.ui.commands import BigendCommands
from bigend.ui.filtering import parse_filter
from bigend.ui.screens.run_detail import RunDetailScreen
from bigend.ui.widgets.active_runs_table import ActiveRunsTable, row_key
from bigend.ui.widgets.event_viewport import EventViewport
from bigend.ui.widgets.filter_bar import FilterBar
from bigend.ui.widgets.run_list import RunList
from bigend.ui.widgets.stats_row import StatsRow
from tests.snapshots.fixture_state import ROOT, build_state, frozen_clock, with_portfolio
from tests.snapshots.pilot_helpers import screen_text, settle

WIDE = (120, 40)
NARROW = (90, 30)


def dashboard_ids(table: ActiveRunsTable) -> list[str]:
    return [(row.key.value or "").split("\x00")[1] for row in table.ordered_rows]


async def test_dashboard_says_why_each_blocked_or_failed_run_needs_the_operator() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        lines = screen_text(app).splitlines()
        blocked = next(n for n, line in enumerate(lines) if "k3v9qa1m" in line)
        assert "↳ gate: review needs a passing verdict" in lines[blocked + 1]
        failed = next(n for n, line in enumerate(lines) if "f4il3d00" in line)
        assert "↳ failed: dispatch e9f8g7h6 exited 1" in lines[failed + 1]
        live = next(n for n, line in enumerate(lines) if "p0x7c2de" in line)
        assert "↳" not in lines[live + 1]
        table = app.main_screen.query_one(ActiveRunsTable)
        heights = {key.value: row.height for key, row in table.rows.items()}
        assert heights[row_key(f"{ROOT}/interverse", "k3v9qa1m")] == 2
        assert heights[row_key(f"{ROOT}/interverse", "p0x7c2de")] == 1


async def test_a_run_that_becomes_blocked_grows_its_row_and_keeps_the_cursor() -> None:
    state = build_state()
    app = BigendApp(state=state, clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        table = app.main_screen.query_one(ActiveRunsTable)
        target = row_key(f"{ROOT}/interverse", "p0x7c2de")
        table.select_key(target)
        interverse = next(p for p in state.projects if p.name == "interverse")
        runs = [
            replace(r, unified=UnifiedStatus.BLOCKED, blocked_reason="auto_advance is off")
            if r.id == "p0x7c2de"
            else r
            for r in interverse.runs
        ]
        projects = [replace(p, runs=runs) if p is interverse else p for p in state.projects]
        app.main_screen.apply_state(replace(state, projects=projects))
        await settle(pilot)
        assert table.selected_key == target
        assert table.rows[RowKey(target)].height == 2
        assert dashboard_ids(table)[:2] == ["p0x7c2de", "k3v9qa1m"]  # both Blocked, newest first
        assert "↳ auto_advance is off" in screen_text(app)
        app.main_screen.apply_state(state)  # unblocked again: one line, back among the live runs
        await settle(pilot)
        assert table.selected_key == target
        assert table.rows[RowKey(target)].height == 1


async def test_stats_row_warns_only_while_something_is_blocked() -> None:
    state = build_state()
    app = BigendApp(state=state, clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        blocked = app.main_screen.query_one("#stat-blocked")
        assert blocked.has_class("-warning")
        calm = replace(state.metrics, blocked_agents=0)
        app.main_screen.apply_state(replace(state, metrics=calm))
        await settle(pilot)
        assert not blocked.has_class("-warning")


async def test_time_in_phase_is_coloured_by_age_in_the_run_list() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        app.main_screen.open_project(f"{ROOT}/interverse")
        await settle(pilot)
        runs = app.main_screen.query_one(RunList)
        assert str(runs.get_row("k3v9qa1m")[3].style) == "red"  # 5 h
        assert str(runs.get_row("p0x7c2de")[3].style) == "yellow"  # 1 h 30
        app.main_screen.open_project(f"{ROOT}/atlas")
        await settle(pilot)
        assert str(runs.get_row("a1tl4s00")[3].style) == "green"  # 20 min


async def test_portfolio_parent_lists_its_children_and_copies_are_named_by_project() -> None:
    app = BigendApp(state=with_portfolio(build_state()), clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        table = app.main_screen.query_one(ActiveRunsTable)
        ids = dashboard_ids(table)
        assert ids.count("c1atlas0") == 1 and ids.count("c2harbr0") == 1  # in their projects only
        assert "Ship SSO across atlas and harbor  · portfolio of 2" in screen_text(app)
        table.select_key(row_key(f"{ROOT}/workspace", "p0rtf0l1"))
        await pilot.press("enter")
        await settle(pilot)
        runs = app.main_screen.query_one(RunList)
        assert [row.key.value for row in runs.ordered_rows] == ["p0rtf0l1", "c1atlas0", "c2harbr0"]
        assert runs.get_row("c1atlas0")[6].plain == "↳ atlas"
        text = screen_text(app)
        assert "[1 portfolio]" in text
        assert "Portfolio: 2 child runs" in text
        lines = text.splitlines()
        harbor = next(n for n, line in enumerate(lines) if "■ harbor" in line)
        assert "strategized" in lines[harbor] and "2h00m" in lines[harbor]
        assert "↳ upstream atlas is not at planned" in lines[harbor + 1]
        atlas = next(line for line in lines if "● atlas" in line)
        assert "executing" in atlas  # the child project's own row, not the lagging copy


async def test_event_keys_open_the_filter_with_type_source_or_project_ready() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("3")
        await settle(pilot)
        viewport = app.main_screen.query_one("#event-viewport", EventViewport)
        assert "t type=  s source=  p project=" in screen_text(app)  # discoverable on the border
        footer = screen_text(app).splitlines()[-1]
        assert "t type=" in footer and "s source=" in footer and "p project=" in footer
        await pilot.press("t")
        bar = app.main_screen.query_one(FilterBar)
        assert bar.display and app.focused is bar and bar.value == "type="
        await pilot.press(*"adv", "enter")
        await settle(pilot)
        assert app.main_screen.filter_query == parse_filter("type=adv")
        assert viewport.log_widget.line_count == 2
        assert "2 of 10 · filter: type=adv" in screen_text(app)
        await pilot.press("s")
        assert bar.value == "type=adv source="
        await pilot.press(*"tmux", "enter")
        await settle(pilot)
        assert viewport.log_widget.line_count == 0
        assert "no event matches type=adv source=tmux" in screen_text(app)
        await pilot.press("t")  # a second `t` replaces the type term instead of adding one
        assert bar.value == "source=tmux type="
        await pilot.press("escape", "p")
        assert bar.value == "project="
        await pilot.press(*"atlas", "enter")
        await settle(pilot)
        assert viewport.log_widget.line_count == 4


async def test_palette_lists_the_apps_actions_first_and_switches_to_the_light_theme() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        names = [command.name for command in BigendCommands(app.screen)._commands()]
        assert names[0] == "Show blocked runs"
        for wanted in ("Filter events by type", "Filter events by source", "Filter events by project"):
            assert wanted in names
        assert names.count("Quit") == 1
        assert names.index("Open project atlas") < names.index("Theme")  # Textual's own come last
        await pilot.press("ctrl+p", *"events by source")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert app.main_screen.active_tab == "events"
        assert app.main_screen.query_one(FilterBar).value == "source="
        await pilot.press("escape", "ctrl+p", *"theme")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"textual-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert app.theme == "textual-light"
        assert "[K] interverse" in screen_text(app)


async def test_narrow_stats_keep_their_labels_and_the_footer_keeps_help_and_quit() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        text = screen_text(app)
        for label in ("Projects", "Active Runs", "Blocked", "Dispatches", "Tokens"):
            assert f"─ {label} ─" in text, label
        assert "12k in / 3.2k out" in text
        assert app.main_screen.query_one(StatsRow).has_class("-compact")
        footer = text.splitlines()[-1]
        assert "? Help" in footer and "q Quit" in footer
        assert app.main_screen.query_one(Footer).region.width == NARROW[0]
        await pilot.resize_terminal(*WIDE)
        await settle(pilot)
        assert "12,450 in / 3,200 out" in screen_text(app)


async def test_run_history_in_the_detail_is_dated_and_the_overlay_names_the_run() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=NARROW) as pilot:
        app.main_screen.open_run(f"{ROOT}/interverse", "k3v9qa1m")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        text = screen_text(app)
        assert "Run k3v9qa1m · interverse" in text
        # the fixture's events are on 2025-12-31 (UTC, pinned by tests/snapshots/conftest.py for SVGs)
        assert any(line.strip("┃│ ").startswith("── 20") for line in text.splitlines())


async def test_slash_from_the_help_screen_closes_it_and_opens_the_filter() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("question_mark")
        await settle(pilot)
        assert "Esc, ? or F1 closes" in screen_text(app)
        await pilot.press("slash", *"atlas")
        await settle(pilot)
        bar = app.main_screen.query_one(FilterBar)
        assert app.focused is bar and bar.value == "atlas"
