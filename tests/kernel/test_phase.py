"""The phase machine: chains, complexity walking and the next hop, on real runs in a real database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from kernel import runs
from kernel.errors import Refused, UsageError
from kernel.phase import DEFAULT_CHAIN, at_or_past, next_hop, validate_chain, walked_phases
from tests.conftest import Project


@pytest.fixture
def conn(project: Project) -> Iterator[sqlite3.Connection]:
    c = project.connect()
    yield c
    c.close()


def walk(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """Advance with gates off until the run completes; return every phase entered."""
    entered = [runs.get_run(conn, run_id).phase]
    while runs.get_run(conn, run_id).status == "active":
        entered.append(runs.advance(conn, run_id, disable_gates=True).to_phase)
    return entered


def test_default_chain_has_nine_phases_ending_in_done() -> None:
    assert len(DEFAULT_CHAIN) == 9
    assert DEFAULT_CHAIN[0] == "brainstorm"
    assert DEFAULT_CHAIN[-1] == "done"


@pytest.mark.parametrize(
    ("complexity", "force_full", "expected"),
    [
        (1, False, ["brainstorm", "planned", "executing", "done"]),
        (2, False, ["brainstorm", "brainstorm-reviewed", "planned", "executing", "review", "done"]),
        (3, False, list(DEFAULT_CHAIN)),
        (5, False, list(DEFAULT_CHAIN)),
        (1, True, list(DEFAULT_CHAIN)),
    ],
)
def test_complexity_selects_walked_phases(
    conn: sqlite3.Connection, complexity: int, force_full: bool, expected: list[str]
) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", complexity=complexity, force_full=force_full)
    assert walked_phases(run) == expected
    assert walk(conn, run.id) == expected
    assert runs.get_run(conn, run.id).status == "completed"


def test_custom_chain_is_walked_in_full_whatever_the_complexity(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", complexity=1, phases=["plan", "build", "ship"])
    assert run.phase == "plan"
    assert walk(conn, run.id) == ["plan", "build", "ship"]


def test_complexity_skips_are_recorded_as_skip_events(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", complexity=1)
    result = runs.advance(conn, run.id, disable_gates=True)
    assert (result.from_phase, result.to_phase) == ("brainstorm", "planned")
    assert result.skipped == ["brainstorm-reviewed", "strategized"]
    rows = conn.execute(
        "SELECT type, from_state, to_state, payload FROM events "
        "WHERE run_id = ? AND type = 'skip' ORDER BY id",
        (run.id,),
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("skip", "brainstorm", "brainstorm-reviewed"),
        ("skip", "brainstorm", "strategized"),
    ]
    assert all('"cause":"complexity"' in r[3] for r in rows)


def test_next_hop_passes_over_pre_skipped_phases_but_never_the_terminal_one(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", phases=["a", "b", "c", "d"])
    hop = next_hop(run, {"b", "c"})
    assert (hop.from_phase, hop.to_phase, hop.skipped) == ("a", "d", ["b", "c"])
    assert next_hop(run, set()).to_phase == "b"


def test_next_hop_refuses_at_terminal_phase(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", phases=["a", "b"])
    runs.advance(conn, run.id, disable_gates=True)
    with pytest.raises(Refused, match="terminal"):
        next_hop(runs.get_run(conn, run.id), set())


@pytest.mark.parametrize(
    "bad",
    [["only"], [], ["a", "a"], ["a", ""], "a,b", [1, 2], None, ["a", "b\nc"], ["a\tb", "c"], ["\x1b[H", "x"]],
)
def test_invalid_chains_are_usage_errors(bad: object) -> None:
    with pytest.raises(UsageError):
        validate_chain(bad)


def test_valid_chain_is_returned() -> None:
    assert validate_chain(["x", "y"]) == ["x", "y"]


def test_at_or_past() -> None:
    chain = ["a", "b", "c"]
    assert at_or_past(chain, "b", "b")
    assert at_or_past(chain, "c", "a")
    assert not at_or_past(chain, "a", "b")
    assert not at_or_past(chain, "a", "zzz")
    assert not at_or_past(chain, "zzz", "a")


def test_changing_complexity_mid_run_changes_the_remaining_walk(conn: sqlite3.Connection) -> None:
    run = runs.create_run(conn, goal="g", project_dir="/p", complexity=3)
    runs.advance(conn, run.id, disable_gates=True)  # -> brainstorm-reviewed
    runs.set_run(conn, run.id, complexity=1)
    assert walk(conn, run.id) == ["brainstorm-reviewed", "planned", "executing", "done"]
