"""The library API the orchestrator and the portfolio use: external dispatches, finish, poll, slots, reads."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kernel import db as kdb
from kernel import queries as q
from kernel.dispatch import api
from kernel.errors import NotFound, Refused, StorageError, UsageError
from tests.conftest import REPO_ROOT, Project, ic_executable
from tests.fixtures.dispatching import agent, eventually


def kinds(conn: sqlite3.Connection, dispatch_id: str) -> list[tuple[str, str | None, str | None]]:
    rows = conn.execute(
        "SELECT type, from_state, to_state FROM events WHERE dispatch_id = ? AND source = 'dispatch' "
        "ORDER BY id",
        (dispatch_id,),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_external_dispatch_is_running_at_once_and_finish_is_final(project: Project) -> None:
    conn = project.connect()
    try:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        row = api.begin_external(
            conn, project_dir=project.dir, agent_type="claude", name="review", model="opus",
            command=["claude", "-p"], output_file="out.log", pid=proc.pid,
        )  # fmt: skip
        proc.wait()
        assert (row.status, row.pid, row.command) == ("running", proc.pid, ["claude", "-p"])
        assert row.output_file == str(Path.cwd() / "out.log")
        done = api.finish(conn, row.id, status="completed", exit_code=0, input_tokens=10, output_tokens=4,
                          cache_tokens=2, cost_usd=0.25)  # fmt: skip
        assert (done.status, done.exit_code, done.input_tokens, done.cost_usd) == ("completed", 0, 10, 0.25)
        # Terminal is final: a late "failed" keeps "completed", but later tokens are still recorded.
        late = api.finish(conn, row.id, status="failed", exit_code=9, output_tokens=40)
        assert (late.status, late.exit_code, late.error) == ("completed", 0, None)
        assert (late.input_tokens, late.output_tokens) == (10, 40)
        assert kinds(conn, row.id) == [
            ("spawned", None, "spawned"), ("running", "spawned", "running"), ("tokens", None, None),
            ("completed", "running", "completed"), ("tokens", None, None),
        ]  # fmt: skip
        with pytest.raises(UsageError):
            api.finish(conn, row.id, status="running")
        with pytest.raises(UsageError):
            api.finish(conn, row.id, status="completed", input_tokens=-1)
        with pytest.raises(NotFound):
            api.finish(conn, "nosuchid", status="completed")
    finally:
        conn.close()


def test_begin_external_writes_in_one_transaction(project: Project) -> None:
    conn = project.connect()
    statements: list[str] = []
    try:
        conn.set_trace_callback(statements.append)
        row = api.begin_external(conn, project_dir=project.dir, agent_type="codex")
        conn.set_trace_callback(None)
    finally:
        conn.close()
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert row.status == "running"


def test_dispatch_metadata_is_stored_at_begin_and_replaced_at_finish(project: Project) -> None:
    conn = project.connect()
    try:
        position = {"orchestrator": {"issue": "7", "phase": "review", "cycle": 1, "attempt": 2}}
        row = api.begin_external(conn, project_dir=project.dir, agent_type="codex", metadata=position)
        assert row.metadata == position
        with pytest.raises(UsageError, match="metadata must be a JSON object"):
            api.finish(conn, row.id, status="completed", metadata=["not", "an", "object"])  # type: ignore[arg-type]
        assert api.get(conn, row.id).status == "running"  # the refused finish wrote nothing
        concluded = {"orchestrator": {**position["orchestrator"], "verdict": {"status": "pass"}}}
        done = api.finish(conn, row.id, status="completed", exit_code=0, metadata=concluded)
        assert (done.status, done.metadata) == ("completed", concluded)
        untouched = api.finish(conn, row.id, status="failed")  # no metadata given: the stored one stays
        assert untouched.metadata == concluded
        assert api.get(conn, row.id).to_json()["metadata"] == concluded
    finally:
        conn.close()


def test_poll_fails_an_external_dispatch_whose_owner_died_without_finishing(project: Project) -> None:
    # The owner is another process that records the start and exits without `finish`.
    script = (
        "import sys; from pathlib import Path; from kernel import db; from kernel.dispatch import api; "
        "c = db.open_db(Path(sys.argv[1])); print(api.begin_external(c, project_dir=sys.argv[2], "
        "agent_type='codex').id)"
    )
    out = subprocess.run([sys.executable, "-c", script, str(project.db), str(project.dir)], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    result = project.ic("--json", "dispatch", "poll", out)
    assert result.code == 0, result.err
    body = result.json()
    assert body["status"] == "failed" and body["exit_code"] is None
    assert body["error"].startswith("owner process (pid ")


def test_poll_leaves_a_dispatch_whose_owner_lives_alone(project: Project) -> None:
    conn = project.connect()
    try:
        row = api.begin_external(conn, project_dir=project.dir, agent_type="codex")
        assert api.poll(conn, row.id).status == "running"  # this test process is the live owner
        killed = api.kill(conn, row.id, grace_s=0)
        assert killed.status == "cancelled"
        assert api.kill(conn, row.id).status == "cancelled"  # idempotent on a terminal dispatch
    finally:
        conn.close()


def test_api_spawn_and_wait_in_process(project: Project, tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("hi")
    conn = project.connect()
    try:
        row = api.spawn(conn, project.db, prompt_file=tmp_path / "prompt.md", project_dir=project.dir,
                        agent_type="claude", command=agent("--emit", "claude_json.json"))  # fmt: skip
        assert row.status == "running" and row.pid
        done = api.wait(conn, project.db, row.id, timeout_s=60)
        assert (done.status, done.input_tokens, done.output_tokens, done.cost_usd) == (
            "completed", 4 + 5123, 287, 0.0421937,
        )  # fmt: skip
        with pytest.raises(NotFound):
            api.wait(conn, project.db, "nosuchid")
    finally:
        conn.close()


def test_max_agents_refusal_through_the_api_writes_nothing(project: Project) -> None:
    created = project.ic("--json", "run", "create", "--goal=one at a time", "--max-agents=1")
    run_id = created.json()["id"]
    conn = project.connect()
    try:
        api.begin_external(conn, project_dir=project.dir, agent_type="codex", scope_id=run_id)
        with pytest.raises(Refused, match="max-agents=1"):
            api.begin_external(conn, project_dir=project.dir, agent_type="codex", scope_id=run_id)
        assert len(api.list_dispatches(conn, scope=run_id)) == 1
    finally:
        conn.close()
    cancelled = project.ic("run", "cancel", run_id)
    assert cancelled.code == 0, cancelled.err
    refused = project.ic("dispatch", "spawn", "--prompt-file=x", f"--scope-id={run_id}", "--", "true")
    assert refused.code == 3  # the prompt is checked first
    (project.dir / "x").write_text("x")
    refused = project.ic("dispatch", "spawn", "--prompt-file=x", f"--scope-id={run_id}", "--", "true")
    assert refused.code == 1 and "cancelled" in refused.err


def test_dispatches_and_tokens_are_readable_on_a_read_only_connection(project: Project) -> None:
    conn = project.connect()
    try:
        row = api.begin_external(conn, project_dir=project.dir, agent_type="codex", scope_id="s1")
        api.set_tokens(conn, row.id, input_tokens=5, output_tokens=6, cache_tokens=1)
    finally:
        conn.close()
    ro = sqlite3.connect(f"file:{project.db}?mode=ro", uri=True)
    try:
        found = q.fetch_all(ro, q.DISPATCHES_OF_SCOPE, "s1")
        totals = q.fetch_one(ro, q.TOKENS_OF_SCOPE, "s1")
    finally:
        ro.close()
    assert [(d.id, d.status) for d in found] == [(row.id, "running")]
    assert totals is not None
    assert (totals.input_tokens, totals.output_tokens, totals.cache_hits) == (5, 6, 1)
    assert totals.total_tokens == 11


@pytest.mark.slow
def test_portfolio_child_dispatch_holds_a_slot_until_it_ends(tmp_path: Path) -> None:
    projects = [tmp_path / "a", tmp_path / "b"]
    for path in projects:
        path.mkdir()
        kdb.init_db(path / ".clavain" / "intercore.db")
    portfolio_db = tmp_path / ".clavain" / "portfolio.db"
    kdb.init_db(portfolio_db)
    (tmp_path / "prompt.md").write_text("together")

    def ic(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ic_executable(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)

    created = ic(tmp_path, f"--db={portfolio_db}", "--json", "run", "create", "--goal=pf",
                 "--max-dispatches=1", f"--projects={projects[0]},{projects[1]}")  # fmt: skip
    assert created.returncode == 0, created.stderr
    child = {c["project"]: c["id"] for c in json.loads(created.stdout)["children"]}
    release = tmp_path / "release"
    first = ic(projects[0], "--json", "dispatch", "spawn", "--prompt-file=../prompt.md",
               f"--scope-id={child[str(projects[0])]}", "--", *agent("--wait-for", str(release)))  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = ic(projects[1], "dispatch", "spawn", "--prompt-file=../prompt.md",
                f"--scope-id={child[str(projects[1])]}", "--", *agent())  # fmt: skip
    assert second.returncode == 1 and "limit" in second.stderr
    release.touch()
    assert ic(projects[0], "dispatch", "wait", json.loads(first.stdout)["id"]).returncode == 0

    # The supervisor gave the slot back when the dispatch ended: the other child may run now.
    def spawn_second() -> subprocess.CompletedProcess[str] | None:
        r = ic(projects[1], "--json", "dispatch", "spawn", "--prompt-file=../prompt.md",
               f"--scope-id={child[str(projects[1])]}", "--", *agent())  # fmt: skip
        return r if r.returncode == 0 else None

    third = eventually(spawn_second, what="the slot to be free")
    assert ic(projects[1], "dispatch", "wait", json.loads(third.stdout)["id"]).returncode == 0


def test_a_spawn_interrupted_after_the_agent_started_cancels_it(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C cannot be timed from outside, so it is raised right where it hurts most: the supervisor
    # has reported a running agent and nothing has been recorded yet.
    from kernel.dispatch import spawn as spawning

    real_read_report = spawning._read_report

    def read_then_interrupt(*args: Any) -> dict[str, object] | None:
        real_read_report(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(spawning, "_read_report", read_then_interrupt)
    (tmp_path / "prompt.md").write_text("hi")
    conn = project.connect()
    try:
        with pytest.raises(KeyboardInterrupt):
            api.spawn(conn, project.db, prompt_file=tmp_path / "prompt.md", project_dir=project.dir,
                      command=agent("--wait-for", str(tmp_path / "never")))  # fmt: skip
        (row,) = api.list_dispatches(conn)
        assert (row.status, row.error) == ("cancelled", "spawn interrupted before it returned")
        # The supervisor ended the agent (and its group) before recording how it ended.
        ended = eventually(lambda: r if (r := api.get(conn, row.id)).exit_code is not None else None)
        assert (ended.status, ended.exit_code) == ("cancelled", -signal.SIGTERM)
    finally:
        conn.close()


def test_a_spawn_that_cannot_record_running_says_the_agent_runs_and_the_supervisor_records_it(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kernel.dispatch import spawn as spawning

    blocker = sqlite3.connect(project.db, isolation_level=None)
    real_read_report = spawning._read_report

    def read_then_lock(*args: Any) -> dict[str, object] | None:
        report = real_read_report(*args)
        blocker.execute("BEGIN IMMEDIATE")  # someone else writes at the worst moment, for long
        return report

    monkeypatch.setattr(spawning, "_read_report", read_then_lock)
    (tmp_path / "prompt.md").write_text("hi")
    release = tmp_path / "release"
    conn = kdb.open_db(project.db, timeout=0.2)
    try:
        with pytest.raises(StorageError, match=r"its agent runs .* rather than spawning again"):
            api.spawn(conn, project.db, prompt_file=tmp_path / "prompt.md", project_dir=project.dir,
                      command=agent("--wait-for", str(release)))  # fmt: skip
        blocker.execute("ROLLBACK")
        (row,) = api.list_dispatches(conn)
        running = eventually(lambda: r if (r := api.get(conn, row.id)).status == "running" else None)
        release.touch()
        done = api.wait(conn, project.db, row.id, timeout_s=60)
        assert (done.status, done.exit_code, done.pid) == ("completed", 0, running.pid)
    finally:
        release.touch()
        conn.close()
        blocker.close()
