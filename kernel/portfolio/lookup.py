"""Finding a portfolio and its children in the portfolio database, with one-line errors."""

from __future__ import annotations

import sqlite3

from kernel import queries as q
from kernel.errors import NotFound, UsageError
from kernel.events import is_unicode
from kernel.model import Run


def get_portfolio(conn: sqlite3.Connection, portfolio_id: str) -> Run:
    """The parent run `portfolio_id`; NotFound (exit 1) if absent, UsageError if it is not a parent."""
    if not is_unicode(portfolio_id):
        raise UsageError("the portfolio id is not valid UTF-8 text; ids are 8 characters of a-z and 0-9")
    run = q.fetch_one(conn, q.RUN_BY_ID, portfolio_id)
    if run is None:
        raise NotFound(
            f"no portfolio run {portfolio_id!r} in this portfolio database (see `ic run list --portfolio`)"
        )
    if not run.is_portfolio_parent:
        raise UsageError(f"run {portfolio_id} is not a portfolio run (it has a project or a parent)")
    return run


def children(conn: sqlite3.Connection, portfolio_id: str) -> list[Run]:
    """The portfolio's children, ordered by project path."""
    return q.fetch_all(conn, q.RUNS_CHILDREN, portfolio_id)


def child_for_project(conn: sqlite3.Connection, portfolio_id: str, project: str) -> Run:
    """The child of `portfolio_id` working on `project`; UsageError naming the real projects otherwise."""
    child = q.fetch_one(conn, q.CHILD_OF_PROJECT, portfolio_id, project)
    if child is None:
        known = ", ".join(c.project_dir for c in children(conn, portfolio_id)) or "none"
        raise UsageError(f"{project} is not a project of portfolio {portfolio_id} (its projects: {known})")
    return child
