"""`ic sentinel`: once per interval, atomic across processes; reset, list, prune."""

from __future__ import annotations

import os
import sqlite3
import subprocess

import pytest
from pytest import MonkeyPatch

from tests.conftest import Project, ic_executable

NOW = 1_700_000_000


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setenv("IC_NOW", str(NOW))


def _fired_events(project: Project) -> int:
    conn = sqlite3.connect(project.db)
    try:
        row = conn.execute("SELECT count(*) FROM events WHERE type = 'sentinel.fired'").fetchone()
        return int(row[0])
    finally:
        conn.close()


def test_check_allows_then_throttles_for_the_interval(project: Project, monkeypatch: MonkeyPatch) -> None:
    first = project.ic("sentinel", "check", "nudge", "--interval=10m", "--json")
    assert first.code == 0, first.err
    assert first.json() == {
        "name": "nudge",
        "scope": "",
        "allowed": True,
        "last_fired": NOW,
        "next_allowed_at": NOW + 600,
    }
    monkeypatch.setenv("IC_NOW", str(NOW + 599))
    second = project.ic("sentinel", "check", "nudge", "--interval", "10m", "--json")
    assert second.code == 1
    assert second.json()["allowed"] is False
    assert second.json()["last_fired"] == NOW
    throttled_text = project.ic("sentinel", "check", "nudge", "--interval=10m")
    assert (throttled_text.code, throttled_text.out.split()[0]) == (1, "throttled")
    monkeypatch.setenv("IC_NOW", str(NOW + 600))
    third = project.ic("sentinel", "check", "nudge", "--interval=10m")
    assert third.code == 0
    assert third.out.startswith("allowed")
    assert _fired_events(project) == 2  # a throttled check writes nothing


def test_scopes_are_independent(project: Project) -> None:
    assert project.ic("sentinel", "check", "s", "run-a", "--interval=1h").code == 0
    assert project.ic("sentinel", "check", "s", "run-b", "--interval=1h").code == 0
    assert project.ic("sentinel", "check", "s", "run-a", "--interval=1h").code == 1
    assert project.ic("sentinel", "check", "s", "--interval=1h").code == 0


def test_zero_interval_always_fires(project: Project) -> None:
    codes = [project.ic("sentinel", "check", "tick", "--interval=0").code for _ in range(3)]
    assert codes == [0, 0, 0]
    assert _fired_events(project) == 3


def test_reset_allows_the_next_check_and_unknown_is_exit_1(project: Project) -> None:
    project.ic("sentinel", "check", "s", "x", "--interval=1h")
    reset = project.ic("sentinel", "reset", "s", "x", "--json")
    assert reset.code == 0
    assert reset.json() == {"name": "s", "scope": "x", "last_fired": NOW}
    assert project.ic("sentinel", "check", "s", "x", "--interval=1h").code == 0
    missing = project.ic("sentinel", "reset", "never")
    assert missing.code == 1
    assert "no sentinel 'never'" in missing.err


def test_list_and_prune(project: Project, monkeypatch: MonkeyPatch) -> None:
    project.ic("sentinel", "check", "old", "--interval=1s")
    monkeypatch.setenv("IC_NOW", str(NOW + 7200))
    project.ic("sentinel", "check", "new", "scope1", "--interval=1s")
    lines = [line.split("\t") for line in project.ic("sentinel", "list").out.splitlines()]
    assert lines == [
        ["name", "scope", "last_fired"],
        ["old", "", str(NOW)],
        ["new", "scope1", str(NOW + 7200)],
    ]
    pruned = project.ic("sentinel", "prune", "--older-than=1h", "--json")
    assert pruned.json() == {"pruned": 1}
    assert [s["name"] for s in project.ic("sentinel", "list", "--json").json_lines()] == ["new"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sentinel", "check", "s"], "--interval"),
        (["sentinel", "check", "s", "--interval=often"], "not a duration"),
        (["sentinel", "check", "s", "--interval=-5s"], "non-negative"),
        (["sentinel", "check", "a\nb", "--interval=1s"], "control characters"),
        (["sentinel", "prune"], "--older-than"),
        (["sentinel", "reset"], "required"),
    ],
)
def test_bad_arguments_exit_3(project: Project, args: list[str], message: str) -> None:
    result = project.ic(*args)
    assert result.code == 3, result.err
    assert message in result.err
    assert result.err.count("\n") == 1


def test_concurrent_checks_let_exactly_one_process_through(project: Project) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("IC_NOW")  # real time: the processes race on the wall clock
    procs = [
        subprocess.Popen(
            [*ic_executable(), "sentinel", "check", "deploy", "--interval=1h"],
            cwd=project.dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(12)
    ]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    for proc in procs:
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [1] * 11, results
    assert all(err == "" for _, err in results)
    assert _fired_events(project) == 1
