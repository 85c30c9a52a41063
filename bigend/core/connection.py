"""One project's read-only connection, kept across refreshes, and what can go wrong with it.

A project database is not a stable thing while Bigend watches it: it may be replaced (`rm -rf .clavain
&& ic init`, a restore from backup), overwritten, deleted with its project, or locked by a writer. An
open SQLite connection keeps reading the file it opened, even once that file is unlinked, and
`PRAGMA data_version` only sees commits made through the same file. So every read (`ReadConnection.read`)
first looks at the path, a few microseconds of `stat`:
- the path is gone: `ProjectGone` (the connection is closed);
- the database file is not the one the last read saw (another file identity, st_dev and st_ino, or
  another size or mtime) or the WAL was replaced: the connection is closed and a new one, which checks
  the header and the schema again, reads the file, in the same call. Under WAL a commit only appends to
  the WAL, so this costs a reopen after a checkpoint, and catches a database replaced by a new file,
  overwritten in place (SQLite itself may go on answering from the WAL and its page cache), or
  restored from a backup.
Otherwise `data_version` decides: unchanged means the caller's data is still current (the read returns
None without running the queries). `signature` keeps the files' stamps from before the read looked, for
the aggregator's stat pass: a change racing the read is a change next time.

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

from bigend.core.changes import MISSING, Signature, Stamp, stamp
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
        self._wal_identity: tuple[int, int] | None = None  # of the WAL, once a read has seen one
        self._version: int | None = None  # data_version when its last read began
        self._seen: Stamp = MISSING  # the database file's stamp when its last read began
        #: the database's and its WAL's stamps when the last read began (what the stat pass compares)
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
        seen: Stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        wal_path = f"{text}-wal"
        wal = stamp(wal_path)
        if self._conn is not None and (seen != self._seen or self._wal_replaced(wal)):
            # Replaced (the connection still reads the old, maybe unlinked, file) or written since the last
            # read: under WAL, commits go to the WAL, so the database file changes only by a checkpoint or
            # behind SQLite's back, and SQLite may keep answering from the WAL and its cache whatever the
            # file now holds. A new connection checks the file again (header, schema) and reads it.
            self._close()
        fresh = self._conn is None
        if fresh:
            self._open()
            wal = stamp(wal_path)  # opening creates the WAL of a database nobody had open
        assert self._conn is not None
        version = data_version(self._conn)
        if not fresh and not force and version == self._version:
            self._note_stamps(seen, wal)
            return None
        result = work(self._conn)
        self._version = version
        self._note_stamps(seen, wal)
        return result

    def _wal_replaced(self, wal: Stamp) -> bool:
        return self._wal_identity is not None and (wal[0], wal[1]) != self._wal_identity

    def _open(self) -> None:
        # The stamp this read compares against was taken before opening: a replacement in between only
        # makes the next read reopen once more.
        self._conn = open_project_db(self.path, busy_timeout=self._busy_timeout)
        self._wal_identity = None
        self._version = None

    def _note_stamps(self, seen: Stamp, wal: Stamp) -> None:
        """Remember the database and its WAL as they were before this read looked at them.

        A rewrite of the file, or a commit appended to the WAL, that lands during the read (which may or
        may not have seen it) then still looks like a change to the next read and to the stat pass.
        """
        self.signature = (seen, wal)
        self._seen = seen
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
