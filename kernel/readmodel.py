"""The read model Bigend consumes: its SQL and named row types (DESIGN 2, 4.5 "Bigend's reads").

Bigend reads whole projects at a time (DESIGN 6: a full refresh of 50 projects x 200 runs, 500
dispatches and 5 000 events in <= 150 ms), so these queries select only the columns the dashboard
shows, and return them as named tuples: `RunRow`, `DispatchRow`, `RunTokensRow`, `EventRow`. Each row
type's fields are the result columns of its query, in order (tests/kernel/test_readmodel.py checks
them against the cursor's description), so callers read `row.goal`, never `row[1]`.

`read_project_rows` runs them all in one read transaction: runs, dispatches, token sums and events
come from the same committed moment. It never writes; Bigend opens project databases read-only.

Bounds: live rows are always read, finished ones only the newest N (`Limits`), so a project's read
cost stays bounded however much history it accumulates; token sums and counts are exact anyway.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple


class RunRow(NamedTuple):
    """A run as the dashboard shows it; the last four columns are NULL for finished runs."""

    id: str
    goal: str
    status: str
    phase: str
    phases: str  # the chain, JSON text (callers cache its parsed form: runs share a few chains)
    complexity: int
    parent_run_id: str | None
    scope_id: str | None
    created_at: int
    updated_at: int
    completed_at: int | None
    phase_entered_at: int | None  # the last event that put the run in its phase (time in phase)
    last_source: str | None  # the run's last phase or gate event: what may block it
    last_type: str | None
    last_reason: str | None


class DispatchRow(NamedTuple):
    id: str
    scope_id: str | None
    agent_type: str
    name: str | None
    model: str | None
    status: str
    pid: int | None
    exit_code: int | None
    error: str | None
    created_at: int
    started_at: int | None
    ended_at: int | None
    input_tokens: int
    output_tokens: int
    cache_tokens: int
    cost_usd: float | None


class RunTokensRow(NamedTuple):
    """Token sums and dispatch count of one run (`scope_id` None: the dispatches of no run)."""

    scope_id: str | None
    input_tokens: int
    output_tokens: int
    cache_tokens: int
    dispatches: int


class EventRow(NamedTuple):
    id: int
    run_id: str | None
    source: str
    type: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    timestamp: int


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a project one read takes: live rows always, finished rows the newest N."""

    runs: int = 500
    dispatches: int = 100
    events: int = 100


@dataclass(frozen=True, slots=True)
class ProjectRows:
    """Everything one read of a project returns, from one read transaction."""

    runs: list[RunRow]  # every active run, then the newest `Limits.runs` finished; newest created first
    dispatches: list[DispatchRow]  # every live dispatch, then the newest finished; newest first
    run_tokens: list[RunTokensRow]  # one per run with dispatches, plus one for dispatches of no run
    run_count: int  # runs in the database
    events: list[EventRow]  # the newest `Limits.events`, newest first


# -- SQL ---------------------------------------------------------------------------------------------
# Plans are chosen for a project of 200 runs / 500 dispatches / 5 000 events (benchmarks/aggregator.py):
# finished rows are taken newest-first by scanning the table backwards (`NOT INDEXED`: the status index
# would read every finished row, sort them all, then keep N; "newest" is the last inserted, by rowid),
# live ones through the status index, and only active runs look up their last phase event. The unary
# `+` keeps SQLite on the events_run index (walk one run's events newest first) instead of scanning
# every phase event through events_source, 20x slower on a busy project. Finished runs skip both
# per-run lookups: their time in phase is not shown and they cannot be blocked.
def _outside(column: str, values: tuple[str, ...]) -> str:
    """`column NOT IN values` as ranges around the (sorted) values: SQLite answers those from an index on
    `column` instead of reading every row (values are constants of ours, compared bytewise like SQLite)."""
    bounds = sorted(values)
    gaps = [f"({column} > '{bounds[i]}' AND {column} < '{bounds[i + 1]}')" for i in range(len(bounds) - 1)]
    return " OR ".join([f"{column} < '{bounds[0]}'", *gaps, f"{column} > '{bounds[-1]}'"])


_TERMINAL_DISPATCH_STATUSES = ("completed", "failed", "timeout", "cancelled")
_RUN_COLUMNS = (
    "r.id, r.goal, r.status, r.phase, r.phases, r.complexity, r.parent_run_id, r.scope_id, r.created_at, "
    "r.updated_at, r.completed_at"
)
_TERMINAL_DISPATCH_LIST = "(" + ", ".join(f"'{status}'" for status in _TERMINAL_DISPATCH_STATUSES) + ")"
_DISPATCH_COLUMNS = ", ".join(DispatchRow._fields)
_EVENT_COLUMNS = ", ".join(EventRow._fields)

# Every active run with its time in phase and its last phase/gate event, then the newest N finished runs
# with NULLs there. Time in phase: the last event that put the run in its phase (often the last phase
# event itself).
RUN_ROWS_SQL = (
    f"SELECT {_RUN_COLUMNS}, "
    "CASE WHEN lp.type IN ('created', 'advance', 'rollback') AND lp.source = 'phase' THEN lp.timestamp "
    " ELSE (SELECT e.timestamp FROM events e WHERE e.run_id = r.id AND +e.source = 'phase' "
    "  AND +e.type IN ('created', 'advance', 'rollback') ORDER BY e.id DESC LIMIT 1) END "
    "AS phase_entered_at, "
    "lp.source AS last_source, lp.type AS last_type, lp.reason AS last_reason "
    "FROM runs r LEFT JOIN events lp ON lp.id = (SELECT e.id FROM events e WHERE e.run_id = r.id "
    " AND +e.source IN ('phase', 'gate') ORDER BY e.id DESC LIMIT 1) "
    "WHERE r.status = 'active' "
    "UNION ALL SELECT * FROM ("
    f" SELECT {_RUN_COLUMNS}, NULL, NULL, NULL, NULL FROM runs r NOT INDEXED "
    " WHERE r.status != 'active' ORDER BY r.rowid DESC LIMIT ?) "
    "ORDER BY created_at DESC, id"
)
# Every live (not terminal) dispatch, then the newest N finished ones.
DISPATCH_ROWS_SQL = (
    f"SELECT {_DISPATCH_COLUMNS} FROM dispatches "
    f"WHERE {_outside('status', _TERMINAL_DISPATCH_STATUSES)} UNION ALL "
    f"SELECT * FROM (SELECT {_DISPATCH_COLUMNS} FROM dispatches NOT INDEXED "
    f" WHERE status IN {_TERMINAL_DISPATCH_LIST} ORDER BY rowid DESC LIMIT ?) "
    "ORDER BY created_at DESC, id"
)
# Exact token sums and dispatch counts per run; their total is the project's. One sequential scan and a
# sort: cheaper than walking the scope index and fetching every row it points to.
RUN_TOKENS_SQL = (
    "SELECT scope_id, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(cache_tokens) AS cache_tokens, count(*) AS dispatches FROM dispatches NOT INDEXED GROUP BY scope_id"
)
RUN_COUNT_SQL = "SELECT count(*) FROM runs"
EVENTS_LATEST_SQL = f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id DESC LIMIT ?"

# Named rows straight from sqlite3's tuples: `tuple.__new__(RowType, row)` is what NamedTuple._make does
# minus its Python-level length check, which the column test above makes redundant.
_run_row = partial(tuple.__new__, RunRow)
_dispatch_row = partial(tuple.__new__, DispatchRow)
_run_tokens_row = partial(tuple.__new__, RunTokensRow)
_event_row = partial(tuple.__new__, EventRow)


def read_project_rows(conn: sqlite3.Connection, limits: Limits) -> ProjectRows:
    """Everything one project shows, all from one read transaction (one committed moment).

    `conn` must be in autocommit mode (`isolation_level=None`). No try/finally: a read that fails or is
    interrupted leaves its transaction open, and the caller discards the connection.
    """
    conn.execute("BEGIN")
    runs: list[RunRow] = list(map(_run_row, conn.execute(RUN_ROWS_SQL, (limits.runs,))))
    dispatches: list[DispatchRow] = list(
        map(_dispatch_row, conn.execute(DISPATCH_ROWS_SQL, (limits.dispatches,)))
    )
    run_tokens: list[RunTokensRow] = list(map(_run_tokens_row, conn.execute(RUN_TOKENS_SQL)))
    run_count = int(conn.execute(RUN_COUNT_SQL).fetchone()[0])
    events: list[EventRow] = []
    if limits.events > 0:
        events = list(map(_event_row, conn.execute(EVENTS_LATEST_SQL, (limits.events,))))
    conn.execute("COMMIT")
    return ProjectRows(runs, dispatches, run_tokens, run_count, events)
