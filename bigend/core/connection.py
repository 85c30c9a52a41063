"""One project's read-only connection, kept across refreshes, and what can go wrong with it.

A project database is not a stable thing while Bigend watches it: it may be replaced (`rm -rf .clavain
&& ic init`, a restore from backup), overwritten, deleted with its project, or locked by a writer. An
open SQLite connection keeps reading the file it opened, even once that file is unlinked, and
`PRAGMA data_version` only sees commits made through the same file. So every read (`ReadConnection.read`)
first looks at the path, a few microseconds of `stat`:
- the path is gone: `ProjectGone` (the connection is closed);
- the file identity (st_dev, st_ino) of the database, or of its WAL, differs from the one the connection
  opened: the connection is closed and a new one reads the new file, in the same call;
- the database file's size or mtime changed although the connection saw no commit (`data_version`
  unchanged): something wrote it behind SQLite's back (overwritten in place); a new connection reads it.
Otherwise `data_version` decides: unchanged means the caller's data is still current (the read returns
None without running the queries).

Errors are one line, classified: `DatabaseLocked` (a writer holds a lock that blocks readers; retried),
`ProjectGone`, and `StorageError` for the rest (corrupt, not a database, wrong schema, unreadable).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from bigend.core.changes import MISSING, Signature, Stamp, signature, stamp
from kernel import db as kdb
from kernel.errors import StorageError

T = TypeVar("T")

_SQLITE_MAGIC = b"SQLite format 3\x00"
# Primary result codes (sqlite3.h); extended codes carry them in their low byte.
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_INTERRUPT = 5, 6, 11, 26, 9

LOCKED_MESSAGE = "locked by another process, retrying"


class DatabaseLocked(StorageError):
    """A writer holds a lock that keeps readers out (an exclusive transaction, an exclusive-mode WAL)."""

    def __init__(self) -> None:
        super().__init__(LOCKED_MESSAGE)


class ProjectGone(StorageError):
    """The project's database, its .clavain directory or the project directory no longer exists."""


def describe_sqlite_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """The one-line error a project shows for an SQLite failure."""
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in str(exc):
        return DatabaseLocked()
    if code == _SQLITE_NOTADB:
        return StorageError(f"{path}: not a SQLite database (corrupt or overwritten)")
    if code == _SQLITE_CORRUPT:
        return StorageError(f"{path}: corrupt database ({exc})")
    if code == _SQLITE_INTERRUPT:
        return StorageError(f"{path}: read abandoned")
    return StorageError(f"{path}: not a usable kernel database ({exc})")


def missing_reason(db_path: Path) -> str:
    """What disappeared, of a project's database, its .clavain directory and the project directory."""
    clavain = db_path.parent
    if not os.path.isdir(clavain.parent):
        return "the project directory no longer exists"
    if not os.path.isdir(clavain):
        return f"{clavain.name}/ no longer exists"
    return f"{clavain.name}/{db_path.name} no longer exists"


def _gone(db_path: Path) -> ProjectGone:
    return ProjectGone(missing_reason(db_path))


def open_project_db(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """A read-only connection to a current kernel database, or a one-line StorageError.

    The connection is closed again whenever the checks fail, so a corrupt or locked project retried
    every refresh leaks nothing.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except (FileNotFoundError, NotADirectoryError):
        raise _gone(path) from None
    except OSError as exc:
        raise StorageError(f"{path}: cannot read: {exc.strerror}") from None
    if header and header != _SQLITE_MAGIC:
        raise StorageError(f"{path}: not a SQLite database (corrupt or overwritten)")
    try:
        conn = sqlite3.connect(
            f"file:{quote(str(path))}?mode=ro",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,  # worker threads take turns; ReadConnection keeps it to one at a time
        )
    except sqlite3.Error as exc:
        raise describe_sqlite_error(path, exc) from None
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        conn.close()
        raise describe_sqlite_error(path, exc) from None
    except BaseException:
        conn.close()
        raise
    expected = kdb.code_schema_version()
    if version != expected:
        conn.close()
        raise StorageError(f"{path}: schema v{version}, this Bigend reads v{expected}")
    return conn


def data_version(conn: sqlite3.Connection) -> int:
    """`PRAGMA data_version`: changes when another connection commits to the file this one has open."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


class ReadConnection:
    """One project's read-only connection: opened by the first read, used by one thread at a time.

    `discard()` may be called from the event loop while a worker thread is inside a read (a timeout, a
    cancelled refresh): it interrupts the running statement and the connection is closed as soon as
    that thread lets go of it, so nothing leaks and no thread is left holding a half-read database.
    """

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._guard = threading.Lock()
        self._busy = False
        self._discarded = False
        # What the open connection has seen (valid while _conn is not None):
        self._identity: tuple[int, int] = (0, 0)  # st_dev, st_ino of the database it opened
        self._wal_identity: tuple[int, int] | None = None  # of the WAL, once a read has seen one
        self._version: int | None = None  # data_version after its last read
        self._seen: Stamp = MISSING  # the database file's stamp after its last read
        #: the database's and its WAL's stamps right after the last read (what the stat pass compares)
        self.signature: Signature = (MISSING, MISSING)

    def read(self, work: Callable[[sqlite3.Connection], T], *, force: bool = False) -> T | None:
        """`work(connection)` unless the database provably did not change since this object's last read.

        Returns None for "unchanged" (never when `force`). Opens, or reopens, the connection as the
        module docstring says; raises ProjectGone, DatabaseLocked or StorageError with one line.
        """
        with self._guard:
            if self._discarded:
                raise StorageError(f"{self.path}: read abandoned")
            self._busy = True
        try:
            try:
                return self._read(work, force=force)
            except sqlite3.Error as exc:
                self._close()  # failed inside its read transaction: never reuse it
                raise describe_sqlite_error(self.path, exc) from None
            except BaseException:
                self._close()
                raise
        finally:
            with self._guard:
                self._busy = False
                close = self._discarded
            if close:
                self._close()

    def _read(self, work: Callable[[sqlite3.Connection], T], *, force: bool) -> T | None:
        text = str(self.path)
        try:
            st = os.stat(text)
        except (FileNotFoundError, NotADirectoryError):
            self._close()
            raise _gone(self.path) from None
        except OSError as exc:
            self._close()
            raise StorageError(f"{self.path}: cannot read: {exc.strerror}") from None
        identity = (st.st_dev, st.st_ino)
        if self._conn is not None and (identity != self._identity or self._wal_replaced(text)):
            self._close()  # replaced: the connection still reads the old (maybe unlinked) file
        fresh = self._conn is None
        if fresh:
            self._open(identity)
        assert self._conn is not None
        version = data_version(self._conn)
        if not fresh and version == self._version:
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self._seen:
                # Written behind SQLite's back (no commit this connection could see): read it afresh.
                self._close()
                self._open(identity)
                assert self._conn is not None
                version = data_version(self._conn)
            elif not force:
                self._note_stamps()
                return None
        result = work(self._conn)
        self._version = version
        self._note_stamps()
        return result

    def _wal_replaced(self, text: str) -> bool:
        if self._wal_identity is None:
            return False
        wal = stamp(text + "-wal")
        return (wal[0], wal[1]) != self._wal_identity

    def _open(self, identity: tuple[int, int]) -> None:
        self._conn = open_project_db(self.path, busy_timeout=self._busy_timeout)
        self._identity = identity  # taken before opening: a replacement in between reopens next time
        self._wal_identity = None
        self._version = None

    def _note_stamps(self) -> None:
        self.signature = db, wal = signature(self.path)
        self._seen = db
        if self._wal_identity is None and wal != MISSING:
            self._wal_identity = (wal[0], wal[1])

    def discard(self) -> None:
        """Close now if idle, else interrupt the read in progress and close when it returns."""
        with self._guard:
            self._discarded = True
            busy = self._busy
            conn = self._conn
        if not busy:
            self._close()
        elif conn is not None:
            conn.interrupt()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._version = None
        if conn is not None:
            conn.close()
