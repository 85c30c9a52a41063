"""The read model Bigend consumes: named rows that match their SQL, one transaction, bounded reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigend.core.synthetic import make_project
from kernel import db as kdb
from kernel import readmodel as rm


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    make_project(tmp_path / "p", runs=60, dispatches=90, events=400, seed=7)
    path = tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    yield connection
    connection.close()


@pytest.mark.parametrize(
    ("sql", "params", "row_type"),
    [
        (rm.RUN_ROWS_SQL, (5,), rm.RunRow),
        (rm.DISPATCH_ROWS_SQL, (5,), rm.DispatchRow),
        (rm.RUN_TOKENS_SQL, (), rm.RunTokensRow),
        (rm.EVENTS_LATEST_SQL, (5,), rm.EventRow),
    ],
)
def test_each_row_type_names_exactly_the_columns_of_its_query(
    conn: sqlite3.Connection, sql: str, params: tuple[int, ...], row_type: type
) -> None:
    cursor = conn.execute(sql, params)
    assert [column[0] for column in cursor.description] == list(row_type._fields)
    assert cursor.fetchall()  # the synthetic project has rows for every query


def test_a_read_returns_named_rows_with_live_rows_complete_and_history_bounded(
    conn: sqlite3.Connection,
) -> None:
    everything = conn.execute("SELECT count(*), sum(status = 'active') FROM runs").fetchone()
    live_dispatches = conn.execute(
        "SELECT count(*) FROM dispatches WHERE status NOT IN ('completed', 'failed', 'timeout', 'cancelled')"
    ).fetchone()[0]
    newest = conn.execute("SELECT max(id) FROM events").fetchone()[0]
    rows = rm.read_project_rows(conn, rm.Limits(runs=4, dispatches=3, events=10))

    assert all(isinstance(row, rm.RunRow) for row in rows.runs)
    assert len(rows.runs) == everything[1] + 4 and rows.run_count == everything[0] == 60
    assert sum(row.status == "active" for row in rows.runs) == everything[1]
    assert [(r.created_at, r.id) for r in rows.runs] == sorted(
        ((r.created_at, r.id) for r in rows.runs), key=lambda pair: (-pair[0], pair[1])
    )
    active = [r for r in rows.runs if r.status == "active"]
    assert all(r.phase_entered_at is not None and r.last_type is not None for r in active)
    assert all(r.phase_entered_at is None for r in rows.runs if r.status != "active")
    assert len(rows.dispatches) == live_dispatches + 3
    assert sum(r.dispatches for r in rows.run_tokens) == 90  # sums cover every dispatch, listed or not
    assert [e.id for e in rows.events] == list(range(newest, newest - 10, -1))  # newest first
    assert not conn.in_transaction  # one read transaction, committed


def test_no_events_limit_skips_the_query(conn: sqlite3.Connection) -> None:
    assert rm.read_project_rows(conn, rm.Limits(events=0)).events == []
