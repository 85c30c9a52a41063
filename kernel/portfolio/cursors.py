"""The relay's cursors, for an operator: where each child project stands, and resetting one.

The relay stops relaying a project whose database was replaced (see `kernel.portfolio.relay`); only a
person can tell whether the new database is a restored backup (whose events up to the cursor were
already relayed) or a new start, so only `reset_cursor` clears the mark. By default it resumes from
the project's newest event, which never relays an event twice; `to` picks another position (0
relays the project's whole history again).
"""

from __future__ import annotations

import sqlite3

from kernel import clock
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import NotFound, UsageError
from kernel.portfolio.childdb import open_child_db
from kernel.portfolio.lookup import child_for_project, get_portfolio
from kernel.portfolio.paths import normalise_project, project_db_path
from kernel.portfolio.relay import set_cursor
from kernel.portfolio.rows import RelayCursor


def list_cursors(conn: sqlite3.Connection, portfolio_id: str) -> list[RelayCursor]:
    """One cursor per child project (0 for a project the relay has not read yet)."""
    get_portfolio(conn, portfolio_id)
    stored = {c.project_dir: c for c in q.fetch_all(conn, q.RELAY_CURSORS_OF_PORTFOLIO, portfolio_id)}
    return [
        stored.get(child.project_dir) or RelayCursor(portfolio_id, child.project_dir, 0, child.created_at)
        for child in q.fetch_all(conn, q.RUNS_CHILDREN, portfolio_id)
    ]


def _newest_event(project: str, run_id: str) -> int:
    """The project's newest event id, read-only; NotFound if the child run is not in its database."""
    with open_child_db(project) as child_conn:
        newest = q.fetch_one(child_conn, q.EVENTS_SEQUENCE) or 0
        if q.fetch_one(child_conn, q.RUN_BY_ID, run_id) is None:
            raise NotFound(
                f"{project_db_path(project)} does not hold child run {run_id}: this database never had "
                "this portfolio's child, so there is nothing to relay from it"
            )
    return newest


def reset_cursor(
    conn: sqlite3.Connection, portfolio_id: str, project: str, to: int | None = None
) -> RelayCursor:
    """Point the project's cursor at `to` (default: its newest event) and clear a stopped mark."""
    get_portfolio(conn, portfolio_id)
    path = normalise_project(project, flag="project")
    child = child_for_project(conn, portfolio_id, path)
    newest = _newest_event(path, child.id)
    position = newest if to is None else to
    if not 0 <= position <= newest:
        raise UsageError(f"--to={position} is outside the project's events (0..{newest}, the newest id)")
    now = clock.now()
    with kdb.write_tx(conn):
        set_cursor(conn, portfolio_id, path, position, now)
    return RelayCursor(portfolio_id, path, position, now)
