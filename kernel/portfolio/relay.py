"""The relay: copies what happens in each child project into the portfolio database.

For every child, one tick reads the child's phase events past the persisted cursor from a consistent
read-only snapshot of its project database, then writes, in ONE portfolio transaction, the relayed
`child_*` events, an `upstream_changed` event for each downstream project, the child's new
phase/status on the portfolio copy and the new cursor. Because the events and the cursor commit
together, a relay killed at any instant resumes with no duplicate and no gap; because the cursor is
re-checked inside the write lock, two relays racing on one portfolio cannot double-write either.
A child whose database is missing, corrupt or locked is reported and skipped; the others go on.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from kernel import clock, events, eventtypes
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import KernelError, StorageError
from kernel.model import Event, JsonObject, Run
from kernel.portfolio.childdb import CHILD_TIMEOUT
from kernel.portfolio.contracts import RelayChild, RelayTick
from kernel.portfolio.lookup import children, get_portfolio
from kernel.portfolio.paths import project_db_path, require_absolute

# child phase event type -> relayed event type. A failed child blocks its portfolio, hence child_blocked.
RELAYED_TYPES: dict[str, str] = {
    eventtypes.ADVANCE: eventtypes.CHILD_ADVANCED,
    eventtypes.BLOCK: eventtypes.CHILD_BLOCKED,
    eventtypes.FAIL: eventtypes.CHILD_BLOCKED,
    eventtypes.CANCEL: eventtypes.CHILD_CANCELLED,
    eventtypes.COMPLETE: eventtypes.CHILD_COMPLETED,
    eventtypes.ROLLBACK: eventtypes.CHILD_ROLLEDBACK,
}
# Child events that move its phase or status: its downstream projects hear `upstream_changed`.
STATE_CHANGES = frozenset(
    {eventtypes.ADVANCE, eventtypes.ROLLBACK, eventtypes.CANCEL, eventtypes.COMPLETE, eventtypes.FAIL}
)


@dataclass(frozen=True, slots=True)
class ChildSnapshot:
    """What one read of a child's project database saw: events in (after, upto] and the run row."""

    after: int
    upto: int
    events: list[Event]
    run: Run


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    project: str
    run_id: str
    relayed: int
    cursor: int
    error: str | None = None

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TickReport:
    portfolio_id: str
    children: list[ChildOutcome]

    @property
    def relayed(self) -> int:
        return sum(c.relayed for c in self.children)

    @property
    def errors(self) -> list[ChildOutcome]:
        return [c for c in self.children if c.error is not None]

    def to_json(self) -> JsonObject:
        tick = RelayTick(
            portfolio_id=self.portfolio_id,
            relayed=self.relayed,
            errors=len(self.errors),
            children=[RelayChild(c.project, c.run_id, c.relayed, c.cursor, c.error) for c in self.children],
        )
        return asdict(tick)


def tune_for_relay(conn: sqlite3.Connection) -> None:
    """`synchronous=NORMAL` on the relay's own portfolio connection: no fsync per child transaction.

    In WAL mode this keeps every commit atomic and durable across a crash of the process (kill -9);
    only an OS crash or power cut can lose the last commits, and then events and cursor are lost
    together, so the relay simply reads those child events again: still no duplicate and no gap.
    It saves one fsync per child per tick (milliseconds each), which is the tick's largest cost.
    """
    conn.execute("PRAGMA synchronous = NORMAL")


class ChildReaders:
    """Read-only connections to the children's project databases, kept open across ticks.

    Opening a database (and checking its schema) costs more than reading a hundred events, so a
    long-running relay keeps one connection per project. A connection is reopened when the file is
    replaced (another inode) and dropped after any error, so a repaired database is picked up at the
    next tick.
    """

    def __init__(self, timeout: float = CHILD_TIMEOUT) -> None:
        self.timeout = timeout
        self._open: dict[str, tuple[sqlite3.Connection, tuple[int, int]]] = {}

    def get(self, project_dir: str) -> sqlite3.Connection:
        require_absolute(project_dir)
        path = project_db_path(project_dir)
        try:
            st = os.stat(path)
        except OSError:
            self.drop(project_dir)
            raise StorageError(f"{path}: project database is missing") from None
        identity = (st.st_dev, st.st_ino)
        cached = self._open.get(project_dir)
        if cached is not None and cached[1] == identity:
            return cached[0]
        self.drop(project_dir)
        conn = kdb.connect(path, timeout=self.timeout, readonly=True)
        conn.row_factory = None  # plain tuples: the row mappers take them, and they are faster
        try:
            kdb.check_schema(conn, path)
        except BaseException:
            conn.close()
            raise
        self._open[project_dir] = (conn, identity)
        return conn

    def drop(self, project_dir: str) -> None:
        cached = self._open.pop(project_dir, None)
        if cached is not None:
            cached[0].close()

    def close(self) -> None:
        for project_dir in list(self._open):
            self.drop(project_dir)


def _read_window(conn: sqlite3.Connection, child: Run, after: int) -> ChildSnapshot:
    conn.execute("BEGIN")
    try:
        upto = q.fetch_one(conn, q.EVENTS_SEQUENCE) or 0
        if upto < after:
            raise StorageError(
                f"{child.project_dir}: event ids went back ({upto} < cursor {after}); the project "
                "database was replaced, refusing to guess what was relayed"
            )
        found = q.fetch_all(conn, q.CHILD_PHASE_EVENTS_IN_WINDOW, child.id, after, upto)
        run = q.fetch_one(conn, q.RUN_BY_ID, child.id)
    finally:
        conn.execute("COMMIT")
    if run is None:
        raise StorageError(f"{child.project_dir}: child run {child.id} is not in the project database")
    return ChildSnapshot(
        after=after, upto=upto, events=[e for e in found if e.type in RELAYED_TYPES], run=run
    )


def read_child_snapshot(child: Run, after: int, readers: ChildReaders) -> ChildSnapshot:
    """One consistent read (a single read transaction) of the child's new phase events and its row."""
    try:
        return _read_window(readers.get(child.project_dir), child, after)
    except sqlite3.Error as exc:
        readers.drop(child.project_dir)
        raise StorageError(f"{project_db_path(child.project_dir)}: {exc}") from exc
    except KernelError:
        readers.drop(child.project_dir)
        raise


def _cursor(conn: sqlite3.Connection, portfolio_id: str, project: str) -> int:
    cursor = q.fetch_one(conn, q.RELAY_CURSOR, portfolio_id, project)
    return 0 if cursor is None else cursor.last_event_id


def _payload(portfolio_id: str, project: str, event: Event) -> dict[str, Any]:
    return {
        "portfolio_id": portfolio_id,
        "project": project,
        "child_event_id": event.id,
        "child_event_type": event.type,
    }


def write_child_snapshot(
    conn: sqlite3.Connection,
    portfolio_id: str,
    child: Run,
    snap: ChildSnapshot,
    downstream: list[Run],
) -> int | None:
    """Relay one snapshot in one transaction; the number relayed, or None if the cursor moved meanwhile."""
    project = child.project_dir
    with kdb.write_tx(conn):
        if _cursor(conn, portfolio_id, project) != snap.after:
            return None  # another relay got here first: re-read from the cursor it left
        for event in snap.events:
            events.record(
                conn, source=eventtypes.RELAY, type=RELAYED_TYPES[event.type], run_id=child.id,
                from_state=event.from_state, to_state=event.to_state, reason=event.reason,
                payload=_payload(portfolio_id, project, event), timestamp=event.timestamp,
            )  # fmt: skip
            if event.type in STATE_CHANGES:
                for down in downstream:
                    payload = {**_payload(portfolio_id, down.project_dir, event), "upstream": project}
                    events.record(
                        conn, source=eventtypes.RELAY, type=eventtypes.UPSTREAM_CHANGED, run_id=down.id,
                        from_state=event.from_state, to_state=event.to_state, reason=event.reason,
                        payload=payload, timestamp=event.timestamp,
                    )  # fmt: skip
        run = snap.run
        if (run.phase, run.status, run.completed_at) != (child.phase, child.status, child.completed_at):
            conn.execute(
                "UPDATE runs SET phase = ?, status = ?, completed_at = ?, updated_at = ? WHERE id = ? "
                "AND parent_run_id = ?",
                (run.phase, run.status, run.completed_at, clock.now(), child.id, portfolio_id),
            )
        conn.execute(
            "INSERT INTO relay_cursors (portfolio_id, project_dir, last_event_id, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (portfolio_id, project_dir) "
            "DO UPDATE SET last_event_id = excluded.last_event_id, updated_at = excluded.updated_at",
            (portfolio_id, project, snap.upto, clock.now()),
        )
    return len(snap.events)


def _needs_write(child: Run, snap: ChildSnapshot) -> bool:
    run = snap.run
    moved = (run.phase, run.status, run.completed_at) != (child.phase, child.status, child.completed_at)
    return snap.upto > snap.after or moved


def relay_child(
    conn: sqlite3.Connection, portfolio_id: str, child: Run, downstream: list[Run], readers: ChildReaders
) -> ChildOutcome:
    """Bring one child up to date; read errors become the outcome's error, never an exception."""
    for _ in range(3):
        after = _cursor(conn, portfolio_id, child.project_dir)
        try:
            snap = read_child_snapshot(child, after, readers)
        except KernelError as exc:
            return ChildOutcome(child.project_dir, child.id, 0, after, exc.message)
        if not _needs_write(child, snap):
            return ChildOutcome(child.project_dir, child.id, 0, after)
        relayed = write_child_snapshot(conn, portfolio_id, child, snap, downstream)
        if relayed is not None:
            return ChildOutcome(child.project_dir, child.id, relayed, snap.upto)
    return ChildOutcome(child.project_dir, child.id, 0, after, "another relay kept moving the cursor; retry")


def relay_tick(
    conn: sqlite3.Connection,
    portfolio_id: str,
    *,
    readers: ChildReaders | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TickReport:
    """One pass over every child of the portfolio. Portfolio database errors propagate.

    Pass the same `readers` to every tick of a long-running relay; without it the tick opens and
    closes its own connections.
    """
    own = readers is None
    active = ChildReaders() if readers is None else readers
    try:
        get_portfolio(conn, portfolio_id)
        kids = children(conn, portfolio_id)
        by_project = {c.project_dir: c for c in kids}
        downstream: dict[str, list[Run]] = {}
        for dep in q.fetch_all(conn, q.DEPS_OF_PORTFOLIO, portfolio_id):
            if dep.downstream in by_project:
                downstream.setdefault(dep.upstream, []).append(by_project[dep.downstream])
        outcomes: list[ChildOutcome] = []
        for child in kids:
            if should_stop():
                break
            outcomes.append(
                relay_child(conn, portfolio_id, child, downstream.get(child.project_dir, []), active)
            )
        return TickReport(portfolio_id, outcomes)
    finally:
        if own:
            active.close()


def relay_events(
    conn: sqlite3.Connection, portfolio_id: str, after_id: int = 0, limit: int = 1000
) -> list[Event]:
    """The relayed events of a portfolio (for `ic events`-like readers and tests)."""
    return q.fetch_all(conn, q.RELAY_EVENTS_OF_PORTFOLIO, after_id, portfolio_id, limit)
