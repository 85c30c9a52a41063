"""Crashes and interruptions: kill -9 in the middle, Ctrl-C, and a second process on the same issue."""

from __future__ import annotations

import re
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
    assert wait_gone(agent)  # its reaper saw the orchestrator go and ended the agent: no orphan

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
    assert "owner process" in interrupted.error and "died without recording a result" in interrupted.error
    assert "adopted existing worktree" in result.out
    assert "discarded uncommitted changes of an interrupted attempt" in result.out
    assert "interrupted attempt 2/dev/0/1" in result.out
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


@pytest.mark.slow
def test_a_second_ctrl_c_does_not_cut_the_clean_up_short(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    repo.config(runner_config(stall="60s"))  # kill_grace 0.5s: the agent ignores TERM, so clean-up waits
    repo.scenario({"1": {"dev": [{"stall": 120, "marker": "dev", "ignore_term": True}]}})
    proc = repo.popen("run", "--milestone", "M1", "--quiet")
    agent = int(wait_for(repo.state / "dev"))
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)  # inside the grace period the first signal started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "stopping: ending the agents and recording where each issue stood" in err
    assert wait_gone(agent)
    assert repo.outcomes() == {"1": "interrupted"}  # the summary was still written
    (run,) = repo.runs()
    assert [d.status for d in repo.dispatches(run.id)] == ["cancelled"]


@pytest.mark.slow
def test_a_third_ctrl_c_quits_at_once_and_the_next_run_cleans_up(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    repo.config(runner_config(stall="60s"))
    repo.scenario({"1": {"dev": [{"stall": 120, "marker": "dev", "ignore_term": True}, {}]}})
    proc = repo.popen("run", "--milestone", "M1", "--quiet")
    agent = int(wait_for(repo.state / "dev"))
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "quitting at once; the next run cleans up after this one" in err
    assert wait_gone(agent)  # its reaper ended it (TERM ignored: KILL after the grace) ...
    (run,) = repo.runs()
    assert [d.status for d in repo.dispatches(run.id)] == ["running"]  # ... but nobody recorded the end
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err  # the next run fails the attempt and redoes the phase
    (run,) = repo.runs()
    assert sorted((d.name, d.status) for d in repo.dispatches(run.id)) == [
        ("1/dev/0/1", "failed"),
        ("1/dev/0/2", "completed"),
        ("1/review/0/1", "completed"),
    ]


@pytest.mark.slow
def test_a_second_orchestrator_on_the_repository_refuses(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2", depends="1")
    repo.commit()
    repo.config(runner_config(stall="60s"))
    repo.scenario({"1": {"dev": [{"stall": 120, "marker": "dev1"}, {}]}})
    first = repo.popen("run", "--milestone", "M1", "--quiet")
    try:
        wait_for(repo.state / "dev1")
        second = repo.orch("run", "--milestone", "M1")
        narrowed = repo.orch("run", "--milestone", "M1", "--issue", "2", "--config", "orchestrator.toml")
        inside = repo.orch("run", "--milestone", "M1", cwd=repo.dir / ".orchestrator/worktrees/1")
        plan = repo.orch("run", "--milestone", "M1", "--dry-run")
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    for refused in (second, narrowed, inside):
        assert refused.code == 1, refused.err
        assert re.fullmatch(
            rf"orchestrator: another orchestrator is already running in {re.escape(str(repo.dir))} "
            rf"\(pid {first.pid}, milestone M1, since \d\d:\d\d:\d\d\); wait for it to finish; "
            rf"or stop it: kill -INT {first.pid}\n",
            refused.err,
        ), refused.err
    assert [c["issue"] for c in repo.calls()] == ["1"]  # nobody else started an agent ...
    assert len(repo.runs()) == 1  # ... or a run
    assert repo.outcomes() == {"1": "interrupted", "2": "interrupted"}  # the first run's summary
    assert plan.code == 0
    running = f"note: an orchestrator is running in this repository now (pid {first.pid}, milestone M1"
    assert running in plan.err
    assert "\t1\t" in plan.out and "resume at dev" in plan.out
    # the lock died with its holder: the next run goes ahead and resumes
    again = repo.orch("run", "--milestone", "M1")
    assert again.code == 0, again.err
    assert repo.outcomes() == {"1": "passed", "2": "passed"}
