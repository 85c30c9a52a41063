"""`ic portfolio relay`: what it writes, and how it survives bad child databases and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kernel import queries as q
from kernel import runs
from kernel.errors import Refused
from kernel.portfolio.deps import add_dep
from tests.conftest import hold_lock, ic_executable
from tests.kernel.test_portfolio_support import (
    SHORT_CHAIN,
    Workspace,
    advance_child,
    hold_write_lock,
    make_workspace,
    one_line_error,
    project_conn,
    relayed,
)


def _relay_once(ws: Workspace, portfolio_id: str) -> tuple[int, str, str]:
    result = ws.ic("portfolio", "relay", portfolio_id, "--once", "--json")
    return result.code, result.out, result.err


def test_relay_writes_each_child_event_once_with_its_copy_and_cursor(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    assert ws.ic("portfolio", "dep", "add", parent.id, "--upstream=../a", "--downstream=../b").code == 0
    a, b, c = (project_conn(ws.project(n)) for n in "abc")
    runs.advance(a, kids["a"].id)
    runs.advance(a, kids["a"].id)  # -> ship: advance + complete
    runs.rollback(a, kids["a"].id, "plan")
    try:
        runs.advance(b, kids["b"].id)  # a is back at plan: the gate blocks b
    except Refused:
        pass
    runs.cancel_run(b, kids["b"].id, reason="not needed")
    runs.fail_run(c, kids["c"].id, reason="broken")
    code, out, err = _relay_once(ws, parent.id)
    assert '"relayed":' in out
    assert (code, err) == (0, "")
    conn = ws.portfolio_conn()
    events = relayed(conn, parent.id)
    by_child: dict[str, list[str]] = {}
    for event in events:
        by_child.setdefault(event.run_id or "", []).append(event.type)
        assert event.source == "relay" and event.payload is not None
        assert event.payload["portfolio_id"] == parent.id and event.payload["child_event_id"] > 0
    assert by_child[kids["a"].id] == [
        "child_advanced",
        "child_advanced",
        "child_completed",
        "child_rolledback",
    ]
    assert by_child[kids["b"].id] == ["upstream_changed"] * 4 + ["child_blocked", "child_cancelled"]
    assert by_child[kids["c"].id] == ["child_blocked"]
    upstream = [e for e in events if e.type == "upstream_changed"]
    assert {e.payload["upstream"] for e in upstream if e.payload} == {str(ws.project("a"))}
    copies = {
        Path(r.project_dir).name: (r.phase, r.status) for r in q.fetch_all(conn, q.RUNS_CHILDREN, parent.id)
    }
    assert copies == {"a": ("plan", "active"), "b": ("plan", "cancelled"), "c": ("plan", "failed")}
    cursors = {
        Path(c.project_dir).name: c.last_event_id
        for c in q.fetch_all(conn, q.RELAY_CURSORS_OF_PORTFOLIO, parent.id)
    }
    assert cursors["a"] == a.execute("SELECT max(id) FROM events").fetchone()[0]
    assert _relay_once(ws, parent.id)[0] == 0
    assert len(relayed(conn, parent.id)) == len(events)  # nothing new: nothing written twice


def test_corrupt_locked_and_missing_children_are_reported_and_skipped(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b", "c", "d"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    for name in "abcd":
        advance_child(ws.project(name), kids[name].id)
    corrupt = ws.project("a") / ".clavain" / "intercore.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{corrupt}{suffix}").unlink(missing_ok=True)
    corrupt.write_bytes(b"garbage " * 512)
    (ws.project("c") / ".clavain" / "intercore.db").rename(ws.project("c") / "moved.db")
    holder = hold_lock(ws.project("b") / ".clavain" / "intercore.db", exclusive=True)
    try:
        result = ws.ic("--timeout=300ms", "portfolio", "relay", parent.id, "--once")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert len(lines) == 3 and all(line.startswith("ic: relay: ") and "skipped" in line for line in lines)
    for name in "abc":  # each line names its project once
        assert sum(line.count(str(ws.project(name))) for line in lines) == 1, lines
    assert any(str(ws.project("a")) in line and "not a usable" in line for line in lines)
    assert any(str(ws.project("b")) in line and "locked" in line for line in lines)
    assert any(str(ws.project("c")) in line and "missing" in line for line in lines)
    conn = ws.portfolio_conn()
    assert [(e.run_id, e.type) for e in relayed(conn, parent.id)] == [(kids["d"].id, "child_advanced")]
    again = ws.ic("portfolio", "relay", parent.id, "--once")  # b is unlocked now: it catches up
    assert again.code == 0
    assert {e.run_id for e in relayed(conn, parent.id)} == {kids["b"].id, kids["d"].id}


def test_a_relative_child_path_is_never_opened(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    conn = ws.portfolio_conn()
    conn.execute("UPDATE runs SET project_dir = 'b' WHERE id = ?", (kids["b"].id,))
    (ws.root / "b" / ".clavain").mkdir(
        parents=True
    )  # a relative path would resolve here: it must not be used
    runs.advance(project_conn(ws.project("a")), kids["a"].id)
    result = ws.ic("portfolio", "relay", parent.id, "--once", "--json")
    assert result.code == 0
    assert "'b' is not absolute" in result.err
    assert [e.run_id for e in relayed(conn, parent.id)] == [kids["a"].id]


def _start_relay(ws: Workspace, portfolio_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ic_executable(), "--db", str(ws.portfolio_db), "portfolio", "relay", portfolio_id, *extra],
        cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_relayed(ws: Workspace, portfolio_id: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    conn = ws.portfolio_conn()
    while len(relayed(conn, portfolio_id)) < count:
        assert time.monotonic() < deadline, "the relay did not relay in time"
        time.sleep(0.05)


def test_the_loop_relays_as_children_move_and_stops_cleanly_on_sigterm_and_sigint(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    for sig in (signal.SIGTERM, signal.SIGINT):
        relay = _start_relay(ws, parent.id, "--interval=50ms")
        name = "a" if sig == signal.SIGTERM else "b"
        runs.advance(project_conn(ws.project(name)), kids[name].id)
        _wait_for_relayed(ws, parent.id, 1 if sig == signal.SIGTERM else 2)
        relay.send_signal(sig)
        out, err = relay.communicate(timeout=20)
        assert relay.returncode == 0, err
        assert "Traceback" not in err and "relayed 1 event from 1 project" in out


def test_two_relays_racing_write_each_event_once(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    for name in "abc":
        conn = project_conn(ws.project(name))
        runs.advance(conn, kids[name].id)
        runs.rollback(conn, kids[name].id, "plan")
    procs = [_start_relay(ws, parent.id, "--once") for _ in range(3)]
    for proc in procs:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    events = relayed(ws.portfolio_conn(), parent.id)
    keys = [(e.run_id, (e.payload or {})["child_event_id"]) for e in events]
    assert len(keys) == 6 and len(set(keys)) == 6
    assert os.path.exists(ws.portfolio_db)


def _wait_until_opened(pid: int, db: Path, timeout: float = 30) -> None:
    """Wait until process `pid` has `db` open (it is then inside a read of that child)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            targets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            targets = set()
        if str(db) in targets:
            return
        assert time.monotonic() < deadline, "the relay never opened the child database"
        time.sleep(0.01)


@pytest.mark.parametrize("mode", ["--once", "--interval=50ms"])
def test_sigterm_during_a_tick_ends_it_between_children_with_exit_0(tmp_path: Path, mode: str) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    for name in "abc":
        advance_child(ws.project(name), kids[name].id)
    first = ws.project("a") / ".clavain" / "intercore.db"  # children are visited in path order
    holder = hold_lock(first, exclusive=True)  # the tick waits on a's lock (up to 1 s) when the signal comes
    try:
        relay = _start_relay(ws, parent.id, mode)
        _wait_until_opened(relay.pid, first)
        relay.send_signal(signal.SIGTERM)
        _, err = relay.communicate(timeout=30)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    assert relay.returncode == 0, err
    assert "Traceback" not in err and "stopped by a signal after 1 project(s)" in err
    assert relayed(ws.portfolio_conn(), parent.id) == []  # b and c were not visited; a was locked


def test_an_interval_too_short_to_mean_anything_is_refused(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, _ = ws.create(phases=SHORT_CHAIN)
    for interval in ("0", "1ms"):
        result = ws.ic("portfolio", "relay", parent.id, f"--interval={interval}", timeout=20)
        one_line_error(result, 3, "10ms")


def test_undecodable_ids_and_paths_are_usage_errors(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, _ = ws.create(phases=SHORT_CHAIN)
    bad = "\udcff"  # what Python makes of an argv byte 0xff
    for args in (
        ("portfolio", "status", bad),
        ("portfolio", "order", bad),
        ("portfolio", "relay", bad, "--once"),
        ("portfolio", "cursor", "list", bad),
        ("portfolio", "dep", "list", bad),
    ):
        one_line_error(ws.ic(*args), 3, "not valid UTF-8")
    one_line_error(
        ws.ic("portfolio", "dep", "add", parent.id, f"--upstream={bad}", "--downstream=../b"), 3, "UTF-8"
    )


def test_relayed_payloads_are_the_canonical_json_of_the_stream(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ('q"uote', "ünï"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    conn = ws.portfolio_conn()
    add_dep(conn, parent.id, str(ws.project('q"uote')), str(ws.project("ünï")))
    advance_child(ws.project('q"uote'), kids['q"uote'].id)
    assert ws.ic("portfolio", "relay", parent.id, "--once").code == 0
    rows = conn.execute("SELECT type, payload FROM events WHERE source = 'relay' ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["child_advanced", "upstream_changed"]
    for _, raw in rows:
        assert raw == json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True)  # as events.record
    child, upstream = (json.loads(r[1]) for r in rows)
    assert child == {
        "child_event_id": child["child_event_id"], "child_event_type": "advance",
        "portfolio_id": parent.id, "project": str(ws.project('q"uote')),
    }  # fmt: skip
    assert upstream["project"] == str(ws.project("ünï")) and upstream["upstream"] == child["project"]


def test_a_locked_portfolio_database_is_reported_once_and_the_loop_catches_up(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    advance_child(ws.project("a"), kids["a"].id)
    holder = hold_write_lock(ws.portfolio_db)
    try:
        relay = _start_relay(ws, parent.id, "--interval=50ms", "--timeout=100ms")
        time.sleep(2)  # many ticks, each failing on the portfolio's write lock
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    _wait_for_relayed(ws, parent.id, 1)
    relay.send_signal(signal.SIGTERM)
    out, err = relay.communicate(timeout=30)
    assert relay.returncode == 0, err
    assert err.count("database is locked") == 1 and "retrying" in err, err
    assert "relayed 1 event from 1 project" in out
