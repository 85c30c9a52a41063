"""The event viewport: bootstrap, streaming with dedup, filters, pause on scroll-up, bounded memory."""

from __future__ import annotations

from rich.text import Text

from bigend.ui import render
from bigend.ui.app import BigendApp
from bigend.ui.render import event_line
from bigend.ui.widgets.event_viewport import PAUSED_TEXT, EventLog, EventViewport
from tests.snapshots.fixture_state import NOW, build_state, event, frozen_clock, with_extra_events
from tests.snapshots.pilot_helpers import screen_text, settle

SIZE = (120, 40)


def viewport(app: BigendApp) -> EventViewport:
    return app.main_screen.query_one("#event-viewport", EventViewport)


def shown(app: BigendApp) -> int:
    return viewport(app).log_widget.line_count


async def test_bootstrap_then_stream_new_events_once() -> None:
    state = build_state()
    app = BigendApp(state=state, clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await settle(pilot)
        total = sum(len(p.events) for p in state.projects)
        assert shown(app) == total
        newer = with_extra_events(state, 1)
        app.main_screen.apply_state(newer)
        app.main_screen.apply_state(newer)  # the same events again: nothing new
        await settle(pilot)
        assert shown(app) == total + 1
        assert "tokens update 0" in screen_text(app)


async def test_filters_by_type_source_and_project() -> None:
    app = BigendApp(state=build_state(), clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "slash", *"type=adv", "enter")
        await settle(pilot)
        assert shown(app) == 2
        app.main_screen.set_filter("source=tmux")
        await settle(pilot)
        assert shown(app) == 1
        assert "[T] atlas - session.attached" in screen_text(app)
        app.main_screen.set_filter("project=atlas")
        await settle(pilot)
        assert shown(app) == 4
        app.main_screen.set_filter("")
        await settle(pilot)
        assert shown(app) == 10


async def test_scrolling_up_pauses_following_until_end() -> None:
    app = BigendApp(state=with_extra_events(build_state(), 120), clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await settle(pilot)
        log = viewport(app).log_widget
        assert log.scroll_y == log.max_scroll_y > 0
        assert not viewport(app).paused
        assert PAUSED_TEXT not in screen_text(app)
        await pilot.press("k", "k", "pageup")
        await settle(pilot)
        assert viewport(app).paused
        assert PAUSED_TEXT in screen_text(app)
        held = log.scroll_y
        app.main_screen.apply_state(with_extra_events(build_state(), 5, start_id=5000))
        await settle(pilot)
        assert log.scroll_y == held  # a new line does not yank the view back down
        await pilot.press("end")
        await settle(pilot)
        assert not viewport(app).paused
        assert log.scroll_y == log.max_scroll_y
        assert PAUSED_TEXT not in screen_text(app)


async def test_memory_is_bounded_by_max_lines() -> None:
    app = BigendApp(state=with_extra_events(build_state(), 300), clock=frozen_clock, event_lines=50)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await settle(pilot)
        assert len(viewport(app).items) == 50
        assert shown(app) <= 50
        # the newest are the ones kept
        assert viewport(app).items[-1].event.reason == "tokens update 299"


def test_line_format_and_source_colours() -> None:
    kernel = event("atlas", 1, "r1", "phase", "advance", 0, from_state="a", to_state="b", reason="ok")
    line = event_line(kernel, "atlas")
    assert line.plain == f"{render.clock_time(NOW)} [K] atlas r1 advance a→b ok"
    tmux = event_line(event("atlas", 2, None, "tmux", "x", 0), "atlas")
    messaging = event_line(event("atlas", 3, None, "messaging", "x", 0), "atlas")

    def tag_style(text: Text, tag: str) -> str:
        start = text.plain.index(tag)
        return next(str(span.style) for span in text.spans if span.start == start)

    assert "blue" in tag_style(line, "[K]")
    assert "bright_black" in tag_style(tmux, "[T]")
    assert "green" in tag_style(messaging, "[M]")


async def test_dashboard_stream_follows_too() -> None:
    app = BigendApp(state=with_extra_events(build_state(), 60), clock=frozen_clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        stream = app.main_screen.query_one("#dashboard-events", EventViewport).query_one(EventLog)
        assert stream.scroll_y == stream.max_scroll_y > 0


async def test_both_viewports_come_from_one_feed_and_an_aged_out_id_never_comes_back() -> None:
    """The feed's seen-set is an LRU of `event_lines * 10` ids; an event whose id aged out of it and
    is delivered again (its project changed, so its event list is read again) must not be shown twice:
    the feed's per-project high-water mark refuses it."""
    state = with_extra_events(build_state(), 80)  # 90 events
    app = BigendApp(state=state, clock=frozen_clock, event_lines=5)  # seen-set of 50
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.main_screen
        assert main.feed.seen_count == 50
        assert len(main.dashboard_stream.items) == 90
        # the same events again in new lists, and one new event
        main.apply_state(with_extra_events(state, 1, start_id=5000))
        await settle(pilot)
        stream = [item.synthetic_id for item in main.dashboard_stream.items]
        assert len(stream) == len(set(stream)) == 91
        assert stream[-1] == "kernel:/srv/work/atlas:5000"
        events_tab = [item.synthetic_id for item in main.event_viewport.items]
        assert events_tab == stream[-5:]
