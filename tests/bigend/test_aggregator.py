"""The aggregator over real kernel databases: exact metrics, failing projects, the pool, no overlap."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bigend.core import aggregator as aggregator_module
from bigend.core.aggregator import Aggregator
from bigend.core.config import BigendConfig
from bigend.core.snapshot import Freshness, KernelState
from bigend.core.status import UnifiedStatus
from bigend.core.synthetic import SyntheticCounts, make_project
from kernel import db as kdb
from kernel import events, runs
from kernel.dispatch import api as dispatch_api
from tests.conftest import Project


def config(*roots: Path, **overrides: Any) -> BigendConfig:
    return BigendConfig(roots=list(roots), **overrides)


async def snapshot(cfg: BigendConfig) -> KernelState:
    aggregator = Aggregator(cfg)
    try:
        return await aggregator.refresh()
    finally:
        await aggregator.close()


def new_project(path: Path) -> Path:
    kdb.init_db(path / kdb.DB_DIR / kdb.DB_NAME)
    return path


def connect(project: Path) -> Any:
    return kdb.open_db(project / kdb.DB_DIR / kdb.DB_NAME)


# -- exact metrics --------------------------------------------------------------------------------------
async def test_metrics_are_exact_over_synthetic_projects(tmp_path: Path) -> None:
    written: dict[Path, SyntheticCounts] = {
        tmp_path / "alpha": make_project(tmp_path / "alpha", runs=40, dispatches=60, events=300, seed=1),
        tmp_path / "beta": make_project(tmp_path / "beta", runs=61, dispatches=99, events=500, seed=2),
        tmp_path / "gamma": make_project(tmp_path / "gamma", runs=7, dispatches=0, events=20, seed=3),
    }
    state = await snapshot(config(tmp_path, events_per_project=25))

    m = state.metrics
    assert m.active_runs == sum(c.active_runs for c in written.values())
    assert m.blocked_agents == sum(c.blocked_runs for c in written.values()) > 0
    assert m.active_dispatches == sum(c.active_dispatches for c in written.values()) > 0
    assert m.total_tokens_in == sum(c.tokens_in for c in written.values())
    assert m.total_tokens_out == sum(c.tokens_out for c in written.values())
    assert (m.kernel_errors, m.projects_ok, m.projects_total) == ({}, 3, 3)
    for project in state.projects:
        counts = written[Path(project.path)]
        assert project.runs_total == len(project.runs) == counts.runs
        assert project.dispatches_total == counts.dispatches
        assert len(project.events) == min(25, counts.events)
        assert [e.id for e in project.events] == sorted(e.id for e in project.events)
        assert project.events[-1].id == counts.events
        assert project.tokens.input_tokens == counts.tokens_in
        blocked = [r for r in project.runs if r.unified is UnifiedStatus.BLOCKED]
        assert len(blocked) == counts.blocked_runs
        assert {(r.blocked_reason, r.status) for r in blocked} <= {("gate: artifact_exists failed", "active")}
        assert all(r.project == project.path for r in project.runs)
        assert all(e.synthetic_id == f"kernel:{project.path}:{e.id}" for e in project.events)


async def test_reads_are_bounded_but_live_rows_and_totals_are_complete(tmp_path: Path) -> None:
    counts = make_project(tmp_path / "p", runs=100, dispatches=200, events=600, seed=4)
    state = await snapshot(config(tmp_path, runs_per_project=10, dispatches_per_project=7))
    (project,) = state.projects
    assert len(project.runs) == counts.active_runs + 10
    assert sum(1 for r in project.runs if r.status == "active") == counts.active_runs
    assert len(project.dispatches) == counts.active_dispatches + 7
    assert (project.runs_total, project.dispatches_total) == (100, 200)
    assert state.metrics.active_dispatches == counts.active_dispatches
    assert state.metrics.total_tokens_in == counts.tokens_in  # exact: an SQL sum, not the listed rows
    newest = sorted(project.dispatches, key=lambda d: d.created_at, reverse=True)
    assert [d.created_at for d in project.dispatches] == [d.created_at for d in newest]


async def test_metrics_match_what_ic_reports(project: Project) -> None:
    ids = [project.ic("--json", "run", "create", f"--goal=goal {i}").json()["id"] for i in range(3)]
    assert project.ic("run", "advance", ids[0]).code == 1  # hard gate: no brainstorm artifact
    assert project.ic("run", "cancel", ids[1]).code == 0
    assert project.ic("events", "record", "--source=hook", "--type=custom", f"--run={ids[2]}").code == 0
    active = project.ic("--json", "run", "list", "--active").json_lines()  # JSON lines: one run each

    state = await snapshot(config(project.dir))

    (proj,) = state.projects
    assert state.metrics.active_runs == len(active) == 2
    by_id = {r.id: r for r in proj.runs}
    assert by_id[ids[0]].unified is UnifiedStatus.BLOCKED
    assert (by_id[ids[0]].blocked_reason or "").startswith("gate blocked")
    assert by_id[ids[1]].unified is UnifiedStatus.ERROR
    assert by_id[ids[2]].unified is UnifiedStatus.ACTIVE
    assert state.metrics.blocked_agents == 1
    kinds = [e.kind for e in proj.events]
    assert kinds.count("PhaseCreated") == 3 and "PhaseBlock" in kinds and "PhaseCancel" in kinds
    assert kinds[-1] == "Unknown"  # hook/custom is not a kernel type


async def test_pause_and_blocked_dispatches_make_a_run_blocked(tmp_path: Path) -> None:
    p = new_project(tmp_path / "p")
    conn = connect(p)
    paused = runs.create_run(conn, goal="paused", project_dir=p, auto_advance=False)
    with pytest.raises(Exception, match="paused"):
        runs.advance(conn, paused.id)
    waiting = runs.create_run(conn, goal="waits on a human", project_dir=p)
    fine = runs.create_run(conn, goal="fine", project_dir=p)
    # No kernel writer produces a `blocked` dispatch today; the status model still honours one.
    with kdb.write_tx(conn):
        for did, scope in (("dblocked", waiting.id), ("dorphan", None)):
            conn.execute(
                "INSERT INTO dispatches (id, scope_id, project_dir, agent_type, status, created_at, "
                "updated_at) VALUES (?, ?, ?, 'codex', 'blocked', 1, 1)",
                (did, scope, str(p)),
            )
        events.record(conn, source="dispatch", type="blocked", dispatch_id="dblocked", run_id=waiting.id)
    conn.close()

    state = await snapshot(config(tmp_path))

    by_id = {r.id: r for r in state.projects[0].runs}
    assert by_id[paused.id].unified is UnifiedStatus.BLOCKED
    assert by_id[paused.id].blocked_reason == "auto_advance is off"
    assert by_id[waiting.id].unified is UnifiedStatus.BLOCKED
    assert by_id[waiting.id].blocked_reason == "dispatch dblocked is blocked"
    assert by_id[fine.id].unified is UnifiedStatus.ACTIVE
    assert state.metrics.blocked_agents == 3  # two runs + the dispatch that belongs to no run
    assert state.metrics.active_dispatches == 2


async def test_run_tokens_and_time_in_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = new_project(tmp_path / "p")
    conn = connect(p)
    monkeypatch.setenv("IC_NOW", "1000")
    run = runs.create_run(conn, goal="g", project_dir=p, phases=["a", "b", "c"])
    monkeypatch.setenv("IC_NOW", "1500")
    runs.advance(conn, run.id, disable_gates=True)
    monkeypatch.setenv("IC_NOW", "1700")
    runs.set_run(conn, run.id, goal="g2")  # not a phase change: time in phase stays
    one = dispatch_api.begin_external(conn, project_dir=p, agent_type="codex", scope_id=run.id)
    two = dispatch_api.begin_external(conn, project_dir=p, agent_type="claude", scope_id=run.id)
    dispatch_api.finish(conn, one.id, status="completed", exit_code=0, input_tokens=100, output_tokens=10)
    dispatch_api.set_tokens(conn, two.id, input_tokens=5, output_tokens=1, cache_tokens=2)
    conn.close()

    state = await snapshot(config(tmp_path))

    (info,) = state.projects[0].runs
    assert (info.phase, info.phase_entered_at, info.goal) == ("b", 1500, "g2")
    assert (info.tokens.input_tokens, info.tokens.output_tokens, info.tokens.cache_hits) == (105, 11, 2)
    assert info.tokens.total_tokens == 116
    assert {d.id: d.unified for d in state.projects[0].dispatches} == {
        one.id: UnifiedStatus.DONE,
        two.id: UnifiedStatus.ACTIVE,
    }


async def test_portfolio_databases_count_parents_not_child_copies(tmp_path: Path) -> None:
    from kernel.portfolio import create

    a, b = new_project(tmp_path / "a"), new_project(tmp_path / "b")
    created = create.create_portfolio(
        tmp_path / ".clavain" / "portfolio.db", create.PortfolioSpec(goal="both", projects=[str(a), str(b)])
    )
    state = await snapshot(config(tmp_path))
    by_name = {p.name: p for p in state.projects}
    workspace = by_name[tmp_path.name]
    assert workspace.portfolio and not workspace.has_intercore
    assert {r.id for r in workspace.runs} == {created.parent.id, *(c.id for c in created.children)}
    assert state.metrics.active_runs == 3  # the parent + one child in each project, copies not again


# -- failing projects -----------------------------------------------------------------------------------
@pytest.fixture
def lock_holder() -> Iterator[Any]:
    """Start a process that holds an EXCLUSIVE lock on a database until the test ends."""
    procs: list[subprocess.Popen[str]] = []

    def hold(db_path: Path) -> None:
        script = (
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(db_path)!r}, isolation_level=None)\n"
            "c.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            'c.execute("INSERT INTO state (key, scope, payload, created_at, updated_at) '
            "VALUES ('lock', '', '1', 0, 0)\")\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


async def test_corrupt_and_locked_projects_are_reported_and_others_complete(
    tmp_path: Path, lock_holder: Any
) -> None:
    good = [make_project(tmp_path / n, runs=5, dispatches=5, events=30, seed=i) for i, n in enumerate("ab")]
    corrupt = tmp_path / "corrupt" / kdb.DB_DIR / kdb.DB_NAME
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x00garbage" * 512)
    locked = make_project(tmp_path / "locked", runs=3, dispatches=1, events=10, seed=9)
    lock_holder(tmp_path / "locked" / kdb.DB_DIR / kdb.DB_NAME)

    aggregator = Aggregator(config(tmp_path, project_timeout=2.0))
    try:
        state = await aggregator.refresh()
        m = state.metrics
        assert set(m.kernel_errors) == {str(tmp_path / "corrupt"), str(tmp_path / "locked")}
        assert "not a SQLite database" in m.kernel_errors[str(tmp_path / "corrupt")]
        assert "locked" in m.kernel_errors[str(tmp_path / "locked")]
        assert (m.projects_ok, m.projects_total) == (2, 4)
        assert m.active_runs == sum(c.active_runs for c in good)
        by_name = {p.name: p for p in state.projects}
        assert len(by_name["a"].runs) == 5 and by_name["a"].error is None
        assert by_name["locked"].runs == []
        assert by_name["locked"].error == m.kernel_errors[str(tmp_path / "locked")]
        assert aggregator.open_connections == 2  # failed opens leave no connection (or thread) behind
    finally:
        await aggregator.close()
    assert locked.runs == 3


async def test_a_project_that_fails_later_keeps_its_last_good_data(tmp_path: Path) -> None:
    make_project(tmp_path / "p", runs=4, dispatches=2, events=20)
    aggregator = Aggregator(config(tmp_path))
    try:
        before = await aggregator.refresh()
        (tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME).write_bytes(b"overwritten by a bad script\n" * 100)
        for suffix in ("-wal", "-shm"):
            (tmp_path / "p" / kdb.DB_DIR / f"{kdb.DB_NAME}{suffix}").unlink(missing_ok=True)
        after = await aggregator.refresh(force=True)
    finally:
        await aggregator.close()
    (old,), (new,) = before.projects, after.projects
    assert new.error is not None
    assert "malformed" in new.error or "not a SQLite database" in new.error
    assert new.runs == old.runs and new.dispatches == old.dispatches and new.tokens == old.tokens
    assert after.metrics.active_runs == before.metrics.active_runs
    assert after.metrics.kernel_errors == {new.path: new.error}


class SlowAggregator(Aggregator):
    """A test hook: reading the project named `slow` hangs (like a stuck network filesystem)."""

    async def _read_slot(self, slot: Any, *, force: bool, read: set[str]) -> bool:
        if slot.project.name == "slow":
            await asyncio.sleep(3600)
        return await super()._read_slot(slot, force=force, read=read)


async def test_a_hung_project_times_out_without_holding_back_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregator_module, "PARTIAL_PUBLISH_AFTER", 0.05)
    for i, name in enumerate(("fast1", "slow", "fast2", "fast3")):
        make_project(tmp_path / name, runs=3, dispatches=2, events=10, seed=i)
    aggregator = SlowAggregator(config(tmp_path, project_timeout=2.0, pool_size=2))
    published: list[KernelState] = []
    done = asyncio.Event()

    def on_state(state: KernelState) -> None:
        published.append(state)
        if state.metrics.kernel_errors:
            done.set()

    live = asyncio.create_task(aggregator.run_live(on_state))
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        live.cancel()
        await asyncio.gather(live, return_exceptions=True)
        await aggregator.close()

    def loaded(state: KernelState, name: str) -> bool:
        return any(p.name == name and p.refreshed_at is not None for p in state.projects)

    early = [s for s in published if not s.metrics.kernel_errors]
    assert early, "the fast projects were published before the hung one timed out"
    assert all(loaded(early[-1], name) for name in ("fast1", "fast2", "fast3"))
    assert not loaded(early[-1], "slow")
    (slow,) = [p for p in early[-1].projects if p.name == "slow"]
    assert (slow.freshness, slow.runs) == (Freshness.UNREAD, [])  # "not read yet", never "0 runs"
    final = published[-1]
    assert final.metrics.kernel_errors == {str(tmp_path / "slow"): "read timed out after 2s"}
    assert final.metrics.projects_ok == 3


# -- the pool and the lock ------------------------------------------------------------------------------
class CountingAggregator(Aggregator):
    """A test hook counting reads and refreshes in flight."""

    def __init__(self, cfg: BigendConfig) -> None:
        super().__init__(cfg)
        self.reads_in_flight = self.max_reads = 0
        self.refreshes_in_flight = self.max_refreshes = 0

    async def _read_slot(self, slot: Any, *, force: bool, read: set[str]) -> bool:
        self.reads_in_flight += 1
        self.max_reads = max(self.max_reads, self.reads_in_flight)
        try:
            await asyncio.sleep(0.05)
            return await super()._read_slot(slot, force=force, read=read)
        finally:
            self.reads_in_flight -= 1

    async def _refresh_locked(self, **kwargs: Any) -> KernelState:
        self.refreshes_in_flight += 1
        self.max_refreshes = max(self.max_refreshes, self.refreshes_in_flight)
        try:
            await asyncio.sleep(0.02)
            return await super()._refresh_locked(**kwargs)
        finally:
            self.refreshes_in_flight -= 1


async def test_reads_go_through_a_bounded_pool_and_refreshes_never_overlap(tmp_path: Path) -> None:
    for i in range(8):
        make_project(tmp_path / f"p{i}", runs=2, dispatches=1, events=5, seed=i)
    aggregator = CountingAggregator(config(tmp_path, pool_size=3))
    try:
        states = await asyncio.gather(*(aggregator.refresh(force=True) for _ in range(4)))
    finally:
        await aggregator.close()
    assert aggregator.max_reads == 3
    assert aggregator.max_refreshes == 1
    assert all(s.metrics.projects_ok == 8 for s in states)


async def test_unchanged_projects_cost_nothing_and_a_change_rereads_only_its_project(tmp_path: Path) -> None:
    a, b = new_project(tmp_path / "a"), new_project(tmp_path / "b")
    aggregator = Aggregator(config(tmp_path))
    try:
        first = await aggregator.refresh()
        assert aggregator.last_read == {str(a), str(b)}
        again = await aggregator.refresh()
        assert again is first and aggregator.last_read == frozenset()
        assert await aggregator.refresh(only={str(a)}) is first  # data_version unchanged: no read
        assert aggregator.last_read == frozenset()

        conn = connect(b)
        runs.create_run(conn, goal="new work", project_dir=b)
        conn.close()
        changed = await aggregator.refresh()
        assert aggregator.last_read == {str(b)}
        assert changed is not first
        assert [len(p.runs) for p in changed.projects] == [0, 1]
        assert changed.projects[0] is first.projects[0]  # the unchanged project's state is reused
        forced = await aggregator.refresh(force=True)
        assert aggregator.last_read == {str(a), str(b)} and forced is not changed
        assert (aggregator.read_count(str(a)), aggregator.read_count(str(b))) == (2, 3)
    finally:
        await aggregator.close()


async def test_rediscovery_adds_projects_and_marks_vanished_ones_gone_until_dismissed(tmp_path: Path) -> None:
    new_project(tmp_path / "a")
    aggregator = Aggregator(config(tmp_path))
    try:
        assert [p.name for p in (await aggregator.refresh()).projects] == ["a"]
        new_project(tmp_path / "b")
        assert [p.name for p in (await aggregator.refresh()).projects] == ["a"]  # not until rediscovery
        await aggregator.rediscover()
        assert [p.name for p in (await aggregator.refresh()).projects] == ["a", "b"]
        assert not await aggregator.dismiss(str(tmp_path / "a"))  # only a gone project can be dismissed
        import shutil

        shutil.rmtree(tmp_path / "a")
        await aggregator.rediscover()
        state = await aggregator.refresh()
        gone, present = state.projects
        assert (gone.name, gone.freshness, present.freshness) == ("a", Freshness.GONE, Freshness.FRESH)
        assert gone.gone_since is not None and gone.error == "the project directory no longer exists"
        assert state.metrics.kernel_errors == {gone.path: gone.error} and state.metrics.projects_total == 2
        assert await aggregator.dismiss(gone.path)
        state = aggregator.state
        assert [p.name for p in state.projects] == ["b"] and state.metrics.projects_total == 1
        assert state.metrics.kernel_errors == {}
    finally:
        await aggregator.close()


async def test_a_bare_clavain_that_gets_a_database_is_read_on_its_next_hint(tmp_path: Path) -> None:
    (tmp_path / "p" / ".clavain").mkdir(parents=True)
    aggregator = Aggregator(config(tmp_path))
    try:
        (bare,) = (await aggregator.refresh()).projects
        assert not bare.has_intercore and bare.runs == [] and bare.error is None
        p = new_project(tmp_path / "p")
        conn = connect(p)
        runs.create_run(conn, goal="first run", project_dir=p)
        conn.close()
        (now_kernel,) = (await aggregator.refresh(only={bare.path})).projects
        assert now_kernel.has_intercore and [r.goal for r in now_kernel.runs] == ["first run"]
    finally:
        await aggregator.close()


async def test_open_connections_are_capped(tmp_path: Path) -> None:
    for i in range(5):
        new_project(tmp_path / f"p{i}")
    aggregator = Aggregator(config(tmp_path, max_open_connections=2))
    try:
        state = await aggregator.refresh()
        assert state.metrics.projects_ok == 5 and aggregator.open_connections == 2
        await aggregator.refresh(force=True)
        assert aggregator.open_connections == 2
    finally:
        await aggregator.close()
    assert aggregator.open_connections == 0


async def test_no_root_readable_is_visible_in_the_state(tmp_path: Path) -> None:
    state = await snapshot(config(tmp_path / "missing"))
    assert state.projects == [] and state.root_errors == {str(tmp_path / "missing"): "does not exist"}


async def test_a_reread_rebuilds_only_changed_rows(tmp_path: Path) -> None:
    p = new_project(tmp_path / "p")
    conn = connect(p)
    quiet = runs.create_run(conn, goal="quiet", project_dir=p)
    busy = runs.create_run(conn, goal="busy", project_dir=p)
    dispatch = dispatch_api.begin_external(conn, project_dir=p, agent_type="codex", scope_id=busy.id)
    aggregator = Aggregator(config(tmp_path))
    try:
        before = {r.id: r for r in (await aggregator.refresh()).projects[0].runs}
        dispatch_api.set_tokens(conn, dispatch.id, input_tokens=40, output_tokens=2)
        state = await aggregator.refresh()
        after = {r.id: r for r in state.projects[0].runs}
        assert after[quiet.id] is before[quiet.id]
        assert after[busy.id] is not before[busy.id]
        assert (before[busy.id].tokens.input_tokens, after[busy.id].tokens.input_tokens) == (0, 40)
        (d,) = state.projects[0].dispatches
        assert (d.input_tokens, d.output_tokens) == (40, 2)
        old_events = state.projects[0].events
        runs.set_run(conn, quiet.id, goal="renamed")
        newer = await aggregator.refresh()
        assert {r.id: r.goal for r in newer.projects[0].runs}[quiet.id] == "renamed"
        assert newer.projects[0].events[: len(old_events)] == old_events
        assert all(a is b for a, b in zip(newer.projects[0].events, old_events, strict=False))
    finally:
        await aggregator.close()
        conn.close()
