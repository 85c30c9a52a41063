"""Locate, open and migrate kernel databases.

Every connection gets the same PRAGMAs, and every write goes through `write_tx`, a `BEGIN IMMEDIATE`
transaction: concurrent writers queue on the busy timeout instead of failing half-way with
"database is locked". Only `ic init` migrates; everything else refuses a database whose schema
differs from the code's, so a stale binary can never scribble on a newer file.

Paths are taken as `str` or any `os.PathLike` and returned as `str`: this module is on every `ic`
call's start-up path, which does without pathlib (benchmarks/cli_latency.py).
"""

from __future__ import annotations

import os
import sqlite3

from kernel import clock
from kernel.errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    StrPath = str | os.PathLike[str]

DB_DIR = ".clavain"
DB_NAME = "intercore.db"
PORTFOLIO_DB_NAME = "portfolio.db"
DEFAULT_TIMEOUT = 5.0
MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def _migration_files() -> list[tuple[int, str]]:
    found = []
    for name in os.listdir(MIGRATIONS_DIR):
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), os.path.join(MIGRATIONS_DIR, name)))
    return sorted(found)


def code_schema_version() -> int:
    """The schema version this code speaks: the number of the newest migration file."""
    files = _migration_files()
    return files[-1][0] if files else 0


def find_db(start: StrPath | None = None, name: str = DB_NAME) -> str | None:
    """Walk up from `start` (default: cwd) to the first `.clavain/<name>`."""
    directory = os.path.abspath(start if start is not None else os.getcwd())
    while True:
        candidate = os.path.join(directory, DB_DIR, name)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def resolve_db_path(db: str | None, start: StrPath | None = None) -> str:
    """The database a command should use: `--db` if given, else the nearest one walking up."""
    if db:
        return os.path.abspath(db)
    found = find_db(start)
    if found is None:
        where = os.path.abspath(start if start is not None else os.getcwd())
        raise StorageError(
            f"no {DB_DIR}/{DB_NAME} found in {where} or its parents; run `ic init` there or pass --db=PATH"
        )
    return found


def _check_openable(path: StrPath) -> None:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise StorageError(f"{path} is a directory, not a database file; pass --db=PATH/TO/intercore.db")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        if os.path.exists(parent):
            raise StorageError(f"{parent} is not a directory; fix --db")
        raise StorageError(f"{parent} does not exist; run `ic init` or fix --db")
    if not os.path.exists(path):
        raise StorageError(f"{path} does not exist; run `ic init` to create it")
    if not os.access(path, os.R_OK):
        raise StorageError(f"{path} is not readable; check its permissions")


def unwritable_reason(path: StrPath) -> str | None:
    """Why SQLite may not be able to write `path` (a WAL database also creates -wal/-shm beside it)."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "the database file is read-only"
    if os.path.isdir(directory) and not os.access(directory, os.W_OK):
        name = os.path.basename(path)
        return f"its directory {directory} is read-only (SQLite creates {name}-wal and -shm there)"
    return None


def explain(exc: sqlite3.Error, path: StrPath | None, timeout: float = DEFAULT_TIMEOUT) -> StorageError:
    """One line saying what went wrong with the database and what to do about it (exit 2)."""
    text = str(exc) or type(exc).__name__
    where = f"{path}: " if path is not None else "database error: "
    lowered = text.lower()
    if "malformed" in lowered or "not a database" in lowered:
        return StorageError(
            f"{where}not a usable kernel database ({text}); move it aside (or restore an "
            "intercore.db.bak-* copy) and run `ic init`"
        )
    hint = _hint(lowered, path, timeout)
    return StorageError(f"{where}{text}: {hint}" if hint else f"{where}{text}")


def _hint(error: str, path: StrPath | None, timeout: float) -> str | None:
    if "locked" in error or "busy" in error:
        return f"another process held it longer than --timeout={timeout:g}s; retry or pass a longer --timeout"
    if "readonly" in error or "unable to open" in error:
        reason = unwritable_reason(path) if path is not None else None
        return f"{reason}; check permissions and mounts" if reason else "check the path and its permissions"
    if "no such table" in error or "no such column" in error:
        return "the schema is damaged; check it with `ic health`"
    if "disk" in error or "full" in error:
        return "check the disk and its free space"
    return None


# Every database file this process has connected to: when an SQLite error reaches the CLI without
# saying which file it concerns, it can only be named if there was exactly one.
_opened: set[str] = set()


def only_database_opened() -> str | None:
    """The database this process connected to, if it connected to exactly one."""
    return next(iter(_opened)) if len(_opened) == 1 else None


def connect(path: StrPath, *, timeout: float = DEFAULT_TIMEOUT, readonly: bool = False) -> sqlite3.Connection:
    """A raw connection with the kernel's PRAGMAs, no schema check (see `open_db`)."""
    path = os.fspath(path)
    _opened.add(os.path.abspath(path))
    try:
        if readonly:
            from urllib.parse import quote

            conn = sqlite3.connect(
                f"file:{quote(path)}?mode=ro", uri=True, timeout=timeout, isolation_level=None
            )
        else:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        raise explain(exc, path, timeout) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # WAL + NORMAL: a commit survives any process crash (kill -9) and the file never corrupts; only
        # an OS crash or power loss can drop the last commits. FULL would fsync on every commit, which
        # under 16 queued writers pushes waiters past the busy timeout.
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise explain(exc, path, timeout) from None
    conn.row_factory = sqlite3.Row
    return conn


def read_schema_version(conn: sqlite3.Connection, path: StrPath) -> int:
    try:
        row = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise explain(exc, path, _busy_timeout(conn)) from None
    return int(row[0])


def _busy_timeout(conn: sqlite3.Connection) -> float:
    return int(conn.execute("PRAGMA busy_timeout").fetchone()[0]) / 1000


def _refuse_newer(path: StrPath, version: int, expected: int) -> None:
    if version > expected:
        raise StorageError(
            f"{path}: schema v{version} is newer than this ic understands (v{expected}); upgrade ic"
        )


def check_schema(conn: sqlite3.Connection, path: StrPath) -> int:
    """Refuse databases this code cannot speak to: uninitialised, older or newer schema."""
    version = read_schema_version(conn, path)
    expected = code_schema_version()
    _refuse_newer(path, version, expected)
    if version == 0:
        raise StorageError(f"{path}: not an initialised kernel database; run `ic init`")
    if version < expected:
        raise StorageError(f"{path}: schema v{version} is older than v{expected}; run `ic init` to migrate")
    return version


def open_db(path: StrPath, *, timeout: float = DEFAULT_TIMEOUT, readonly: bool = False) -> sqlite3.Connection:
    """Open an existing, current kernel database or raise a one-line StorageError."""
    path = os.fspath(path)
    _check_openable(path)
    conn = connect(path, timeout=timeout, readonly=readonly)
    try:
        check_schema(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


class write_tx:
    """One `BEGIN IMMEDIATE` transaction: all of its writes land, or none do.

    A class rather than a `@contextmanager` generator: contextlib is kept off `ic`'s start-up path.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None:
            try:
                self.conn.execute("COMMIT")
                return
            except BaseException:
                self._roll_back()
                raise
        self._roll_back()

    def _roll_back(self) -> None:
        # SQLite itself ends the transaction on some errors (disk full, I/O); a ROLLBACK then would
        # replace the real error with "no transaction is active". A failed COMMIT is rolled back,
        # so a long-lived connection is never left inside a dead transaction.
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()
    return bool(row[0])


def _backup(conn: sqlite3.Connection, path: str, version: int) -> str:
    target = f"{path}.bak-v{version}-{clock.now()}"
    try:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        dest = sqlite3.connect(target)
        try:
            conn.backup(dest)
        finally:
            dest.close()
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise StorageError(f"{path}: cannot back up to {target} before migrating: {reason}") from None
    return target


def _create_private(path: str) -> None:
    """The database's directory (0700) and file (0600), unless they exist; racing inits both succeed."""
    directory = os.path.dirname(path)
    try:
        try:
            os.makedirs(directory, mode=0o700)
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(path, 0o600)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StorageError(f"cannot create {path}: {reason}; pick a writable place or --db=PATH") from None


def _migrate(conn: sqlite3.Connection, path: str, number: int, sql_file: str) -> None:
    """Apply one migration in one transaction; another process having applied it first is fine."""
    with open(sql_file, encoding="utf-8") as handle:
        script = handle.read()
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        # A concurrent `ic init` may have migrated while this one waited for the write lock.
        if read_schema_version(conn, path) >= number:
            return
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
            raise explain(exc, path, _busy_timeout(conn)) from None
        raise StorageError(f"{path}: migration {os.path.basename(sql_file)} failed: {exc}") from None


def init_db(path: StrPath, *, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, int, str | None]:
    """Create (dir 0700, file 0600) and migrate a database to the code's schema.

    Returns (version before, version after, backup path or None). A non-empty database is backed up
    before its first migration step; each step is one transaction, so a failure leaves the last good
    version in place.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise StorageError(f"{path} is a directory, not a database file")
    _create_private(path)
    conn = connect(path, timeout=timeout)
    try:
        before = read_schema_version(conn, path)
        target = code_schema_version()
        _refuse_newer(path, before, target)
        if before == target:
            return before, target, None
        backup = _backup(conn, path, before) if _has_tables(conn) else None
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        if mode != "wal":
            raise StorageError(f"{path}: cannot use WAL journal mode here (got {mode!r}); use a local disk")
        for number, sql_file in _migration_files():
            if number > before:
                _migrate(conn, path, number, sql_file)
        return before, target, backup
    except sqlite3.DatabaseError as exc:
        raise explain(exc, path, timeout) from None
    finally:
        conn.close()
