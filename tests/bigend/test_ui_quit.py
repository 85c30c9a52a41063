"""Shutting down while the time-in-phase tick fires.

The tick used to be the app's: during shutdown the app's timer kept firing after the main screen's
widgets were pruned and crashed the app with `NoMatches` (`#stats`, `#status-line`…: 20 shutdowns out
of 20 with a 10 ms tick). The tick now belongs to each screen that shows time in phase; a screen stops
its timers before its widgets are removed, so the race is gone. The clock counts its calls to prove
that the tick really fired throughout, so the window was exercised on every shutdown.
"""

from __future__ import annotations

from bigend.ui.app import BigendApp
from bigend.ui.messages import RunChosen
from bigend.ui.screens.run_detail import RunDetailScreen
from tests.snapshots.fixture_state import NOW, ROOT, build_state

SHUTDOWNS = 20
OVERLAY_SHUTDOWNS = 5  # the same mechanism (a screen's own timer); fewer, since each costs ~1 s
TICK = 0.01


class CountingClock:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return float(NOW)


async def test_shutting_down_while_the_main_screens_tick_fires_never_fails() -> None:
    for _ in range(SHUTDOWNS):
        clock = CountingClock()
        app = BigendApp(state=build_state(), clock=clock, tick_seconds=TICK)
        # run_test re-raises whatever crashed the app, the shutdown included
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.05)
            rendered = clock.calls
            await pilot.pause(0.05)
            assert clock.calls > rendered, "the tick did not fire"
        assert app.return_code in (None, 0)


async def test_shutting_down_while_the_overlays_tick_fires_never_fails() -> None:
    """The narrow overlay has a tick of its own. (Keys are not pressed here: the pilot waits for every
    message queue to drain before a key, which a 10 ms tick on two screens hardly ever allows.)"""
    for _ in range(OVERLAY_SHUTDOWNS):
        clock = CountingClock()
        app = BigendApp(state=build_state(), clock=clock, tick_seconds=TICK)
        async with app.run_test(size=(90, 30)) as pilot:
            app.main_screen.post_message(RunChosen(f"{ROOT}/interverse", "k3v9qa1m"))
            await pilot.pause(0.05)
            assert isinstance(app.screen, RunDetailScreen)
            rendered = clock.calls
            await pilot.pause(0.05)
            assert clock.calls > rendered, "the tick did not fire"
        assert app.return_code in (None, 0)
