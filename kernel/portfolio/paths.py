"""Where portfolio data lives, and the one normalisation of project paths.

Projects are identified by their canonical absolute path (realpath): `dep add` and `dep remove`, the
relay and the gates must all agree on the spelling of a project, or a dependency added as `../sdk`
could never be removed as `/work/sdk`. The portfolio database defaults to `.clavain/portfolio.db` in
the current directory (the workspace), so a workspace's portfolios sit beside its projects.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from kernel import db as kdb
from kernel.errors import StorageError, UsageError
from kernel.events import is_unicode


def portfolio_db_path(db_flag: str | None, workspace: Path | None = None) -> Path:
    """`--db` if given, else `<workspace>/.clavain/portfolio.db` (workspace: the current directory)."""
    if db_flag:
        return Path(db_flag).absolute()
    return (workspace or Path.cwd()).absolute() / kdb.DB_DIR / kdb.PORTFOLIO_DB_NAME


def project_db_path(project_dir: str) -> Path:
    """A project's own kernel database."""
    return Path(project_dir) / kdb.DB_DIR / kdb.DB_NAME


def normalise_project(text: str, *, flag: str = "projects") -> str:
    """The canonical absolute path of a project as typed by an operator (existence not checked)."""
    raw = text.strip()
    if not raw:
        raise UsageError(f"--{flag}: empty project path; give directories like /abs/path or ./rel")
    if "\x00" in raw:
        raise UsageError(f"--{flag}: project path contains a NUL byte")
    if not is_unicode(raw):
        raise UsageError(f"--{flag}: project path {raw!r} is not valid UTF-8; rename the directory")
    return os.path.realpath(os.path.abspath(raw))


def existing_project(text: str, *, flag: str = "projects") -> str:
    """`normalise_project`, and the directory must exist: a typo must not become a phantom child."""
    path = normalise_project(text, flag=flag)
    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise UsageError(f"--{flag}: project {text.strip()!r} ({path}) {what}; pass existing directories")
    return path


def require_absolute(project_dir: str) -> None:
    """The relay and the gates only ever open absolute project paths (never relative to their cwd)."""
    if not project_dir or not os.path.isabs(project_dir):
        raise StorageError(f"child project path {project_dir!r} is not absolute; refusing to open it")


def open_portfolio(
    path: Path, *, timeout: float = kdb.DEFAULT_TIMEOUT, create: bool = False
) -> sqlite3.Connection:
    """Open the portfolio database; with `create`, initialise it first when it does not exist yet."""
    if create and not path.exists():
        kdb.init_db(path, timeout=timeout)
    if not path.exists():
        raise StorageError(
            f"no portfolio database at {path}; create a portfolio with `ic run create --projects=...` "
            "in this workspace or pass --db=PATH"
        )
    return kdb.open_db(path, timeout=timeout)


FileKey = tuple[int, int] | None


def _file_key(path: str) -> FileKey:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def db_identity(path: Path) -> tuple[FileKey, FileKey]:
    """Which database file, and which WAL index, `path` is right now.

    A database restored by copying a backup over the file (removing its -wal and -shm, as one must)
    keeps the file's inode, and a connection opened before goes on reading the old WAL index: it
    would never see the new content. The -shm file is created anew by the next opener, so a change of
    either inode means "reopen". While the holder's connection is open the -shm file stays put.
    """
    return _file_key(str(path)), _file_key(f"{path}-shm")
