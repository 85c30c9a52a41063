"""Crashes and interruptions: kill -9 in the middle, Ctrl-C, and a second process on the same issue."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

import pytest

from kernel.dispatch import procs
from tests.orchestrator.conftest import Repo, runner_config


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while procs.is_alive(pid, None):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_kill_9_in_the_middle_then_resume(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2")
    repo.commit()
    repo.config(runner_config(stall="60s"))
    repo.scenario({"2": {"dev": [{"stall": 120, "marker": "dev2", "write": {"late.txt": "x"}}, {}]}})
    proc = repo.popen("run", "--milestone", "M1", "--quiet")
    agent = int(wait_for(repo.state / "dev2"))
    (repo.dir / ".orchestrator/worktrees/2/half-done.txt").write_text(
        "uncommitted edit of the interrupted attempt"
    )
    proc.kill()
    proc.communicate(timeout=30)
    (run,) = repo.runs_of("2")
    assert (run.status, run.phase) == ("active", "dev")
    assert [d.status for d in repo.dispatches(run.id)] == ["running"]
    assert procs.is_alive(agent, None)  # the orphaned agent outlived its orchestrator

    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "skipped", "2": "passed"}
    assert [r.id for r in repo.runs_of("2")] == [run.id]  # resumed, not duplicated
    assert len(repo.runs()) == 2
    assert sorted((d.name, d.status) for d in repo.dispatches(run.id)) == [
        ("2/dev/0/1", "failed"),
        ("2/dev/0/2", "completed"),
        ("2/review/0/1", "completed"),
    ]
    interrupted = next(d for d in repo.dispatches(run.id) if d.name == "2/dev/0/1")
    assert interrupted.error is not None
    assert "died without recording a result" in interrupted.error
    assert "the agent's processes were ended" in interrupted.error
    assert "adopted existing worktree" in result.out
    assert "discarded uncommitted changes of an interrupted attempt" in result.out
    assert "interrupted attempt 2/dev/0/1" in result.out
    assert wait_gone(agent)
    assert "half-done.txt" not in repo.git("ls-tree", "-r", "--name-only", "issue/2")
    assert [c["issue"] for c in repo.calls() if c["phase"] == "dev"] == ["1", "2", "2"]
    assert (repo.dir / ".orchestrator/logs/2/cycle-0/dev/attempt-2/result.json").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_agent_and_a_rerun_redoes_the_phase(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    repo.config(runner_config(stall="60s"))
    repo.scenario({"1": {"review": [{"stall": 120, "marker": "review"}, {}]}})
    proc = repo.popen("run", "--milestone", "M1")
    agent = int(wait_for(repo.state / "review"))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert wait_gone(agent, timeout=5)
    assert repo.outcomes() == {"1": "interrupted"}
    (run,) = repo.runs()
    assert (run.status, run.phase) == ("active", "review")
    assert [d.status for d in repo.dispatches(run.id) if d.name == "1/review/0/1"] == ["cancelled"]

    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "passed"}
    assert [c["phase"] for c in repo.calls()] == ["dev", "review", "review"]
    assert len(repo.runs()) == 1


def test_an_issue_held_by_another_process_is_busy(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    locks = repo.dir / ".orchestrator/logs/.locks"
    locks.mkdir(parents=True)
    fd = os.open(locks / "1.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = repo.orch("run", "--milestone", "M1")
    finally:
        os.close(fd)
    assert result.code == 1
    assert repo.outcomes() == {"1": "busy"}
    assert repo.calls() == [] and repo.runs() == []
