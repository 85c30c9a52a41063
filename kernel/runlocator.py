"""Which database holds run X: its project's database, or the workspace's portfolio database.

A portfolio parent run lives only in the portfolio database (DESIGN 3.6); every other run, children
included, lives in its project's own database. Every command that takes a run id asks here first, so a
parent id works from the workspace without `--db`:

- with `--db`, that database holds the run (or nothing does);
- else, when `./.clavain/portfolio.db` exists and holds `run_id` as a portfolio parent, that one;
- else the project database found by walking up from the current directory.

A portfolio database that exists but cannot be read never breaks a command meant for the project
database; but when the run is not found there either, the answer says both (the parent id would
otherwise get a baffling "no run" or "no intercore.db").
"""

from __future__ import annotations

import os

from kernel import db as kdb
from kernel.errors import KernelError, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kernel.model import Run

PORTFOLIO_DB = os.path.join(kdb.DB_DIR, kdb.PORTFOLIO_DB_NAME)


class RunLocation:
    """The database that holds a run, and why the workspace's portfolio database was passed over
    (None when it was not: absent, readable, or `--db` given)."""

    __slots__ = ("path", "skipped")

    def __init__(self, path: str, skipped: str | None = None) -> None:
        self.path = path
        self.skipped = skipped

    def __repr__(self) -> str:
        return f"RunLocation({self.path!r}, skipped={self.skipped!r})"


def locate_run(run_id: str, db_flag: str | None, *, timeout: float, cwd: str | None = None) -> RunLocation:
    """The database holding `run_id` (see the module docstring); raises when there is none to open.

    `cwd` is the workspace (default: the current directory).
    """
    if db_flag:
        return RunLocation(os.path.abspath(db_flag))
    workspace = os.path.abspath(cwd or os.getcwd())
    portfolio = os.path.join(workspace, PORTFOLIO_DB)
    skipped: str | None = None
    if os.path.isfile(portfolio) and run_id.isprintable():
        try:
            run = _find(portfolio, run_id, timeout)
        except KernelError as exc:
            skipped = exc.message
        else:
            if run is not None and run.is_portfolio_parent:
                return RunLocation(portfolio)
    if skipped is None:
        return RunLocation(kdb.resolve_db_path(None, start=workspace))
    note = f" ({PORTFOLIO_DB} was skipped: {skipped})"
    try:
        path = kdb.resolve_db_path(None, start=workspace)
        if _find(path, run_id, timeout) is None:
            raise NotFound(f"no run {run_id!r} in {path}")
    except KernelError as exc:
        raise type(exc)(exc.message + note) from exc
    return RunLocation(path, skipped)


def _find(path: str, run_id: str, timeout: float) -> Run | None:
    from kernel import queries as q

    conn = kdb.open_db(path, timeout=timeout)
    try:
        return q.fetch_one(conn, q.RUN_BY_ID, run_id)
    finally:
        conn.close()
