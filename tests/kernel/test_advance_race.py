"""Racing advances with real `ic` processes: every phase is entered exactly once, losers get a clear no.

Threads only orchestrate; each attempt is its own `ic` process with its own SQLite connection, so the
race is between real processes on one database file.
"""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kernel import runs
from tests.conftest import IcResult, Project

WORKERS = 8
ATTEMPTS = 20
CHAIN = [f"p{i:03d}" for i in range(101)]  # 100 hops for 160 attempts: 60 must lose


def phase_events(project: Project, run_id: str) -> list[tuple[str, str | None, str | None]]:
    conn = project.connect()
    try:
        rows = conn.execute(
            "SELECT type, from_state, to_state FROM events WHERE run_id = ? AND source = 'phase' ORDER BY id",
            (run_id,),
        ).fetchall()
    finally:
        conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


def current_phase(project: Project, run_id: str) -> str:
    conn = project.connect()
    try:
        return runs.get_run(conn, run_id).phase
    finally:
        conn.close()


@pytest.mark.slow
def test_eight_processes_racing_advance_enter_each_phase_once(project: Project) -> None:
    conn = project.connect()
    run_id = runs.create_run(conn, goal="race", project_dir=project.dir, phases=CHAIN).id
    conn.close()
    start = threading.Barrier(WORKERS, timeout=120)

    def worker(_: int) -> list[IcResult]:
        start.wait()
        return [project.ic("run", "advance", run_id, "--disable-gates", "--json") for _ in range(ATTEMPTS)]

    with ThreadPoolExecutor(WORKERS) as pool:
        results = [r for batch in pool.map(worker, range(WORKERS)) for r in batch]

    assert len(results) == WORKERS * ATTEMPTS
    assert not [r.err for r in results if "locked" in r.err or "database error" in r.err]
    assert {r.code for r in results} <= {0, 1}, [r.err for r in results if r.code not in (0, 1)]
    winners = [r.json() for r in results if r.code == 0]
    losers = [r for r in results if r.code == 1]
    assert len(winners) == len(CHAIN) - 1
    assert len(losers) == WORKERS * ATTEMPTS - (len(CHAIN) - 1)
    assert all("completed" in r.err or "phase changed" in r.err for r in losers), {r.err for r in losers}
    assert all(r.err.count("\n") == 1 for r in losers)
    assert sorted(w["to_phase"] for w in winners) == CHAIN[1:], "each phase won exactly once"

    history = phase_events(project, run_id)
    advances = [(f, t) for kind, f, t in history if kind == "advance"]
    assert advances == list(itertools.pairwise(CHAIN)), "entered once each, in order"
    assert [kind for kind, _, _ in history].count("complete") == 1
    final = project.ic("run", "status", run_id, "--json").json()
    assert (final["phase"], final["status"]) == (CHAIN[-1], "completed")


@pytest.mark.slow
def test_racing_on_the_same_expected_phase_has_exactly_one_winner(project: Project) -> None:
    """Agents that all finished phase X and advance "from X": one moves the run, the rest hear why not."""
    racers, rounds = 6, 3
    conn = project.connect()
    run_id = runs.create_run(conn, goal="race", project_dir=project.dir, phases=CHAIN[: rounds + 2]).id
    conn.close()
    barrier = threading.Barrier(racers, timeout=120)
    outcomes: list[list[IcResult]] = [[] for _ in range(rounds)]
    lock = threading.Lock()

    def racer(_: int) -> None:
        for round_no in range(rounds):
            seen = current_phase(project, run_id)
            assert seen == CHAIN[round_no]
            barrier.wait()
            result = project.ic(
                "run", "advance", run_id, "--disable-gates", f"--expect-phase={seen}", "--json"
            )
            with lock:
                outcomes[round_no].append(result)
            barrier.wait()  # nobody reads the next phase before every racer has tried this one

    with ThreadPoolExecutor(racers) as pool:
        list(pool.map(racer, range(racers)))

    for round_no, results in enumerate(outcomes):
        won = [r for r in results if r.code == 0]
        lost = [r for r in results if r.code != 0]
        assert len(won) == 1, [r.err for r in results]
        assert json.loads(won[0].out)["to_phase"] == CHAIN[round_no + 1]
        assert all(r.code == 1 and "phase changed" in r.err for r in lost), [r.err for r in lost]
    advances = [(f, t) for kind, f, t in phase_events(project, run_id) if kind == "advance"]
    assert advances == list(itertools.pairwise(CHAIN[: rounds + 1]))
