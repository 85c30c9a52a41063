"""A child project database replaced under the relay (restored from a backup, re-created, deleted).

The relay must never silently skip the events a replacement writes at ids it has already passed: it
stops relaying that project, says so on every run, and resumes only once an operator resets the
cursor with `ic portfolio cursor reset`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kernel import db as kdb
from kernel import queries as q
from kernel import runs
from kernel.model import Run
from tests.conftest import ic_executable
from tests.kernel.test_portfolio_support import (
    SHORT_CHAIN,
    Workspace,
    make_workspace,
    one_line_error,
    project_conn,
    relayed,
)


def _db(project: Path) -> Path:
    return project / ".clavain" / "intercore.db"


def _bounce(project: Path, run_id: str, times: int = 1) -> None:
    """Advance and roll back the child `times` times (two relayable events each)."""
    conn = project_conn(project)
    try:
        for _ in range(times):
            runs.advance(conn, run_id)
            runs.rollback(conn, run_id, "plan")
    finally:
        conn.close()


def _restore(backup: Path, project: Path) -> None:
    """Put a copy of the project database back, as an operator restoring a backup would."""
    for suffix in ("-wal", "-shm"):
        Path(f"{_db(project)}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, _db(project))


def _backup(project: Path, target: Path) -> Path:
    conn = project_conn(project)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    shutil.copyfile(_db(project), target)
    return target


def _relayed_from(ws: Workspace, parent: Run, child: Run) -> list[int]:
    conn = ws.portfolio_conn()
    try:
        return [
            (e.payload or {})["child_event_id"]
            for e in relayed(conn, parent.id)
            if e.run_id == child.id and e.type != "upstream_changed"
        ]
    finally:
        conn.close()


def test_a_restored_database_stops_relaying_it_until_the_cursor_is_reset(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    a, child = ws.project("a"), kids["a"]
    _bounce(a, child.id)
    assert ws.ic("portfolio", "relay", parent.id, "--once").code == 0
    backup = _backup(a, tmp_path / "a-backup.db")
    _bounce(a, child.id)
    assert ws.ic("portfolio", "relay", parent.id, "--once").code == 0
    before = _relayed_from(ws, parent, child)
    _restore(backup, a)

    first = ws.ic("portfolio", "relay", parent.id, "--once", "--json")
    assert first.code == 0, first.err
    (outcome,) = [c for c in first.json()["children"] if c["project"] == str(a)]
    assert "went back" in outcome["error"] and outcome["cursor"] < 0
    assert f"ic portfolio cursor reset {parent.id} --project={a}" in first.err
    # The restored database goes on and passes the old cursor: still nothing from it, still said.
    _bounce(a, child.id, times=3)
    again = ws.ic("portfolio", "relay", parent.id, "--once")
    assert again.code == 0 and "was replaced" in again.err and str(a) in again.err
    assert _relayed_from(ws, parent, child) == before
    listed = ws.ic("portfolio", "cursor", "list", parent.id)
    assert listed.code == 0, listed.err
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.out.splitlines()[1:]}
    assert rows[str(a)][2] == "replaced" and rows[str(ws.project("b"))][2] == "ok"

    newest = q.fetch_one(project_conn(a), q.EVENTS_SEQUENCE) or 0
    reset = ws.ic("portfolio", "cursor", "reset", parent.id, "--project=../a", "--json")
    assert reset.code == 0, reset.err
    assert reset.json()["last_event_id"] == newest  # default: from the newest event on
    _bounce(a, child.id)
    resumed = ws.ic("portfolio", "relay", parent.id, "--once")
    assert (resumed.code, resumed.err) == (0, "")
    assert _relayed_from(ws, parent, child) == [*before, newest + 1, newest + 2]


def test_a_deleted_then_recreated_project_is_reported_not_relayed(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    a = ws.project("a")
    _bounce(a, kids["a"].id)
    assert ws.ic("portfolio", "relay", parent.id, "--once").code == 0
    shutil.rmtree(a / ".clavain")
    gone = ws.ic("portfolio", "relay", parent.id, "--once")
    assert gone.code == 0 and "project database is missing" in gone.err
    kdb.init_db(_db(a))  # a fresh, empty database where the child used to be
    fresh = ws.ic("portfolio", "relay", parent.id, "--once")
    assert fresh.code == 0 and "went back to 0" in fresh.err
    one_line_error(
        ws.ic("portfolio", "cursor", "reset", parent.id, "--project=../a"), 1, "does not hold child run"
    )


def test_cursor_reset_bad_input(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, _ = ws.create(phases=SHORT_CHAIN)
    one_line_error(
        ws.ic("portfolio", "cursor", "reset", parent.id, "--project=../a", "--to=999"), 3, "outside", "0..1"
    )
    one_line_error(ws.ic("portfolio", "cursor", "reset", parent.id, "--project=../a", "--to=x"), 3, "whole")
    one_line_error(ws.ic("portfolio", "cursor", "reset", parent.id, "--project=/"), 3, "not a project of")
    one_line_error(ws.ic("portfolio", "cursor", "reset", parent.id), 3, "--project")
    one_line_error(ws.ic("portfolio", "cursor", "list", "nosuchid"), 1, "no portfolio run")
    listed = ws.ic("portfolio", "cursor", "list", parent.id, "--json").json_lines()
    assert [(c["project_dir"], c["last_event_id"]) for c in listed] == [
        (str(ws.project("a")), 0),
        (str(ws.project("b")), 0),
    ]


def _cursor_of(ws: Workspace, parent: Run, project: Path) -> int:
    conn = ws.portfolio_conn()
    try:
        found = q.fetch_one(conn, q.RELAY_CURSOR, parent.id, str(project))
    finally:
        conn.close()
    return 0 if found is None else found.last_event_id


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_running_relay_sees_a_backup_copied_over_the_open_database(tmp_path: Path) -> None:
    """`cp backup intercore.db` keeps the inode: the relay must notice through the new WAL index."""
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    a, child = ws.project("a"), kids["a"]
    backup = _backup(a, tmp_path / "a-backup.db")
    relay = subprocess.Popen(
        [*ic_executable(), "--db", str(ws.portfolio_db), "portfolio", "relay", parent.id, "--interval=50ms"],
        cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _bounce(a, child.id)
        _wait(lambda: len(_relayed_from(ws, parent, child)) == 2, "the relay did not relay the bounce")
        inode = _db(a).stat().st_ino
        _restore(backup, a)
        assert _db(a).stat().st_ino == inode  # replaced in place, as `cp` does
        _wait(lambda: _cursor_of(ws, parent, a) < 0, "the relay never noticed the restored database")
        assert relay.poll() is None  # it goes on with the other projects
    finally:
        relay.send_signal(signal.SIGTERM)
        _, err = relay.communicate(timeout=30)
    assert relay.returncode == 0 and err.count("was replaced") == 1, err  # said once, not every tick
    assert len(_relayed_from(ws, parent, child)) == 2  # nothing relayed twice from the copy
