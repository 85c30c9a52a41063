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


async def test_the_goal_column_takes_the_width_the_others_leave_at_every_size() -> None:
    """KeyedTable.set_column_width resizes the fill column through DataTable's public parts; the
    rendered rows must follow (no stale cached row, no horizontal scrolling)."""
    app = BigendApp(state=build_state(), clock=frozen_clock)
    goal = "Add rate limiting to the public gateway"
    async with app.run_test(size=(120, 40)) as pilot:
        app.main_screen.open_project(f"{ROOT}/interverse")
        await settle(pilot)
        runs = app.main_screen.run_list
        shown: dict[int, str] = {}
        for width in (120, 170, 120):
            await pilot.resize_terminal(width, 40)
            await settle(pilot)
            total = sum(column.get_render_width(runs) for column in runs.columns.values())
            assert total == runs.scrollable_content_region.width
            assert runs.virtual_size.width == total and runs.max_scroll_x == 0
            row = next(line for line in screen_text(app).splitlines() if "p0x7c2de" in line)
            shown[width] = row
        assert goal in shown[170]
        assert goal not in shown[120] and "…" in shown[120]
        # without a resize (no Resize event refreshing the table's caches for it)
        runs.set_column_width("goal", 12)
        await settle(pilot)
        row = next(line for line in screen_text(app).splitlines() if "p0x7c2de" in line)
        assert "Add rate li…" in row and "Add rate lim" not in row
