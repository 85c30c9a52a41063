"""The demo workspace: realistic coverage, deterministic with a fixed clock and seed, alive with --live."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bigend.demo import DemoInfo, build_demo, is_demo_workspace, live_changes
from kernel import db as kdb
from kernel.errors import Refused
from kernel.phase import DEFAULT_CHAIN

NOW = 1_750_000_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoInfo:
    return build_demo(tmp_path_factory.mktemp("demo") / "ws", now=NOW, seed="demo-test")


def rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def all_rows(info: DemoInfo, sql: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for project in info.kernel_projects:
        out += rows(project / kdb.DB_DIR / kdb.DB_NAME, sql)
    return out


def test_runs_cover_every_phase_and_status(demo: DemoInfo) -> None:
    runs = all_rows(demo, "SELECT phase, status FROM runs")
    assert {phase for phase, _ in runs} == set(DEFAULT_CHAIN)
    assert {status for _, status in runs} == {"active", "completed", "cancelled", "failed"}
    kinds = {t for (t,) in all_rows(demo, "SELECT source || '.' || type FROM events")}
    assert {"phase.block", "phase.pause", "phase.rollback", "phase.skip", "budget.budget.warning"} <= kinds
    dispatch_statuses = {s for (s,) in all_rows(demo, "SELECT status FROM dispatches")}
    assert dispatch_statuses == {"running", "completed", "failed", "timeout"}
    assert all(tin > 0 for (tin,) in all_rows(demo, "SELECT input_tokens FROM dispatches"))
    assert len(demo.kernel_projects) == 7 and len(demo.projects) == 10


def test_portfolio_with_dependencies_and_relayed_events(demo: DemoInfo) -> None:
    deps = rows(demo.portfolio_db, "SELECT upstream, downstream FROM project_deps")
    auth, web, mobile = (str(demo.root / name) for name in ("auth-service", "web-dashboard", "mobile-app"))
    assert sorted(deps) == sorted([(auth, web), (auth, mobile)])
    relayed = {t for (t,) in rows(demo.portfolio_db, "SELECT type FROM events WHERE source = 'relay'")}
    assert "child_advanced" in relayed and "upstream_changed" in relayed
    children = rows(demo.portfolio_db, "SELECT project_dir, phase FROM runs WHERE parent_run_id IS NOT NULL")
    assert dict(children)[auth] == "strategized"


def test_corrupt_and_legacy_projects(demo: DemoInfo) -> None:
    with pytest.raises(sqlite3.DatabaseError):
        rows(demo.corrupt_project / kdb.DB_DIR / kdb.DB_NAME, "SELECT 1 FROM runs")
    assert (demo.legacy_project / ".gurgeh").is_dir()
    assert not (demo.legacy_project / kdb.DB_DIR).exists()
    assert is_demo_workspace(demo.root)


def dump(info: DemoInfo) -> list[tuple[Any, ...]]:
    """Every row of every database, with the workspace path taken out (it differs between builds)."""
    out: list[tuple[Any, ...]] = []
    root = str(info.root)
    for db_path in [p / kdb.DB_DIR / kdb.DB_NAME for p in info.kernel_projects] + [info.portfolio_db]:
        for table in ("runs", "events", "dispatches", "run_agents", "run_artifacts", "project_deps"):
            for row in rows(db_path, f"SELECT * FROM {table} ORDER BY rowid"):
                values = (str(v).replace(root, "<root>") for v in row)
                out.append((db_path.parent.parent.name, table, *values))
    return out


def test_the_build_is_deterministic_given_now_and_seed(demo: DemoInfo, tmp_path: Path) -> None:
    again = build_demo(tmp_path / "ws", now=NOW, seed="demo-test")
    first, second = dump(demo), dump(again)

    # Who answers for an external dispatch is the building process (pid, start time): it may differ.
    def steady(dumped: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [tuple(v for v in row if "supervisor_pid" not in v) for row in dumped]

    assert len(first) > 250 and steady(first) == steady(second)

    def relative(info: DemoInfo) -> dict[str, Any]:
        counts = vars(info.counts)
        return {k: {p.replace(str(info.root), ""): n for p, n in v.items()} if isinstance(v, dict) else v
                for k, v in counts.items()}  # fmt: skip

    assert relative(again) == relative(demo) and again.blocked_run_ids == demo.blocked_run_ids
    assert os.environ.get("IC_NOW") is None or os.environ["IC_NOW"] != str(NOW)  # environment restored
    stamps = [int(t) for (t,) in all_rows(again, "SELECT timestamp FROM events")]
    assert max(stamps) <= NOW and min(stamps) < NOW - 5 * 86400  # a spread-out, believable history


def test_building_into_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "keep.txt").write_text("mine")
    with pytest.raises(Refused, match="not empty"):
        build_demo(tmp_path / "ws")
    assert sorted(p.name for p in (tmp_path / "ws").iterdir()) == ["keep.txt"]


def max_event_ids(info: DemoInfo) -> int:
    return sum(r[0] or 0 for r in all_rows(info, "SELECT max(id) FROM events"))


def test_live_changes_keep_the_workspace_moving_and_stop_on_request(tmp_path: Path) -> None:
    info = build_demo(tmp_path / "ws", now=int(time.time()), seed="live")
    before = max_event_ids(info)
    stop = threading.Event()
    thread = threading.Thread(target=live_changes, args=(info.root, stop, 0.02))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while max_event_ids(info) < before + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert max_event_ids(info) >= before + 5


def test_live_changes_use_the_real_clock_and_leave_it_unpinned(tmp_path: Path) -> None:
    """Live writes are stamped with the real time, and the changer leaves no IC_NOW behind."""
    from bigend.demo import _Changer

    info = build_demo(tmp_path / "ws", now=int(time.time()) - 3600, seed="clock")
    assert "IC_NOW" not in os.environ
    before = max_event_ids(info)
    changer = _Changer(info.root, seed=5)
    try:
        for _ in range(300):
            changer.step()
            assert "IC_NOW" not in os.environ
    finally:
        changer.close()
    stamps = [t for (t,) in all_rows(info, "SELECT timestamp FROM events")]
    assert max(stamps) <= int(time.time())
    assert max_event_ids(info) > before


def test_bigend_demo_command_builds_then_refuses_to_overwrite(tmp_path: Path) -> None:
    found = shutil.which("bigend")
    command = [found] if found else [sys.executable, "-m", "bigend"]
    first = subprocess.run([*command, "demo", "ws"], cwd=tmp_path, capture_output=True, text=True, timeout=99)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"demo workspace in {tmp_path / 'ws'}: 10 projects")
    second = subprocess.run([*command, "demo", "ws"], cwd=tmp_path, capture_output=True, text=True, timeout=9)
    assert second.returncode == 1 and "not empty" in second.stderr and second.stderr.count("\n") == 1


def test_history_moves_forward_in_time(demo: DemoInfo) -> None:
    """Each run's events, in the order the kernel wrote them, never go back in time, and nothing is
    dated in the future: otherwise "time in phase" and the event stream tell a story that cannot be."""
    runs = all_rows(demo, "SELECT id, created_at, updated_at FROM runs")
    assert runs
    for run_id, created_at, updated_at in runs:
        assert created_at <= updated_at <= NOW, run_id
    for project in demo.kernel_projects:
        events = rows(project / kdb.DB_DIR / kdb.DB_NAME, "SELECT run_id, timestamp FROM events ORDER BY id")
        last: dict[str, int] = {}
        for run_id, timestamp in events:
            assert timestamp <= NOW
            if run_id is not None:
                assert timestamp >= last.get(run_id, 0), f"{project.name}: {run_id} went back in time"
                last[run_id] = timestamp
