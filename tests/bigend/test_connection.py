"""A project's kept read connection: when it may skip a read, and when it must reopen first."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bigend.core.changes import signature
from bigend.core.connection import ProjectGone, ReadConnection
from kernel import db as kdb
from kernel import runs


def count_runs(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME
    kdb.init_db(path)
    add_run(path, "first")
    return path


def add_run(path: Path, goal: str) -> None:
    conn = kdb.open_db(path)
    try:
        runs.create_run(conn, goal=goal, project_dir=path.parent.parent)
    finally:
        conn.close()


def test_an_unchanged_database_is_not_read_again_and_a_commit_is(db: Path) -> None:
    conn = ReadConnection(db, busy_timeout=1.0)
    try:
        assert conn.read(count_runs) == 1
        assert conn.read(count_runs) is None  # data_version and the files say: nothing new
        assert conn.read(count_runs, force=True) == 1
        add_run(db, "second")
        assert conn.read(count_runs) == 2
    finally:
        conn.discard()


def test_a_database_replaced_under_its_name_is_reopened(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / kdb.DB_DIR / kdb.DB_NAME
    kdb.init_db(other)
    for goal in ("a", "b", "c"):
        add_run(other, goal)
    conn = ReadConnection(db, busy_timeout=1.0)
    try:
        assert conn.read(count_runs) == 1
        os.replace(other, db)  # a new inode under the old name; the old file is unlinked
        assert conn.read(count_runs) == 3
    finally:
        conn.discard()


def test_a_replaced_wal_reopens_even_with_the_same_content(db: Path) -> None:
    conn = ReadConnection(db, busy_timeout=1.0)
    try:
        assert conn.read(count_runs) == 1
        wal = Path(f"{db}-wal")
        shutil.copyfile(wal, f"{wal}.copy")
        os.replace(f"{wal}.copy", wal)
        assert conn.read(count_runs) == 1  # read again (a new connection), not "unchanged"
        assert conn.read(count_runs) is None
    finally:
        conn.discard()


def test_a_database_rewritten_in_place_without_a_commit_is_read_again(db: Path) -> None:
    conn = ReadConnection(db, busy_timeout=1.0)
    try:
        assert conn.read(count_runs) == 1
        content = db.read_bytes()
        os.utime(db, ns=(1, 1))  # some other mtime, then the same bytes written back in place
        db.write_bytes(content)
        assert conn.read(count_runs) == 1  # the file changed behind SQLite's back: not trusted as unchanged
        assert conn.read(count_runs) is None
    finally:
        conn.discard()


def test_a_rewrite_landing_during_a_read_still_counts_as_a_change(db: Path) -> None:
    conn = ReadConnection(db, busy_timeout=1.0)
    try:
        assert conn.read(count_runs) == 1
        content = db.read_bytes()

        def read_then_rewrite(c: sqlite3.Connection) -> int:
            runs_seen = count_runs(c)
            os.utime(db, ns=(1, 1))
            db.write_bytes(content)  # in place, while this read holds its (older) answer
            return runs_seen

        assert conn.read(read_then_rewrite, force=True) == 1
        assert conn.read(count_runs) == 1  # read again: the file changed after the last read looked
        assert conn.read(count_runs) is None
    finally:
        conn.discard()


def test_a_commit_landing_during_a_read_leaves_a_signature_that_shows_it(db: Path) -> None:
    conn = ReadConnection(db, busy_timeout=1.0)
    try:
        assert conn.read(count_runs) == 1

        def read_then_commit(c: sqlite3.Connection) -> int:
            runs_seen = count_runs(c)
            add_run(db, "during the read")
            return runs_seen

        assert conn.read(read_then_commit, force=True) == 1
        assert conn.signature != signature(db)  # the stat pass will look again, file event or not
        assert conn.read(count_runs) == 2
    finally:
        conn.discard()


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (lambda db: db.unlink(), ".clavain/intercore.db no longer exists"),
        (lambda db: shutil.rmtree(db.parent), ".clavain/ no longer exists"),
        (lambda db: shutil.rmtree(db.parent.parent), "the project directory no longer exists"),
    ],
)
def test_a_missing_database_says_what_disappeared_and_closes(
    db: Path, remove: Callable[[Path], object], message: str
) -> None:
    conn = ReadConnection(db, busy_timeout=1.0)
    assert conn.read(count_runs) == 1
    remove(db)
    with pytest.raises(ProjectGone) as caught:
        conn.read(count_runs)
    assert caught.value.message == message
    assert conn._conn is None  # the old file's connection is not kept
