"""Read queries shared by the sync API (CLI) and `kernel.aio` (Bigend): one copy of each SELECT.

A `Query` pairs the SQL with the row mapper of its row type; `fetch_all`/`fetch_one` run it on a
sqlite3 connection, and `kernel.aio` runs the very same objects on aiosqlite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kernel.model import (
    Dispatch,
    Event,
    EventCursor,
    ProjectDep,
    Run,
    RunAgent,
    RunArtifact,
    TokenTotals,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Query(Generic[T]):
    sql: str
    mapper: Callable[[Any], T]


def fetch_all(conn: sqlite3.Connection, query: Query[T], *params: Any) -> list[T]:
    return [query.mapper(row) for row in conn.execute(query.sql, params)]


def fetch_one(conn: sqlite3.Connection, query: Query[T], *params: Any) -> T | None:
    row = conn.execute(query.sql, params).fetchone()
    return None if row is None else query.mapper(row)


def _scalar_int(row: Any) -> int:
    return int(row[0] or 0)


# -- runs ------------------------------------------------------------------------------------------
RUN_BY_ID = Query(f"SELECT {Run.COLUMNS} FROM runs WHERE id = ?", Run.from_row)
RUNS_ALL = Query(f"SELECT {Run.COLUMNS} FROM runs ORDER BY created_at DESC, id", Run.from_row)
RUNS_ACTIVE = Query(
    f"SELECT {Run.COLUMNS} FROM runs WHERE status = 'active' ORDER BY created_at DESC, id", Run.from_row
)
RUNS_CHILDREN = Query(
    f"SELECT {Run.COLUMNS} FROM runs WHERE parent_run_id = ? ORDER BY project_dir", Run.from_row
)
RUNS_PORTFOLIO_PARENTS = Query(
    f"SELECT {Run.COLUMNS} FROM runs WHERE project_dir = '' AND parent_run_id IS NULL "
    "ORDER BY created_at DESC, id",
    Run.from_row,
)

# -- events ----------------------------------------------------------------------------------------
EVENTS_SINCE = Query(
    f"SELECT {Event.COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?", Event.from_row
)
EVENTS_OF_RUN_SINCE = Query(
    f"SELECT {Event.COLUMNS} FROM events WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?", Event.from_row
)
EVENTS_LATEST = Query(
    f"SELECT {Event.COLUMNS} FROM (SELECT {Event.COLUMNS} FROM events ORDER BY id DESC LIMIT ?) ORDER BY id",
    Event.from_row,
)
EVENTS_OF_RUN_LATEST = Query(
    f"SELECT {Event.COLUMNS} FROM (SELECT {Event.COLUMNS} FROM events WHERE run_id = ? "
    "ORDER BY id DESC LIMIT ?) ORDER BY id",
    Event.from_row,
)
MAX_EVENT_ID = Query("SELECT max(id) FROM events", _scalar_int)
CURSOR_BY_NAME = Query(
    f"SELECT {EventCursor.COLUMNS} FROM event_cursors WHERE consumer = ?", EventCursor.from_row
)
CURSORS_ALL = Query(
    f"SELECT {EventCursor.COLUMNS} FROM event_cursors ORDER BY consumer", EventCursor.from_row
)

# -- dispatches and tokens -------------------------------------------------------------------------
DISPATCH_BY_ID = Query(f"SELECT {Dispatch.COLUMNS} FROM dispatches WHERE id = ?", Dispatch.from_row)
DISPATCHES_ALL = Query(
    f"SELECT {Dispatch.COLUMNS} FROM dispatches ORDER BY created_at DESC, id", Dispatch.from_row
)
DISPATCHES_OF_SCOPE = Query(
    f"SELECT {Dispatch.COLUMNS} FROM dispatches WHERE scope_id = ? ORDER BY created_at DESC, id",
    Dispatch.from_row,
)
DISPATCHES_ACTIVE = Query(
    f"SELECT {Dispatch.COLUMNS} FROM dispatches WHERE status IN ('spawned', 'running') "
    "ORDER BY created_at DESC, id",
    Dispatch.from_row,
)
TOKENS_OF_SCOPE = Query(
    "SELECT sum(input_tokens), sum(output_tokens), sum(cache_tokens) FROM dispatches WHERE scope_id = ?",
    TokenTotals.from_row,
)
TOKENS_ALL = Query(
    "SELECT sum(input_tokens), sum(output_tokens), sum(cache_tokens) FROM dispatches", TokenTotals.from_row
)

# -- run tracking ----------------------------------------------------------------------------------
AGENTS_OF_RUN = Query(
    f"SELECT {RunAgent.COLUMNS} FROM run_agents WHERE run_id = ? ORDER BY created_at, id", RunAgent.from_row
)
ARTIFACTS_OF_RUN = Query(
    f"SELECT {RunArtifact.COLUMNS} FROM run_artifacts WHERE run_id = ? ORDER BY created_at, id",
    RunArtifact.from_row,
)

# -- portfolio -------------------------------------------------------------------------------------
DEPS_OF_PORTFOLIO = Query(
    f"SELECT {ProjectDep.COLUMNS} FROM project_deps WHERE portfolio_id = ? ORDER BY upstream, downstream",
    ProjectDep.from_row,
)
