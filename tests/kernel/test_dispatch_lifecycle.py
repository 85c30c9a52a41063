"""Dispatch lifecycle with real processes: spawn through `ic`, supervision, exit codes, kill, timeouts.

The spawned program is tests/fixtures/fake_agent.py. Process facts are read from /proc: a group is
gone when no process (zombies included) has its pgid, a pid is reaped when /proc has no entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel import proctree
from kernel.dispatch import procs
from tests.conftest import Project
from tests.fixtures.dispatching import (
    agent,
    end_leftovers,
    eventually,
    group_processes,
    proc_state,
    process_info,
    read_pid,
    settled,
    spawn_agent,
    stored_row,
)


@pytest.fixture
def proj(project: Project) -> Iterator[Project]:
    (project.dir / "prompt.md").write_text("Fix the failing test.\n")
    yield project
    end_leftovers(project)


def spawn(proj: Project, *agent_args: str, flags: tuple[str, ...] = ()) -> dict[str, Any]:
    return spawn_agent(proj, *agent_args, flags=flags)


def dispatch_events(proj: Project, dispatch_id: str) -> list[tuple[str, str]]:
    conn = proj.connect()
    try:
        rows = conn.execute(
            "SELECT source, type FROM events WHERE dispatch_id = ? ORDER BY id", (dispatch_id,)
        ).fetchall()
    finally:
        conn.close()
    return [(r[0], r[1]) for r in rows]


def group_gone(pgid: int) -> bool:
    return not group_processes(pgid)


def test_completed_dispatch_records_exit_0_tokens_and_events(proj: Project) -> None:
    spawned = spawn(proj, "--emit", "codex_exec.jsonl", flags=("--name=dev", "--scope-id=r1"))
    assert set(spawned) == {"id", "pid"} and spawned["pid"] > 0
    waited = proj.ic("--json", "dispatch", "wait", spawned["id"])
    assert waited.code == 0, waited.err
    body = waited.json()
    assert (body["status"], body["exit_code"], body["error"]) == ("completed", 0, None)
    # codex's input_tokens (24763) include the cached 24448: fresh input is the difference
    assert (body["input_tokens"], body["output_tokens"], body["cache_tokens"]) == (24763 - 24448, 122, 24448)
    assert body["started_at"] is not None and body["ended_at"] >= body["started_at"]
    assert dispatch_events(proj, spawned["id"]) == [
        ("dispatch", "spawned"),
        ("dispatch", "running"),
        ("dispatch", "tokens"),
        ("dispatch", "completed"),
    ]
    eventually(lambda: proc_state(spawned["pid"]) is None, what="the agent to be reaped")


def test_failed_dispatch_records_the_real_exit_code(proj: Project) -> None:
    spawned = spawn(proj, "--exit", "3")
    waited = proj.ic("--json", "dispatch", "wait", spawned["id"])
    assert waited.code == 1
    body = waited.json()
    assert (body["status"], body["exit_code"]) == ("failed", 3)
    assert body["error"] == "exited with code 3"


def test_spawn_returns_while_the_agent_runs_and_the_supervisor_records_the_end_unwatched(
    proj: Project, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    pidfile = tmp_path / "agent.pid"
    spawned = spawn(proj, "--pidfile", str(pidfile), "--wait-for", str(release), "--exit", "0")
    # `ic` has exited; the agent is still running (it cannot end before `release` exists).
    assert read_pid(pidfile) == spawned["pid"]
    assert proc_state(spawned["pid"]) not in (None, "Z", "X")
    assert stored_row(proj, spawned["id"]).status == "running"
    release.touch()
    # Nobody runs `ic dispatch wait`: the supervisor alone records the result.
    done = settled(proj, spawned["id"], lambda r: r.is_terminal, "the result")
    assert (done.status, done.exit_code) == ("completed", 0)
    # No zombie: the supervisor reaped its child, so /proc has no entry for it at all.
    eventually(lambda: proc_state(spawned["pid"]) is None, what="the agent to be reaped")


def test_wait_timeout_records_timeout_and_ends_the_whole_group(proj: Project, tmp_path: Path) -> None:
    grandchild = tmp_path / "grandchild.pid"
    spawned = spawn(proj, "--grandchild", str(grandchild), "--wait-for", str(tmp_path / "never"))
    gc_pid = read_pid(grandchild)
    waited = proj.ic("--json", "dispatch", "wait", spawned["id"], "--timeout=0.5s")
    assert waited.code == 1
    assert waited.json()["status"] == "timeout"
    eventually(lambda: group_gone(spawned["pid"]), what="every process of the group gone")
    eventually(lambda: proc_state(gc_pid) is None, what="the grandchild to be gone and reaped")
    # The supervisor still adds the real exit code: the agent died of SIGTERM.
    final = settled(proj, spawned["id"], lambda r: r.exit_code is not None, "the exit code")
    assert (final.status, final.exit_code) == ("timeout", -signal.SIGTERM)


def test_kill_cancels_and_ends_group_and_grandchildren_even_when_term_is_ignored(
    proj: Project, tmp_path: Path
) -> None:
    grandchild = tmp_path / "grandchild.pid"
    spawned = spawn(proj, "--ignore-term", "--grandchild", str(grandchild), "--wait-for", str(tmp_path / "x"))
    gc_pid = read_pid(grandchild)
    assert {spawned["pid"], gc_pid} <= {pid for pid, _ in group_processes(spawned["pid"])}
    killed = proj.ic("--json", "dispatch", "kill", spawned["id"], "--grace=0.3s")
    assert killed.code == 0, killed.err
    assert killed.json()["status"] == "cancelled"
    # kill returns once no live member is left; the supervisor then reaps the corpses.
    assert all(state == "Z" for _, state in group_processes(spawned["pid"]))
    eventually(lambda: group_gone(spawned["pid"]), what="every process of the group reaped")
    final = settled(proj, spawned["id"], lambda r: r.exit_code is not None, "the exit code")
    assert (final.status, final.exit_code) == ("cancelled", -signal.SIGKILL)
    assert dispatch_events(proj, spawned["id"])[-1] == ("dispatch", "cancelled")
    again = proj.ic("dispatch", "kill", spawned["id"])
    assert again.code == 1 and "already ended" in again.err


def test_spawn_timeout_is_enforced_by_the_supervisor(proj: Project, tmp_path: Path) -> None:
    spawned = spawn(proj, "--wait-for", str(tmp_path / "never"), flags=("--timeout=0.5s",))
    final = settled(proj, spawned["id"], lambda r: r.exit_code is not None, "the timeout")
    assert final.status == "timeout"
    assert final.timeout_s == 0.5
    assert final.error == "timed out after 0.5s"
    eventually(lambda: group_gone(spawned["pid"]), what="group gone")


def test_processes_left_behind_by_a_finished_agent_are_ended(proj: Project, tmp_path: Path) -> None:
    grandchild = tmp_path / "grandchild.pid"
    spawned = spawn(proj, "--grandchild", str(grandchild), "--exit", "0")
    gc_pid = read_pid(grandchild)
    waited = proj.ic("--json", "dispatch", "wait", spawned["id"])
    assert waited.code == 0
    # The supervisor ended the orphan before recording the result, then reaped it as subreaper.
    eventually(lambda: proc_state(gc_pid) is None, what="the orphaned grandchild to be reaped")


def test_agent_gets_devnull_stdin_env_placeholders_and_a_private_output_file(
    proj: Project, tmp_path: Path
) -> None:
    env_file = tmp_path / "env.json"
    spawned = spawn(
        proj, "--env-to", str(env_file), "{prompt_file}", "{output}", "{id}", "{model}",
        flags=("--scope-id=run1", "--model=m-1"),
    )  # fmt: skip
    assert proj.ic("dispatch", "wait", spawned["id"]).code == 0
    seen = json.loads(env_file.read_text())
    output = proj.dir / ".clavain" / "dispatches" / spawned["id"] / "output.log"
    prompt = str(proj.dir / "prompt.md")
    assert seen["argv"][-4:] == [prompt, str(output), spawned["id"], "m-1"]
    assert seen["env"]["CLAVAIN_DISPATCH_ID"] == spawned["id"]
    assert seen["env"]["CLAVAIN_PROMPT_FILE"] == prompt
    assert seen["env"]["CLAVAIN_SCOPE_ID"] == "run1"
    assert seen["cwd"] == str(proj.dir)
    assert seen["stdin_is_devnull"] is True
    assert stat.S_IMODE(output.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def fake_program(bin_dir: Path, name: str, *fake_agent_args: str) -> None:
    """An executable `name` in `bin_dir` that runs the fake agent with these flags (its own args ignored)."""
    import shlex
    import sys

    from tests.fixtures.dispatching import FAKE_AGENT

    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    words = " ".join(shlex.quote(w) for w in (sys.executable, str(FAKE_AGENT), *fake_agent_args))
    script.write_text(f'#!/bin/sh\nexec {words} -- "$@"\n')
    script.chmod(0o755)


def test_a_default_codex_command_reads_a_200_kib_prompt_on_stdin(
    proj: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As an argument this prompt would fail the exec: Linux limits one argument to 128 KiB.
    prompt = ("Refactor the parser. " * 10_000)[: 200 * 1024].encode()
    (proj.dir / "big.md").write_bytes(prompt)
    seen_file = tmp_path / "stdin.json"
    fake_program(tmp_path / "bin", "codex", "--stdin-to", str(seen_file), "--emit", "codex_exec.jsonl")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    result = proj.ic("--json", "dispatch", "spawn", "--prompt-file=big.md", "--type=codex", "--model=o3")
    assert result.code == 0, result.err
    waited = proj.ic("--json", "dispatch", "wait", result.json()["id"])
    assert waited.code == 0, waited.err
    body = waited.json()
    assert body["command"] == ["codex", "exec", "--json", "--model", "o3", "-"]
    assert (body["input_tokens"], body["output_tokens"], body["cache_tokens"]) == (24763 - 24448, 122, 24448)
    seen = json.loads(seen_file.read_text())
    assert seen["argv"][-5:] == ["exec", "--json", "--model", "o3", "-"]
    assert (seen["size"], seen["sha256"]) == (len(prompt), hashlib.sha256(prompt).hexdigest())


def test_a_failure_the_agent_reports_fails_the_dispatch_even_with_exit_0(proj: Project) -> None:
    spawned = spawn(proj, "--emit", "codex_exec_failed.jsonl", flags=("--type=codex",))
    waited = proj.ic("--json", "dispatch", "wait", spawned["id"])
    assert waited.code == 1
    body = waited.json()
    assert (body["status"], body["exit_code"]) == ("failed", 0)
    assert body["error"] == "the agent reported: stream disconnected before completion"
    reconnected = spawn(proj, "--emit", "codex_reconnect.jsonl", flags=("--type=codex",))
    done = proj.ic("--json", "dispatch", "wait", reconnected["id"])
    assert done.code == 0, done.err  # a "Reconnecting... 1/5" error it recovered from is no failure
    assert (done.json()["status"], done.json()["error"]) == ("completed", None)


def test_command_from_dispatch_toml_gets_the_prompt_and_is_never_run_by_a_shell(
    proj: Project, tmp_path: Path
) -> None:
    env_file = tmp_path / "env.json"
    command = [*agent("--env-to", str(env_file)), "{prompt}", "$HOME; echo pwned"]
    (proj.dir / ".clavain" / "dispatch.toml").write_text(f"[codex]\ncommand = {json.dumps(command)}\n")
    result = proj.ic("--json", "dispatch", "spawn", "--prompt-file=prompt.md")
    assert result.code == 0, result.err
    assert proj.ic("dispatch", "wait", result.json()["id"]).code == 0
    argv = json.loads(env_file.read_text())["argv"]
    assert argv[-2:] == ["Fix the failing test.\n", "$HOME; echo pwned"]


def test_missing_program_fails_the_dispatch_with_the_reason(proj: Project) -> None:
    result = proj.ic("--json", "dispatch", "spawn", "--prompt-file=prompt.md", "--type=claude",
                     "--command=no-such-agent-program --flag")  # fmt: skip
    assert result.code == 2
    assert "no-such-agent-program" in result.err and result.err.count("\n") == 1
    listed = proj.ic("--json", "dispatch", "list").json_lines()
    assert len(listed) == 1
    assert listed[0]["status"] == "failed" and "not found" in listed[0]["error"]
    assert dispatch_events(proj, listed[0]["id"]) == [("dispatch", "spawned"), ("dispatch", "failed")]


def test_exec_failure_is_recorded_by_the_supervisor(proj: Project) -> None:
    # Executable bits on a file the kernel cannot run: exec fails inside the supervisor (ENOEXEC).
    script = proj.dir / "not-a-program"
    script.write_bytes(b"\x7fELF garbage that is no program")
    os.chmod(script, 0o755)
    result = proj.ic("dispatch", "spawn", "--prompt-file=prompt.md", "--", "./not-a-program")
    assert result.code == 2
    assert "cannot start" in result.err
    failed = proj.ic("--json", "dispatch", "list").json_lines()[0]
    assert failed["status"] == "failed" and "cannot start" in failed["error"]


def test_dead_supervisor_is_reconciled_by_poll_without_guessing_an_exit_code(
    proj: Project, tmp_path: Path
) -> None:
    spawned = spawn(proj, "--wait-for", str(tmp_path / "never"))
    info = process_info(proj, spawned["id"])
    assert info.supervisor_pid is not None and info.pid == spawned["pid"]
    # Supervisor and watchdog die together (`kill -9 -1`, the OOM killer): only `poll` is left.
    watchdog = [pid for pid in proctree.descendants(info.supervisor_pid) if pid != spawned["pid"]]
    assert len(watchdog) == 1
    os.kill(watchdog[0], signal.SIGKILL)
    os.kill(info.supervisor_pid, signal.SIGKILL)
    eventually(
        lambda: not procs.is_alive(info.supervisor_pid, info.supervisor_start), what="supervisor death"
    )
    assert stored_row(proj, spawned["id"]).status == "running"  # nothing recorded the end
    polled = proj.ic("--json", "dispatch", "poll", spawned["id"])
    assert polled.code == 0, polled.err
    body = polled.json()
    assert body["status"] == "failed" and body["exit_code"] is None
    assert "supervisor" in body["error"] and "died" in body["error"]
    # The unsupervised agent is not left running as an orphan.
    assert not procs.group_members(spawned["pid"])
