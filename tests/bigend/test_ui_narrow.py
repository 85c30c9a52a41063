"""Narrow terminals: only the run list; Enter opens the detail full screen; selection survives resizes."""

from __future__ import annotations

from bigend.ui.app import BigendApp
from bigend.ui.screens.run_detail import RunDetailScreen
from bigend.ui.widgets.project_sidebar import ProjectSidebar
from bigend.ui.widgets.run_detail import RunDetail
from bigend.ui.widgets.run_list import RunList
from tests.snapshots.fixture_state import ROOT, build_state, frozen_clock
from tests.snapshots.pilot_helpers import screen_text, settle


async def test_narrow_shows_only_the_run_list_and_enter_opens_an_overlay() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=(90, 30)) as pilot:
        app.main_screen.open_project(f"{ROOT}/interverse")
        await settle(pilot)
        main = app.main_screen
        runs = main.query_one(RunList)
        assert main.narrow
        assert runs.display and runs.region.width > 0
        assert main.query_one(ProjectSidebar).region.width == 0
        assert main.query_one("#run-detail", RunDetail).region.width == 0
        await pilot.press("tab", "l")  # only one pane: focus stays on the run list
        assert app.focused is runs
        await pilot.press("j", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run_id == "p0x7c2de"
        assert "Add rate limiting to the public gateway" in screen_text(app)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, RunDetailScreen)
        assert runs.selected_key == "p0x7c2de"
        assert app.focused is runs


async def test_selection_is_kept_across_resizes() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=(120, 40)) as pilot:
        app.main_screen.open_project(f"{ROOT}/interverse")
        await settle(pilot)
        runs = app.main_screen.query_one(RunList)
        await pilot.press("j", "j")
        assert runs.selected_key == "z8m1r5tt"
        await pilot.resize_terminal(90, 30)
        await settle(pilot)
        assert app.main_screen.narrow
        assert runs.selected_key == "z8m1r5tt"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        # widening while the overlay is open returns to the two-pane view, same run selected
        await pilot.resize_terminal(120, 40)
        await settle(pilot)
        assert not app.main_screen.narrow
        assert not isinstance(app.screen, RunDetailScreen)
        assert runs.selected_key == "z8m1r5tt"
        assert "Document the on-call runbook" in screen_text(app)
