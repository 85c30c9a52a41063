"""`--max-agents` under real concurrency: 16 `ic dispatch spawn` processes racing for 4 places."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from kernel import queries as q
from kernel.dispatch import procs
from tests.conftest import Project, ic_executable
from tests.fixtures.dispatching import agent, eventually, proc_state

SPAWNERS = 16
MAX_AGENTS = 4


@pytest.mark.slow
def test_sixteen_concurrent_spawns_never_run_more_than_max_agents(project: Project, tmp_path: Path) -> None:
    (project.dir / "prompt.md").write_text("Work in parallel.\n")
    created = project.ic("--json", "run", "create", "--goal=parallel", f"--max-agents={MAX_AGENTS}")
    assert created.code == 0, created.err
    run_id = created.json()["id"]
    release = tmp_path / "release"
    pids = tmp_path / "pids"
    pids.mkdir()

    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        conn = project.connect()
        try:
            while not stop.is_set():
                running = q.fetch_one(conn, q.COUNT_ACTIVE_DISPATCHES_OF_SCOPE, run_id) or 0
                peak[0] = max(peak[0], running)
                stop.wait(0.01)
        finally:
            conn.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    spawners = [
        subprocess.Popen(
            [
                *ic_executable(),
                "--timeout=60s",
                "--json",
                "dispatch",
                "spawn",
                "--prompt-file=prompt.md",
                f"--scope-id={run_id}",
                f"--name=worker-{i}",
                "--",
                *agent("--pidfile", str(pids / f"{i}.pid"), "--wait-for", str(release)),
            ],
            cwd=project.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        for i in range(SPAWNERS)
    ]
    outcomes = []
    for p in spawners:
        out, err = p.communicate(timeout=120)
        outcomes.append((p.returncode, out, err))
    try:
        codes = sorted(code for code, _, _ in outcomes)
        assert codes == [0] * MAX_AGENTS + [1] * (SPAWNERS - MAX_AGENTS), outcomes
        for code, _, err in outcomes:
            if code == 1:
                assert "--max-agents=4" in err and err.count("\n") == 1
        conn = project.connect()
        try:
            rows = q.fetch_all(conn, q.DISPATCHES_OF_SCOPE, run_id)
        finally:
            conn.close()
        assert len(rows) == MAX_AGENTS and all(r.status == "running" for r in rows)
        live = [pid for pid in (r.pid for r in rows) if pid and proc_state(pid) not in (None, "Z")]
        assert len(live) == MAX_AGENTS
    finally:
        release.touch()
        stop.set()
        sampler.join()
    assert peak[0] <= MAX_AGENTS

    # Once they end, the places are free again.
    def all_done() -> bool:
        conn = project.connect()
        try:
            return (q.fetch_one(conn, q.COUNT_ACTIVE_DISPATCHES_OF_SCOPE, run_id) or 0) == 0
        finally:
            conn.close()

    eventually(all_done, within=60, what="the four agents to finish")
    again = project.ic("--json", "dispatch", "spawn", "--prompt-file=prompt.md", f"--scope-id={run_id}", "--",
                       *agent())  # fmt: skip
    assert again.code == 0, again.err
    assert project.ic("dispatch", "wait", again.json()["id"]).code == 0
    for row in rows:
        assert row.pid is not None and not procs.group_members(row.pid)
