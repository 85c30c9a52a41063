"""Every screen at a fixed size over the fixed KernelState, with a frozen clock and no animation.

Update after an intended visual change with `pytest tests/snapshots --snapshot-update`, and look at the
SVGs in __snapshots__ before committing them.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from bigend.ui.app import BigendApp
from tests.snapshots.fixture_state import ROOT, build_state, frozen_clock, with_extra_events, with_portfolio

WIDE = (120, 40)
NARROW = (90, 30)
SnapCompare = Callable[..., bool]


def make_app(extra_events: int = 0, *, portfolio: bool = False) -> BigendApp:
    state = build_state()
    if extra_events:
        state = with_extra_events(state, extra_events)
    if portfolio:
        state = with_portfolio(state)
    app = BigendApp(state=state, clock=frozen_clock)
    app.animation_level = "none"
    return app


def open_run(project: str, run_id: str | None, *keys: str) -> Callable[[Pilot[object]], object]:
    async def before(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, BigendApp)
        await pilot.pause()
        if run_id is None:
            app.main_screen.open_project(f"{ROOT}/{project}")
        else:
            app.main_screen.open_run(f"{ROOT}/{project}", run_id)
        await pilot.pause()
        if keys:
            await pilot.press(*keys)
        await pilot.pause()

    return before


def test_dashboard(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE)


def test_project_view(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, run_before=open_run("interverse", None))


def test_run_detail_focused(snap_compare: SnapCompare) -> None:
    before = open_run("interverse", "k3v9qa1m", "tab")
    assert snap_compare(make_app(), terminal_size=WIDE, run_before=before)


def test_event_viewport(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(extra_events=40), terminal_size=WIDE, press=["3"])


def test_event_viewport_paused(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(extra_events=40), terminal_size=WIDE, press=["3", "pageup"])


def test_help(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["question_mark"])


def test_filter(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["slash", *"status=blocked"])


def test_narrow_run_list(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=NARROW, run_before=open_run("interverse", None))


def test_portfolio_project(snap_compare: SnapCompare) -> None:
    """The workspace's parent first, its children named by project, their state in the detail."""
    before = open_run("workspace", "p0rtf0l1")
    assert snap_compare(make_app(portfolio=True), terminal_size=WIDE, run_before=before)


def test_events_filtered_by_type(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=WIDE, press=["3", "t", *"adv", "enter"])


def test_narrow_dashboard(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=NARROW)


def test_narrow_overlay(snap_compare: SnapCompare) -> None:
    before = open_run("interverse", "k3v9qa1m", "enter")
    assert snap_compare(make_app(), terminal_size=NARROW, run_before=before)


def test_dashboard_light_theme(snap_compare: SnapCompare) -> None:
    app = make_app()
    app.theme = "textual-light"
    assert snap_compare(app, terminal_size=WIDE)
