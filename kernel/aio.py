"""Async, read-only access to kernel databases for Bigend (aiosqlite).

It runs the very `Query` objects of `kernel.queries` (same SQL, same row mappers as the CLI) on
read-only connections, so a dashboard can never write to a project it watches. The CLI path never
imports this module (it pulls in asyncio).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from kernel import clock
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import StorageError
from kernel.model import (
    Dispatch,
    Event,
    EventCursor,
    ProjectDep,
    Run,
    RunAgent,
    RunArtifact,
    Sentinel,
    StateEntry,
    TokenTotals,
)

T = TypeVar("T")


async def open_readonly(path: Path, *, timeout: float = kdb.DEFAULT_TIMEOUT) -> aiosqlite.Connection:
    """Open an existing, current kernel database read-only; StorageError with one line otherwise."""
    kdb._check_openable(path)
    try:
        conn = await aiosqlite.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open database: {exc}") from exc
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        version = await fetch_scalar(conn, "PRAGMA user_version")
    except sqlite3.Error as exc:
        # Close before raising: aiosqlite's worker thread is not a daemon, so a leaked connection
        # would keep the whole process alive at exit.
        await conn.close()
        raise StorageError(f"{path}: not a usable kernel database ({exc})") from exc
    expected = kdb.code_schema_version()
    if version != expected:
        await conn.close()
        raise StorageError(f"{path}: schema v{version}, this code reads v{expected}")
    return conn


async def fetch_all(conn: aiosqlite.Connection, query: q.Query[T], *params: Any) -> list[T]:
    async with conn.execute(query.sql, params) as cursor:
        rows = await cursor.fetchall()
    return [query.mapper(row) for row in rows]


async def fetch_one(conn: aiosqlite.Connection, query: q.Query[T], *params: Any) -> T | None:
    async with conn.execute(query.sql, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else query.mapper(row)


async def fetch_scalar(conn: aiosqlite.Connection, sql: str, *params: Any) -> int:
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return int(row[0] or 0) if row else 0


async def data_version(conn: aiosqlite.Connection) -> int:
    """`PRAGMA data_version`: changes when another connection commits to the database."""
    return await fetch_scalar(conn, "PRAGMA data_version")


async def runs(conn: aiosqlite.Connection, *, active_only: bool = False) -> list[Run]:
    return await fetch_all(conn, q.RUNS_ACTIVE if active_only else q.RUNS_ALL)


async def run(conn: aiosqlite.Connection, run_id: str) -> Run | None:
    return await fetch_one(conn, q.RUN_BY_ID, run_id)


async def children(conn: aiosqlite.Connection, parent_id: str) -> list[Run]:
    return await fetch_all(conn, q.RUNS_CHILDREN, parent_id)


async def portfolio_parents(conn: aiosqlite.Connection) -> list[Run]:
    return await fetch_all(conn, q.RUNS_PORTFOLIO_PARENTS)


async def events_since(conn: aiosqlite.Connection, after_id: int = 0, limit: int = 1000) -> list[Event]:
    return await fetch_all(conn, q.EVENTS_SINCE, after_id, limit)


async def run_events_since(
    conn: aiosqlite.Connection, run_id: str, after_id: int = 0, limit: int = 1000
) -> list[Event]:
    """A run's events after `after_id`, oldest first: incremental reads of one run's history."""
    return await fetch_all(conn, q.EVENTS_OF_RUN_SINCE, run_id, after_id, limit)


async def latest_events(conn: aiosqlite.Connection, limit: int = 100) -> list[Event]:
    return await fetch_all(conn, q.EVENTS_LATEST, limit)


async def run_events(conn: aiosqlite.Connection, run_id: str, limit: int = 100) -> list[Event]:
    return await fetch_all(conn, q.EVENTS_OF_RUN_LATEST, run_id, limit)


async def max_event_id(conn: aiosqlite.Connection) -> int:
    return await fetch_scalar(conn, q.MAX_EVENT_ID.sql)


async def dispatches(conn: aiosqlite.Connection, *, scope_id: str | None = None) -> list[Dispatch]:
    if scope_id is None:
        return await fetch_all(conn, q.DISPATCHES_ALL)
    return await fetch_all(conn, q.DISPATCHES_OF_SCOPE, scope_id)


async def tokens(conn: aiosqlite.Connection, *, scope_id: str | None = None) -> TokenTotals:
    if scope_id is None:
        totals = await fetch_one(conn, q.TOKENS_ALL)
    else:
        totals = await fetch_one(conn, q.TOKENS_OF_SCOPE, scope_id)
    assert totals is not None  # an aggregate always returns one row
    return totals


async def agents(conn: aiosqlite.Connection, run_id: str) -> list[RunAgent]:
    return await fetch_all(conn, q.AGENTS_OF_RUN, run_id)


async def artifacts(conn: aiosqlite.Connection, run_id: str) -> list[RunArtifact]:
    return await fetch_all(conn, q.ARTIFACTS_OF_RUN, run_id)


async def deps(conn: aiosqlite.Connection, portfolio_id: str) -> list[ProjectDep]:
    return await fetch_all(conn, q.DEPS_OF_PORTFOLIO, portfolio_id)


# -- consumer cursors, state and sentinels: the same reads as `ic events cursor list`, `ic state ...` --


async def cursors(conn: aiosqlite.Connection) -> list[EventCursor]:
    return await fetch_all(conn, q.CURSORS_ALL)


async def cursor(conn: aiosqlite.Connection, consumer: str) -> EventCursor | None:
    return await fetch_one(conn, q.CURSOR_BY_NAME, consumer)


async def state_entries(
    conn: aiosqlite.Connection, *, scope: str | None = None, now: int | None = None
) -> list[StateEntry]:
    """Live (unexpired at `now`, default the kernel clock) state entries, all scopes or one."""
    at = clock.now() if now is None else now
    if scope is None:
        return await fetch_all(conn, q.STATE_LIVE, at)
    return await fetch_all(conn, q.STATE_LIVE_OF_SCOPE, scope, at)


async def state_entry(
    conn: aiosqlite.Connection, key: str, scope: str = "", *, now: int | None = None
) -> StateEntry | None:
    return await fetch_one(conn, q.STATE_GET, key, scope, clock.now() if now is None else now)


async def sentinels(conn: aiosqlite.Connection) -> list[Sentinel]:
    return await fetch_all(conn, q.SENTINELS_ALL)
