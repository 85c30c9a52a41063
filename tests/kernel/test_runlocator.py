"""kernel.runlocator: which database holds run X, over real workspaces (a portfolio database beside
project databases), including the answer when the portfolio database cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel import db as kdb
from kernel import runs
from kernel.errors import NotFound, StorageError
from kernel.runlocator import locate_run
from tests.kernel.test_portfolio_support import SHORT_CHAIN, make_workspace, project_conn


def test_a_parent_is_in_the_portfolio_database_and_a_child_in_its_project(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    where = locate_run(parent.id, None, timeout=1.0, cwd=str(ws.root))
    assert (where.path, where.skipped) == (str(ws.portfolio_db), None)
    child = kids["a"]  # also copied into the portfolio database, but its home is its project
    assert locate_run(child.id, None, timeout=1.0, cwd=str(ws.project("a"))).path == str(
        ws.project("a") / kdb.DB_DIR / kdb.DB_NAME
    )


def test_db_flag_decides(tmp_path: Path) -> None:
    where = locate_run("anything", "rel/x.db", timeout=1.0, cwd=str(tmp_path))
    assert where.path == str(Path("rel/x.db").absolute()) and where.skipped is None


def test_without_a_portfolio_database_the_project_database_walking_up(tmp_path: Path) -> None:
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    with pytest.raises(StorageError, match=r"no \.clavain/intercore\.db found"):
        locate_run("r1", None, timeout=1.0, cwd=str(deep))
    kdb.init_db(tmp_path / kdb.DB_DIR / kdb.DB_NAME)
    assert locate_run("r1", None, timeout=1.0, cwd=str(deep)).path == str(tmp_path / kdb.DB_DIR / kdb.DB_NAME)


def _break_portfolio_db(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.write_bytes(b"not a database " * 100)


def test_an_unreadable_portfolio_database_never_hides_a_project_run(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    ws.create(phases=SHORT_CHAIN)
    kdb.init_db(ws.root / kdb.DB_DIR / kdb.DB_NAME)  # the workspace is a project too
    conn = project_conn(ws.root)
    own = runs.create_run(conn, goal="own", project_dir=ws.root)
    conn.close()
    _break_portfolio_db(ws.portfolio_db)
    where = locate_run(own.id, None, timeout=1.0, cwd=str(ws.root))
    assert where.path == str(ws.root / kdb.DB_DIR / kdb.DB_NAME)
    assert where.skipped is not None and "not a usable kernel database" in where.skipped


def test_a_run_found_nowhere_names_the_skipped_portfolio_database(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, _ = ws.create(phases=SHORT_CHAIN)
    _break_portfolio_db(ws.portfolio_db)
    with pytest.raises(StorageError) as no_project:
        locate_run(parent.id, None, timeout=1.0, cwd=str(ws.root))
    assert "no .clavain/intercore.db found" in no_project.value.message
    assert "portfolio.db was skipped: " in no_project.value.message
    kdb.init_db(ws.root / kdb.DB_DIR / kdb.DB_NAME)
    with pytest.raises(NotFound) as not_there:
        locate_run(parent.id, None, timeout=1.0, cwd=str(ws.root))
    assert not_there.value.message.startswith(f"no run '{parent.id}' in ")
    assert "portfolio.db was skipped: " in not_there.value.message
