"""Storage: init, permissions, schema checks and the exit codes of bad databases."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from kernel import db as kdb
from tests.conftest import Project


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


def test_unknown_command_and_bad_timeout_are_usage_errors(project: Project) -> None:
    assert project.ic("frobnicate").code == 3
    bad = project.ic("--timeout=abc", "version")
    assert bad.code == 3 and "--timeout" in bad.err
