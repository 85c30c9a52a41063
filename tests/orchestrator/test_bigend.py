"""Bigend sees the loop live: `bigend --once --json --root <repo>` while an issue is in its fix phase."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.orchestrator.conftest import Repo, runner_config
from tests.orchestrator.test_resume import wait_for, wait_gone


def bigend_once(repo: Repo) -> dict[str, object]:
    found = shutil.which("bigend")
    argv = [found] if found else [sys.executable, "-m", "bigend"]
    proc = subprocess.run(
        [*argv, "--once", "--json", "--root", str(repo.dir)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    state: dict[str, object] = json.loads(proc.stdout)
    return state


@pytest.mark.slow
def test_bigend_shows_the_orchestrator_run_mid_loop(repo: Repo) -> None:
    repo.issue("42", title="Teach the parser tabs")
    repo.commit()
    repo.config(runner_config(stall="60s"))
    failing = {"verdict": {"status": "fail", "findings": [{"message": "tabs still break"}]}}
    repo.scenario({"42": {"review": [failing], "fix": [{"stall": 120, "marker": "fixing"}]}})
    proc = repo.popen("run", "--milestone", "M1", "--quiet")
    try:
        agent = int(wait_for(repo.state / "fixing"))
        state = bigend_once(repo)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert wait_gone(agent)
    projects = state["projects"]
    assert isinstance(projects, list)
    (project,) = [p for p in projects if p["path"] == str(repo.dir.resolve())]
    (run,) = project["runs"]
    assert run["goal"] == "42: Teach the parser tabs"
    assert (run["phase"], run["status"], run["unified"]) == ("fix", "active", "active")
    assert run["phases"] == ["queued", "dev", "review", "fix", "done"]
    assert run["tokens"]["input_tokens"] == 200  # dev + review so far
    dispatches = {d["name"]: d for d in project["dispatches"]}
    assert {n: d["status"] for n, d in dispatches.items()} == {
        "42/dev/0/1": "completed",
        "42/review/0/1": "completed",
        "42/fix/1/1": "running",
    }
    assert dispatches["42/fix/1/1"]["unified"] == "active"
    assert all(d["run_id"] == run["id"] for d in dispatches.values())
    kinds = [(e["kind"], e["to_state"]) for e in project["events"] if e["run_id"] == run["id"]]
    assert ("PhaseAdvance", "review") in kinds and ("PhaseAdvance", "fix") in kinds


@pytest.mark.slow
def test_bigend_shows_capped_blocked_and_failed_issues_with_a_reason_and_live_tokens(repo: Repo) -> None:
    repo.config(runner_config(stall="60s") + "[loop]\nmax_cycles = 0\n")
    repo.issue("c", title="Capped")
    repo.issue("f", title="Broken runner")
    repo.issue("b", depends="f", title="Waits for f")
    repo.issue("t", title="Thinking")
    repo.commit()
    failing = {"verdict": {"status": "fail", "findings": [{"message": "tabs still break"}]}}
    usage = {"input_tokens": 1234, "output_tokens": 56, "cache_tokens": 0}
    repo.scenario(
        {
            "c": {"review": [failing]},
            "f": {"dev": [{"exit": 3, "crash_line": "agent: out of disk"}]},
            "t": {"dev": [{"stall": 120, "early_usage": True, "usage": usage, "marker": "thinking"}]},
        }
    )
    proc = repo.popen("run", "--milestone", "M1", "--quiet")
    try:
        agent = int(wait_for(repo.state / "thinking"))
        state = wait_for_state(repo, lambda s: _dispatch(s, "t/dev/0/1")["input_tokens"] == 1234)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert wait_gone(agent)
    runs = {r["goal"].split(":")[0]: r for r in _project(state, repo)["runs"]}
    # capped and infrastructure-failed: errors, with the reason in the run's fail event
    assert (runs["c"]["status"], runs["c"]["unified"]) == ("failed", "error")
    assert (runs["f"]["status"], runs["f"]["unified"]) == ("failed", "error")
    reasons = {e["run_id"]: e["reason"] for e in _project(state, repo)["events"] if e["kind"] == "PhaseFail"}
    assert reasons[runs["c"]["id"]] == "capped: review still failing after 0 fix cycle(s) (1 finding(s))"
    assert reasons[runs["f"]["id"]].startswith(
        "failed: dev (cycle 0) failed as infrastructure: runner exit code 3"
    )
    assert _dispatch(state, "f/dev/0/1")["error"] == "runner exit code 3: agent: out of disk"
    # blocked by its dependency: waiting, shown as blocked with why
    assert (runs["b"]["status"], runs["b"]["unified"]) == ("active", "blocked")
    assert runs["b"]["blocked_reason"] == "dependency f did not pass (f failed)"
    # the running phase's tokens, before it ends
    thinking = _dispatch(state, "t/dev/0/1")
    assert (thinking["status"], thinking["input_tokens"], thinking["output_tokens"]) == ("running", 1234, 56)
    assert runs["t"]["tokens"]["input_tokens"] == 1234


def _project(state: dict[str, object], repo: Repo) -> dict[str, Any]:
    projects = state["projects"]
    assert isinstance(projects, list)
    (project,) = [p for p in projects if p["path"] == str(repo.dir.resolve())]
    return dict(project)


def _dispatch(state: dict[str, object], name: str) -> dict[str, Any]:
    projects = state["projects"]
    assert isinstance(projects, list)
    found = [d for p in projects for d in p["dispatches"] if d["name"] == name]
    return dict(found[0]) if found else {"input_tokens": None}


def wait_for_state(
    repo: Repo, ready: Callable[[dict[str, object]], bool], timeout: float = 60
) -> dict[str, object]:
    """`bigend --once --json` until `ready` holds (the live token write lands within a second)."""
    deadline = time.monotonic() + timeout
    while True:
        state = bigend_once(repo)
        if ready(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.2)
