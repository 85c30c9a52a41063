"""The kernel's own reads (the `ic` commands and the library API): one copy of each SELECT.

A `Query` pairs the SQL with the row mapper of its row type; `fetch_all`/`fetch_one` run it on a
sqlite3 connection. Bigend's reads are not here: they are the read model in `kernel/readmodel.py`.
"""

from __future__ import annotations

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

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from typing import Any, Generic, TypeVar

    T = TypeVar("T")

    class Query(Generic[T]):
        """SQL and the mapper of its rows (the run-time class below; typing is not imported at run
        time: this module is on `ic`'s start-up path, benchmarks/cli_latency.py)."""

        sql: str
        mapper: Callable[[Any], T]

        def __init__(self, sql: str, mapper: Callable[[Any], T]) -> None: ...

else:

    class Query:
        """SQL and the mapper of its rows."""

        __slots__ = ("mapper", "sql")

        def __init__(self, sql, mapper):
            self.sql = sql
            self.mapper = mapper

        def __repr__(self):
            return f"Query({self.sql!r})"


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
EVENTS_SINCE = Query(f"SELECT {Event.COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?", Event.from_row)
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

# -- events, state and sentinels -------------------------------------------------------------------
# `LIMIT -1` is SQLite for "no limit": EVENTS_SINCE / EVENTS_OF_RUN_SINCE serve both paged and full reads.
EVENT_BY_ID = Query(f"SELECT {Event.COLUMNS} FROM events WHERE id = ?", Event.from_row)
RUN_EXISTS = Query("SELECT count(*) FROM runs WHERE id = ?", _scalar_int)
EVENTS_OF_RUN_COUNT = Query("SELECT count(*) FROM events WHERE run_id = ?", _scalar_int)
# Live state: rows whose TTL has not run out at the given time (expires_at is exclusive).
STATE_GET = Query(
    f"SELECT {StateEntry.COLUMNS} FROM state WHERE key = ? AND scope = ? "
    "AND (expires_at IS NULL OR expires_at > ?)",
    StateEntry.from_row,
)
STATE_LIVE = Query(
    f"SELECT {StateEntry.COLUMNS} FROM state WHERE expires_at IS NULL OR expires_at > ? ORDER BY scope, key",
    StateEntry.from_row,
)
STATE_LIVE_OF_SCOPE = Query(
    f"SELECT {StateEntry.COLUMNS} FROM state WHERE scope = ? AND (expires_at IS NULL OR expires_at > ?) "
    "ORDER BY key",
    StateEntry.from_row,
)
SENTINEL_BY_NAME = Query(
    f"SELECT {Sentinel.COLUMNS} FROM sentinels WHERE name = ? AND scope = ?", Sentinel.from_row
)
SENTINELS_ALL = Query(f"SELECT {Sentinel.COLUMNS} FROM sentinels ORDER BY scope, name", Sentinel.from_row)

# -- portfolio runs (issue 4): parents, children, deps, relay cursors and events, dispatch slots ------
from kernel.portfolio.rows import ChildEvent, DispatchSlot, RelayCursor  # noqa: E402

CHILD_OF_PROJECT = Query(
    f"SELECT {Run.COLUMNS} FROM runs WHERE parent_run_id = ? AND project_dir = ?", Run.from_row
)
DEPS_UPSTREAMS_OF = Query(
    f"SELECT {ProjectDep.COLUMNS} FROM project_deps WHERE portfolio_id = ? AND downstream = ? "
    "ORDER BY upstream",
    ProjectDep.from_row,
)
DEPS_DOWNSTREAMS_OF = Query(
    f"SELECT {ProjectDep.COLUMNS} FROM project_deps WHERE portfolio_id = ? AND upstream = ? "
    "ORDER BY downstream",
    ProjectDep.from_row,
)
RELAY_CURSOR = Query(
    f"SELECT {RelayCursor.COLUMNS} FROM relay_cursors WHERE portfolio_id = ? AND project_dir = ?",
    RelayCursor.from_row,
)
RELAY_CURSORS_OF_PORTFOLIO = Query(
    f"SELECT {RelayCursor.COLUMNS} FROM relay_cursors WHERE portfolio_id = ? ORDER BY project_dir",
    RelayCursor.from_row,
)
# Relayed events of one portfolio (child_* and upstream_changed), oldest first, after an id.
RELAY_EVENTS_OF_PORTFOLIO = Query(
    f"SELECT {Event.COLUMNS} FROM events WHERE source = 'relay' AND id > ? "
    "AND run_id IN (SELECT id FROM runs WHERE parent_run_id = ?) ORDER BY id LIMIT ?",
    Event.from_row,
)
# A child's phase events in a project database, in the window (after, upto] of one relay read: only
# the columns the relay copies (the payload, gate evidence, is not copied, and parsing it would cost
# about 10 ms of a 20-child tick).
CHILD_PHASE_EVENTS_IN_WINDOW = Query(
    "SELECT id, type, from_state, to_state, reason, timestamp "
    "FROM events WHERE run_id = ? AND id > ? AND id <= ? AND source = 'phase' ORDER BY id",
    ChildEvent.from_row,
)
# The highest event id ever handed out (survives deletions, unlike max(id)): the relay's read horizon.
EVENTS_SEQUENCE = Query("SELECT seq FROM sqlite_sequence WHERE name = 'events'", _scalar_int)
SLOTS_OF_PORTFOLIO = Query(
    f"SELECT {DispatchSlot.COLUMNS} FROM dispatch_slots WHERE portfolio_id = ? "
    "ORDER BY acquired_at, dispatch_id",
    DispatchSlot.from_row,
)


# -- runs, phases and run tracking (runs and gates) ------------------------------------------------
def _phase_row(row: Any) -> tuple[str, str, str]:
    return str(row[0]), str(row[1]), str(row[2])


def _first_str(row: Any) -> str:
    return str(row[0])


# `ic run phase` is benchmarked: three columns, no row type.
RUN_PHASE = Query("SELECT id, phase, status FROM runs WHERE id = ?", _phase_row)
RUNS_OF_SCOPE = Query(
    f"SELECT {Run.COLUMNS} FROM runs WHERE scope_id = ? ORDER BY created_at DESC, id", Run.from_row
)
RUNS_ACTIVE_OF_SCOPE = Query(
    f"SELECT {Run.COLUMNS} FROM runs WHERE status = 'active' AND scope_id = ? ORDER BY created_at DESC, id",
    Run.from_row,
)
# Newest first; rowid breaks ties between runs created in the same second.
RUN_CURRENT_OF_PROJECT = Query(
    f"SELECT {Run.COLUMNS} FROM runs WHERE project_dir = ? AND status = 'active' "
    "ORDER BY created_at DESC, rowid DESC LIMIT 1",
    Run.from_row,
)
PHASE_SKIPS_OF_RUN = Query("SELECT phase FROM phase_skips WHERE run_id = ? ORDER BY phase", _first_str)
AGENT_BY_ID = Query(f"SELECT {RunAgent.COLUMNS} FROM run_agents WHERE id = ?", RunAgent.from_row)
AGENTS_ACTIVE_COUNT = Query(
    "SELECT count(*) FROM run_agents WHERE run_id = ? AND status = 'active'", _scalar_int
)
ARTIFACTS_OF_RUN_PHASE = Query(
    f"SELECT {RunArtifact.COLUMNS} FROM run_artifacts WHERE run_id = ? AND phase = ? ORDER BY created_at, id",
    RunArtifact.from_row,
)
# Verdicts in the order they were recorded (rowid), so "the latest verdict" is well defined.
VERDICTS_OF_RUN_PHASE = Query(
    f"SELECT {RunArtifact.COLUMNS} FROM run_artifacts WHERE run_id = ? AND phase = ? AND kind = 'verdict' "
    "ORDER BY rowid",
    RunArtifact.from_row,
)


# -- dispatch supervision and budgets (kernel/dispatch/, kernel/budget.py) --------------------------
DISPATCHES_ACTIVE_OF_SCOPE = Query(
    f"SELECT {Dispatch.COLUMNS} FROM dispatches WHERE scope_id = ? AND status IN ('spawned', 'running') "
    "ORDER BY created_at DESC, id",
    Dispatch.from_row,
)
COUNT_ACTIVE_DISPATCHES_OF_SCOPE = Query(
    "SELECT count(*) FROM dispatches WHERE scope_id = ? AND status IN ('spawned', 'running')", _scalar_int
)
# The spawned/running events carry who supervises a dispatch (pid + start time) and its process group.
DISPATCH_LIFECYCLE_EVENTS = Query(
    f"SELECT {Event.COLUMNS} FROM events WHERE dispatch_id = ? AND source = 'dispatch' "
    "AND type IN ('spawned', 'running') ORDER BY id",
    Event.from_row,
)
DISPATCHES_ENDED_BEFORE = Query(
    f"SELECT {Dispatch.COLUMNS} FROM dispatches "
    "WHERE status IN ('completed', 'failed', 'timeout', 'cancelled') AND coalesce(ended_at, updated_at) < ? "
    "ORDER BY id",
    Dispatch.from_row,
)
RUN_BUDGET_LEVEL = Query("SELECT budget_level FROM runs WHERE id = ?", _scalar_int)
