"""Property tests: any sequence of advance/skip/rollback/cancel keeps a run coherent.

Invariants after every step: the phase is in the run's chain, the status is one of the four, a
completed run sits at its terminal phase, and replaying the run's events from the log reproduces
its phase and status exactly.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel import db as kdb
from kernel import runs, runtrack
from kernel.errors import KernelError
from kernel.phase import DEFAULT_CHAIN


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ".clavain" / "intercore.db"
        kdb.init_db(path)
        c = kdb.open_db(path)
        yield c
        c.close()


def replay(conn: sqlite3.Connection, run_id: str) -> tuple[str, str]:
    """Phase and status as the event log tells them."""
    phase, status = "", ""
    rows = conn.execute(
        "SELECT source, type, from_state, to_state, payload FROM events WHERE run_id = ? ORDER BY id",
        (run_id,),
    ).fetchall()
    for source, kind, from_state, to_state, payload in rows:
        if source == "phase" and kind == "created":
            phase, status = to_state, "active"
        elif source == "phase" and kind == "advance":
            assert from_state == phase, f"advance from {from_state} but the run was at {phase}"
            assert status == "active"
            phase = to_state
        elif source == "phase" and kind == "rollback":
            assert from_state == phase
            phase, status = to_state, "active"
        elif source == "phase" and kind == "complete":
            assert to_state == phase
            status = "completed"
        elif source == "phase" and kind in ("cancel", "fail"):
            assert status == "active"
            status = json.loads(payload)["status"]
        elif source == "phase" and kind in ("block", "pause"):
            assert from_state == phase and status == "active"
    return phase, status


chains = st.one_of(
    st.just(list(DEFAULT_CHAIN)),
    st.lists(st.sampled_from("abcdefgh"), min_size=2, max_size=6, unique=True),
)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.sampled_from([0, 1, 2, 4]), st.booleans(), st.booleans()),
        st.tuples(st.just("skip"), st.integers(0, 8)),
        st.tuples(st.just("rollback"), st.integers(0, 8), st.booleans()),
        st.tuples(st.just("artifact"), st.sampled_from(["file", "pass", "fail"])),
        st.tuples(st.just("auto"), st.booleans()),
        st.tuples(st.just("complexity"), st.integers(1, 5)),
        st.tuples(st.just("cancel")),
    ),
    max_size=25,
)


def apply(conn: sqlite3.Connection, run_id: str, chain: list[str], op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "advance":
        _, priority, disable, with_reason = op
        runs.advance(
            conn, run_id, priority=priority, disable_gates=disable, skip_reason="go" if with_reason else None
        )
    elif kind == "skip":
        runs.skip_phase(conn, run_id, chain[op[1] % len(chain)], "not needed")
    elif kind == "rollback":
        runs.rollback(conn, run_id, chain[op[1] % len(chain)], dry_run=op[2])
    elif kind == "artifact":
        if op[1] == "file":
            runtrack.add_artifact(conn, run_id, path="notes.md")
        else:
            runtrack.add_artifact(conn, run_id, path="review.json", verdict=op[1])
    elif kind == "auto":
        runs.set_run(conn, run_id, auto_advance=op[1])
    elif kind == "complexity":
        runs.set_run(conn, run_id, complexity=op[1])
    elif kind == "cancel":
        runs.cancel_run(conn, run_id, reason="stop")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=chains, complexity=st.integers(1, 5), steps=ops)
def test_any_sequence_keeps_the_run_coherent(
    conn: sqlite3.Connection, chain: list[str], complexity: int, steps: list[tuple[Any, ...]]
) -> None:
    run = runs.create_run(conn, goal="prop", project_dir="/prop", phases=chain, complexity=complexity)
    for op in steps:
        before = runs.get_run(conn, run.id)
        events_before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        try:
            apply(conn, run.id, chain, op)
        except KernelError:
            # A refusal may leave a pause/block event, but never changes the run itself.
            after = runs.get_run(conn, run.id)
            assert (after.phase, after.status) == (before.phase, before.status)
            assert not conn.in_transaction
        now = runs.get_run(conn, run.id)
        assert now.phase in chain
        assert now.status in runs.STATUSES
        if now.status == "completed":
            assert now.phase == chain[-1]
            assert now.completed_at is not None
        if now.status == "active":
            assert now.completed_at is None
        assert replay(conn, run.id) == (now.phase, now.status)
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] >= events_before


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=chains, complexity=st.integers(1, 5), skips=st.sets(st.integers(0, 8), max_size=4))
def test_advancing_without_gates_enters_walked_phases_in_order_and_completes(
    conn: sqlite3.Connection, chain: list[str], complexity: int, skips: set[int]
) -> None:
    run = runs.create_run(conn, goal="prop", project_dir="/prop", phases=chain, complexity=complexity)
    for index in skips:
        phase = chain[index % len(chain)]
        try:
            runs.skip_phase(conn, run.id, phase, "skip")
        except KernelError:
            assert phase in (chain[0], chain[-1])
    entered = [run.phase]
    for _ in range(len(chain)):
        if runs.get_run(conn, run.id).status != "active":
            break
        entered.append(runs.advance(conn, run.id, disable_gates=True).to_phase)
    final = runs.get_run(conn, run.id)
    assert final.status == "completed" and final.phase == chain[-1]
    assert entered == sorted(set(entered), key=chain.index), "phases entered once each, in chain order"
    skip_events = conn.execute(
        "SELECT count(*) FROM events WHERE run_id = ? AND type = 'skip' AND from_state IS NOT NULL", (run.id,)
    ).fetchone()[0]
    assert skip_events + len(entered) == len(chain), "every phase is either entered or skipped"
