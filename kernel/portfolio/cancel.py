"""Cancelling a portfolio: the parent, every active child everywhere, and their running dispatches.

One transaction in the portfolio database cancels the parent and the children's copies and frees
the portfolio's dispatch slots (so no child can start new work from that instant); then, for each
project, the child's running dispatches are killed and the child is cancelled in its own database in
one transaction. A project that cannot be reached is reported; the others are still cancelled, and
cancelling again later reaches it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field

from kernel import clock, events
from kernel import db as kdb
from kernel import eventtypes as et
from kernel import queries as q
from kernel.dispatch import api as dispatch_api
from kernel.errors import KernelError, Refused
from kernel.model import JsonObject, Run
from kernel.portfolio.contracts import CancelledProject, PortfolioCancelled
from kernel.portfolio.lookup import children, get_portfolio
from kernel.portfolio.paths import project_db_path, require_absolute


@dataclass(frozen=True, slots=True)
class ProjectCancel:
    project: str
    run_id: str
    cancelled: bool
    killed: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PortfolioCancel:
    parent: Run
    projects: list[ProjectCancel]

    @property
    def errors(self) -> list[ProjectCancel]:
        return [p for p in self.projects if p.error is not None]

    def to_json(self) -> JsonObject:
        projects = [
            CancelledProject(p.project, p.run_id, p.cancelled, p.killed, p.error) for p in self.projects
        ]
        body = PortfolioCancelled(self.parent.id, self.parent.status, self.parent.phase, projects)
        return asdict(body)


def _cancel_row(conn: sqlite3.Connection, run: Run, reason: str | None, now: int) -> None:
    conn.execute(
        "UPDATE runs SET status = 'cancelled', completed_at = ?, updated_at = ? "
        "WHERE id = ? AND status = 'active'",
        (now, now, run.id),
    )
    events.record(
        conn, source=et.PHASE, type=et.CANCEL, run_id=run.id, from_state=run.phase, to_state=run.phase,
        reason=reason, payload={"status": "cancelled"}, timestamp=now,
    )  # fmt: skip


def cancel_in_portfolio_db(conn: sqlite3.Connection, portfolio_id: str, *, reason: str | None) -> list[Run]:
    """Cancel the parent and its active children's copies and free its slots: one transaction.

    Returns the copies it cancelled (with the parent's, if the parent was active, that is what changed).
    """
    with kdb.write_tx(conn):
        parent = get_portfolio(conn, portfolio_id)
        active = [c for c in children(conn, portfolio_id) if c.status == "active"]
        if parent.status != "active" and not active:
            return []
        now = clock.now()
        if parent.status == "active":
            _cancel_row(conn, parent, reason, now)
        for child in active:
            _cancel_row(conn, child, reason, now)
        conn.execute("DELETE FROM dispatch_slots WHERE portfolio_id = ?", (portfolio_id,))
    return active


def _kill_dispatches(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """Kill the child's live dispatches through the dispatch API (one-line errors propagate)."""
    live = [d for d in q.fetch_all(conn, q.DISPATCHES_OF_SCOPE, run_id) if not d.is_terminal]
    if not live:
        return []
    killed: list[str] = []
    for dispatch in live:
        dispatch_api.kill(conn, dispatch.id)
        killed.append(dispatch.id)
    return killed


def cancel_in_project(child: Run, *, reason: str | None, timeout: float) -> ProjectCancel:
    """Kill the child's dispatches, then cancel it in its project database (if still active there)."""
    try:
        require_absolute(child.project_dir)
        path = project_db_path(child.project_dir)
        conn = kdb.open_db(path, timeout=timeout)
    except KernelError as exc:
        return ProjectCancel(child.project_dir, child.id, False, error=exc.message)
    try:
        killed = _kill_dispatches(conn, child.id)
        cancelled = False
        with kdb.write_tx(conn):
            run = q.fetch_one(conn, q.RUN_BY_ID, child.id)
            if run is not None and run.status == "active":
                _cancel_row(conn, run, reason, clock.now())
                cancelled = True
        return ProjectCancel(child.project_dir, child.id, cancelled, killed)
    except (KernelError, sqlite3.Error) as exc:
        message = exc.message if isinstance(exc, KernelError) else f"{path}: {exc}"
        return ProjectCancel(child.project_dir, child.id, False, error=message)
    finally:
        conn.close()


def cancel_portfolio(
    conn: sqlite3.Connection,
    portfolio_id: str,
    *,
    reason: str | None = None,
    timeout: float = kdb.DEFAULT_TIMEOUT,
) -> PortfolioCancel:
    """Cancel the whole portfolio (see the module docstring for the order and the guarantees).

    Running it again finishes what an earlier run could not (an unreachable project, an interrupt):
    it is refused only when nothing anywhere was left to cancel.
    """
    was_active = get_portfolio(conn, portfolio_id).status == "active"
    copies = cancel_in_portfolio_db(conn, portfolio_id, reason=reason)
    # Every child is visited, not only the copies that were active: a stale copy must not leave a
    # child running in its project.
    outcomes = [
        cancel_in_project(child, reason=reason, timeout=timeout) for child in children(conn, portfolio_id)
    ]
    if not (was_active or copies or any(o.cancelled or o.killed or o.error for o in outcomes)):
        parent = get_portfolio(conn, portfolio_id)
        raise Refused(
            f"portfolio {portfolio_id} is {parent.status} and no child is active in any project; "
            "nothing to cancel"
        )
    return PortfolioCancel(parent=get_portfolio(conn, portfolio_id), projects=outcomes)
