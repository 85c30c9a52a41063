"""Read one project database into a ProjectState: the aggregator's unit of work.

A read is one call on a worker thread (`readpool.ReadPool`), on a plain `sqlite3` connection opened
read-only (`mode=ro`), running the BIGEND_* SQL of `kernel.queries`, so a dashboard can never write to a
project it watches. The choices are about speed, because a refresh reads whole projects (DESIGN 6):
- one thread hop per project: the data_version check, every query (one read transaction, so runs,
  dispatches and events come from the same committed moment) and building the snapshot objects all
  happen in `read_project`; awaiting each query separately (aiosqlite) cost more than the queries;
- SQL does the aggregation (token sums and dispatch counts per run, whose total is the project's; each
  active run's last phase event) and returns only the columns the snapshot shows, as tuples;
- tuples become snapshot models through `construct.trusted` (no per-row validation), and a row identical
  to one of the previous read gets its previous, immutable object back (`Reuse`): the row is still read,
  only the object is not built again;
- `PRAGMA data_version` on a kept connection says whether anything was committed since the last read,
  so an unchanged project costs one tiny statement.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from bigend.core.construct import trusted
from bigend.core.discovery import Project
from bigend.core.kernelevents import parse_kernel_event
from bigend.core.metrics import ProjectTally
from bigend.core.snapshot import DispatchInfo, EventInfo, ProjectState, RunInfo, TokenSummary
from bigend.core.status import UnifiedStatus, unify_status
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import StorageError

T = TypeVar("T")

ZERO_TOKENS = TokenSummary()
_LIVE_DISPATCH = frozenset({UnifiedStatus.ACTIVE, UnifiedStatus.WAITING, UnifiedStatus.BLOCKED})
_SQLITE_MAGIC = b"SQLite format 3\x00"


class ReadConnection:
    """One project's read-only connection: opened by the first read, used by one thread at a time.

    `discard()` may be called from the event loop while a worker thread is inside a read (a timeout, a
    cancelled refresh): it interrupts the running statement and the connection is closed as soon as
    that thread lets go of it, so nothing leaks and no thread is left holding a half-read database.
    """

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._guard = threading.Lock()
        self._busy = False
        self._discarded = False

    def use(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)`, opening the connection first if needed (StorageError if it cannot be)."""
        with self._guard:
            if self._discarded:
                raise StorageError(f"{self.path}: read abandoned")
            self._busy = True
        try:
            if self._conn is None:
                self._conn = open_project_db(self.path, busy_timeout=self._busy_timeout)
            return work(self._conn)
        finally:
            with self._guard:
                self._busy = False
                close = self._discarded
            if close:
                self._close()

    def discard(self) -> None:
        """Close now if idle, else interrupt the read in progress and close when it returns."""
        with self._guard:
            self._discarded = True
            busy = self._busy
            conn = self._conn
        if not busy:
            self._close()
        elif conn is not None:
            conn.interrupt()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def open_project_db(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection to a current kernel database, or StorageError with one line.

    The connection is closed again whenever the checks fail, so a corrupt or locked project retried
    every refresh leaks nothing.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}") from None
    if header and header != _SQLITE_MAGIC:
        raise StorageError(f"{path}: not a SQLite database (corrupt or overwritten)")
    try:
        conn = sqlite3.connect(
            f"file:{quote(str(path))}?mode=ro",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,  # worker threads take turns; ReadConnection keeps it to one at a time
        )
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: not a usable kernel database ({exc})") from None
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        conn.close()
        raise StorageError(f"{path}: not a usable kernel database ({exc})") from None
    except BaseException:
        conn.close()
        raise
    expected = kdb.code_schema_version()
    if version != expected:
        conn.close()
        raise StorageError(f"{path}: schema v{version}, this Bigend reads v{expected}")
    return conn


def data_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a project one read takes: live rows always, finished rows the newest N."""

    runs: int = 500
    dispatches: int = 100
    events: int = 100


@dataclass(frozen=True, slots=True)
class ProjectRows:
    """One read's raw rows (see the BIGEND_* queries for their columns)."""

    runs: list[Any]
    dispatches: list[Any]
    run_tokens: list[Any]
    run_count: int
    events: list[Any]


def fetch_project_rows(conn: sqlite3.Connection, limits: Limits) -> ProjectRows:
    """Everything one project shows, all from one read transaction (one committed moment)."""
    # No try/finally: a read that fails or is interrupted gets its connection discarded by the caller.
    conn.execute("BEGIN")
    runs = conn.execute(q.BIGEND_RUN_ROWS.sql, (limits.runs,)).fetchall()
    dispatches = conn.execute(q.BIGEND_DISPATCH_ROWS.sql, (limits.dispatches,)).fetchall()
    run_tokens = conn.execute(q.BIGEND_RUN_TOKENS.sql).fetchall()
    run_count = int(conn.execute(q.BIGEND_RUN_COUNT.sql).fetchone()[0])
    events: list[Any] = []
    if limits.events > 0:
        events = conn.execute(q.BIGEND_EVENTS_LATEST.sql, (limits.events,)).fetchall()
    conn.execute("COMMIT")
    return ProjectRows(runs, dispatches, run_tokens, run_count, events)


@dataclass(frozen=True, slots=True)
class ProjectRead:
    state: ProjectState
    tally: ProjectTally
    data_version: int


def read_project(
    conn: sqlite3.Connection,
    project: Project,
    limits: Limits,
    reuse: Reuse,
    *,
    known_version: int | None,
) -> ProjectRead | None:
    """Read and build one project, or None when its data_version is still `known_version` (unchanged).

    Runs on a worker thread; `reuse` must not be shared with another read running at the same time.
    """
    version = data_version(conn)
    if version == known_version:
        return None
    with _cycle_collector_paused():
        rows = fetch_project_rows(conn, limits)
        state, tally = build_project_state(project, rows, reuse=reuse)
    return ProjectRead(state, tally, version)


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector (process-wide) for the length of one read.

    A read allocates thousands of row tuples and snapshot objects, which makes the collector run every
    700 allocations and now and then walk every object the state holds, only to find nothing: these
    objects form no cycles and are freed by reference counting. Pausing it cut a cold refresh's CPU by
    about a sixth. Collection resumes (if it was on) as soon as the read ends, whatever happened.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Memo:
    """Caches of repeated values: status strings, phase chains (JSON text -> list), event kinds."""

    LIMIT = 1024  # distinct values kept per cache; hook events may use any type, so bound them

    def __init__(self) -> None:
        self.status: dict[str, UnifiedStatus] = {}
        self.phases: dict[str, list[str]] = {}
        self.kinds: dict[tuple[str, str], str] = {}

    def kind(self, source: str, event_type: str) -> str:
        """The KernelEvent member name (Enum's `.name` is a slow descriptor; events repeat a few types)."""
        pair = (source, event_type)
        found = self.kinds.get(pair)
        if found is None:
            if len(self.kinds) >= self.LIMIT:
                self.kinds.clear()
            found = self.kinds[pair] = parse_kernel_event(source, event_type).name
        return found

    def unified(self, raw: str) -> UnifiedStatus:
        found = self.status.get(raw)
        if found is None:
            found = self.status[raw] = unify_status(raw)
        return found

    def chain(self, text: str | None) -> list[str]:
        if not text:
            return []
        found = self.phases.get(text)
        if found is None:
            try:
                loaded = json.loads(text)
            except ValueError:
                loaded = []
            found = self.phases[text] = [str(p) for p in loaded] if isinstance(loaded, list) else []
        return found


# A run's object with what it was built from besides its row: token sums, blocking dispatch.
_RunEntry = tuple[RunInfo, "tuple[str | None, int, int, int, int] | None", "str | None"]


class Reuse:
    """The snapshot objects of a project's previous read, keyed by the exact row they came from.

    Re-reading a changed project then builds objects only for the rows that changed: an identical row
    (plus, for a run, identical token sums and blocking dispatch) gets its previous, immutable object
    back. Only the rows of the latest read are kept, so memory follows the state.
    """

    def __init__(self) -> None:
        self.memo = _Memo()
        self.runs: dict[tuple[Any, ...], _RunEntry] = {}
        self.dispatches: dict[tuple[Any, ...], DispatchInfo] = {}
        self.events: dict[tuple[Any, ...], EventInfo] = {}


def _build_dispatches(
    key: str, rows: Sequence[Any], reuse: Reuse
) -> tuple[list[DispatchInfo], dict[str, str], int, list[DispatchInfo]]:
    """DispatchInfos, one blocked dispatch per run, the live count, and the blocked dispatches."""
    out: list[DispatchInfo] = []
    append = out.append
    blocked_by_run: dict[str, str] = {}
    blocked: list[DispatchInfo] = []
    live = 0
    unified_of = reuse.memo.unified
    previous = reuse.dispatches
    kept: dict[tuple[Any, ...], DispatchInfo] = {}
    for row in rows:
        info = previous.get(row)
        if info is None:
            (did, scope, agent, name, model, status, pid, code, error, created, started, ended, tin, tout,
             tcache, cost) = row  # fmt: skip
            info = trusted(
                DispatchInfo,
                {"id": did, "project": key, "run_id": scope, "agent_type": agent, "name": name,
                 "model": model, "status": status, "unified": unified_of(status), "pid": pid,
                 "exit_code": code, "error": error, "created_at": created, "started_at": started,
                 "ended_at": ended, "input_tokens": tin or 0, "output_tokens": tout or 0,
                 "cache_tokens": tcache or 0, "cost_usd": cost},
            )  # fmt: skip
        kept[row] = info
        append(info)
        unified = info.unified
        if unified in _LIVE_DISPATCH:
            live += 1
            if unified is UnifiedStatus.BLOCKED:
                blocked.append(info)
                if info.run_id is not None:
                    blocked_by_run.setdefault(info.run_id, info.id)
    reuse.dispatches = kept
    return out, blocked_by_run, live, blocked


def _token_summary(tin: int, tout: int, tcache: int) -> TokenSummary:
    return trusted(
        TokenSummary,
        {"input_tokens": tin, "output_tokens": tout, "cache_hits": tcache, "total_tokens": tin + tout},
    )


def _build_runs(
    key: str,
    rows: Sequence[Any],
    per_run: dict[str | None, tuple[str | None, int, int, int, int]],
    blocked: dict[str, str],
    reuse: Reuse,
    portfolio: bool,
) -> tuple[list[RunInfo], int, int]:
    """RunInfos, and how many active and Blocked runs count in the metrics (see metrics.py).

    A run's object is reused when its row, token sums and blocking dispatch are unchanged. (The row
    alone is the key and the rest is compared on a hit: a compound key costs twice as much to hash.)
    """
    out: list[RunInfo] = []
    active = blocked_runs = 0
    append = out.append
    unified_of = reuse.memo.unified
    chain = reuse.memo.chain
    previous = reuse.runs
    kept: dict[tuple[Any, ...], _RunEntry] = {}
    for row in rows:
        rid = row[0]
        sums = per_run.get(rid)
        blocker = blocked.get(rid) if blocked else None
        entry = previous.get(row)
        if entry is not None and entry[1] == sums and entry[2] == blocker:
            info = entry[0]
        else:
            (rid, goal, status, phase, phases, complexity, parent, scope, created, updated, completed,
             entered, last_source, last_type, last_reason) = row  # fmt: skip
            unified = unified_of(status)
            reason: str | None = None
            if status == "active":
                if last_type is not None and parse_kernel_event(last_source, last_type).blocks_run:
                    unified = UnifiedStatus.BLOCKED
                    reason = last_reason or last_type
                elif blocker is not None:
                    unified = UnifiedStatus.BLOCKED
                    reason = f"dispatch {blocker} is blocked"
            info = trusted(
                RunInfo,
                {"id": rid, "project": key, "goal": goal, "status": status, "unified": unified,
                 "phase": phase, "phases": chain(phases), "complexity": complexity, "parent_run_id": parent,
                 "scope_id": scope, "created_at": created, "updated_at": updated, "completed_at": completed,
                 "phase_entered_at": created if entered is None else entered, "blocked_reason": reason,
                 "tokens": ZERO_TOKENS if sums is None else _token_summary(sums[1], sums[2], sums[3])},
            )  # fmt: skip
            entry = (info, sums, blocker)
        kept[row] = entry
        append(info)
        if not portfolio or row[6] is None:  # a portfolio's copy of a child run counts in its project
            if row[2] == "active":
                active += 1
            if info.unified is UnifiedStatus.BLOCKED:
                blocked_runs += 1
    reuse.runs = kept
    return out, active, blocked_runs


def _build_events(key: str, rows: Sequence[Any], reuse: Reuse) -> list[EventInfo]:
    out: list[EventInfo] = []
    append = out.append
    prefix = f"kernel:{key}:"
    kind = reuse.memo.kind
    previous = reuse.events
    kept: dict[tuple[Any, ...], EventInfo] = {}
    for row in reversed(rows):  # newest-first from SQL; the state keeps time order
        info = previous.get(row)
        if info is None:
            eid, run_id, source, etype, from_state, to_state, reason, timestamp = row
            info = trusted(
                EventInfo,
                {"synthetic_id": f"{prefix}{eid}", "id": eid, "project": key, "run_id": run_id,
                 "source": source, "type": etype, "kind": kind(source, etype),
                 "from_state": from_state, "to_state": to_state, "reason": reason, "timestamp": timestamp},
            )  # fmt: skip
        kept[row] = info
        append(info)
    reuse.events = kept
    return out


def build_project_state(
    project: Project, rows: ProjectRows, *, reuse: Reuse | None = None, refreshed_at: float | None = None
) -> tuple[ProjectState, ProjectTally]:
    """The ProjectState of one read, and its contribution to the metrics (see metrics.py).

    Pass the project's `Reuse` from its previous read to rebuild only what changed (it is updated).
    """
    key = project.key
    reuse = Reuse() if reuse is None else reuse
    dispatch_infos, blocked_by_run, live, blocked_dispatches = _build_dispatches(key, rows.dispatches, reuse)
    per_run = {}
    tokens_in = tokens_out = tokens_cache = dispatch_count = 0
    for row in rows.run_tokens:  # (scope_id, in, out, cache, count), one per run and one for no run
        per_run[row[0]] = row
        tokens_in += row[1]
        tokens_out += row[2]
        tokens_cache += row[3]
        dispatch_count += row[4]
    tokens = _token_summary(tokens_in, tokens_out, tokens_cache)
    run_infos, active, blocked = _build_runs(
        key, rows.runs, per_run, blocked_by_run, reuse, project.is_portfolio
    )
    state = trusted(
        ProjectState,
        {
            "path": key,
            "name": project.name,
            "has_intercore": project.has_intercore,
            "markers": list(project.markers),
            "runs": run_infos,
            "dispatches": dispatch_infos,
            "events": _build_events(key, rows.events, reuse),
            "tokens": tokens,
            "error": None,
            "refreshed_at": time.time() if refreshed_at is None else refreshed_at,
            "portfolio": project.is_portfolio,
            "runs_total": rows.run_count,
            "dispatches_total": dispatch_count,
        },
    )
    if blocked_dispatches:  # Blocked dispatches of no listed run count on their own
        listed = {run.id for run in run_infos}
        blocked += sum(1 for d in blocked_dispatches if d.run_id not in listed)
    return state, ProjectTally(active, live, blocked, tokens_in, tokens_out)


def empty_project_state(project: Project, error: str | None = None) -> ProjectState:
    """A project not read yet (or without a kernel database): its identity and nothing else."""
    return ProjectState(
        path=project.key,
        name=project.name,
        has_intercore=project.has_intercore,
        markers=list(project.markers),
        error=error,
        portfolio=project.is_portfolio,
    )
