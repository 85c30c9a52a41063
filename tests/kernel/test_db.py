"""Storage: init, permissions, schema checks and the exit codes of bad databases."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel import db as kdb
from tests.conftest import IcResult, Project, hold_lock, ic_executable, release


def test_init_creates_private_dir_and_file(tmp_path: Path) -> None:
    proj = Project(tmp_path)
    result = proj.ic("init", "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert body["schema_version"] == kdb.code_schema_version()
    assert stat.S_IMODE((tmp_path / ".clavain").stat().st_mode) == 0o700
    assert stat.S_IMODE(proj.db.stat().st_mode) == 0o600
    conn = sqlite3.connect(proj.db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == kdb.code_schema_version()


def test_init_is_idempotent(project: Project) -> None:
    again = project.ic("init", "--json")
    assert again.code == 0
    assert again.json()["schema_before"] == again.json()["schema_version"]
    assert again.json()["backup"] is None


def test_init_backs_up_a_non_empty_older_database(tmp_path: Path) -> None:
    path = tmp_path / ".clavain" / "intercore.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE legacy (x)")
    conn.execute("INSERT INTO legacy VALUES (42)")
    conn.commit()
    conn.close()
    result = Project(tmp_path).ic("init", "--json")
    assert result.code == 0, result.err
    backup = Path(result.json()["backup"])
    assert backup.exists()
    assert sqlite3.connect(backup).execute("SELECT x FROM legacy").fetchone() == (42,)


def test_database_is_found_walking_up(project: Project) -> None:
    nested = project.dir / "a" / "b"
    nested.mkdir(parents=True)
    result = project.ic("health", "--json", cwd=nested)
    assert result.code == 0, result.err
    assert result.json()["path"] == str(project.db)


def test_missing_database_is_exit_2_with_hint(tmp_path: Path) -> None:
    result = Project(tmp_path).ic("health")
    assert result.code == 2
    assert "ic init" in result.err
    assert result.err.count("\n") == 1


def test_newer_schema_is_refused(project: Project) -> None:
    conn = sqlite3.connect(project.db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    result = project.ic("health")
    assert result.code == 2
    assert "newer" in result.err and "Traceback" not in result.err


def test_corrupt_database_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / ".clavain" / "intercore.db"
    path.parent.mkdir()
    path.write_bytes(b"this is not sqlite" * 100)
    result = Project(tmp_path).ic("health")
    assert result.code == 2
    assert "not a usable kernel database" in result.err


def test_db_flag_pointing_at_directory_or_missing_parent(project: Project, tmp_path: Path) -> None:
    as_dir = project.ic("--db", str(tmp_path), "health")
    assert as_dir.code == 2 and "is a directory" in as_dir.err
    missing = project.ic("health", f"--db={tmp_path / 'nope' / 'x.db'}")
    assert missing.code == 2 and "does not exist" in missing.err


def test_global_flags_anywhere(project: Project) -> None:
    before = project.ic("--json", "version")
    after = project.ic("version", "--json")
    assert before.code == after.code == 0
    assert before.out == after.out
    assert before.json()["schema_version"] == kdb.code_schema_version()


def test_no_command_is_a_one_line_usage_error_and_help_is_not(project: Project) -> None:
    bare = project.ic()
    _one_line(bare, 3, "no command given", "ic --help")
    assert bare.out == ""
    helped = project.ic("--help")
    assert helped.code == 0 and "exit codes" in helped.out and helped.err == ""


def test_unknown_command_and_bad_timeout_are_usage_errors(project: Project) -> None:
    assert project.ic("frobnicate").code == 3
    bad = project.ic("--timeout=abc", "version")
    assert bad.code == 3 and "--timeout" in bad.err


# -- hardening: races, locks, damage, odd paths -------------------------------------------------------


def _one_line(result: IcResult, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.startswith("ic: ") and result.err.count("\n") == 1, result.err
    for needle in needles:
        assert needle in result.err, result.err


def waiting_on_a_lock(proc: subprocess.Popen[str], db: Path) -> None:
    """Return once `proc` has `db` open and sleeps (SQLite's busy wait), or after 30 s regardless."""
    for _ in range(3000):
        try:
            sleeping = "sleep" in Path(f"/proc/{proc.pid}/wchan").read_text()
            has_db = any(p.resolve() == db for p in Path(f"/proc/{proc.pid}/fd").iterdir())
        except OSError:
            return  # it has ended
        if sleeping and has_db:
            return
        time.sleep(0.01)


def test_init_racing_another_init_succeeds(tmp_path: Path) -> None:
    """Another `ic init` migrates between this one reading the version and taking the write lock."""
    proj = Project(tmp_path)
    proj.db.parent.mkdir()
    proj.db.touch()
    migrations = kdb._migration_files()  # the other init applies every one of them
    number = migrations[-1][0]
    other = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(proj.db)!r}, isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode = WAL')\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n"
        "statement = ''\n"
        f"for path in {[str(path) for _, path in migrations]!r}:\n"
        "    for line in open(path):\n"
        "        statement += line\n"
        "        if sqlite3.complete_statement(statement):\n"
        "            c.execute(statement)\n"
        "            statement = ''\n"
        f"c.execute('PRAGMA user_version = {number}')\n"
        "c.execute('COMMIT')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", other], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    init = subprocess.Popen(
        [*ic_executable(), "--timeout=60s", "init", "--json"],
        cwd=proj.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    waiting_on_a_lock(init, proj.db.resolve())
    release(holder)  # the other init migrates and commits while this one waits for the lock
    out, err = init.communicate(timeout=60)
    assert (init.returncode, err) == (0, "")
    assert json.loads(out)["schema_version"] == number
    assert proj.ic("health").code == 0


def test_write_lock_held_past_the_timeout_is_one_line_with_a_hint(project: Project) -> None:
    holder = hold_lock(project.db, exclusive=False)
    try:
        result = project.ic("--timeout=200ms", "run", "create", "--goal=waits")
    finally:
        release(holder)
    _one_line(result, 2, str(project.db), "database is locked", "--timeout=0.2s", "longer --timeout")
    assert project.ic("run", "list", "--json").out == "", "nothing was written"


def test_lock_that_keeps_readers_out_is_one_line_with_a_hint(project: Project) -> None:
    holder = hold_lock(project.db, exclusive=True)
    try:
        result = project.ic("run", "list", "--timeout", "0.2")
    finally:
        release(holder)
    _one_line(result, 2, str(project.db), "locked", "--timeout=0.2s")


def test_a_failed_commit_leaves_no_transaction_open(project: Project) -> None:
    conn = project.connect()
    try:
        with pytest.raises(sqlite3.IntegrityError), kdb.write_tx(conn):
            conn.execute("PRAGMA defer_foreign_keys = ON")  # the violation surfaces at COMMIT
            conn.execute(
                "INSERT INTO run_agents (id, run_id, name, status, created_at, updated_at) "
                "VALUES ('a', 'no-such-run', 'n', 'active', 0, 0)"
            )
        assert not conn.in_transaction
        with kdb.write_tx(conn):  # the connection is usable again
            conn.execute("INSERT INTO sentinels (name, scope, last_fired) VALUES ('s', '', 0)")
        assert conn.execute("SELECT count(*) FROM run_agents").fetchone()[0] == 0
    finally:
        conn.close()


def test_an_error_that_ended_the_transaction_is_not_masked(project: Project) -> None:
    conn = project.connect()
    try:
        with pytest.raises(ZeroDivisionError), kdb.write_tx(conn):
            conn.execute("ROLLBACK")  # as SQLite does itself on a full disk or an I/O error
            _ = 1 / 0
    finally:
        conn.close()


def test_health_reports_a_damaged_database(project: Project) -> None:
    conn = project.connect()
    with kdb.write_tx(conn):
        for i in range(300):
            conn.execute(
                "INSERT INTO state (key, scope, payload, created_at, updated_at) VALUES (?, '', ?, 0, 0)",
                (f"k{i}", '"' + "x" * 200 + '"'),
            )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    with open(project.db, "r+b") as handle:  # wipe the last pages: rows of `state`, not the schema
        handle.seek(page * (pages - 5))
        handle.write(b"\xff" * page * 5)
    result = project.ic("health", "--json")
    _one_line(result, 2, "integrity check failed", "intercore.db.bak-*")
    report = result.json()
    assert report["ok"] is False and report["integrity"] != "ok"
    assert "\n" not in report["integrity"]


def test_init_refuses_a_newer_schema_with_the_same_hint(project: Project) -> None:
    conn = sqlite3.connect(project.db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    _one_line(project.ic("init"), 2, "newer", "upgrade ic")


def test_init_on_garbage_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / ".clavain" / "intercore.db"
    path.parent.mkdir()
    path.write_bytes(b"not sqlite at all " * 100)
    _one_line(Project(tmp_path).ic("init"), 2, "not a usable kernel database", "move it aside")
    assert path.read_bytes() == b"not sqlite at all " * 100, "left untouched"


def test_db_under_a_regular_file_is_one_line(project: Project, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _one_line(project.ic(f"--db={blocker / 'x.db'}", "health"), 2, f"{blocker} is not a directory")
    _one_line(project.ic("init", f"--db={blocker / 'x.db'}"), 2, "cannot create", "writable place")


def test_init_creates_a_missing_directory_for_db(project: Project, tmp_path: Path) -> None:
    target = tmp_path / "new" / "place" / "k.db"
    result = project.ic("init", "--db", str(target), "--json")
    assert result.code == 0, result.err
    assert result.json()["path"] == str(target)
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_undecodable_arguments_are_one_usage_error_for_every_command(project: Project) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates; ic refuses them before any command."""
    import os
    import subprocess

    from tests.conftest import ic_executable

    for args in ([b"run", b"status", b"ab\xffcd"], [b"run", b"create", b"--goal=x\xfe"]):
        done = subprocess.run([os.fsencode(a) for a in ic_executable()] + args, cwd=project.dir,
                              capture_output=True, timeout=60)  # fmt: skip
        assert done.returncode == 3, done.stderr
        err = done.stderr.decode()
        assert "not valid UTF-8" in err and err.count("\n") == 1 and "Traceback" not in err
    assert project.ic("run", "list", "--json").out == ""  # nothing was created
