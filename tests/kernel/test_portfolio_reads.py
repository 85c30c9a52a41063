"""Readers of portfolio data: the kernel's queries on a read-only connection, and the `--json` contracts."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from kernel import queries as q
from kernel import runs
from kernel.portfolio.contracts import (
    PortfolioCancelled,
    PortfolioCreated,
    PortfolioOrder,
    PortfolioRunStatus,
    PortfolioStatus,
    RelayTick,
)
from kernel.portfolio.deps import add_dep
from kernel.portfolio.rows import DispatchSlot, RelayCursor
from kernel.portfolio.slots import acquire_slot
from tests.kernel.test_portfolio_support import SHORT_CHAIN, advance_child, make_workspace, project_conn


def test_parents_children_deps_relay_events_cursors_and_slots_read_read_only(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN, max_dispatches=2)
    conn = ws.portfolio_conn()
    add_dep(conn, parent.id, str(ws.project("a")), str(ws.project("b")))
    advance_child(ws.project("a"), kids["a"].id)
    assert ws.ic("portfolio", "relay", parent.id, "--once").code == 0
    acquire_slot(kids["b"], "d1", kids["b"].project_dir, None)
    ro = sqlite3.connect(f"file:{ws.portfolio_db}?mode=ro", uri=True)
    try:
        assert [p.id for p in q.fetch_all(ro, q.RUNS_PORTFOLIO_PARENTS)] == [parent.id]
        assert [c.id for c in q.fetch_all(ro, q.RUNS_CHILDREN, parent.id)] == [kids["a"].id, kids["b"].id]
        assert [(d.upstream, d.downstream) for d in q.fetch_all(ro, q.DEPS_OF_PORTFOLIO, parent.id)] == [
            (str(ws.project("a")), str(ws.project("b")))
        ]
        events = q.fetch_all(ro, q.RELAY_EVENTS_OF_PORTFOLIO, 0, parent.id, 1000)
        assert [(e.run_id, e.type) for e in events] == [
            (kids["a"].id, "child_advanced"),
            (kids["b"].id, "upstream_changed"),
        ]
        assert q.fetch_all(ro, q.RELAY_EVENTS_OF_PORTFOLIO, events[-1].id, parent.id, 1000) == []
        assert {c.project_dir for c in q.fetch_all(ro, q.RELAY_CURSORS_OF_PORTFOLIO, parent.id)} == {
            str(ws.project("a")),
            str(ws.project("b")),
        }
        assert [s.dispatch_id for s in q.fetch_all(ro, q.SLOTS_OF_PORTFOLIO, parent.id)] == ["d1"]
    finally:
        ro.close()


def _valid(kind: type, body: Any) -> None:
    TypeAdapter(kind).validate_python(body, strict=False)
    assert set(body) == set(TypeAdapter(kind).json_schema()["properties"])


def test_json_outputs_match_their_contracts(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    created = ws.ic(
        "run", "create", "--projects=../a,../b", "--goal=contracts", "--max-dispatches=2", "--json"
    )
    _valid(PortfolioCreated, created.json())
    pid = created.json()["id"]
    _valid(PortfolioStatus, ws.ic("portfolio", "status", pid, "--json").json())
    _valid(PortfolioOrder, ws.ic("portfolio", "order", pid, "--json").json())
    _valid(RelayTick, ws.ic("portfolio", "relay", pid, "--once", "--json").json())
    for cursor in ws.ic("portfolio", "cursor", "list", pid, "--json").json_lines():
        _valid(RelayCursor, cursor)
    _valid(RelayCursor, ws.ic("portfolio", "cursor", "reset", pid, "--project=../a", "--json").json())
    children = {Path(c["project"]).name: c["id"] for c in created.json()["children"]}
    acquire_slot(runs.get_run(project_conn(ws.project("a")), children["a"]), "d1", str(ws.project("a")), None)
    (slot,) = ws.ic("portfolio", "slots", pid, "--json").json_lines()
    _valid(DispatchSlot, slot)
    _valid(PortfolioRunStatus, ws.ic("run", "status", pid, "--json").json())
    _valid(PortfolioCancelled, ws.ic("run", "cancel", pid, "--json").json())
