"""The unified event stream: every state change is one row of `events` with a monotonic id.

Writers call `record` inside their own `write_tx`, so the event and the change it describes land
in the same transaction; readers see a change only together with its event. Because SQLite has one
writer at a time and ids are assigned inside the write transaction, readers never see id N+1 before
id N: "everything after my cursor" is a complete answer, which is what durable consumer cursors rely on.

Cursors are consumer bookkeeping, not project state, so moving one writes no event (a follower that
recorded its own progress would wake itself forever).

A consumer name belongs to one live process at a time (`hold_consumer`): two processes reading from
one cursor would each print the same events and race to move it, so the second is refused instead.
The hold is an OS file lock, which the kernel releases when its process dies, even by SIGKILL, so a
crashed consumer never blocks its own restart.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable

from kernel import clock
from kernel import queries as q
from kernel.db import write_tx
from kernel.errors import NotFound, Refused, StorageError, UsageError
from kernel.model import Event, EventCursor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kernel.db import StrPath

# One row of the stream, in column order: (run_id, source, type, from_state, to_state, reason,
# dispatch_id, payload as JSON text, timestamp).
INSERT_EVENT = (
    "INSERT INTO events (run_id, source, type, from_state, to_state, reason, dispatch_id, payload, "
    "timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def record_many(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Append many events in one statement, inside the caller's write transaction.

    For bulk writers (the portfolio relay writes thousands a tick): rows are in INSERT_EVENT's column
    order with the payload already encoded as `record` encodes it (compact, sorted keys).
    """
    conn.executemany(INSERT_EVENT, rows)


def record(
    conn: sqlite3.Connection,
    *,
    source: str,
    type: str,
    run_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    dispatch_id: str | None = None,
    payload: dict[str, Any] | None = None,
    timestamp: int | None = None,
) -> int:
    """Append one event; must run inside the caller's write transaction. Returns its id."""
    cur = conn.execute(
        INSERT_EVENT,
        (
            run_id,
            source,
            type,
            from_state,
            to_state,
            reason,
            dispatch_id,
            None if payload is None else json.dumps(payload, separators=(",", ":"), sort_keys=True),
            clock.now() if timestamp is None else timestamp,
        ),
    )
    return int(cur.lastrowid or 0)


# -- reading the stream -----------------------------------------------------------------------------

DEFAULT_TAIL = 100
PAGE_SIZE = 500
MAX_LABEL_LENGTH = 64
MAX_REASON_LENGTH = 4096


def events_after(
    conn: sqlite3.Connection, after_id: int, *, run_id: str | None = None, limit: int = -1
) -> list[Event]:
    """Events with id > after_id in id order; `limit` -1 means all of them."""
    if run_id is None:
        return q.fetch_all(conn, q.EVENTS_SINCE, after_id, limit)
    return q.fetch_all(conn, q.EVENTS_OF_RUN_SINCE, run_id, after_id, limit)


def latest_events(conn: sqlite3.Connection, limit: int, *, run_id: str | None = None) -> list[Event]:
    """The newest `limit` events, oldest first."""
    if run_id is None:
        return q.fetch_all(conn, q.EVENTS_LATEST, limit)
    return q.fetch_all(conn, q.EVENTS_OF_RUN_LATEST, run_id, limit)


def max_event_id(conn: sqlite3.Connection) -> int:
    value = q.fetch_one(conn, q.MAX_EVENT_ID)
    return value or 0


def require_run_or_events(conn: sqlite3.Connection, run_id: str) -> None:
    """A run id is tail-able when the run exists here or events still mention it (e.g. a relayed child)."""
    if not is_unicode(run_id):
        raise UsageError("the run id is not valid UTF-8 text")
    if q.fetch_one(conn, q.RUN_EXISTS, run_id) or q.fetch_one(conn, q.EVENTS_OF_RUN_COUNT, run_id):
        return
    raise NotFound(f"no run {run_id!r} and no events for it in this database")


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits to the database: the cheap 'anything new?' probe."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def wait_for_change(
    conn: sqlite3.Connection, since_version: int, *, interval: float, stop: Callable[[], bool]
) -> bool:
    """Sleep in `interval` steps until the database changes (True) or `stop()` says so (False).

    Polling `PRAGMA data_version` costs microseconds and needs no thread, no inotify and no asyncio,
    which keeps `ic events tail --follow` on the CLI's cheap import path.
    """
    while not stop():
        if data_version(conn) != since_version:
            return True
        time.sleep(interval)
    return False


# -- consumer cursors -------------------------------------------------------------------------------


def check_label(value: str, what: str) -> str:
    """Consumer names, sources and types: short identifiers safe for tables and greps."""
    if not value:
        raise UsageError(f"{what} must not be empty")
    if len(value) > MAX_LABEL_LENGTH:
        raise UsageError(f"{what} is {len(value)} characters long; the limit is {MAX_LABEL_LENGTH}")
    if not all(ch.isalnum() or ch in "._:-/@" for ch in value):
        raise UsageError(f"{what} {value!r} may only contain letters, digits and . _ : - / @")
    return value


def check_position(conn: sqlite3.Connection, position: int, flag: str) -> None:
    """A stream position is an event id of this database or 0: ids only grow, so a larger one comes
    from another (or a recreated) database, and reading after it would silently skip events."""
    newest = max_event_id(conn)
    if position < 0 or position > newest:
        raise UsageError(
            f"--{flag}={position} is outside the stream of this database (0..{newest}, the newest event "
            "id); is it the right --db?"
        )


def _lock_file_name(consumer: str) -> str:
    """A file name per consumer that differs even on case-insensitive file systems (`Bot` vs `bot`)."""
    safe = "abcdefghijklmnopqrstuvwxyz0123456789._-"
    return "".join(ch if ch in safe else "".join(f"%{b:02X}" for b in ch.encode()) for ch in consumer)


def consumer_lock_path(db_path: StrPath, consumer: str) -> str:
    """`.clavain/intercore.db.consumers/<name>.lock` beside the database's real path, so every process
    finds the same file however it reached the database (a symlink, a relative --db)."""
    real = os.path.realpath(db_path)
    return os.path.join(f"{real}.consumers", f"{_lock_file_name(consumer)}.lock")


class hold_consumer:
    """Be the only live process using `consumer` until the block ends; Refused (exit 1) if another is.

    The holder's pid is written into the lock file so the refusal can name it. `consumer=None` holds
    nothing (a plain `tail`). A class rather than a `@contextmanager` generator: contextlib is kept off
    `ic`'s start-up path (benchmarks/cli_latency.py).
    """

    __slots__ = ("consumer", "db_path", "fd")

    def __init__(self, db_path: StrPath, consumer: str | None) -> None:
        self.db_path = db_path
        self.consumer = consumer
        self.fd: int | None = None

    def __enter__(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        import fcntl  # only consumers need it: keep it off the plain `tail` path

        check_label(consumer, "consumer name")
        path = consumer_lock_path(self.db_path, consumer)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot lock consumer {consumer!r}: {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            by = f" (pid {holder})" if holder.isdigit() else ""
            raise Refused(
                f"consumer {consumer!r} is in use by another process{by}; stop it first, or use another "
                "--consumer name"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def get_cursor(conn: sqlite3.Connection, consumer: str) -> EventCursor:
    found = q.fetch_one(conn, q.CURSOR_BY_NAME, consumer)
    if found is None:
        raise NotFound(f"no consumer cursor {consumer!r}; create it with `ic events cursor register`")
    return found


def list_cursors(conn: sqlite3.Connection) -> list[EventCursor]:
    return q.fetch_all(conn, q.CURSORS_ALL)


def register_cursor(conn: sqlite3.Connection, consumer: str, start: int | None = 0) -> EventCursor:
    """Create a consumer that next reads the events after `start` (None: after the newest event)."""
    check_label(consumer, "consumer name")
    now = clock.now()
    with write_tx(conn):
        if q.fetch_one(conn, q.CURSOR_BY_NAME, consumer) is not None:
            raise Refused(f"consumer {consumer!r} is already registered; use `ic events cursor reset`")
        position = max_event_id(conn) if start is None else start
        check_position(conn, position, "from")
        conn.execute(
            "INSERT INTO event_cursors (consumer, last_event_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (consumer, position, now, now),
        )
    return EventCursor(consumer, position, now, now)


def ensure_cursor(conn: sqlite3.Connection, consumer: str) -> EventCursor:
    """The consumer's cursor, registered at the start of the stream the first time it is used."""
    check_label(consumer, "consumer name")
    found = q.fetch_one(conn, q.CURSOR_BY_NAME, consumer)
    if found is not None:
        return found
    now = clock.now()
    with write_tx(conn):
        conn.execute(
            "INSERT OR IGNORE INTO event_cursors (consumer, last_event_id, created_at, updated_at) "
            "VALUES (?, 0, ?, ?)",
            (consumer, now, now),
        )
    return get_cursor(conn, consumer)


def reset_cursor(conn: sqlite3.Connection, consumer: str, to: int = 0) -> EventCursor:
    """Move a consumer back or forward: it next reads the events after `to`.

    Hold the consumer (`hold_consumer`) around this: a running consumer would move its cursor on past
    the reset, which only ever goes forward there.
    """
    check_label(consumer, "consumer name")
    now = clock.now()
    with write_tx(conn):
        current = get_cursor(conn, consumer)
        check_position(conn, to, "to")
        conn.execute(
            "UPDATE event_cursors SET last_event_id = ?, updated_at = ? WHERE consumer = ?",
            (to, now, consumer),
        )
    return EventCursor(consumer, to, current.created_at, now)


def advance_cursor(conn: sqlite3.Connection, consumer: str, last_event_id: int) -> None:
    """Record that everything up to `last_event_id` was delivered; call only after output is flushed.

    The cursor never moves backwards here, so a late writer cannot undo a newer position.
    """
    with write_tx(conn):
        conn.execute(
            "UPDATE event_cursors SET last_event_id = max(last_event_id, ?), updated_at = ? "
            "WHERE consumer = ?",
            (last_event_id, clock.now(), consumer),
        )


# -- recording external events ----------------------------------------------------------------------


def is_unicode(text: str) -> bool:
    """False for strings holding lone surrogates (undecodable argv bytes, `"\\ud800"` in JSON): they
    cannot be stored or printed as UTF-8, and one such row would break every JSON reader of the stream."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reserved_sources() -> frozenset[str]:
    """Sources the kernel writes itself: `ic events record` may not impersonate them, so Bigend can
    trust that a `phase`/`dispatch`/... event really describes a kernel state change."""
    from kernel import eventtypes  # only `record` needs it: keep it off the `tail` import path

    return frozenset(source for source, _ in eventtypes.KERNEL_EVENTS)


def record_external(
    conn: sqlite3.Connection,
    *,
    source: str,
    type: str,
    run_id: str | None = None,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """`ic events record`: an event from outside the kernel (hooks, tmux, messaging) into the stream."""
    check_label(source, "--source")
    check_label(type, "--type")
    if source in reserved_sources():
        raise UsageError(
            f"source {source!r} is reserved for the kernel's own events; pick another (e.g. 'hook', 'tmux')"
        )
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise UsageError(f"--reason is {len(reason)} characters long; the limit is {MAX_REASON_LENGTH}")
    if reason is not None and not is_unicode(reason):
        raise UsageError("--reason is not valid UTF-8 text")
    if run_id is not None and not is_unicode(run_id):
        raise UsageError("--run is not valid UTF-8 text")
    with write_tx(conn):
        if run_id is not None and not q.fetch_one(conn, q.RUN_EXISTS, run_id):
            raise NotFound(f"no run {run_id!r}")
        event_id = record(conn, source=source, type=type, run_id=run_id, reason=reason, payload=payload)
        event = q.fetch_one(conn, q.EVENT_BY_ID, event_id)
    assert event is not None  # written in this very transaction
    return event
