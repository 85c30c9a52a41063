"""Fresh, read-only looks into a child's own project database.

Gates, status, budgets and slot reclaim must never decide on a stale copy, so they read the child's
project database at the moment of asking. Connections are read-only (a portfolio never writes to a
project it watches), use a short busy timeout (one stuck project must not stall the others), and every
failure is a one-line StorageError naming the project.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from kernel import db as kdb
from kernel import queries as q
from kernel.errors import KernelError, StorageError
from kernel.model import Run
from kernel.portfolio.paths import project_db_path, require_absolute

CHILD_TIMEOUT = 1.0


@contextmanager
def open_child_db(project_dir: str, *, timeout: float = CHILD_TIMEOUT) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a project's database, closed on exit."""
    require_absolute(project_dir)
    path = project_db_path(project_dir)
    if not path.is_file():
        raise StorageError(f"{path}: project database is missing")
    conn = kdb.connect(path, timeout=timeout, readonly=True)
    try:
        try:
            kdb.check_schema(conn, path)
            yield conn
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: {exc}") from exc
    finally:
        conn.close()


def read_child(project_dir: str, run_id: str, *, timeout: float = CHILD_TIMEOUT) -> Run:
    """The child run as its project database has it now; StorageError if it cannot be read."""
    with open_child_db(project_dir, timeout=timeout) as conn:
        run = q.fetch_one(conn, q.RUN_BY_ID, run_id)
    if run is None:
        raise StorageError(
            f"{project_db_path(project_dir)}: child run {run_id} is not in the project database"
        )
    return run


def read_child_or_error(project_dir: str, run_id: str, *, timeout: float = CHILD_TIMEOUT) -> Run | str:
    """`read_child`, or the one-line reason it failed (for readers that report and carry on)."""
    try:
        return read_child(project_dir, run_id, timeout=timeout)
    except KernelError as exc:
        return exc.message
