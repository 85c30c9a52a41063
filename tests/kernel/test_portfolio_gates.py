"""Portfolio gates: `children_at_phase` on the parent, `upstreams_at_phase` on children.

Both read the children's own project databases at evaluation time, so these tests never run the relay:
a passing gate proves the fresh data was read (the portfolio copies stay at the first phase).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel import runs
from kernel.errors import Refused
from kernel.gates import evaluate
from kernel.phase import next_hop
from tests.kernel.test_portfolio_support import SHORT_CHAIN, make_workspace, one_line_error, project_conn


def test_parent_is_blocked_while_a_child_is_behind_and_passes_after(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    runs.advance(project_conn(ws.project("a")), kids["a"].id)
    blocked = ws.ic("run", "advance", parent.id)  # routed to ./.clavain/portfolio.db
    one_line_error(blocked, 1, "children_at_phase(build)", "2 of 3 children behind", "at plan")
    for name in "bc":
        runs.advance(project_conn(ws.project(name)), kids[name].id)
    passed = ws.ic("run", "advance", parent.id, "--json")
    assert passed.code == 0, passed.err
    conditions = passed.json()["gate"]["evidence"]["conditions"]
    assert {k: conditions[0][k] for k in ("check", "phase", "result", "count")} == {
        "check": "children_at_phase",
        "phase": "build",
        "result": "pass",
        "count": 0,
    }


def test_cancelled_children_do_not_hold_the_parent_failed_ones_do(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    runs.advance(project_conn(ws.project("a")), kids["a"].id)
    runs.cancel_run(project_conn(ws.project("b")), kids["b"].id)
    runs.fail_run(project_conn(ws.project("c")), kids["c"].id, reason="broken build")
    conn = ws.portfolio_conn()
    fresh_parent = runs.get_run(conn, parent.id)
    gate = evaluate(conn, fresh_parent, next_hop(fresh_parent, set()), priority=1, disable_gates=False)
    assert gate.blocks
    (condition,) = gate.failed_conditions()
    assert condition["count"] == 1 and "c: failed at plan" in condition["detail"]


def test_child_is_blocked_by_its_upstream_until_it_moves(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    assert ws.ic("portfolio", "dep", "add", parent.id, "--upstream=../a", "--downstream=../b").code == 0
    b = ws.project("b")
    one_line_error(ws.ic("run", "advance", kids["b"].id, cwd=b), 1, "upstreams_at_phase(build)", "a: at plan")
    assert ws.ic("run", "advance", kids["c"].id, cwd=ws.project("c")).code == 0  # no upstream: free
    assert ws.ic("run", "advance", kids["a"].id, cwd=ws.project("a")).code == 0
    moved = ws.ic("run", "advance", kids["b"].id, "--json", cwd=b)
    assert moved.code == 0, moved.err
    assert moved.json()["to_phase"] == "build"


def test_gate_tiers_and_disable_gates_apply(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    assert ws.ic("portfolio", "dep", "add", parent.id, "--upstream=../a", "--downstream=../b").code == 0
    soft = ws.ic("run", "advance", kids["b"].id, "--priority=2", "--json", cwd=ws.project("b"))
    assert soft.code == 0, soft.err
    assert (soft.json()["gate"]["result"], soft.json()["gate"]["tier"]) == ("fail", "soft")
    none = ws.ic("run", "advance", parent.id, "--disable-gates", "--json")
    assert none.code == 0, none.err
    assert none.json()["gate"]["tier"] == "none"


def test_an_unreadable_child_fails_closed(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    for name in "ab":
        runs.advance(project_conn(ws.project(name)), kids[name].id)
    db = ws.project("b") / ".clavain" / "intercore.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 100)
    blocked = ws.ic("run", "advance", parent.id)
    one_line_error(blocked, 1, "children_at_phase(build)", "b: unreadable")


def test_upstream_gate_reads_the_dependency_table_at_evaluation(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    conn = project_conn(ws.project("b"))
    assert ws.ic("portfolio", "dep", "add", parent.id, "--upstream=../a", "--downstream=../b").code == 0
    with pytest.raises(Refused, match="upstreams_at_phase"):
        runs.advance(conn, kids["b"].id)
    assert ws.ic("portfolio", "dep", "remove", parent.id, "--upstream=../a", "--downstream=../b").code == 0
    assert runs.advance(conn, kids["b"].id).to_phase == "build"
