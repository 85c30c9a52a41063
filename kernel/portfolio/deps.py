"""Dependencies between the projects of one portfolio (`ic portfolio dep add|list|remove`).

An edge upstream -> downstream means the downstream child may only enter a phase once the upstream
child is at or past it (the `upstreams_at_phase` gate). Edges are kept acyclic at insertion time, so
every later reader (order, gates, status) can rely on a DAG.
"""

from __future__ import annotations

import sqlite3

from kernel import clock, events, eventtypes
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import NotFound, Refused, UsageError
from kernel.model import ProjectDep
from kernel.portfolio.lookup import child_for_project, get_portfolio
from kernel.portfolio.order import CycleError, cycle_if_added, format_cycle
from kernel.portfolio.paths import normalise_project


def list_deps(conn: sqlite3.Connection, portfolio_id: str) -> list[ProjectDep]:
    get_portfolio(conn, portfolio_id)
    return q.fetch_all(conn, q.DEPS_OF_PORTFOLIO, portfolio_id)


def _endpoints(
    conn: sqlite3.Connection, portfolio_id: str, upstream: str, downstream: str
) -> tuple[str, str]:
    up = normalise_project(upstream, flag="upstream")
    down = normalise_project(downstream, flag="downstream")
    get_portfolio(conn, portfolio_id)
    return up, down


def add_dep(conn: sqlite3.Connection, portfolio_id: str, upstream: str, downstream: str) -> ProjectDep:
    """Add upstream -> downstream; self-edges, duplicates and cycles are refused with the reason."""
    up, down = _endpoints(conn, portfolio_id, upstream, downstream)
    if up == down:
        raise UsageError(f"a project cannot depend on itself ({up}); give two different projects")
    with kdb.write_tx(conn):
        child_for_project(conn, portfolio_id, up)
        child_for_project(conn, portfolio_id, down)
        existing = q.fetch_all(conn, q.DEPS_OF_PORTFOLIO, portfolio_id)
        if any(d.upstream == up and d.downstream == down for d in existing):
            raise Refused(f"dependency {up} -> {down} already exists in portfolio {portfolio_id}")
        cycle = cycle_if_added([(d.upstream, d.downstream) for d in existing], up, down)
        if cycle is not None:
            raise CycleError(f"dependency {up} -> {down} would close a cycle: {format_cycle(cycle)}")
        created = clock.now()
        conn.execute(
            "INSERT INTO project_deps (portfolio_id, upstream, downstream, created_at) VALUES (?, ?, ?, ?)",
            (portfolio_id, up, down, created),
        )
        events.record(
            conn, source=eventtypes.RUN, type=eventtypes.DEP_ADDED, run_id=portfolio_id,
            payload={"upstream": up, "downstream": down}, timestamp=created,
        )  # fmt: skip
    return ProjectDep(portfolio_id=portfolio_id, upstream=up, downstream=down, created_at=created)


def remove_dep(conn: sqlite3.Connection, portfolio_id: str, upstream: str, downstream: str) -> ProjectDep:
    """Remove upstream -> downstream (NotFound, exit 1, when there is no such edge)."""
    up, down = _endpoints(conn, portfolio_id, upstream, downstream)
    with kdb.write_tx(conn):
        row = conn.execute(
            f"SELECT {ProjectDep.COLUMNS} FROM project_deps WHERE portfolio_id = ? AND upstream = ? "
            "AND downstream = ?",
            (portfolio_id, up, down),
        ).fetchone()
        if row is None:
            raise NotFound(f"no dependency {up} -> {down} in portfolio {portfolio_id}")
        conn.execute(
            "DELETE FROM project_deps WHERE portfolio_id = ? AND upstream = ? AND downstream = ?",
            (portfolio_id, up, down),
        )
        events.record(
            conn, source=eventtypes.RUN, type=eventtypes.DEP_REMOVED, run_id=portfolio_id,
            payload={"upstream": up, "downstream": down},
        )  # fmt: skip
    return ProjectDep.from_row(row)
