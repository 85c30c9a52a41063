"""The relay: copies what happens in each child project into the portfolio database.

For every child, one tick reads the child's phase events past the persisted cursor from a consistent
read-only snapshot of its project database, then writes, in ONE portfolio transaction, the relayed
`child_*` events, an `upstream_changed` event for each downstream project, the child's new
phase/status on the portfolio copy and the new cursor. Because the events and the cursor commit
together, a relay killed at any instant resumes with no duplicate and no gap; because the cursor is
re-checked inside the write lock, two relays racing on one portfolio cannot double-write either.
A child whose database is missing, corrupt or locked is reported and skipped; the others go on.

A child database that was replaced (restored from a backup, re-created) shows event ids that went back
below the cursor. Relaying on once its new events pass the cursor would skip the ones that reuse ids
below it, forever and silently, so the relay stops relaying that project instead (the cursor is
stored negated, see `RelayCursor`) and says so every tick, until an operator resets the cursor
(`kernel.portfolio.cursors`). A replacement is seen by any tick that runs while its ids are still
below the cursor; one whose new events overtook the cursor while no relay was running is not (the
schema keeps no fingerprint of the database), so restoring a child database is followed by
`ic portfolio cursor reset`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from kernel import clock, events, eventtypes
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import KernelError, StorageError
from kernel.model import Event, JsonObject, Run
from kernel.portfolio.childdb import CHILD_TIMEOUT
from kernel.portfolio.contracts import RelayChild, RelayTick
from kernel.portfolio.lookup import children, get_portfolio
from kernel.portfolio.paths import FileKey, db_identity, project_db_path, require_absolute
from kernel.portfolio.rows import ChildEvent

RELAY = eventtypes.RELAY

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


class ReplacedDatabase(StorageError):
    """The child's project database is not the one the relay cursor was read from."""


def replaced_hint(portfolio_id: str, project: str) -> str:
    return f"relaying it is stopped until `ic portfolio cursor reset {portfolio_id} --project={project}`"


@dataclass(frozen=True, slots=True)
class ChildSnapshot:
    """What one read of a child's project database saw: events in (after, upto] and the run row."""

    after: int
    upto: int
    events: list[ChildEvent]
    run: Run


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    project: str
    run_id: str
    relayed: int
    cursor: int
    error: str | None = None
    stalled: bool = False  # relaying it is stopped: its database was replaced (the error says so)

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TickReport:
    portfolio_id: str
    children: list[ChildOutcome]
    stopped: bool = False  # a stop was requested: the children after the last one were not visited

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
    long-running relay keeps one connection per project. A connection is reopened when the file or
    its WAL index is replaced (`db_identity`) and dropped after any error, so a repaired or restored
    database is picked up at the next tick.
    """

    def __init__(self, timeout: float = CHILD_TIMEOUT) -> None:
        self.timeout = timeout
        self._open: dict[str, tuple[sqlite3.Connection, tuple[FileKey, FileKey]]] = {}
        self._paths: dict[str, Path] = {}

    def _path(self, project_dir: str) -> Path:
        path = self._paths.get(project_dir)
        if path is None:
            require_absolute(project_dir)
            path = self._paths[project_dir] = project_db_path(project_dir)
        return path

    def get(self, project_dir: str) -> sqlite3.Connection:
        path = self._path(project_dir)
        identity = db_identity(path)
        if identity[0] is None:
            self.drop(project_dir)
            raise StorageError(f"{path}: project database is missing")
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
        self._open[project_dir] = (conn, db_identity(path))  # the -shm file exists once it is open
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
            raise ReplacedDatabase(
                f"its event ids went back to {upto}, below the relay cursor {after}: the project database "
                "was replaced"
            )
        found = q.fetch_all(conn, q.CHILD_PHASE_EVENTS_IN_WINDOW, child.id, after, upto)
        run = q.fetch_one(conn, q.RUN_BY_ID, child.id)
    finally:
        conn.execute("COMMIT")
    if run is None:
        raise StorageError(f"child run {child.id} is not in the project database")
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


# The relay is the stream's one bulk writer (thousands of events a tick), so it writes through
# `events.record_many` and builds its fixed-shape payloads as text, in the JSON encoding of
# `kernel.events.record` (compact, sorted keys, ASCII).


def _event_rows(
    portfolio_id: str, child: Run, found: list[ChildEvent], downstream: list[Run]
) -> Iterator[tuple[str, str, str, str | None, str | None, str | None, None, str, int]]:
    """The rows of the relayed events: each child event, then its upstream_changed per downstream.

    Payload keys in sorted order: child_event_id, child_event_type, portfolio_id, project[, upstream].
    """
    pid = json.dumps(portfolio_id)
    tail = f',"portfolio_id":{pid},"project":{json.dumps(child.project_dir)}}}'
    upstream = json.dumps(child.project_dir)
    down_tails = [
        (d.id, f',"portfolio_id":{pid},"project":{json.dumps(d.project_dir)},"upstream":{upstream}}}')
        for d in downstream
    ]
    for e in found:
        head = f'{{"child_event_id":{e.id},"child_event_type":"{e.type}"'
        yield (
            child.id, RELAY, RELAYED_TYPES[e.type], e.from_state, e.to_state, e.reason, None, head + tail,
            e.timestamp,
        )  # fmt: skip
        if e.type in STATE_CHANGES:
            for down_id, down_tail in down_tails:
                yield (
                    down_id, RELAY, eventtypes.UPSTREAM_CHANGED, e.from_state, e.to_state, e.reason, None,
                    head + down_tail, e.timestamp,
                )  # fmt: skip


def _moved(child: Run, snap: ChildSnapshot) -> bool:
    run = snap.run
    return (run.phase, run.status, run.completed_at) != (child.phase, child.status, child.completed_at)


def write_child_snapshot(
    conn: sqlite3.Connection,
    portfolio_id: str,
    child: Run,
    snap: ChildSnapshot,
    downstream: list[Run],
) -> int | None:
    """Relay one snapshot in one transaction; the number relayed, or None if the cursor moved meanwhile."""
    project = child.project_dir
    now = clock.now()
    with kdb.write_tx(conn):
        if _cursor(conn, portfolio_id, project) != snap.after:
            return None  # another relay got here first: re-read from the cursor it left
        events.record_many(conn, _event_rows(portfolio_id, child, snap.events, downstream))
        if _moved(child, snap):
            run = snap.run
            conn.execute(
                "UPDATE runs SET phase = ?, status = ?, completed_at = ?, updated_at = ? WHERE id = ? "
                "AND parent_run_id = ?",
                (run.phase, run.status, run.completed_at, now, child.id, portfolio_id),
            )
        set_cursor(conn, portfolio_id, project, snap.upto, now)
    return len(snap.events)


def set_cursor(conn: sqlite3.Connection, portfolio_id: str, project: str, value: int, now: int) -> None:
    """Store a project's relay cursor; must run inside the caller's write transaction."""
    conn.execute(
        "INSERT INTO relay_cursors (portfolio_id, project_dir, last_event_id, updated_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (portfolio_id, project_dir) "
        "DO UPDATE SET last_event_id = excluded.last_event_id, updated_at = excluded.updated_at",
        (portfolio_id, project, value, now),
    )


def _stall(conn: sqlite3.Connection, portfolio_id: str, project: str, after: int) -> None:
    """Mark the cursor stopped (negated), unless another relay moved it since it was read."""
    with kdb.write_tx(conn):
        if after > 0 and _cursor(conn, portfolio_id, project) == after:
            set_cursor(conn, portfolio_id, project, -after, clock.now())


def relay_child(
    conn: sqlite3.Connection, portfolio_id: str, child: Run, downstream: list[Run], readers: ChildReaders
) -> ChildOutcome:
    """Bring one child up to date; read errors become the outcome's error, never an exception."""
    project = child.project_dir
    for _ in range(3):
        after = _cursor(conn, portfolio_id, project)
        if after < 0:
            hint = replaced_hint(portfolio_id, project)
            message = f"its database was replaced (at cursor {-after}); {hint}"
            return ChildOutcome(project, child.id, 0, after, message, stalled=True)
        try:
            snap = read_child_snapshot(child, after, readers)
        except ReplacedDatabase as exc:
            _stall(conn, portfolio_id, project, after)
            message = f"{exc.message}; {replaced_hint(portfolio_id, project)}"
            return ChildOutcome(project, child.id, 0, -after, message, stalled=True)
        except KernelError as exc:
            return ChildOutcome(project, child.id, 0, after, exc.message)
        if snap.upto == after and not _moved(child, snap):
            return ChildOutcome(project, child.id, 0, after)
        relayed = write_child_snapshot(conn, portfolio_id, child, snap, downstream)
        if relayed is not None:
            return ChildOutcome(project, child.id, relayed, snap.upto)
    return ChildOutcome(project, child.id, 0, after, "another relay kept moving the cursor; retry")


def relay_tick(
    conn: sqlite3.Connection,
    portfolio_id: str,
    *,
    readers: ChildReaders | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TickReport:
    """One pass over every child of the portfolio. Portfolio database errors propagate.

    Pass the same `readers` to every tick of a long-running relay; without it the tick opens and
    closes its own connections. `should_stop` is asked before each child (a signal ends the tick
    between two children's transactions, never inside one).
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
                return TickReport(portfolio_id, outcomes, stopped=True)
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
