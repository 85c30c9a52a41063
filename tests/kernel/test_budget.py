"""Token accounting of runs and budgets: `ic run tokens`, `ic run budget`, crossing events, enforcement."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kernel.dispatch import api
from tests.conftest import Project, ic_executable
from tests.fixtures.dispatching import agent


@pytest.fixture
def proj(project: Project) -> Iterator[Project]:
    (project.dir / "prompt.md").write_text("Do the work.\n")
    yield project


def create_run(proj: Project, *flags: str) -> str:
    result = proj.ic("--json", "run", "create", "--goal=budgeted work", *flags)
    assert result.code == 0, result.err
    run_id: str = result.json()["id"]
    return run_id


def recorded_dispatch(proj: Project, run_id: str) -> str:
    """A finished dispatch of the run, recorded through the library API (no process needed)."""
    conn = proj.connect()
    try:
        row = api.begin_external(conn, project_dir=proj.dir, agent_type="codex", scope_id=run_id)
        api.finish(conn, row.id, status="completed", exit_code=0)
    finally:
        conn.close()
    return row.id


def set_tokens(proj: Project, dispatch_id: str, inp: int, out: int, cache: int = 0) -> None:
    result = proj.ic("dispatch", "tokens", dispatch_id, f"--in={inp}", f"--out={out}", f"--cache={cache}")
    assert result.code == 0, result.err


def budget_events(proj: Project, run_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    result = proj.ic("--json", "events", "tail", run_id, "--limit=1000")
    assert result.code == 0, result.err
    return [(e["source"], e["type"], e["payload"]) for e in result.json_lines() if e["source"] == "budget"]


def test_run_tokens_sums_the_runs_dispatches_only(proj: Project) -> None:
    run_id = create_run(proj)
    other = create_run(proj)
    first, second, foreign = (recorded_dispatch(proj, r) for r in (run_id, run_id, other))
    set_tokens(proj, first, 100, 20, 60)
    set_tokens(proj, second, 50, 5)
    set_tokens(proj, foreign, 9999, 9999)
    result = proj.ic("--json", "run", "tokens", run_id)
    assert result.code == 0, result.err
    assert result.json() == {"input_tokens": 150, "output_tokens": 25, "cache_hits": 60, "total_tokens": 175}
    assert proj.ic("run", "tokens", "nosuchrn").code == 1


def test_each_threshold_crossing_is_announced_once_and_budget_is_level_triggered(proj: Project) -> None:
    run_id = create_run(proj, "--token-budget=1000", "--budget-warn-pct=80")
    dispatch = recorded_dispatch(proj, run_id)
    set_tokens(proj, dispatch, 500, 200)  # 700: under the warning line
    assert budget_events(proj, run_id) == []
    assert proj.ic("run", "budget", run_id).code == 0
    set_tokens(proj, dispatch, 600, 200)  # 800: warning
    set_tokens(proj, dispatch, 650, 200)  # 850: still warning, no new event
    assert [t for _, t, _ in budget_events(proj, run_id)] == ["budget.warning"]
    set_tokens(proj, dispatch, 800, 200)  # 1000: exceeded
    set_tokens(proj, dispatch, 900, 300)  # 1200: still exceeded
    found = budget_events(proj, run_id)
    assert [t for _, t, _ in found] == ["budget.warning", "budget.exceeded"]
    assert found[1][2] == {"used": 1000, "token_budget": 1000, "budget_warn_pct": 80}
    for _ in range(2):  # level-triggered: exit 1 every time it is asked while over
        over = proj.ic("--json", "run", "budget", run_id)
        assert over.code == 1
        assert over.json()["level"] == "exceeded" and over.json()["used"] == 1200
    assert len(budget_events(proj, run_id)) == 2


def test_a_run_brought_back_under_announces_the_next_crossing_again(proj: Project) -> None:
    run_id = create_run(proj, "--token-budget=100")
    dispatch = recorded_dispatch(proj, run_id)
    set_tokens(proj, dispatch, 150, 0)  # straight over: both thresholds crossed, in order
    assert [t for _, t, _ in budget_events(proj, run_id)] == ["budget.warning", "budget.exceeded"]
    assert proj.ic("run", "set", run_id, "--token-budget=1000").code == 0
    under = proj.ic("--json", "run", "budget", run_id)
    assert under.code == 0 and under.json()["level"] == "ok"
    set_tokens(proj, dispatch, 1000, 0)
    assert [t for _, t, _ in budget_events(proj, run_id)] == [
        "budget.warning", "budget.exceeded", "budget.warning", "budget.exceeded",
    ]  # fmt: skip


def test_run_without_budget_is_never_over(proj: Project) -> None:
    run_id = create_run(proj)
    set_tokens(proj, recorded_dispatch(proj, run_id), 10**9, 10**9)
    result = proj.ic("--json", "run", "budget", run_id)
    assert result.code == 0
    assert result.json()["level"] == "none" and result.json()["used"] == 2 * 10**9
    assert budget_events(proj, run_id) == []


def test_enforced_budget_refuses_spawn_and_blocks_the_gate(proj: Project) -> None:
    run_id = create_run(proj, "--token-budget=100", "--budget-enforce", "--phases=[\"a\",\"b\",\"c\"]",
                        "--gates={}")  # fmt: skip
    assert proj.ic("run", "advance", run_id).code == 0  # under budget: the gate passes
    set_tokens(proj, recorded_dispatch(proj, run_id), 90, 10)
    before = len(proj.ic("--json", "dispatch", "list").json_lines())
    refused = proj.ic("dispatch", "spawn", "--prompt-file=prompt.md", f"--scope-id={run_id}", "--", *agent())
    assert refused.code == 1
    assert "budget" in refused.err and refused.err.count("\n") == 1
    assert len(proj.ic("--json", "dispatch", "list").json_lines()) == before  # a refusal writes nothing
    blocked = proj.ic("run", "advance", run_id)
    assert blocked.code == 1
    assert "budget_not_exceeded" in blocked.err
    checked = proj.ic("--json", "gate", "check", run_id)
    assert checked.code == 1
    conditions = checked.json()["evidence"]["conditions"]
    assert {"check": "budget_not_exceeded", "result": "fail", "count": 100}.items() <= conditions[0].items()


def test_unenforced_budget_only_warns(proj: Project) -> None:
    run_id = create_run(proj, "--token-budget=10")
    set_tokens(proj, recorded_dispatch(proj, run_id), 50, 50)
    spawned = proj.ic("--json", "dispatch", "spawn", "--prompt-file=prompt.md", f"--scope-id={run_id}",
                      "--", *agent())  # fmt: skip
    assert spawned.code == 0, spawned.err
    assert proj.ic("dispatch", "wait", spawned.json()["id"]).code == 0


def test_racing_token_writers_announce_each_crossing_once(proj: Project) -> None:
    run_id = create_run(proj, "--token-budget=800", "--budget-warn-pct=50")
    dispatches = [recorded_dispatch(proj, run_id) for _ in range(8)]
    writers = [
        subprocess.Popen(
            [*ic_executable(), "--timeout=60s", "dispatch", "tokens", d, "--in=100", "--out=0"],
            cwd=proj.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in dispatches
    ]
    outcomes = [(w.communicate(timeout=120)[1], w.returncode) for w in writers]
    assert [code for _, code in outcomes] == [0] * 8, outcomes
    assert [t for _, t, _ in budget_events(proj, run_id)] == ["budget.warning", "budget.exceeded"]
    assert proj.ic("run", "budget", run_id).code == 1
