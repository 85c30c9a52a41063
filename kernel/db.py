"""Locate, open and migrate kernel databases.

Every connection gets the same PRAGMAs, and every write goes through `write_tx`, a `BEGIN IMMEDIATE`
transaction: concurrent writers queue on the busy timeout instead of failing half-way with
"database is locked". Only `ic init` migrates; everything else refuses a database whose schema
differs from the code's, so a stale binary can never scribble on a newer file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from kernel import clock
from kernel.errors import StorageError

DB_DIR = ".clavain"
DB_NAME = "intercore.db"
PORTFOLIO_DB_NAME = "portfolio.db"
DEFAULT_TIMEOUT = 5.0
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _migration_files() -> list[tuple[int, Path]]:
    found = []
    for name in os.listdir(MIGRATIONS_DIR):
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), MIGRATIONS_DIR / name))
    return sorted(found)


def code_schema_version() -> int:
    """The schema version this code speaks: the number of the newest migration file."""
    files = _migration_files()
    return files[-1][0] if files else 0


def find_db(start: Path | None = None, name: str = DB_NAME) -> Path | None:
    """Walk up from `start` (default: cwd) to the first `.clavain/<name>`."""
    here = (start or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        candidate = directory / DB_DIR / name
        if candidate.is_file():
            return candidate
    return None


def resolve_db_path(db: str | None, start: Path | None = None) -> Path:
    """The database a command should use: `--db` if given, else the nearest one walking up."""
    if db:
        return Path(db).absolute()
    found = find_db(start)
    if found is None:
        raise StorageError(
            f"no {DB_DIR}/{DB_NAME} found in {(start or Path.cwd()).absolute()} or its parents; "
            "run `ic init` there or pass --db=PATH"
        )
    return found


def _check_openable(path: Path) -> None:
    if path.is_dir():
        raise StorageError(f"{path} is a directory, not a database file; pass --db=PATH/TO/intercore.db")
    if not path.parent.is_dir():
        raise StorageError(f"{path.parent} does not exist; run `ic init` or fix --db")
    if not path.exists():
        raise StorageError(f"{path} does not exist; run `ic init` to create it")
    if not os.access(path, os.R_OK):
        raise StorageError(f"{path} is not readable; check its permissions")


def connect(path: Path, *, timeout: float = DEFAULT_TIMEOUT, readonly: bool = False) -> sqlite3.Connection:
    """A raw connection with the kernel's PRAGMAs, no schema check (see `open_db`)."""
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=ro", uri=True, timeout=timeout, isolation_level=None
            )
        else:
            conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # WAL + NORMAL: a commit survives any process crash (kill -9) and the file never corrupts; only
        # an OS crash or power loss can drop the last commits. FULL would fsync on every commit, which
        # under 16 queued writers pushes waiters past the busy timeout.
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.OperationalError as exc:
        raise StorageError(f"{path}: cannot open database: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a usable kernel database ({exc})") from exc
    conn.row_factory = sqlite3.Row
    return conn


def read_schema_version(conn: sqlite3.Connection, path: Path) -> int:
    try:
        row = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a usable kernel database ({exc})") from exc
    return int(row[0])


def check_schema(conn: sqlite3.Connection, path: Path) -> int:
    """Refuse databases this code cannot speak to: uninitialised, older or newer schema."""
    version = read_schema_version(conn, path)
    expected = code_schema_version()
    if version > expected:
        raise StorageError(
            f"{path}: schema v{version} is newer than this ic understands (v{expected}); upgrade ic"
        )
    if version == 0:
        raise StorageError(f"{path}: not an initialised kernel database; run `ic init`")
    if version < expected:
        raise StorageError(f"{path}: schema v{version} is older than v{expected}; run `ic init` to migrate")
    return version


def open_db(
    path: Path, *, timeout: float = DEFAULT_TIMEOUT, readonly: bool = False
) -> sqlite3.Connection:
    """Open an existing, current kernel database or raise a one-line StorageError."""
    _check_openable(path)
    conn = connect(path, timeout=timeout, readonly=readonly)
    try:
        check_schema(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One `BEGIN IMMEDIATE` transaction: all of its writes land, or none do."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    return bool(row[0])


def _backup(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    target = path.with_name(f"{path.name}.bak-v{version}-{clock.now()}")
    fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.close(fd)
    dest = sqlite3.connect(str(target))
    try:
        conn.backup(dest)
    finally:
        dest.close()
    return target


def init_db(path: Path, *, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, int, Path | None]:
    """Create (dir 0700, file 0600) and migrate a database to the code's schema.

    Returns (version before, version after, backup path or None). A non-empty database is backed up
    before its first migration step; each step is one transaction, so a failure leaves the last good
    version in place.
    """
    if path.is_dir():
        raise StorageError(f"{path} is a directory, not a database file")
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
            os.chmod(path.parent, 0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(path, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror}") from exc
    conn = connect(path, timeout=timeout)
    try:
        before = read_schema_version(conn, path)
        target = code_schema_version()
        if before > target:
            raise StorageError(f"{path}: schema v{before} is newer than this ic understands (v{target})")
        backup = None
        if before < target and _has_tables(conn):
            backup = _backup(conn, path, before)
        if before < target:
            conn.execute("PRAGMA journal_mode = WAL")
        for number, sql_file in _migration_files():
            if number <= before:
                continue
            script = sql_file.read_text()
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"{path}: migration {sql_file.name} failed: {exc}") from exc
        return before, target, backup
    finally:
        conn.close()
