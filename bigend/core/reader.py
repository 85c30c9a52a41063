"""Read one project database into a ProjectState: the aggregator's unit of work.

Connections are aiosqlite, read-only (`mode=ro`), running the SQL of `kernel.queries` (the BIGEND_*
reads), so a dashboard can never write to a project it watches. Three choices are about speed, because
a refresh reads whole projects (DESIGN 6):
- one thread hop per query (`execute_fetchall`), all inside one read transaction, so the runs,
  dispatches and events of a project come from the same committed moment;
- rows stay tuples and become snapshot models through `construct.trusted` (no per-row validation);
- `PRAGMA data_version` on a kept connection says whether anything was committed since the last read,
  so an unchanged project costs one hop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from bigend.core.construct import trusted
from bigend.core.discovery import Project
from bigend.core.kernelevents import parse_kernel_event
from bigend.core.metrics import ProjectTally, tally_project
from bigend.core.snapshot import DispatchInfo, EventInfo, ProjectState, RunInfo, TokenSummary
from bigend.core.status import UnifiedStatus, unify_status
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import StorageError

ZERO_TOKENS = TokenSummary()
_LIVE_DISPATCH = frozenset({UnifiedStatus.ACTIVE, UnifiedStatus.WAITING, UnifiedStatus.BLOCKED})
_SQLITE_MAGIC = b"SQLite format 3\x00"


def discard(conn: aiosqlite.Connection) -> asyncio.Future[Any] | None:
    """Stop a connection without waiting: its thread closes it after any query still running there.

    Used after a timeout, when awaiting `close()` would wait for the very query that hung. Returns the
    future the thread resolves when done: await it before the event loop ends, or the thread reports
    "Event loop is closed" on its way out.
    """
    return conn.stop()


async def open_project_db(
    path: Path,
    *,
    busy_timeout: float,
    on_failure: Callable[[aiosqlite.Connection], object] = discard,
) -> aiosqlite.Connection:
    """A read-only connection to a current kernel database, or StorageError with one line.

    Like `kernel.aio.open_readonly`, but the connection and its thread are stopped (`on_failure`,
    default `discard`) whenever opening fails or is cancelled, so a corrupt or locked project retried
    every refresh leaks nothing.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}") from None
    if header and header != _SQLITE_MAGIC:
        raise StorageError(f"{path}: not a SQLite database (corrupt or overwritten)")
    conn = aiosqlite.connect(
        f"file:{quote(str(path))}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None
    )
    try:
        await conn
        await conn.execute_fetchall(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    except sqlite3.Error as exc:
        on_failure(conn)
        raise StorageError(f"{path}: not a usable kernel database ({exc})") from None
    except BaseException:
        on_failure(conn)
        raise
    version = int(rows[0][0]) if rows else 0
    expected = kdb.code_schema_version()
    if version != expected:
        on_failure(conn)
        raise StorageError(f"{path}: schema v{version}, this Bigend reads v{expected}")
    return conn


async def data_version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA data_version"))
    return int(rows[0][0])


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a project one read takes: live rows always, finished rows the newest N."""

    runs: int = 500
    dispatches: int = 100
    events: int = 100


@dataclass(frozen=True, slots=True)
class ProjectRows:
    runs: list[Any]
    dispatches: list[Any]
    totals: list[Any]
    run_count: int
    events: list[Any]


async def fetch_project_rows(conn: aiosqlite.Connection, limits: Limits) -> ProjectRows:
    """Everything one project shows, all from one read transaction (one committed moment)."""
    # No try/finally: a read that fails or times out gets its connection discarded by the caller.
    await conn.execute_fetchall("BEGIN")
    runs = list(await conn.execute_fetchall(q.BIGEND_RUNS.sql, (limits.runs,)))
    dispatches = list(await conn.execute_fetchall(q.BIGEND_DISPATCHES.sql, (limits.dispatches,)))
    totals = list(await conn.execute_fetchall(q.BIGEND_DISPATCH_TOTALS.sql))
    count_rows = list(await conn.execute_fetchall(q.BIGEND_RUN_COUNT.sql))
    events: list[Any] = []
    if limits.events > 0:
        events = list(await conn.execute_fetchall(q.BIGEND_EVENTS_LATEST.sql, (limits.events,)))
    await conn.execute_fetchall("COMMIT")
    return ProjectRows(runs, dispatches, totals, q.BIGEND_RUN_COUNT.mapper(count_rows[0]), events)


class _Memo:
    """Caches of repeated values: status strings, phase chains (JSON text -> list)."""

    def __init__(self) -> None:
        self.status: dict[str, UnifiedStatus] = {}
        self.phases: dict[str, list[str]] = {}

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


class Reuse:
    """The snapshot objects of a project's previous read, keyed by the exact row they came from.

    Re-reading a changed project then builds objects only for the rows that changed: an identical row
    (plus, for a run, identical token sums and blocking dispatch) gets its previous, immutable object
    back. Only the rows of the latest read are kept, so memory follows the state.
    """

    def __init__(self) -> None:
        self.memo = _Memo()
        self.runs: dict[tuple[Any, ...], RunInfo] = {}
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
    per_run: dict[str | None, tuple[int, int, int]],
    blocked: dict[str, str],
    reuse: Reuse,
) -> list[RunInfo]:
    out: list[RunInfo] = []
    append = out.append
    unified_of = reuse.memo.unified
    chain = reuse.memo.chain
    previous = reuse.runs
    kept: dict[tuple[Any, ...], RunInfo] = {}
    for row in rows:
        rid = row[0]
        sums = per_run.get(rid)
        blocker = blocked.get(rid)
        cache_key = (row, sums, blocker)
        info = previous.get(cache_key)
        if info is None:
            (rid, _project_dir, goal, status, phase, phases, complexity, parent, scope, created, updated,
             completed, entered, last_source, last_type, last_reason) = row  # fmt: skip
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
                 "tokens": ZERO_TOKENS if sums is None else _token_summary(*sums)},
            )  # fmt: skip
        kept[cache_key] = info
        append(info)
    reuse.runs = kept
    return out


def _build_events(key: str, rows: Sequence[Any], reuse: Reuse) -> list[EventInfo]:
    out: list[EventInfo] = []
    append = out.append
    prefix = f"kernel:{key}:"
    previous = reuse.events
    kept: dict[tuple[Any, ...], EventInfo] = {}
    for row in reversed(rows):  # newest-first from SQL; the state keeps time order
        info = previous.get(row)
        if info is None:
            eid, run_id, source, etype, from_state, to_state, reason, timestamp = row
            info = trusted(
                EventInfo,
                {"synthetic_id": f"{prefix}{eid}", "id": eid, "project": key, "run_id": run_id,
                 "source": source, "type": etype, "kind": parse_kernel_event(source, etype).name,
                 "from_state": from_state, "to_state": to_state, "reason": reason, "timestamp": timestamp},
            )  # fmt: skip
        kept[row] = info
        append(info)
    reuse.events = kept
    return out


def _tokens_by_run(
    totals: Sequence[Any],
) -> tuple[dict[str | None, tuple[int, int, int]], TokenSummary, int]:
    """Per-run token sums, the project's sum and its dispatch count, from BIGEND_DISPATCH_TOTALS rows."""
    per_run: dict[str | None, tuple[int, int, int]] = {}
    tin = tout = tcache = count = 0
    for scope, s_in, s_out, s_cache, n in totals:
        s_in, s_out, s_cache = s_in or 0, s_out or 0, s_cache or 0
        per_run[scope] = (s_in, s_out, s_cache)
        tin += s_in
        tout += s_out
        tcache += s_cache
        count += n
    return per_run, _token_summary(tin, tout, tcache), count


def build_project_state(
    project: Project, rows: ProjectRows, *, reuse: Reuse | None = None, refreshed_at: float | None = None
) -> tuple[ProjectState, ProjectTally]:
    """The ProjectState of one read, and its contribution to the metrics (see metrics.py).

    Pass the project's `Reuse` from its previous read to rebuild only what changed (it is updated).
    """
    key = project.key
    reuse = Reuse() if reuse is None else reuse
    dispatch_infos, blocked_by_run, live, blocked_dispatches = _build_dispatches(key, rows.dispatches, reuse)
    per_run, tokens, dispatch_count = _tokens_by_run(rows.totals)
    run_infos = _build_runs(key, rows.runs, per_run, blocked_by_run, reuse)
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
    return state, tally_project(
        run_infos,
        live_dispatches=live,
        blocked_dispatches=blocked_dispatches,
        tokens_in=tokens.input_tokens,
        tokens_out=tokens.output_tokens,
        portfolio=project.is_portfolio,
    )


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
