"""Bigend sees the loop live: `bigend --once --json --root <repo>` while an issue is in its fix phase."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

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
    assert run["phases"] == ["dev", "review", "fix", "done"]
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
