"""Gates: tiers, the default table, per-run rules, evidence, check/override/rules, and plugin checks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel import gates, runs, runtrack
from kernel.errors import Refused, UsageError
from kernel.phase import next_hop
from tests.conftest import Project
from tests.kernel.test_runs_cli import create, events_of, one_line_error, status


@pytest.fixture
def conn(project: Project) -> Iterator[sqlite3.Connection]:
    c = project.connect()
    yield c
    c.close()


# -- tiers and the default table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "disabled", "tier"),
    [(0, False, "hard"), (1, False, "hard"), (2, False, "soft"), (3, False, "soft"), (4, False, "none"),
     (9, False, "none"), (0, True, "none")],
)  # fmt: skip
def test_tier_for(priority: int, disabled: bool, tier: str) -> None:
    assert gates.tier_for(priority, disabled) == tier


def test_negative_priority_is_usage_error() -> None:
    with pytest.raises(UsageError):
        gates.tier_for(-1, False)


def test_default_table_covers_the_design() -> None:
    table = gates.DEFAULT_RULES
    for phase in ("brainstorm", "brainstorm-reviewed", "strategized", "planned", "reflect"):
        assert table[phase] == [{"check": "artifact_exists", "phase": phase}]
    assert table["executing"] == [{"check": "agents_complete"}]
    assert table["review"] == [{"check": "verdict_exists", "phase": "review"}]
    assert "polish" not in table and "done" not in table


def test_hard_gate_blocks_with_event_then_passes_with_evidence(project: Project, tmp_path: Path) -> None:
    run_id = create(project)
    blocked = project.ic("run", "advance", run_id)
    one_line_error(blocked, 1, "gate blocked brainstorm -> brainstorm-reviewed", "artifact_exists")
    block = events_of(project, run_id)[-1]
    assert (block["type"], block["from_state"], block["to_state"]) == (
        "block",
        "brainstorm",
        "brainstorm-reviewed",
    )
    condition = block["payload"]["gate"]["evidence"]["conditions"][0]
    assert set(condition) == {"check", "phase", "result", "count", "detail"}
    assert (condition["check"], condition["phase"], condition["result"], condition["count"]) == (
        "artifact_exists", "brainstorm", "fail", 0,
    )  # fmt: skip
    assert status(project, run_id)["phase"] == "brainstorm"

    notes = tmp_path / "ideas.md"
    notes.write_text("ideas")
    assert project.ic("run", "artifact", "add", run_id, f"--path={notes}").code == 0
    passed = project.ic("run", "advance", run_id, "--json")
    assert passed.code == 0, passed.err
    gate = passed.json()["gate"]
    assert (gate["result"], gate["tier"]) == ("pass", "hard")
    assert gate["evidence"]["conditions"][0]["count"] == 1
    advance = events_of(project, run_id)[-1]
    assert advance["type"] == "advance" and advance["payload"]["gate"] == gate


def test_soft_gate_records_failure_and_advances(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p")
    result = runs.advance(conn, run.id, priority=2)
    assert (result.to_phase, result.gate_result, result.gate_tier) == ("brainstorm-reviewed", "fail", "soft")
    assert result.evidence["conditions"][0]["result"] == "fail"


@pytest.mark.parametrize(("priority", "disabled"), [(4, False), (1, True)])
def test_no_gate_evaluates_nothing(conn: sqlite3.Connection, priority: int, disabled: bool) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p")
    result = runs.advance(conn, run.id, priority=priority, disable_gates=disabled)
    assert (result.gate_result, result.gate_tier, result.evidence) == ("none", "none", {"conditions": []})


def test_agents_complete_guards_leaving_executing(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", complexity=1)
    runs.advance(conn, run.id, disable_gates=True)  # -> planned
    runs.advance(conn, run.id, disable_gates=True)  # -> executing
    hop = next_hop(runs.get_run(conn, run.id), set())
    assert (hop.from_phase, hop.to_phase) == ("executing", "done")
    none_yet = gates.evaluate(conn, runs.get_run(conn, run.id), hop, priority=1, disable_gates=False)
    assert none_yet.passed and none_yet.evidence["conditions"][0]["detail"] == "no agents registered"
    a = runtrack.add_agent(conn, run.id, name="coder")
    b = runtrack.add_agent(conn, run.id, name="tester")
    runtrack.update_agent(conn, b.id, status="failed")
    with pytest.raises(Refused, match="agents_complete"):
        runs.advance(conn, run.id)
    result = gates.evaluate(conn, runs.get_run(conn, run.id), hop, priority=1, disable_gates=False)
    assert result.evidence["conditions"][0]["count"] == 2
    runtrack.update_agent(conn, a.id, status="completed")
    runtrack.update_agent(conn, b.id, status="completed")
    assert runs.advance(conn, run.id).to_phase == "done"


def test_verdict_exists_follows_the_latest_verdict(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", complexity=2)
    for _ in range(4):  # brainstorm-reviewed, planned, executing, review
        runs.advance(conn, run.id, disable_gates=True)
    assert runs.get_run(conn, run.id).phase == "review"
    with pytest.raises(Refused, match="no verdict recorded"):
        runs.advance(conn, run.id)
    runtrack.add_artifact(conn, run.id, path="r1.json", verdict="pass")
    runtrack.add_artifact(conn, run.id, path="r2.json", verdict="fail")
    with pytest.raises(Refused, match="latest verdict: fail"):
        runs.advance(conn, run.id)
    runtrack.add_artifact(conn, run.id, path="notes.md", phase="review")  # a plain file is no verdict
    runtrack.add_artifact(conn, run.id, path="r3.json", verdict="pass")
    result = runs.advance(conn, run.id)
    assert result.to_phase == "done"
    assert result.evidence["conditions"][0] == {
        "check": "verdict_exists", "phase": "review", "result": "pass", "count": 2,
        "detail": "latest verdict: pass",
    }  # fmt: skip


def test_per_run_rules_replace_the_default_table(conn: sqlite3.Connection) -> None:
    rules = {"b": ["artifact_exists"], "a": []}
    run = runs.create_run(conn, goal="g", project_dir="/p", phases=["a", "b", "c"], gate_rules=rules)
    assert run.gate_rules == {"b": [{"check": "artifact_exists"}], "a": []}
    assert runs.advance(conn, run.id).to_phase == "b"
    with pytest.raises(Refused, match=r"artifact_exists\(b\)"):
        runs.advance(conn, run.id)
    runtrack.add_artifact(conn, run.id, path="x")
    assert runs.advance(conn, run.id).to_phase == "c"


def test_default_run_with_empty_rules_has_no_gates(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", gate_rules={})
    assert runs.advance(conn, run.id).gate_result == "pass"


def test_kind_narrows_artifact_exists(conn: sqlite3.Connection) -> None:
    rules = {"a": [{"check": "artifact_exists", "kind": "plan"}]}
    run = runs.create_run(conn, goal="g", project_dir="/p", phases=["a", "b"], gate_rules=rules)
    runtrack.add_artifact(conn, run.id, path="x", kind="file")
    with pytest.raises(Refused, match="no plan artifact"):
        runs.advance(conn, run.id)
    runtrack.add_artifact(conn, run.id, path="plan.md", kind="plan")
    assert runs.advance(conn, run.id).status == "completed"


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"a": "artifact_exists"},
        {"a": [{"phase": "a"}]},
        {"a": [{"check": "nope"}]},
        {"a": [{"check": "artifact_exists", "phase": 3}]},
        {"a": [{"check": "artifact_exists", "extra": "x"}]},
        {"a": [{"check": "artifact_exists", "phase": "zzz"}]},
        {"zzz": []},
    ],
)
def test_validate_rules_refuses_bad_tables(bad: Any) -> None:
    with pytest.raises(UsageError):
        gates.validate_rules(bad, ["a", "b"])


# -- gate check, override, rules (CLI) ----------------------------------------------------------------


def test_gate_check_evaluates_the_hop_advance_would_take(project: Project) -> None:
    run_id = create(project, "--complexity=1")
    assert project.ic("run", "skip", run_id, "planned", "--reason=plan exists elsewhere").code == 0
    before = len(events_of(project, run_id))
    check = project.ic("gate", "check", run_id, "--json")
    assert check.code == 1
    body = check.json()
    assert set(body) == {
        "run_id",
        "from_phase",
        "to_phase",
        "skipped",
        "passed",
        "result",
        "tier",
        "evidence",
    }
    assert (body["from_phase"], body["to_phase"]) == ("brainstorm", "executing")
    assert body["skipped"] == ["brainstorm-reviewed", "strategized", "planned"]
    assert (body["passed"], body["result"], body["tier"]) == (False, "fail", "hard")
    assert len(events_of(project, run_id)) == before, "gate check writes nothing"
    soft = project.ic("gate", "check", run_id, "--priority=2", "--json")
    assert soft.code == 1 and soft.json()["tier"] == "soft"
    assert project.ic("gate", "check", run_id, "--priority=4").code == 0
    assert project.ic("run", "artifact", "add", run_id, "--path=idea.txt").code == 0
    ok = project.ic("gate", "check", run_id)
    assert ok.code == 0
    assert ok.out.splitlines()[0] == "pass\tbrainstorm -> executing\thard"
    assert ok.out.splitlines()[1].split("\t")[:4] == ["pass", "artifact_exists", "brainstorm", "1"]
    advanced = project.ic("run", "advance", run_id, "--json").json()
    assert (advanced["to_phase"], advanced["skipped"]) == ("executing", body["skipped"])


def test_gate_check_bad_inputs(project: Project) -> None:
    one_line_error(project.ic("gate", "check", "nosuchid"), 1, "nosuchid")
    one_line_error(project.ic("gate", "check"), 3)
    one_line_error(project.ic("gate"), 3)
    one_line_error(project.ic("gate", "check", "x", "--priority=high"), 3, "priority")
    run_id = create(project, '--phases=["a","b"]')
    assert project.ic("run", "advance", run_id, "--disable-gates").code == 0
    one_line_error(project.ic("gate", "check", run_id), 1, "completed")


def test_gate_override_advances_past_a_block(project: Project) -> None:
    run_id = create(project, "--auto-advance=false")
    result = project.ic("gate", "override", run_id, "--reason=reviewed by hand", "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert (body["to_phase"], body["overridden"], body["gate"]["result"]) == (
        "brainstorm-reviewed",
        True,
        "fail",
    )
    history = events_of(project, run_id)
    override = next(e for e in history if e["type"] == "override")
    assert (override["source"], override["reason"]) == ("gate", "reviewed by hand")
    assert override["payload"]["gate"]["evidence"]["conditions"][0]["check"] == "artifact_exists"
    assert history[-1]["type"] == "advance" and history[-1]["payload"]["override"] is True
    one_line_error(project.ic("gate", "override", run_id), 3, "--reason")
    one_line_error(project.ic("gate", "override", run_id, "--reason= "), 3, "reason")
    one_line_error(project.ic("gate", "override", "nosuchid", "--reason=x"), 1, "nosuchid")


def test_gate_rules_lists_default_and_run_rules(project: Project) -> None:
    default = project.ic("gate", "rules", "--json")
    assert default.code == 0
    rows = default.json_lines()
    assert {"phase": "executing", "check": "agents_complete", "params": {}, "source": "default"} in rows
    assert len(rows) == 7
    only = project.ic("gate", "rules", "--phase=review", "--json").json_lines()
    assert only == [
        {"phase": "review", "check": "verdict_exists", "params": {"phase": "review"}, "source": "default"}
    ]
    run_id = create(project, '--phases=["a","b"]', '--gates={"a":["agents_complete"]}', "--budget-enforce")
    mine = project.ic("gate", "rules", f"--run={run_id}", "--json").json_lines()
    assert mine == [
        {"phase": "a", "check": "agents_complete", "params": {}, "source": "run"},
        {"phase": "*", "check": "budget_not_exceeded", "params": {}, "source": "auto"},
    ]
    text = project.ic("gate", "rules", "--run", run_id, "--phase=a").out.splitlines()
    assert text[0].split("\t") == ["phase", "check", "params", "source"]
    assert text[1].split("\t") == ["a", "agents_complete", "-", "run"]
    one_line_error(project.ic("gate", "rules", f"--run={run_id}", "--phase=zzz"), 3, "not in run")
    one_line_error(project.ic("gate", "rules", "--run=nosuchid"), 1, "nosuchid")


# -- the table of checks ---------------------------------------------------------------------------------


def _condition(result: gates.GateResult, check: str) -> dict[str, Any]:
    return next(c for c in result.evidence["conditions"] if c["check"] == check)


def test_the_table_is_the_one_list_of_checks() -> None:
    assert set(gates.CHECKS) == {
        "artifact_exists", "agents_complete", "verdict_exists", "budget_not_exceeded", "children_at_phase",
        "upstreams_at_phase",
    }  # fmt: skip
    for name, load in gates.CHECKS.items():
        assert callable(load()), name
    with pytest.raises(UsageError, match="unknown check 'nope'; known checks: agents_complete, "):
        gates.validate_rules({"a": ["nope"]})


def test_a_stored_rule_naming_no_check_fails_closed(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", gate_rules={"brainstorm": ["artifact_exists"]})
    conn.execute(
        "UPDATE runs SET gate_rules = ? WHERE id = ?", ('{"brainstorm":[{"check":"renamed_check"}]}', run.id)
    )
    stored = runs.get_run(conn, run.id)
    result = gates.evaluate(conn, stored, next_hop(stored, set()), priority=1, disable_gates=False)
    assert _condition(result, "renamed_check") == {
        "check": "renamed_check", "phase": None, "result": "fail", "count": 0,
        "detail": "unknown check 'renamed_check'",
    }  # fmt: skip
    with pytest.raises(Refused, match="unknown check 'renamed_check'"):
        runs.advance(conn, run.id)


def test_checks_of_other_areas_load_when_a_run_needs_them(project: Project) -> None:
    """Plain runs never load the budget or portfolio code; `preload_checks` loads what a run needs
    (before `advance` takes the write lock), and the checks get the gate context."""
    probe = (
        "import sys\n"
        "from kernel import db as kdb, gates, runs\n"
        "from kernel.phase import next_hop\n"
        f"conn = kdb.open_db({str(project.db)!r})\n"
        "plain = runs.create_run(conn, goal='g', project_dir='/p')\n"
        "gates.preload_checks(plain)\n"
        "gates.evaluate(conn, plain, next_hop(plain, set()), priority=1, disable_gates=False)\n"
        "mods = ('kernel.budget', 'kernel.portfolio.gates')\n"
        "loaded = lambda: sorted(m for m in mods if m in sys.modules)\n"
        "print(loaded())\n"
        "run = runs.create_run(conn, goal='g', project_dir='/p', budget_enforce=True, token_budget=5)\n"
        "gates.preload_checks(run)\n"
        "print(loaded())\n"
        "result = gates.evaluate(conn, run, next_hop(run, set()), priority=1, disable_gates=False)\n"
        "print([c['detail'] for c in result.evidence['conditions'] if c['check'] == 'budget_not_exceeded'])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "['kernel.budget']", "['used 0 of 5 tokens']"]


def test_automatic_conditions_follow_the_kind_of_run(conn: sqlite3.Connection) -> None:
    plain = runs.create_run(conn, goal="g", project_dir="/p")
    assert gates.automatic_rules(plain, "x") == []
    budgeted = runs.create_run(conn, goal="g", project_dir="/p", budget_enforce=True, token_budget=10)
    assert gates.automatic_rules(budgeted, "x") == [{"check": "budget_not_exceeded"}]
    parent = runs.create_run(conn, goal="g", project_dir="")
    assert gates.automatic_rules(parent, "x") == [{"check": "children_at_phase", "phase": "x"}]
    child = runs.create_run(conn, goal="g", project_dir="/p", parent_run_id="abc")
    assert gates.automatic_rules(child, "x") == [{"check": "upstreams_at_phase", "phase": "x"}]
    # The condition is evaluated on a hard gate, never dropped.
    result = gates.evaluate(conn, budgeted, next_hop(budgeted, set()), priority=1, disable_gates=False)
    assert _condition(result, "budget_not_exceeded")["detail"] == "used 0 of 10 tokens"


@pytest.mark.parametrize("disabled", [False, True])
def test_the_advance_fast_path_agrees_with_tier_for(disabled: bool) -> None:
    for priority in range(10):
        assert runs.gates_apply(priority, disabled) == (gates.tier_for(priority, disabled) != "none")
