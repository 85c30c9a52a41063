"""Crash safety of the relay: kill -9 at random points while the children keep advancing.

Three real writer processes walk their child runs round a short chain (advance, complete, roll back)
without pause; the relay is started and SIGKILLed 20 times at random moments (some while it starts,
most while it works). After every kill, the portfolio's relayed events must be exactly the children's
relayable events up to each persisted cursor, once each and in order (no duplicate, no gap); at the end
a final `--once` brings every child's whole history across exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel import db as kdb
from kernel import eventtypes as et
from kernel import queries as q
from kernel.model import Run
from kernel.portfolio.deps import add_dep
from kernel.portfolio.relay import RELAYED_TYPES, STATE_CHANGES
from tests.conftest import ic_executable
from tests.kernel.test_portfolio_support import Workspace, make_workspace, relayed

CHAIN = ["p0", "p1", "p2", "p3"]
KILLS = 20

WRITER = """
import os, sys, time
from pathlib import Path
from kernel import db as kdb, runs
db, run_id, stop = sys.argv[1:4]
conn = kdb.open_db(Path(db))
while not os.path.exists(stop):
    run = runs.get_run(conn, run_id)
    if run.status == "completed":
        runs.rollback(conn, run_id, run.phases[0], reason="again")
    else:
        runs.advance(conn, run_id, disable_gates=True)
    time.sleep(0.003)
"""


def _child_events(project_dir: str, run_id: str, upto: int) -> list[tuple[int, str]]:
    conn = kdb.connect(Path(project_dir) / ".clavain" / "intercore.db", readonly=True)
    try:
        found = q.fetch_all(conn, q.CHILD_PHASE_EVENTS_IN_WINDOW, run_id, 0, upto)
    finally:
        conn.close()
    return [(e.id, e.type) for e in found if e.type in RELAYED_TYPES]


def _check_exactly_once(ws: Workspace, parent: Run, kids: dict[str, Run]) -> int:
    """Relayed == the children's events up to each cursor, once each, in order; returns the count."""
    conn = kdb.connect(ws.portfolio_db, readonly=True)
    try:
        cursors = {
            c.project_dir: c.last_event_id for c in q.fetch_all(conn, q.RELAY_CURSORS_OF_PORTFOLIO, parent.id)
        }
        events = relayed(conn, parent.id)
    finally:
        conn.close()
    history = {
        name: _child_events(kid.project_dir, kid.id, cursors.get(kid.project_dir, 0))
        for name, kid in kids.items()
    }
    for name, kid in kids.items():
        mine = [e for e in events if e.run_id == kid.id and e.type != et.UPSTREAM_CHANGED]
        got = [((e.payload or {})["child_event_id"], e.type) for e in mine]
        assert got == [(i, RELAYED_TYPES[t]) for i, t in history[name]], f"child {name}: duplicate or gap"
    upstream_moves = [i for i, t in history["a"] if t in STATE_CHANGES]
    for name in ("b", "c"):
        heard = [
            (e.payload or {})["child_event_id"]
            for e in events
            if e.run_id == kids[name].id and e.type == et.UPSTREAM_CHANGED
        ]
        assert heard == upstream_moves, f"{name}: upstream_changed duplicate or gap"
    return len(events)


def _relayed_count(ws: Workspace, parent_id: str) -> int:
    conn = kdb.connect(ws.portfolio_db, readonly=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events WHERE source = 'relay'").fetchone()[0])
    finally:
        conn.close()


def _wait_for_progress(ws: Workspace, parent_id: str, since: int, relay: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while _relayed_count(ws, parent_id) <= since:
        assert relay.poll() is None, "the relay exited on its own"
        assert time.monotonic() < deadline, "the relay made no progress"
        time.sleep(0.01)


@pytest.mark.slow
def test_relay_killed_at_random_points_never_duplicates_or_loses_an_event(tmp_path: Path) -> None:
    seed = int(os.environ.get("RELAY_CRASH_SEED", "20240611"))
    rng = random.Random(seed)
    ws = make_workspace(tmp_path)
    parent, kids = ws.create(phases=CHAIN)
    conn = ws.portfolio_conn()
    add_dep(conn, parent.id, str(ws.project("a")), str(ws.project("b")))
    add_dep(conn, parent.id, str(ws.project("a")), str(ws.project("c")))
    conn.close()
    stop = tmp_path / "stop-writers"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(Path(kid.project_dir) / ".clavain" / "intercore.db"),
                kid.id,
                str(stop),
            ],
            env=env,
        )
        for kid in kids.values()
    ]
    relay_cmd = [
        *ic_executable(),
        "--db",
        str(ws.portfolio_db),
        "portfolio",
        "relay",
        parent.id,
        "--interval=10ms",
    ]
    grew = 0
    try:
        count = 0
        for round_no in range(KILLS):
            relay = subprocess.Popen(relay_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if round_no % 2 == 0:  # somewhere in its life, possibly while it is still starting
                time.sleep(rng.uniform(0.05, 0.6))
            else:  # while it is working: after its first write, at a random instant
                _wait_for_progress(ws, parent.id, count, relay)
                time.sleep(rng.uniform(0.0, 0.2))
            relay.send_signal(signal.SIGKILL)
            _, err = relay.communicate(timeout=20)
            assert relay.returncode == -signal.SIGKILL, err  # it was killed, not finished or crashed
            new_count = _check_exactly_once(ws, parent, kids)
            assert new_count >= count
            grew += new_count > count
            count = new_count
    finally:
        stop.touch()
        for writer in writers:
            writer.wait(30)
    assert all(w.returncode == 0 for w in writers)
    assert grew >= KILLS // 2, f"the relay was rarely working when killed (seed {seed})"
    final = ws.ic("--db", str(ws.portfolio_db), "portfolio", "relay", parent.id, "--once")
    assert final.code == 0, final.err
    total = _check_exactly_once(ws, parent, kids)
    everything = sum(len(_child_events(k.project_dir, k.id, 10**12)) for k in kids.values())
    upstream = 2 * sum(
        1 for _, t in _child_events(kids["a"].project_dir, kids["a"].id, 10**12) if t in STATE_CHANGES
    )
    assert total == everything + upstream  # every child event (and its upstream_changed) is across, once
    assert everything > 100
