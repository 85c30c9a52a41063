"""`max_dispatches`: a hard limit across all of a portfolio's children, with real processes.

Every holder marks itself in a shared directory while it holds a slot (after taking it, before giving it
back), so the number of markers a holder sees is a lower bound of the slots held at that instant: if it
ever exceeded the limit, the limit was broken.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel import db as kdb
from kernel.errors import Refused
from kernel.portfolio.slots import acquire_slot, release_slot
from tests.conftest import ic_executable
from tests.kernel.test_portfolio_support import SHORT_CHAIN, make_workspace, project_conn

LIMIT = 3
SPAWNERS = 16

HOLDER = """
import json, os, random, sys, time
from pathlib import Path
from kernel import db as kdb, runs
from kernel.errors import Refused
from kernel.portfolio.slots import acquire_slot, release_slot
project, run_id, marks, rounds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
conn = kdb.open_db(Path(project) / ".clavain" / "intercore.db")
run = runs.get_run(conn, run_id)
conn.close()
seen, refused = 0, 0
for n in range(rounds):
    dispatch_id = f"d{os.getpid()}-{n}"
    while True:
        try:
            acquire_slot(run, dispatch_id, project, os.getpid())
            break
        except Refused:
            refused += 1
            time.sleep(random.uniform(0.002, 0.01))
    mark = marks / dispatch_id
    mark.touch()
    seen = max(seen, len(os.listdir(marks)))
    time.sleep(random.uniform(0.02, 0.05))
    mark.unlink()
    release_slot(run, dispatch_id)
print(json.dumps({"seen": seen, "refused": refused}))
"""


def _slot_count(db: Path) -> int:
    conn = kdb.open_db(db)
    try:
        return int(conn.execute("SELECT count(*) FROM dispatch_slots").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.slow
def test_sixteen_concurrent_holders_never_exceed_the_limit(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    _, kids = ws.create(phases=SHORT_CHAIN, max_dispatches=LIMIT)
    marks = tmp_path / "marks"
    marks.mkdir()
    children = list(kids.values())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, children[i % 3].project_dir, children[i % 3].id, str(marks), "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(SPAWNERS)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    assert max(r["seen"] for r in reports) <= LIMIT
    assert sum(r["refused"] for r in reports) > 0  # the limit was really reached, and held
    assert _slot_count(ws.portfolio_db) == 0  # every slot came back


def test_slots_of_dead_holders_are_reclaimed(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    _, kids = ws.create(phases=SHORT_CHAIN, max_dispatches=2)
    child = kids["a"]
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    try:
        for n, sleeper in enumerate(sleepers):
            acquire_slot(child, f"held-{n}", child.project_dir, sleeper.pid)
        with pytest.raises(Refused, match="limit of 2"):
            acquire_slot(child, "one-more", child.project_dir, os.getpid())
        sleepers[0].send_signal(signal.SIGKILL)
        sleepers[0].wait(10)
        acquire_slot(kids["b"], "one-more", kids["b"].project_dir, os.getpid())  # the dead one's slot
        with pytest.raises(Refused):
            acquire_slot(child, "and-another", child.project_dir, os.getpid())
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait(10)
    conn = kdb.open_db(ws.portfolio_db)
    held = {r[0] for r in conn.execute("SELECT dispatch_id FROM dispatch_slots")}
    assert held == {"held-1", "one-more"}
    release_slot(kids["b"], "one-more")
    assert {r[0] for r in conn.execute("SELECT dispatch_id FROM dispatch_slots")} == {"held-1"}


def test_runs_outside_a_portfolio_or_without_a_limit_take_no_slot(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ("a", "b"))
    _, kids = ws.create(phases=SHORT_CHAIN)  # no max_dispatches
    for n in range(5):
        acquire_slot(kids["a"], f"free-{n}", kids["a"].project_dir, None)
    assert _slot_count(ws.portfolio_db) == 0
    from kernel import runs

    conn = project_conn(ws.project("a"))
    solo = runs.create_run(conn, goal="solo", project_dir=str(ws.project("a")))
    acquire_slot(solo, "x", solo.project_dir, None)  # no parent: a no-op, no portfolio touched
    release_slot(solo, "x")


def test_a_child_whose_portfolio_is_not_on_record_is_refused_a_dispatch(tmp_path: Path) -> None:
    """Fail closed: a child whose metadata lost its portfolio database (`ic run set --metadata`
    replaces it) gets no dispatch, rather than one that escapes the portfolio's limit."""
    ws = make_workspace(tmp_path, ("a", "b"))
    _, kids = ws.create(phases=SHORT_CHAIN, max_dispatches=1)
    child = kids["a"]
    replaced = ws.ic("run", "set", child.id, '--metadata={"note": "replaced"}', cwd=ws.project("a"))
    assert replaced.code == 0, replaced.err
    prompt = tmp_path / "prompt.md"
    prompt.write_text("do it")
    spawn = ws.ic(
        "dispatch", "spawn", f"--prompt-file={prompt}", f"--scope-id={child.id}",
        f"--command={json.dumps([sys.executable, '-c', 'pass'])}", cwd=ws.project("a"),
    )  # fmt: skip
    assert spawn.code == 2 and spawn.err.count("\n") == 1, spawn.err
    assert "portfolio database is not on record" in spawn.err
    assert _slot_count(ws.portfolio_db) == 0
    listing = ws.ic("dispatch", "list", "--json", cwd=ws.project("a"))
    assert listing.code == 0 and listing.out == "", listing.out  # nothing was recorded


AGENT = """
import os, sys, time
marks = sys.argv[1]
mine = os.path.join(marks, str(os.getpid()))
open(mine, "w").close()
with open(os.path.join(marks, "seen-" + str(os.getpid())), "w") as out:
    out.write(str(len([n for n in os.listdir(marks) if not n.startswith("seen-")])))
time.sleep(float(sys.argv[2]))
os.unlink(mine)
"""


@pytest.mark.slow
def test_sixteen_concurrent_ic_dispatch_spawns_under_max_dispatches(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=SHORT_CHAIN, max_dispatches=LIMIT)
    marks = tmp_path / "marks"
    marks.mkdir()
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    prompt = tmp_path / "prompt.md"
    prompt.write_text("work")
    children = list(kids.values())
    command = json.dumps([sys.executable, str(agent), str(marks), "1.5"])
    spawns = [
        subprocess.Popen(
            [
                *ic_executable(),
                "dispatch",
                "spawn",
                f"--prompt-file={prompt}",
                f"--scope-id={children[i % 3].id}",
                f"--command={command}",
                "--json",
            ],
            cwd=children[i % 3].project_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(SPAWNERS)
    ]
    started, refused = [], 0
    for proc in spawns:
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            started.append(json.loads(out))
        else:
            assert proc.returncode == 1 and "at its limit of 3" in err, err
            refused += 1
    assert refused > 0 and 0 < len(started) <= SPAWNERS
    deadline = time.monotonic() + 60
    while _slot_count(ws.portfolio_db) and time.monotonic() < deadline:  # slots come back as agents end
        time.sleep(0.1)
    assert _slot_count(ws.portfolio_db) == 0
    seen = [int(p.read_text()) for p in marks.glob("seen-*")]
    assert len(seen) == len(started) and max(seen) <= LIMIT
    # The slots are free again: a new spawn gets one; killing its agent (-9) gives it back.
    killer = subprocess.run(
        [*ic_executable(), "dispatch", "spawn", f"--prompt-file={prompt}", f"--scope-id={children[0].id}",
         f"--command={json.dumps([sys.executable, str(agent), str(marks), '60'])}", "--json"],
        cwd=children[0].project_dir, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert killer.returncode == 0, killer.stderr
    assert _slot_count(ws.portfolio_db) == 1
    os.kill(json.loads(killer.stdout)["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _slot_count(ws.portfolio_db) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _slot_count(ws.portfolio_db) == 0
    assert parent.max_dispatches == LIMIT
