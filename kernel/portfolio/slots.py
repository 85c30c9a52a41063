"""Dispatch slots: the portfolio's `max_dispatches` as a hard limit across all of its children.

A child's spawn takes a slot in the portfolio database inside one `BEGIN IMMEDIATE` transaction
(count, then insert), so concurrent spawners in different projects queue on the write lock and can
never overshoot. A slot is given back when its dispatch ends (`release_slot`) and is reclaimed when it
is found dead: its dispatch is terminal in the project database, or its process is gone. Reclaim
runs only when the portfolio is full, so the common path costs one small transaction.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from kernel import clock
from kernel import db as kdb
from kernel import queries as q
from kernel.errors import KernelError, NotFound, Refused, StorageError
from kernel.model import Run
from kernel.portfolio.budget import refuse_if_over_budget
from kernel.portfolio.childdb import open_child_db
from kernel.portfolio.lookup import get_portfolio
from kernel.portfolio.rows import DispatchSlot

# A slot whose holder is unknown (no pid anywhere) is kept this long before it counts as abandoned.
UNKNOWN_HOLDER_GRACE_S = 60


def portfolio_of(run: Run) -> tuple[Path, str] | None:
    """(portfolio database, portfolio id) of a child run, from the metadata stored at creation."""
    if run.parent_run_id is None:
        return None
    meta = run.metadata or {}
    db = meta.get("portfolio_db")
    if not isinstance(db, str) or not db:
        return None
    return Path(db), run.parent_run_id


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as dead: it will never run again)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _slot_is_live(slot: DispatchSlot, now: int) -> bool:
    """A slot is live while its dispatch is not terminal and some process of it is still running."""
    holder = slot.pid
    try:
        with open_child_db(slot.project_dir) as conn:
            dispatch = q.fetch_one(conn, q.DISPATCH_BY_ID, slot.dispatch_id)
    except KernelError:
        dispatch = None  # the project cannot tell us; fall back on the recorded pid
    if dispatch is not None:
        if dispatch.is_terminal:
            return False
        if dispatch.pid is not None and pid_alive(dispatch.pid):
            return True
    if holder is not None:
        return pid_alive(holder)
    return now - slot.acquired_at < UNKNOWN_HOLDER_GRACE_S


def list_slots(conn: sqlite3.Connection, portfolio_id: str) -> tuple[Run, list[tuple[DispatchSlot, bool]]]:
    """The portfolio and its held slots, each with whether it is live right now."""
    parent = get_portfolio(conn, portfolio_id)
    now = clock.now()
    return parent, [(s, _slot_is_live(s, now)) for s in q.fetch_all(conn, q.SLOTS_OF_PORTFOLIO, portfolio_id)]


def reclaim_dead_slots(conn: sqlite3.Connection, portfolio_id: str) -> list[DispatchSlot]:
    """Delete the portfolio's dead slots; must run inside the caller's write transaction."""
    now = clock.now()
    dead = [s for s in q.fetch_all(conn, q.SLOTS_OF_PORTFOLIO, portfolio_id) if not _slot_is_live(s, now)]
    for slot in dead:
        conn.execute(
            "DELETE FROM dispatch_slots WHERE portfolio_id = ? AND dispatch_id = ?",
            (portfolio_id, slot.dispatch_id),
        )
    return dead


def take_slot(
    conn: sqlite3.Connection, portfolio_id: str, dispatch_id: str, project_dir: str, pid: int | None
) -> bool:
    """Take a slot in the open portfolio database; False when the portfolio has no limit.

    `pid` is the agent's process if known, else the caller's own process: if the caller dies before
    the dispatch records its agent, the slot is reclaimed as dead.
    """
    holder = os.getpid() if pid is None else pid
    with kdb.write_tx(conn):
        parent = q.fetch_one(conn, q.RUN_BY_ID, portfolio_id)
        if parent is None:
            raise NotFound(f"portfolio {portfolio_id} is not in its database; cannot count dispatch slots")
        if parent.is_terminal:
            raise Refused(f"portfolio {portfolio_id} is {parent.status}; no new dispatches")
        refuse_if_over_budget(conn, parent)
        if parent.max_dispatches is None:
            return False
        held = conn.execute(
            "SELECT 1 FROM dispatch_slots WHERE portfolio_id = ? AND dispatch_id = ?",
            (portfolio_id, dispatch_id),
        ).fetchone()
        if held is not None:
            conn.execute(
                "UPDATE dispatch_slots SET pid = ? WHERE portfolio_id = ? AND dispatch_id = ?",
                (holder, portfolio_id, dispatch_id),
            )
            return True
        if _count(conn, portfolio_id) >= parent.max_dispatches:
            reclaim_dead_slots(conn, portfolio_id)
        in_use = _count(conn, portfolio_id)
        if in_use >= parent.max_dispatches:
            raise Refused(
                f"portfolio {portfolio_id} is at its limit of {parent.max_dispatches} running dispatches "
                f"({in_use} in use); retry when one ends"
            )
        conn.execute(
            "INSERT INTO dispatch_slots (portfolio_id, dispatch_id, project_dir, pid, acquired_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (portfolio_id, dispatch_id, project_dir, holder, clock.now()),
        )
    return True


def _count(conn: sqlite3.Connection, portfolio_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM dispatch_slots WHERE portfolio_id = ?", (portfolio_id,)
    ).fetchone()
    return int(row[0])


def give_back(conn: sqlite3.Connection, portfolio_id: str, dispatch_id: str) -> bool:
    """Release a slot in the open portfolio database; True if one was held."""
    with kdb.write_tx(conn):
        cur = conn.execute(
            "DELETE FROM dispatch_slots WHERE portfolio_id = ? AND dispatch_id = ?",
            (portfolio_id, dispatch_id),
        )
    return cur.rowcount > 0


def acquire_slot(
    run: Run, dispatch_id: str, project_dir: str, pid: int | None, *, timeout: float = kdb.DEFAULT_TIMEOUT
) -> None:
    """Take a portfolio slot for a child's dispatch before its agent starts (Refused at the limit).

    A no-op for runs outside a portfolio; a portfolio without `max_dispatches` holds no slots but still
    refuses new work once its enforced token budget is spent.
    """
    if run.parent_run_id is None:
        return
    target = portfolio_of(run)
    if target is None:  # fail closed: a child's dispatches never escape its portfolio's limit
        raise StorageError(
            f"run {run.id} is a child of portfolio {run.parent_run_id} but its portfolio database is not "
            "on record (metadata.portfolio_db); cannot count its dispatch slots"
        )
    path, portfolio_id = target
    conn = kdb.open_db(path, timeout=timeout)
    try:
        take_slot(conn, portfolio_id, dispatch_id, project_dir, pid)
    finally:
        conn.close()


def release_slot(run: Run, dispatch_id: str, *, timeout: float = kdb.DEFAULT_TIMEOUT) -> None:
    """Give a dispatch's slot back when it ends; a no-op if it held none.

    A portfolio database that has gone away holds no slots, so that is not an error; a failure to
    write (e.g. a lock timeout) is raised, and the slot is then reclaimed later as dead.
    """
    target = portfolio_of(run)
    if target is None:
        return
    path, portfolio_id = target
    if not path.exists():
        return
    conn = kdb.open_db(path, timeout=timeout)
    try:
        give_back(conn, portfolio_id, dispatch_id)
    finally:
        conn.close()
