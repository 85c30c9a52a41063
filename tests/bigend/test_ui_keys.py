"""Pilot tests of every key path on a fixed KernelState with a frozen clock."""

from __future__ import annotations

from dataclasses import replace

from textual import events
from textual.command import CommandPalette

from bigend.ui.app import BigendApp
from bigend.ui.keys import all_sections
from bigend.ui.screens.help import HelpScreen
from bigend.ui.widgets.active_runs_table import ActiveRunsTable
from bigend.ui.widgets.event_viewport import EventLog
from bigend.ui.widgets.filter_bar import FilterBar
from bigend.ui.widgets.project_sidebar import ProjectSidebar
from bigend.ui.widgets.run_detail import RunDetail
from bigend.ui.widgets.run_list import RunList
from tests.snapshots.fixture_state import ROOT, build_state, frozen_clock
from tests.snapshots.pilot_helpers import screen_text, settle

SIZE = (120, 40)


def make_app() -> BigendApp:
    return BigendApp(state=build_state(), clock=frozen_clock)


def widgets(app: BigendApp) -> tuple[ProjectSidebar, RunList, RunDetail]:
    main = app.main_screen
    return main.query_one(ProjectSidebar), main.query_one(RunList), main.query_one(RunDetail)


async def test_dashboard_shows_stats_and_blocked_first() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "3/4 projects" in text
        assert "12,450 in / 3,200 out" in text
        table = app.main_screen.query_one(ActiveRunsTable)
        ids = [table.get_row(row.key)[1].plain for row in table.ordered_rows]
        # blocked first, then the run that failed within the hour, then the live ones
        assert ids[:2] == ["k3v9qa1m", "f4il3d00"]
        assert set(ids) == {"k3v9qa1m", "f4il3d00", "a1tl4s00", "p0x7c2de", "h4rb0r01"}
        assert app.main_screen.query_one("#stat-blocked").has_class("-warning")
        assert app.main_screen.query_one("#stat-projects").has_class("-warning")


async def test_tab_h_l_cycle_the_panes_of_the_project_view() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        sidebar, runs, detail = widgets(app)
        order: list[object] = []
        for keys in ((), ("tab",), ("tab",), ("shift+tab",), ("h", "h"), ("l",)):
            await pilot.press(*keys)
            order.append(app.focused)
        assert order == [runs, detail, sidebar, detail, sidebar, runs]


async def test_dashboard_panes_cycle_between_table_and_stream() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.focused, ActiveRunsTable)
        await pilot.press("tab")
        assert isinstance(app.focused, EventLog)
        await pilot.press("l")
        assert isinstance(app.focused, ActiveRunsTable)


async def test_arrows_and_j_k_move_only_the_focused_pane() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        sidebar, runs, _ = widgets(app)
        await pilot.press("h")  # sidebar
        await pilot.press("j", "j")  # atlas -> harbor -> interverse
        await settle(pilot)
        assert sidebar.selected_key == f"{ROOT}/interverse"
        assert runs.project == f"{ROOT}/interverse"
        assert runs.cursor_row == 0
        await pilot.press("l", "j")
        assert runs.cursor_row == 1
        assert sidebar.selected_key == f"{ROOT}/interverse"
        await pilot.press("down", "k", "up")
        assert runs.cursor_row == 0
        assert sidebar.selected_key == f"{ROOT}/interverse"


async def test_a_toggles_finished_history() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.main_screen.open_project(f"{ROOT}/interverse")
        await settle(pilot)
        _, runs, _ = widgets(app)
        shown = {row.key.value for row in runs.ordered_rows}
        # finished 2 h ago stays; finished 3 days ago is history
        assert shown == {"k3v9qa1m", "p0x7c2de", "z8m1r5tt"}
        await pilot.press("a")
        assert {row.key.value for row in runs.ordered_rows} == shown | {"old00001"}
        assert "all runs" in screen_text(app)
        await pilot.press("a")
        assert {row.key.value for row in runs.ordered_rows} == shown


async def test_filter_by_status_text_phase_and_project() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = app.main_screen.query_one(ActiveRunsTable)
        await pilot.press("slash")
        bar = app.main_screen.query_one(FilterBar)
        assert bar.display and app.focused is bar
        await pilot.press(*"status=bl")
        await pilot.pause(0.3)  # typing filters live, after a short debounce
        assert [(r.key.value or "").split("\x00")[1] for r in table.ordered_rows] == ["k3v9qa1m"]
        await pilot.press("enter")
        assert not bar.display
        assert "filter: status=bl" in screen_text(app)
        await pilot.press("slash", "escape")
        await settle(pilot)
        assert table.row_count == 5
        assert not bar.display and app.main_screen.filter_query.empty
        app.main_screen.set_filter("phase=exec")
        assert {r.key.value.split("\x00")[1] for r in table.ordered_rows} == {"f4il3d00", "p0x7c2de"}
        app.main_screen.set_filter("project=atlas rust")
        await settle(pilot)
        assert [r.key.value.split("\x00")[1] for r in table.ordered_rows] == ["a1tl4s00"]
        sidebar = app.main_screen.query_one(ProjectSidebar)
        assert [r.key.value for r in sidebar.ordered_rows] == [f"{ROOT}/atlas"]


async def test_filter_typing_h_l_q_goes_into_the_input() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash", *"hlqjk123/tsp")  # tab, pane, filter and event keys type themselves
        assert app.main_screen.query_one(FilterBar).value == "hlqjk123/tsp"
        assert app.main_screen.active_tab == "dashboard"
        assert app.is_running


async def test_enter_on_dashboard_opens_the_project_with_the_run_selected() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down")  # k3v9 (interverse), f4il (atlas), a1tl (atlas), p0x7
        await pilot.press("enter")
        await settle(pilot)
        sidebar, runs, _ = widgets(app)
        assert app.main_screen.active_tab == "projects"
        assert sidebar.selected_key == f"{ROOT}/interverse"
        assert runs.selected_key == "p0x7c2de"
        assert app.focused is runs
        assert "Add rate limiting to the public gateway" in screen_text(app)


async def test_enter_opens_old_run_even_when_hidden_by_history_default() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.main_screen.open_run(f"{ROOT}/interverse", "old00001")
        await settle(pilot)
        _, runs, _ = widgets(app)
        assert runs.selected_key == "old00001"
        assert app.main_screen.show_all


async def test_help_lists_every_binding_and_closes() -> None:
    app = make_app()
    async with app.run_test(size=(120, 80)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for _title, entries in all_sections():
            for entry in entries:
                assert entry.description in text, entry
                assert entry.id, entry
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)


async def test_every_binding_has_an_id_and_a_description() -> None:
    sections = all_sections()
    assert len(sections) >= 8
    for _title, entries in sections:
        for entry in entries:
            assert entry.id and "." in entry.id, entry
            assert entry.description, entry


async def test_command_palette_runs_app_actions() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"blocked r")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert app.main_screen.filter_query.terms == {"status": "blocked"}
        await pilot.press("ctrl+p", *"harbor")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        sidebar, _, _ = widgets(app)
        assert app.main_screen.active_tab == "projects"
        assert sidebar.selected_key == f"{ROOT}/harbor"


async def test_r_on_a_static_snapshot_says_so_and_q_quits() -> None:
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("r")
        await settle(pilot)
        assert any("nothing to refresh" in n.message for n in app._notifications)
        await pilot.press("q")
        await settle(pilot)
    assert not app.is_running


async def test_footer_shows_the_main_bindings() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        footer = screen_text(app).splitlines()[-1]
        for label in ("Quit", "Refresh", "Filter", "All runs", "Help", "Commands", "Next pane"):
            assert label in footer


async def test_detail_without_a_run_shows_the_projects_dispatches_and_events() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.main_screen.open_project(f"{ROOT}/legacy-tools")
        await settle(pilot)
        text = screen_text(app)
        assert "No run selected" in text
        assert "[0 runs] !" in text
        # the `!` is explained where the operator looks next
        assert "! Could not read this project: database is locked (timed out after 2.5 s)." in text


def with_hostile_name(name: str) -> BigendApp:
    """The fixture with its second project (harbor) renamed to `name`."""
    state = build_state()
    hostile = replace(state.projects[1], name=name)
    state = replace(state, projects=[state.projects[0], hostile, *state.projects[2:]])
    return BigendApp(state=state, clock=frozen_clock)


def burst(app: BigendApp, keys: str) -> None:
    """Keys posted all at once, as a fast typist or tmux send-keys delivers them (no pause between)."""
    for character in keys:
        app.post_message(events.Key("slash" if character == "/" else character, character))


async def test_palette_shows_a_hostile_project_name_literally() -> None:
    app = with_hostile_name("[red]evil[/red]")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p", *"open project")
        await pilot.pause(0.3)
        assert "Open project [red]evil[/red]" in screen_text(app)


async def test_hostile_names_and_filter_text_never_become_markup() -> None:
    app = with_hostile_name("[b]bad[/i]")
    async with app.run_test(size=SIZE) as pilot:
        app.main_screen.open_project(f"{ROOT}/harbor")
        await pilot.press("slash", *"[/x]", "enter")
        await settle(pilot)
        text = screen_text(app)
        assert "Runs · [b]bad[/i]" in text
        assert any("[b]bad[/i]" in line and "[1 run]" in line for line in text.splitlines())
        assert "filter: [/x]" in text
        assert app.is_running


async def test_a_burst_typed_behind_slash_lands_in_the_filter_not_on_bindings() -> None:
    """A fast typist (or a paste-like burst through tmux): the keys behind `/` were queued for the
    table that had focus; they must end up in the filter bar, and `q` among them must not quit."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        burst(app, "/quality")
        await settle(pilot)
        await pilot.pause(0.3)
        assert app.is_running
        assert app.main_screen.query_one(FilterBar).value == "quality"
        await pilot.press("escape", "1")
        await settle(pilot)
        # `3` switches to the events tab, `s` there opens the bar with source=: all in one burst
        burst(app, "3stmux")
        await settle(pilot)
        await pilot.pause(0.3)
        assert app.main_screen.active_tab == "events"
        assert app.main_screen.query_one(FilterBar).value == "source=tmux"
        assert isinstance(app.focused, FilterBar)


async def test_a_burst_after_a_pane_switch_moves_the_new_pane() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2", "h")
        await settle(pilot)
        sidebar, runs, _ = widgets(app)
        before = sidebar.selected_key
        assert runs.row_count == 2 and runs.cursor_row == 0
        burst(app, "lj")
        await settle(pilot)
        assert app.focused is runs
        assert runs.cursor_row == 1
        assert sidebar.selected_key == before
