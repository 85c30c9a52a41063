"""kernel.aio returns exactly what the sync reads return (same SQL, same row types) and never writes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from kernel import aio, events, state
from kernel import db as kdb
from kernel import queries as q
from kernel.db import write_tx
from kernel.errors import StorageError
from tests.conftest import Project


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """A project with runs, events, agents, artifacts, a dispatch, cursors, state and sentinels.

    Built once per module: the tests compare the two read paths on the same file at the same moment,
    so the one test that writes (data_version) cannot disturb the others.
    """
    project = Project(tmp_path_factory.mktemp("aio") / "proj")
    project.dir.mkdir()
    kdb.init_db(project.db)
    run_ids = [project.ic("run", "create", f"--goal=goal {i}", "--json").json()["id"] for i in range(3)]
    project.ic("run", "agent", "add", run_ids[0], "--name=reviewer")
    project.ic("run", "artifact", "add", run_ids[0], "--path=plan.md", "--phase=brainstorm")
    for i in range(5):
        project.ic("events", "record", "--source=hook", f"--type=t{i}", f"--run={run_ids[i % 3]}")
    conn = project.connect()
    try:
        with write_tx(conn):
            conn.execute(
                "INSERT INTO dispatches (id, scope_id, project_dir, agent_type, status, input_tokens, "
                "output_tokens, cache_tokens, created_at, updated_at) "
                "VALUES ('d1', ?, ?, 'codex', 'running', 10, 20, 3, 1, 1)",
                (run_ids[0], str(project.dir)),
            )
        events.register_cursor(conn, "bigend", 2)
        events.register_cursor(conn, "hook")
        state.set_state(conn, "claims", "", {"files": ["a.py"]})
        state.set_state(conn, "lease", run_ids[0], 1, ttl=3600)
        state.check_sentinel(conn, "nudge", "", 60)
    finally:
        conn.close()
    return project, run_ids[0]


@pytest.fixture
async def both(
    populated: tuple[Project, str],
) -> AsyncIterator[tuple[aiosqlite.Connection, sqlite3.Connection, str]]:
    project, run_id = populated
    aconn = await aio.open_readonly(project.db)
    sconn = project.connect()
    try:
        yield aconn, sconn, run_id
    finally:
        await aconn.close()
        sconn.close()


async def test_runs_and_events_match_the_sync_reads(
    both: tuple[aiosqlite.Connection, sqlite3.Connection, str],
) -> None:
    aconn, sconn, run_id = both
    assert await aio.runs(aconn) == q.fetch_all(sconn, q.RUNS_ALL)
    assert len(await aio.runs(aconn, active_only=True)) == 3
    assert await aio.run(aconn, run_id) == q.fetch_one(sconn, q.RUN_BY_ID, run_id)
    assert await aio.run(aconn, "missing") is None
    assert await aio.events_since(aconn, 2, 100) == events.events_after(sconn, 2, limit=100)
    assert await aio.latest_events(aconn, 4) == events.latest_events(sconn, 4)
    assert await aio.run_events(aconn, run_id) == events.latest_events(sconn, 100, run_id=run_id)
    run_events = await aio.run_events_since(aconn, run_id, 0)
    assert run_events == events.events_after(sconn, 0, run_id=run_id)
    assert run_events and {e.run_id for e in run_events} == {run_id}
    assert await aio.max_event_id(aconn) == events.max_event_id(sconn) > 0


async def test_tracking_dispatches_and_tokens_match(
    both: tuple[aiosqlite.Connection, sqlite3.Connection, str],
) -> None:
    aconn, sconn, run_id = both
    assert [a.name for a in await aio.agents(aconn, run_id)] == ["reviewer"]
    assert await aio.agents(aconn, run_id) == q.fetch_all(sconn, q.AGENTS_OF_RUN, run_id)
    assert [a.path for a in await aio.artifacts(aconn, run_id)] == ["plan.md"]
    assert await aio.artifacts(aconn, run_id) == q.fetch_all(sconn, q.ARTIFACTS_OF_RUN, run_id)
    assert await aio.dispatches(aconn) == q.fetch_all(sconn, q.DISPATCHES_ALL)
    assert await aio.dispatches(aconn, scope_id=run_id) == q.fetch_all(sconn, q.DISPATCHES_OF_SCOPE, run_id)
    totals = await aio.tokens(aconn, scope_id=run_id)
    assert totals == q.fetch_one(sconn, q.TOKENS_OF_SCOPE, run_id)
    assert (totals.input_tokens, totals.output_tokens, totals.total_tokens) == (10, 20, 30)


async def test_cursors_state_and_sentinels_match(
    both: tuple[aiosqlite.Connection, sqlite3.Connection, str],
) -> None:
    aconn, sconn, run_id = both
    assert await aio.cursors(aconn) == events.list_cursors(sconn)
    assert await aio.cursor(aconn, "bigend") == events.get_cursor(sconn, "bigend")
    assert await aio.cursor(aconn, "nobody") is None
    assert await aio.state_entries(aconn) == state.list_state(sconn)
    assert await aio.state_entries(aconn, scope=run_id) == state.list_state(sconn, run_id)
    assert await aio.state_entry(aconn, "claims") == state.get_state(sconn, "claims")
    lease = await aio.state_entry(aconn, "lease", run_id)
    assert lease is not None and lease.expires_at is not None
    assert await aio.state_entry(aconn, "lease", run_id, now=lease.expires_at) is None
    assert await aio.sentinels(aconn) == state.list_sentinels(sconn)


async def test_data_version_moves_when_another_connection_commits(
    both: tuple[aiosqlite.Connection, sqlite3.Connection, str],
) -> None:
    aconn, sconn, _ = both
    before = await aio.data_version(aconn)
    assert await aio.data_version(aconn) == before
    with write_tx(sconn):
        events.record(sconn, source="hook", type="poke")
    assert await aio.data_version(aconn) != before


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO events (source, type, timestamp) VALUES ('x', 'y', 1)",
        "DELETE FROM state",
        "UPDATE runs SET status = 'cancelled'",
        "CREATE TABLE intruder (x)",
    ],
)
async def test_the_async_connection_refuses_to_write(
    both: tuple[aiosqlite.Connection, sqlite3.Connection, str], sql: str
) -> None:
    aconn, sconn, _ = both
    before = events.max_event_id(sconn), len(state.list_state(sconn))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await aconn.execute(sql)
    assert (events.max_event_id(sconn), len(state.list_state(sconn))) == before


async def test_open_readonly_refuses_missing_and_newer_databases(tmp_path: Path, project: Project) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        await aio.open_readonly(tmp_path / "missing.db")
    raw = sqlite3.connect(project.db)
    raw.execute("PRAGMA user_version = 999")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="v999"):
        await aio.open_readonly(project.db)


def test_a_corrupt_database_is_refused_and_the_process_still_exits(tmp_path: Path) -> None:
    """A failed open must close its aiosqlite connection: its non-daemon thread would hang exit."""
    import subprocess
    import sys

    bad = tmp_path / "intercore.db"
    bad.write_bytes(b"not a database at all" * 200)
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from kernel import aio\n"
        "from kernel.errors import StorageError\n"
        "try:\n"
        f"    asyncio.run(aio.open_readonly(Path({str(bad)!r})))\n"
        "except StorageError as exc:\n"
        "    print(exc.message)\n"
        "    sys.exit(7)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, done.stderr
    assert "not a usable kernel database" in done.stdout
