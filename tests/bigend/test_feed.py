"""The activity feed: one stream over all projects, each event once, bounded memory."""

from __future__ import annotations

from pathlib import Path

from bigend.core.aggregator import Aggregator
from bigend.core.config import BigendConfig
from bigend.core.feed import ActivityFeed
from bigend.core.snapshot import EventInfo, KernelState, Metrics, ProjectState
from kernel import db as kdb
from kernel import events


def event(project: str, eid: int, ts: int, etype: str = "advance") -> EventInfo:
    return EventInfo(
        synthetic_id=f"kernel:{project}:{eid}", id=eid, project=project, source="phase", type=etype,
        kind="PhaseAdvance", timestamp=ts,
    )  # fmt: skip


def state(*projects: tuple[str, list[EventInfo]], generated_at: float = 1.0) -> KernelState:
    return KernelState(
        generated_at=generated_at,
        roots=["/r"],
        projects=[
            ProjectState(path=p, name=p.rsplit("/", 1)[-1], has_intercore=True, events=e) for p, e in projects
        ],
        metrics=Metrics(),
    )


def test_first_ingest_is_history_in_time_order_across_projects() -> None:
    feed = ActivityFeed(limit=10)
    a_events = [event("/a", 1, 100), event("/a", 2, 300)]
    first = feed.ingest(state(("/a", a_events), ("/b", [event("/b", 1, 200)])))
    assert [(i.project, i.event.id) for i in first] == [("/a", 1), ("/b", 1), ("/a", 2)]
    assert all(i.history for i in first)
    assert first[1].synthetic_id == "kernel:/b:1"
    assert (first[1].project_name, first[1].source_prefix) == ("b", "K")


def test_repeated_events_are_reported_once_and_later_ones_are_new() -> None:
    feed = ActivityFeed(limit=10)
    a1, a2 = event("/a", 1, 100), event("/a", 2, 110)
    feed.ingest(state(("/a", [a1])))
    again = feed.ingest(state(("/a", [a1, a2])))
    assert [(i.event.id, i.history) for i in again] == [(2, False)]
    assert feed.ingest(state(("/a", [a1, a2]))) == []
    assert [i.event.id for i in feed.items] == [1, 2]


def test_same_event_id_in_two_projects_is_two_items() -> None:
    feed = ActivityFeed(limit=10)
    items = feed.ingest(state(("/a", [event("/a", 7, 100)]), ("/b", [event("/b", 7, 100)])))
    assert {i.synthetic_id for i in items} == {"kernel:/a:7", "kernel:/b:7"}


def test_items_are_bounded_and_keep_the_newest() -> None:
    feed = ActivityFeed(limit=3)
    feed.ingest(state(("/a", [event("/a", i, 100 + i) for i in range(1, 9)])))
    assert [i.event.id for i in feed.items] == [6, 7, 8]
    assert len(feed) == 3


def test_a_late_event_is_placed_in_time_order() -> None:
    feed = ActivityFeed(limit=10)
    feed.ingest(state(("/a", [event("/a", 1, 100), event("/a", 2, 300)]), ("/b", [])))
    a_events = [event("/a", 1, 100), event("/a", 2, 300)]
    late = feed.ingest(state(("/a", a_events), ("/b", [event("/b", 1, 200)])))
    assert [i.synthetic_id for i in late] == ["kernel:/b:1"]
    assert [i.timestamp for i in feed.items] == [100, 200, 300]


def test_seen_set_is_an_lru_capped_at_ten_times_the_limit() -> None:
    feed = ActivityFeed(limit=2)
    assert feed.seen_capacity == 20
    feed.ingest(state(("/a", [event("/a", i, i) for i in range(1, 16)])))  # ids 1..15
    feed.ingest(state(("/b", [event("/b", i, 100 + i) for i in range(1, 9)])))  # 8 more: 23 > 20
    assert feed.seen_count == 20
    assert not feed.has_seen("kernel:/a:1") and not feed.has_seen("kernel:/a:3")
    assert feed.has_seen("kernel:/a:4") and feed.has_seen("kernel:/b:8")


def test_ids_still_in_the_state_are_touched_and_survive_eviction() -> None:
    feed = ActivityFeed(limit=1)  # capacity 10
    keep = [event("/a", i, i) for i in range(1, 6)]
    feed.ingest(state(("/a", keep)))
    for round_ in range(3):  # /a is re-delivered (a new list each time), /b brings 4 new ids per round
        fresh = [event("/b", round_ * 4 + i, 1000 + round_ * 4 + i) for i in range(1, 5)]
        feed.ingest(state(("/a", list(keep)), ("/b", fresh)))
    assert all(feed.has_seen(e.synthetic_id) for e in keep)
    assert feed.seen_count == 10


def test_an_evicted_id_is_not_reported_again() -> None:
    feed = ActivityFeed(limit=1)
    old = event("/a", 1, 1)
    feed.ingest(state(("/a", [old])))
    feed.ingest(state(("/b", [event("/b", i, 10 + i) for i in range(1, 12)])))
    assert not feed.has_seen(old.synthetic_id)
    back = feed.ingest(state(("/a", [old, event("/a", 2, 50)])))
    assert [i.synthetic_id for i in back] == ["kernel:/a:2"]


def test_the_aggregators_placeholder_state_is_not_the_bootstrap() -> None:
    feed = ActivityFeed(limit=5)
    assert feed.ingest(state(("/a", [event("/a", 1, 1)]), generated_at=0)) == []
    assert [i.history for i in feed.ingest(state(("/a", [event("/a", 1, 1)])))] == [True]


async def test_feed_over_real_refreshes(tmp_path: Path) -> None:
    db_path = tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME
    kdb.init_db(db_path)
    conn = kdb.open_db(db_path)

    def write(n: int) -> None:
        with kdb.write_tx(conn):
            for i in range(n):
                events.record(conn, source="phase", type="advance", run_id="r1", timestamp=1000 + i)

    write(3)
    aggregator = Aggregator(BigendConfig(roots=[tmp_path], events_per_project=10))
    feed = ActivityFeed(limit=50)
    try:
        first = feed.ingest(await aggregator.refresh())
        write(2)
        second = feed.ingest(await aggregator.refresh(force=True))
        third = feed.ingest(await aggregator.refresh(force=True))
    finally:
        await aggregator.close()
        conn.close()
    assert [(i.event.id, i.history) for i in first] == [(1, True), (2, True), (3, True)]
    assert [(i.event.id, i.history, i.kind) for i in second] == [
        (4, False, "PhaseAdvance"),
        (5, False, "PhaseAdvance"),
    ]
    assert third == []
