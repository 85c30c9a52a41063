"""What the supervision guarantees when things go wrong: a killed supervisor, processes that leave
the agent's group, an interrupted `kill`, a spawner that dies before recording, a database that
vanishes or stays locked. Real processes throughout; /proc says what is alive.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator

import pytest

from kernel import clock
from kernel.db import write_tx
from kernel.dispatch import procs, records, spawn
from tests.conftest import Project, ic_executable
from tests.fixtures.dispatching import (
    agent,
    alive,
    end_leftovers,
    eventually,
    group_processes,
    process_info,
    read_pid,
    settled,
    spawn_agent,
    stored_row,
)


@pytest.fixture
def proj(project: Project) -> Iterator[Project]:
    (project.dir / "prompt.md").write_text("Survive the chaos.\n")
    yield project
    end_leftovers(project, *(int(p.read_text()) for p in project.dir.glob("*.pid") if p.read_text()))


def live_members(pgid: int) -> list[int]:
    return [pid for pid, state in group_processes(pgid) if state not in ("Z", "X")]


def test_supervisor_killed_with_sigkill_its_watchdog_ends_the_group_and_fails_the_dispatch(
    proj: Project,
) -> None:
    grandchild = proj.dir / "grandchild.pid"
    spawned = spawn_agent(proj, "--grandchild", str(grandchild), "--wait-for", str(proj.dir / "never"))
    gc_pid = read_pid(grandchild)
    info = process_info(proj, spawned["id"])
    assert info.supervisor_pid is not None
    os.kill(info.supervisor_pid, signal.SIGKILL)
    # Nobody polls: the watchdog alone notices, ends the agent's whole group and records why.
    failed = settled(proj, spawned["id"], lambda r: r.is_terminal, "the watchdog's verdict")
    assert (failed.status, failed.exit_code) == ("failed", None)
    assert failed.error is not None
    assert f"supervisor (pid {info.supervisor_pid}) died" in failed.error and "watchdog" in failed.error
    eventually(lambda: not live_members(spawned["pid"]), what="the agent's group to be gone")
    assert not alive(gc_pid)


def test_processes_that_leave_the_group_are_adopted_and_ended_when_the_agent_exits(proj: Project) -> None:
    daemon = proj.dir / "daemon.pid"
    release = proj.dir / "release"
    spawned = spawn_agent(proj, "--daemon", str(daemon), "--wait-for", str(release))
    escaped = read_pid(daemon)
    info = process_info(proj, spawned["id"])
    # It left the agent's group and session, and once its parent exits the supervisor adopts it.
    stat = eventually(
        lambda: s if (s := procs.stat(escaped)) and s.ppid == info.supervisor_pid else None,
        what="the supervisor to adopt the escaped process",
    )
    assert stat.pgrp == stat.pid != spawned["pid"]
    release.touch()
    done = settled(proj, spawned["id"], lambda r: r.is_terminal, "the result")
    assert (done.status, done.exit_code) == ("completed", 0)
    eventually(lambda: not alive(escaped), what="the escaped process to be ended")


def test_a_kill_interrupted_in_its_grace_period_is_finished_by_the_supervisor(proj: Project) -> None:
    pidfile = proj.dir / "agent.pid"  # written once the agent ignores TERM: kill only after that
    never = proj.dir / "never"
    spawned = spawn_agent(proj, "--ignore-term", "--pidfile", str(pidfile), "--wait-for", str(never))
    assert read_pid(pidfile) == spawned["pid"]
    killer = subprocess.Popen(
        [*ic_executable(), "dispatch", "kill", spawned["id"], "--grace=10m"],
        cwd=proj.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        settled(proj, spawned["id"], lambda r: r.status == "cancelled", "the cancellation")
        # No `alive` check here: the supervisor re-reads its row every 2 s and may already be ending
        # the group. That TERM was ignored is shown by the exit status below (-KILL, not -TERM).
        killer.send_signal(signal.SIGKILL)
    finally:
        killer.wait()
    # The record says cancelled, so the supervisor ends the agent itself.
    final = settled(proj, spawned["id"], lambda r: r.exit_code is not None, "the exit code")
    assert (final.status, final.exit_code) == ("cancelled", -signal.SIGKILL)
    assert not live_members(spawned["pid"])


def start_supervisor_by_hand(proj: Project, *agent_args: str) -> tuple[str, subprocess.Popen[bytes]]:
    """A `spawned` row and its supervisor, as `spawn` starts them, but with no spawner behind it:
    the supervisor's stdin is closed right after the launch spec, as when the spawner dies."""
    dispatch_id = clock.new_id()
    output = proj.dir / f"{dispatch_id}.log"
    conn = proj.connect()
    try:
        with write_tx(conn):
            records.insert(
                conn, dispatch_id=dispatch_id, scope_id=None, project_dir=str(proj.dir), agent_type="codex",
                name=None, model=None, prompt_file=None, output_file=str(output), command=None,
                timeout_s=None,
            )  # fmt: skip
    finally:
        conn.close()
    spec: dict[str, object] = {
        "argv": agent(*agent_args),
        "cwd": str(proj.dir),
        "output": str(output),
        "env": {},
    }
    proc = spawn._start_supervisor(proj.db, dispatch_id, proj.dir / f"{dispatch_id}.supervisor.log", spec)
    return dispatch_id, proc


def test_a_spawner_that_dies_before_recording_leaves_it_to_the_supervisor(proj: Project) -> None:
    dispatch_id, supervisor = start_supervisor_by_hand(proj, "--exit", "5")
    assert supervisor.stdin is not None
    supervisor.stdin.close()  # the spawner is gone
    try:
        final = settled(proj, dispatch_id, lambda r: r.exit_code is not None, "the result")
    finally:
        supervisor.wait(timeout=60)
    assert (final.status, final.exit_code) == ("failed", 5)
    assert final.pid is not None and final.started_at is not None  # it recorded `running` itself


def test_a_dispatch_cancelled_before_its_agent_ran_gets_its_agent_ended(proj: Project) -> None:
    dispatch_id, supervisor = start_supervisor_by_hand(proj, "--wait-for", str(proj.dir / "never"))
    conn = proj.connect()
    try:
        records.finish(conn, dispatch_id, "cancelled", error="cancelled by request")
    finally:
        conn.close()
    assert supervisor.stdin is not None
    supervisor.stdin.close()
    try:
        final = settled(proj, dispatch_id, lambda r: r.exit_code is not None, "the agent's end")
    finally:
        supervisor.wait(timeout=60)
    assert (final.status, final.error, final.pid) == ("cancelled", "cancelled by request", None)
    assert final.exit_code == -signal.SIGTERM


def test_a_database_removed_under_a_running_dispatch_leaves_no_process_behind(proj: Project) -> None:
    release = proj.dir / "release"
    grandchild = proj.dir / "grandchild.pid"
    spawned = spawn_agent(proj, "--grandchild", str(grandchild), "--wait-for", str(release))
    gc_pid = read_pid(grandchild)
    info = process_info(proj, spawned["id"])
    assert info.supervisor_pid is not None
    for path in proj.db.parent.glob("intercore.db*"):
        path.unlink()
    release.touch()
    eventually(lambda: not alive(info.supervisor_pid or 0), what="the supervisor to finish")
    assert not alive(spawned["pid"]) and not alive(gc_pid)
    assert not live_members(spawned["pid"])


def test_a_result_waits_out_a_locked_database(proj: Project) -> None:
    release = proj.dir / "release"
    spawned = spawn_agent(proj, "--wait-for", str(release), "--exit", "7")
    blocker = sqlite3.connect(proj.db, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # hold the write lock across the agent's exit
        release.touch()
        eventually(lambda: not alive(spawned["pid"]), what="the agent to exit")
        time.sleep(1.0)
        assert stored_row(proj, spawned["id"]).status == "running"  # nothing could be written yet
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    final = settled(proj, spawned["id"], lambda r: r.is_terminal, "the result")
    assert (final.status, final.exit_code) == ("failed", 7)
