"""`ic run create --projects`, `ic run status|list|set|cancel` on portfolios, `ic portfolio dep|order|status`:
real `ic` processes on real databases in a temporary workspace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel import queries as q
from kernel import runs
from kernel.errors import Refused
from tests.conftest import default_sigint, ic_executable
from tests.kernel.test_portfolio_support import (
    SHORT_CHAIN,
    hold_write_lock,
    make_workspace,
    one_line_error,
    project_conn,
)


def test_create_makes_parent_and_children_in_every_database(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    result = ws.ic(
        "run", "create", "--projects=../a,../b,../c", "--goal=SDK v2", "--max-dispatches=2", "--json"
    )
    assert result.code == 0, result.err
    assert result.out.count("\n") == 1 and ", " not in result.out  # one compact JSON document
    body = result.json()
    assert set(body) >= {"id", "children"}
    assert body["portfolio_db"] == str(ws.portfolio_db)  # default: ./.clavain/portfolio.db
    assert [c["project"] for c in body["children"]] == [str(tmp_path / n) for n in "abc"]  # made absolute
    conn = ws.portfolio_conn()
    parent = q.fetch_one(conn, q.RUN_BY_ID, body["id"])
    assert parent is not None and parent.project_dir == "" and parent.max_dispatches == 2
    copies = q.fetch_all(conn, q.RUNS_CHILDREN, body["id"])
    assert {c.id for c in copies} == {c["id"] for c in body["children"]}
    for child in body["children"]:
        pconn = project_conn(child["project"])
        mirrored = runs.get_run(pconn, child["id"])  # same id in the project's own database
        assert mirrored.parent_run_id == body["id"] and mirrored.project_dir == child["project"]
        assert (mirrored.metadata or {})["portfolio_db"] == str(ws.portfolio_db)
        current = ws.ic("run", "current", cwd=Path(child["project"]))
        assert (current.code, current.out.strip()) == (0, child["id"])


def test_list_status_and_set_max_dispatches(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    created = ws.ic("run", "create", "--projects", f"{tmp_path}/a,{tmp_path}/b", "--goal", "two", "--json")
    assert created.code == 0, created.err
    pid = created.json()["id"]
    listed = ws.ic("run", "list", "--portfolio", "--json")
    assert listed.code == 0, listed.err
    assert [r["id"] for r in listed.json_lines()] == [pid]
    status = ws.ic("run", "status", pid, "--json")
    assert status.code == 0, status.err
    assert {c["project"] for c in status.json()["children"]} == {str(tmp_path / "a"), str(tmp_path / "b")}
    assert status.json()["id"] == pid
    (ws.root / "plan.md").write_text("plan")
    artifact = ws.ic("run", "artifact", "add", pid, "--path=plan.md", "--json")  # routed to the parent too
    assert artifact.code == 0 and artifact.json()["run_id"] == pid, artifact.err
    changed = ws.ic("run", "set", pid, "--max-dispatches=4", "--json")
    assert changed.code == 0, changed.err
    assert changed.json()["max_dispatches"] == 4
    child_id = created.json()["children"][0]["id"]
    refused = ws.ic("run", "set", child_id, "--max-dispatches=4", "--db", str(ws.portfolio_db))
    one_line_error(refused, 3, "portfolio runs only")


def test_set_max_dispatches_on_a_plain_run_is_a_usage_error(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a",))
    assert ws.ic("init", cwd=ws.project("a")).code == 0
    plain = ws.ic("run", "create", "--goal=solo", cwd=ws.project("a")).out.strip()
    one_line_error(ws.ic("run", "set", plain, "--max-dispatches=2", cwd=ws.project("a")), 3, "portfolio")


def test_bad_project_lists_are_usage_errors_and_write_nothing(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    one_line_error(ws.ic("run", "create", "--projects=../a", "--goal=x"), 3, "at least two")
    one_line_error(ws.ic("run", "create", "--projects=../a,../nope", "--goal=x"), 3, "does not exist")
    one_line_error(ws.ic("run", "create", "--projects=../a,../a/../a", "--goal=x"), 3, "twice")
    (tmp_path / "file").write_text("x")
    one_line_error(ws.ic("run", "create", "--projects=../a,../file", "--goal=x"), 3, "not a directory")
    one_line_error(
        ws.ic("run", "create", "--projects=../a,../b", "--project=../a", "--goal=x"), 3, "not both"
    )
    one_line_error(
        ws.ic("run", "create", "--projects=../a,../b", "--goal=x", "--max-dispatches=0"), 3, ">= 1"
    )
    one_line_error(ws.ic("run", "create", "--projects=../a,../b", "--goal=x", "--phases=[1]"), 3, "phases")
    assert not ws.portfolio_db.exists()  # nothing was created by the refused commands
    assert not (ws.project("a") / ".clavain").exists()


def test_unknown_or_wrong_portfolio_ids(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    one_line_error(ws.ic("portfolio", "status", "nosuchid"), 2, "no portfolio database")
    _, kids = ws.create()
    for args in (
        ("portfolio", "status", "nosuchid"),
        ("portfolio", "order", "nosuchid"),
        ("portfolio", "relay", "nosuchid", "--once"),
        ("portfolio", "dep", "list", "nosuchid"),
    ):
        one_line_error(ws.ic(*args), 1, "no portfolio run 'nosuchid'")
    one_line_error(ws.ic("portfolio", "order", kids["a"].id), 3, "not a portfolio run")


def test_dep_add_list_remove_normalise_paths_the_same_way(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, _ = ws.create()
    added = ws.ic("portfolio", "dep", "add", parent.id, "--upstream=../a", "--downstream", "../b/.", "--json")
    assert added.code == 0, added.err
    assert (added.json()["upstream"], added.json()["downstream"]) == (
        str(tmp_path / "a"),
        str(tmp_path / "b"),
    )
    listed = ws.ic("portfolio", "dep", "list", parent.id, "--json").json_lines()
    assert [(d["upstream"], d["downstream"]) for d in listed] == [(str(tmp_path / "a"), str(tmp_path / "b"))]
    removed = ws.ic(
        "portfolio", "dep", "remove", parent.id, f"--upstream={tmp_path}/a", f"--downstream={tmp_path}/b"
    )
    assert removed.code == 0, removed.err
    assert ws.ic("portfolio", "dep", "list", parent.id, "--json").json_lines() == []
    again = ws.ic("portfolio", "dep", "remove", parent.id, "--upstream=../a", "--downstream=../b")
    one_line_error(again, 1, "no dependency")
    stranger = ws.ic("portfolio", "dep", "add", parent.id, "--upstream=../a", f"--downstream={tmp_path}")
    one_line_error(stranger, 3, "is not a project of portfolio")


def test_self_edge_duplicate_and_cycle_are_refused_diamond_accepted(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b", "c", "d"))
    parent, _ = ws.create()

    def dep(up: str, down: str) -> object:
        return ws.ic("portfolio", "dep", "add", parent.id, f"--upstream=../{up}", f"--downstream=../{down}")

    one_line_error(dep("a", "a"), 3, "cannot depend on itself")  # type: ignore[arg-type]
    for up, down in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):  # a diamond
        assert dep(up, down).code == 0  # type: ignore[attr-defined]
    one_line_error(dep("a", "b"), 1, "already exists")  # type: ignore[arg-type]
    cycle = dep("d", "a")
    one_line_error(cycle, 2, "would close a cycle", f"{tmp_path}/d -> {tmp_path}/a")  # type: ignore[arg-type]
    order = ws.ic("portfolio", "order", parent.id, "--json").json()["order"]
    assert order == [str(tmp_path / n) for n in "abcd"]
    conn = ws.portfolio_conn()
    assert len(q.fetch_all(conn, q.DEPS_OF_PORTFOLIO, parent.id)) == 4  # refusals wrote nothing


def test_order_takes_the_smallest_ready_project_first(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b", "c", "d", "e"))
    parent, _ = ws.create()
    for up, down in (("d", "a"), ("e", "b"), ("c", "b")):
        assert (
            ws.ic("portfolio", "dep", "add", parent.id, f"--upstream=../{up}", f"--downstream=../{down}").code
            == 0
        )
    text = ws.ic("portfolio", "order", parent.id)
    assert text.code == 0, text.err
    assert text.out.split() == [str(tmp_path / n) for n in ("c", "d", "a", "e", "b")]


def test_portfolio_status_shows_ready_and_blocked_by(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    assert ws.ic("portfolio", "dep", "add", parent.id, "--upstream=../a", "--downstream=../b").code == 0
    rows = {
        Path(r["project"]).name: r
        for r in ws.ic("portfolio", "status", parent.id, "--json").json()["children"]
    }
    assert rows["a"]["ready"] is True and rows["a"]["blocked_by"] == []
    assert rows["b"]["ready"] is False and rows["b"]["blocked_by"] == [str(tmp_path / "a")]
    assert rows["b"]["next_phase"] == "build" and rows["c"]["ready"] is True
    runs.advance(project_conn(ws.project("a")), kids["a"].id)  # no relay: status reads the projects
    rows = {
        Path(r["project"]).name: r
        for r in ws.ic("portfolio", "status", parent.id, "--json").json()["children"]
    }
    assert rows["a"]["phase"] == "build" and rows["b"]["ready"] is True
    text = ws.ic("portfolio", "status", parent.id)
    assert text.out.splitlines()[0].split("\t")[:6] == ["project", "run", "phase", "status", "next", "ready"]


def test_cancel_parent_cancels_children_everywhere(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN)
    runs.cancel_run(project_conn(ws.project("c")), kids["c"].id, reason="dropped earlier")
    result = ws.ic("run", "cancel", parent.id, "--reason=scope cut", "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert body["status"] == "cancelled"
    assert {Path(p["project"]).name: p["cancelled"] for p in body["projects"]} == {
        "a": True,
        "b": True,
        "c": False,
    }
    conn = ws.portfolio_conn()
    assert all(c.status == "cancelled" for c in q.fetch_all(conn, q.RUNS_CHILDREN, parent.id))
    for name in "ab":
        assert runs.get_run(project_conn(ws.project(name)), kids[name].id).status == "cancelled"
        assert ws.ic("run", "current", cwd=ws.project(name)).code == 1
    cancel_events = [
        e for e in q.fetch_all(conn, q.EVENTS_OF_RUN_SINCE, kids["a"].id, 0, -1) if e.type == "cancel"
    ]
    assert [e.reason for e in cancel_events] == ["scope cut"]
    one_line_error(ws.ic("run", "cancel", parent.id), 1, "nothing to cancel")


def test_cancel_kills_running_child_dispatches(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN, max_dispatches=3)
    prompt = tmp_path / "prompt.md"
    prompt.write_text("work")
    spawned = ws.ic(
        "dispatch", "spawn", f"--prompt-file={prompt}", f"--scope-id={kids['a'].id}", "--command=sleep 60",
        "--json", cwd=ws.project("a"),
    )  # fmt: skip
    assert spawned.code == 0, spawned.err
    pid = spawned.json()["pid"]
    assert len(ws.portfolio_conn().execute("SELECT * FROM dispatch_slots").fetchall()) == 1
    slots = ws.ic("portfolio", "slots", parent.id)
    assert slots.code == 0, slots.err
    assert slots.out.splitlines()[1].split("\t")[::4] == [spawned.json()["id"], "yes"]  # dispatch .. live
    assert slots.out.splitlines()[-1] == "1 held (max_dispatches 3)"
    result = ws.ic("run", "cancel", parent.id, "--json")
    assert result.code == 0, result.err
    killed = {Path(p["project"]).name: p["killed"] for p in result.json()["projects"]}
    assert killed == {"a": [spawned.json()["id"]], "b": []}
    status = ws.ic("dispatch", "status", spawned.json()["id"], "--json", cwd=ws.project("a")).json()
    assert status["status"] == "cancelled"
    try:
        os.kill(pid, 0)
        alive = os.path.exists(f"/proc/{pid}") and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except ProcessLookupError:
        alive = False
    assert not alive
    assert ws.portfolio_conn().execute("SELECT count(*) FROM dispatch_slots").fetchone()[0] == 0
    assert ws.ic("portfolio", "slots", parent.id, "--json").out == ""  # JSON lines: none held


def test_parent_token_budget_counts_the_sum_over_children(tmp_path: Path) -> None:
    from kernel.dispatch import api
    from kernel.portfolio.slots import acquire_slot

    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN, token_budget=100, budget_enforce=True)
    for name, used in (("a", 60), ("b", 50)):
        conn = project_conn(ws.project(name))
        row = api.begin_external(
            conn, project_dir=ws.project(name), agent_type="codex", scope_id=kids[name].id
        )
        api.finish(conn, row.id, status="completed", exit_code=0, input_tokens=used - 10, output_tokens=10)
        conn.close()
    tokens = ws.ic("run", "tokens", parent.id, "--json")  # routed to ./.clavain/portfolio.db
    assert tokens.code == 0, tokens.err
    assert tokens.json()["total_tokens"] == 110
    budget = ws.ic("run", "budget", parent.id, "--json")
    assert budget.code == 1 and budget.json()["level"] == "exceeded"
    with pytest.raises(Refused, match="110 of its 100 token budget"):  # whichever child asks
        acquire_slot(kids["a"], "over-budget", kids["a"].project_dir, None)


def test_a_project_that_fails_mid_creation_leaves_nothing_active(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    seed = "collide"
    drawn = subprocess.run(  # the ids `ic` will draw under this seed: parent, child a, child b
        [sys.executable, "-c", "from kernel import clock; print(*(clock.new_id() for _ in range(3)))"],
        env={**os.environ, "IC_ID_SEED": seed}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    b_id = drawn.stdout.split()[2]
    assert ws.ic("init", cwd=ws.project("b")).code == 0
    squatter = ws.ic("run", "create", "--goal=squatter", cwd=ws.project("b"), env={"IC_ID_SEED": "other"})
    assert squatter.code == 0
    conn = project_conn(ws.project("b"))
    conn.execute("UPDATE runs SET id = ? WHERE id = ?", (b_id, squatter.out.strip()))  # b's child id is taken
    conn.close()
    result = ws.ic("run", "create", "--projects=../a,../b", "--goal=x", "--json", env={"IC_ID_SEED": seed})
    one_line_error(result, 1, f"a run with id '{b_id}' already exists")
    assert ws.ic("run", "current", cwd=ws.project("a")).code == 1  # a's mirrored child was cancelled again
    pconn = ws.portfolio_conn()
    statuses = {r.project_dir: r.status for r in q.fetch_all(pconn, q.RUNS_ALL)}
    assert set(statuses.values()) == {"cancelled"} and len(statuses) == 3


def test_gate_check_and_override_find_a_parent_without_db(tmp_path: Path) -> None:
    """From the workspace, a parent id reaches the portfolio database like `ic run` commands do."""
    ws = make_workspace(tmp_path, ("a", "b"))
    created = ws.ic("run", "create", "--projects", f"{tmp_path}/a,{tmp_path}/b", "--goal=g", "--json")
    assert created.code == 0, created.err
    pid = created.json()["id"]
    (ws.root / "idea.md").write_text("idea")
    assert ws.ic("run", "artifact", "add", pid, "--path=idea.md").code == 0
    check = ws.ic("gate", "check", pid, "--json")
    assert check.code == 1, check.err  # children are still at brainstorm: children_at_phase blocks
    failed = {c["check"] for c in check.json()["evidence"]["conditions"] if c["result"] == "fail"}
    assert failed == {"children_at_phase"}
    override = ws.ic("gate", "override", pid, "--reason=ship the plan first", "--json")
    assert override.code == 0, override.err
    assert override.json()["to_phase"] == "brainstorm-reviewed" and override.json()["overridden"] is True


def test_a_parent_id_next_to_an_unreadable_portfolio_database_says_why_it_was_not_found(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, _ = ws.create(phases=SHORT_CHAIN)
    for suffix in ("-wal", "-shm"):
        Path(f"{ws.portfolio_db}{suffix}").unlink(missing_ok=True)
    ws.portfolio_db.write_bytes(b"not a database " * 100)
    for args in (("run", "status", parent.id), ("run", "cancel", parent.id), ("run", "events", parent.id)):
        one_line_error(ws.ic(*args), 2, "portfolio.db was skipped", "not a usable kernel database")
    one_line_error(ws.ic("portfolio", "status", parent.id), 2, "not a usable kernel database")


def test_hostile_project_names_stay_on_their_line_and_never_drive_the_terminal(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("evil\nname\x1b[31m", "plain"))
    evil, plain = (str(p) for p in ws.projects)
    created = ws.ic("run", "create", f"--projects={evil},{plain}", "--goal=x")
    assert created.code == 0, created.err
    lines = created.out.splitlines()
    assert len(lines) == 3 and "\x1b" not in created.out and "evil name\\x1b[31m" in created.out
    pid = lines[0]
    added = ws.ic("portfolio", "dep", "add", pid, f"--upstream={evil}", f"--downstream={plain}")
    assert added.code == 0 and added.out.count("\n") == 1 and "\x1b" not in added.out, added.out
    order = ws.ic("portfolio", "order", pid)
    assert order.code == 0 and len(order.out.splitlines()) == 2 and "\x1b" not in order.out
    assert ws.ic("portfolio", "order", pid, "--json").json()["order"] == [evil, plain]  # JSON: exact


def test_ctrl_c_while_mirroring_children_waits_until_every_project_has_its_child(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    for name in "ab":
        assert ws.ic("init", cwd=ws.project(name)).code == 0
    holder = hold_write_lock(ws.project("b") / ".clavain" / "intercore.db")  # b's mirror has to wait
    try:
        create = subprocess.Popen(
            [*ic_executable(), "--timeout=30s", "run", "create", "--projects=../a,../b", "--goal=x"],
            cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while ws.ic("run", "current", cwd=ws.project("a")).code != 0:  # a is mirrored: b is waiting
            assert time.monotonic() < deadline and create.poll() is None, create.communicate()
            time.sleep(0.05)
        create.send_signal(signal.SIGINT)
        time.sleep(0.3)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    _, err = create.communicate(timeout=60)
    assert create.returncode == 130 and "Traceback" not in err, err  # interrupted, but only afterwards:
    for name in "ab":  # every project got its child, none was left half-made
        assert ws.ic("run", "current", cwd=ws.project(name)).code == 0, name
    conn = ws.portfolio_conn()
    assert [r.status for r in q.fetch_all(conn, q.RUNS_ALL)] == ["active"] * 3


def test_cancel_again_reaches_a_project_that_was_unreachable_the_first_time(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    parent, kids = ws.create(phases=SHORT_CHAIN)
    holder = hold_write_lock(ws.project("b") / ".clavain" / "intercore.db")
    try:
        first = ws.ic("--timeout=300ms", "run", "cancel", parent.id, "--json")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    assert first.code == 2 and "may still be active" in first.err, first.err
    assert runs.get_run(project_conn(ws.project("b")), kids["b"].id).status == "active"
    again = ws.ic("run", "cancel", parent.id, "--json")
    assert again.code == 0, again.err
    cancelled = {Path(p["project"]).name: p["cancelled"] for p in again.json()["projects"]}
    assert cancelled == {"a": False, "b": True}
    assert runs.get_run(project_conn(ws.project("b")), kids["b"].id).status == "cancelled"
    one_line_error(ws.ic("run", "cancel", parent.id), 1, "nothing to cancel")
