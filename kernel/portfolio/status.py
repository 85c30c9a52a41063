"""`ic portfolio status` and `ic portfolio order`: where each child is and what holds it back.

Children are read fresh from their own project databases (the relayed copy is used, and the error
shown, only when a project cannot be read). A child is `ready` when every upstream project that is
not cancelled is at or past the phase the child would enter next, i.e. when `upstreams_at_phase`
would let its next advance through.
"""

from __future__ import annotations

import sqlite3

from kernel import queries as q
from kernel.errors import KernelError, Refused
from kernel.model import Run
from kernel.phase import at_or_past, next_hop
from kernel.portfolio.childdb import open_child_db
from kernel.portfolio.lookup import children, get_portfolio
from kernel.portfolio.order import topological_order
from kernel.portfolio.rows import ChildStatus


def _fresh(child: Run) -> tuple[Run, set[str], str | None]:
    """The child from its project database with its pre-skipped phases, or its copy and the error."""
    try:
        with open_child_db(child.project_dir) as conn:
            run = q.fetch_one(conn, q.RUN_BY_ID, child.id)
            skips = set(q.fetch_all(conn, q.PHASE_SKIPS_OF_RUN, child.id))
    except KernelError as exc:
        return child, set(), exc.message
    if run is None:
        return child, set(), f"child run {child.id} is not in the project database"
    return run, skips, None


def _next_phase(run: Run, skips: set[str]) -> str | None:
    if run.status != "active":
        return None
    try:
        return next_hop(run, skips).to_phase
    except Refused:
        return None


def _holds_back(upstream: Run | None, error: str | None, phase: str) -> bool:
    """Unreadable and failed upstreams hold back; cancelled ones no longer do."""
    if upstream is None or error is not None or upstream.status == "failed":
        return True
    return upstream.status != "cancelled" and not at_or_past(upstream.phases, upstream.phase, phase)


def portfolio_status(conn: sqlite3.Connection, portfolio_id: str) -> list[ChildStatus]:
    get_portfolio(conn, portfolio_id)
    kids = children(conn, portfolio_id)
    fresh = {c.project_dir: _fresh(c) for c in kids}
    upstreams: dict[str, list[str]] = {}
    for dep in q.fetch_all(conn, q.DEPS_OF_PORTFOLIO, portfolio_id):
        upstreams.setdefault(dep.downstream, []).append(dep.upstream)
    rows: list[ChildStatus] = []
    for kid in kids:
        run, skips, error = fresh[kid.project_dir]
        nxt = _next_phase(run, skips)
        ups = sorted(upstreams.get(kid.project_dir, []))
        blocked: list[str] = []
        if nxt is not None:
            for up in ups:
                up_run, _, up_error = fresh.get(up, (None, set(), "not a child of this portfolio"))
                if _holds_back(up_run, up_error, nxt):
                    blocked.append(up)
        rows.append(
            ChildStatus(
                project=kid.project_dir,
                run_id=kid.id,
                phase=run.phase,
                status=run.status,
                next_phase=nxt,
                ready=nxt is not None and not blocked,
                blocked_by=blocked,
                upstreams=ups,
                error=error,
            )
        )
    return rows


def portfolio_order(conn: sqlite3.Connection, portfolio_id: str) -> list[str]:
    """The portfolio's projects in dependency order (smallest ready project first)."""
    get_portfolio(conn, portfolio_id)
    projects = [c.project_dir for c in children(conn, portfolio_id)]
    edges = [(d.upstream, d.downstream) for d in q.fetch_all(conn, q.DEPS_OF_PORTFOLIO, portfolio_id)]
    return topological_order(projects, edges)
