"""The read worker and read connections: a stuck read never holds back the others, nothing leaks."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bigend.core import aggregator as aggregator_module
from bigend.core import reader
from bigend.core.aggregator import Aggregator
from bigend.core.config import BigendConfig
from bigend.core.connection import ReadConnection
from bigend.core.discovery import discover
from bigend.core.readpool import ReadPool
from bigend.core.synthetic import make_project
from kernel import db as kdb
from kernel.errors import StorageError
from kernel.readmodel import Limits


async def test_reads_run_on_a_daemon_thread_one_at_a_time() -> None:
    pool = ReadPool()
    running = 0
    seen: list[tuple[str, bool, int]] = []
    guard = threading.Lock()

    def work(name: str) -> str:
        nonlocal running
        with guard:
            running += 1
            seen.append((threading.current_thread().name, threading.current_thread().daemon, running))
        time.sleep(0.01)  # two reads running at once would overlap here
        with guard:
            running -= 1
        return name.upper()

    try:
        results = await asyncio.gather(*(pool.run(partial(work, n)) for n in ("a", "b", "c", "d")))
    finally:
        pool.shutdown()
    assert results == ["A", "B", "C", "D"]
    assert {name for name, _, _ in seen} == {"bigend-read"}
    assert all(daemon for _, daemon, _ in seen)
    assert max(count for _, _, count in seen) == 1


async def test_a_stuck_read_is_left_to_its_thread_and_the_others_go_on() -> None:
    pool = ReadPool(stall_after=0.05)
    release = threading.Event()
    threads: dict[str, str] = {}

    def stuck() -> str:
        threads["stuck"] = str(threading.get_ident())
        release.wait(30)
        return "stuck done"

    def quick(name: str) -> str:
        threads[name] = str(threading.get_ident())
        return name

    try:
        slow = asyncio.ensure_future(pool.run(stuck))
        others = await asyncio.wait_for(asyncio.gather(*(pool.run(partial(quick, n)) for n in "xyz")), 10)
        assert others == ["x", "y", "z"]
        assert not slow.done() and not release.is_set()  # finished while the stuck read still hangs
        assert threads["x"] != threads["stuck"]
        release.set()
        assert await asyncio.wait_for(slow, 10) == "stuck done"
    finally:
        release.set()
        await pool.drain(5)
        pool.shutdown()


async def test_an_abandoned_read_that_has_not_started_is_skipped() -> None:
    pool = ReadPool(stall_after=30)
    release = threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        release.wait(30)
        ran.append("blocker")

    try:
        first = asyncio.ensure_future(pool.run(blocker))
        queued = asyncio.ensure_future(pool.run(lambda: ran.append("queued")))
        await asyncio.sleep(0.05)
        queued.cancel()
        release.set()
        await asyncio.wait_for(first, 10)
        await pool.drain(5)
        assert queued.cancelled() and ran == ["blocker"]
    finally:
        release.set()
        pool.shutdown()


async def test_errors_reach_the_caller_and_the_worker_survives_them() -> None:
    pool = ReadPool()

    def boom() -> None:
        raise sqlite3.OperationalError("database is locked")

    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await pool.run(boom)
        assert await pool.run(lambda: 42) == 42
    finally:
        pool.shutdown()


def slow_query(conn: sqlite3.Connection) -> int:
    """A statement that runs for minutes unless interrupted."""
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    return int(conn.execute(sql).fetchone()[0])


async def test_discarding_a_busy_connection_interrupts_its_read_and_closes_it(tmp_path: Path) -> None:
    make_project(tmp_path / "p", runs=2, dispatches=1, events=5)
    conn = ReadConnection(tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME, busy_timeout=1.0)
    pool = ReadPool(stall_after=30)
    try:
        running = asyncio.ensure_future(pool.run(lambda: conn.read(slow_query, force=True)))
        await asyncio.sleep(0.2)  # let the statement start
        conn.discard()
        with pytest.raises(StorageError, match="read abandoned"):  # sqlite3's "interrupted", in one line
            await asyncio.wait_for(running, 10)
        with pytest.raises(StorageError, match="abandoned"):
            conn.read(lambda c: c.execute("SELECT 1").fetchone(), force=True)
        assert conn._conn is None  # closed by the thread that was reading
    finally:
        pool.shutdown()


def test_a_connection_that_fails_its_checks_is_closed(tmp_path: Path) -> None:
    path = tmp_path / kdb.DB_NAME
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 999")
    raw.close()
    conn = ReadConnection(path, busy_timeout=1.0)
    with pytest.raises(StorageError, match="schema v999"):
        conn.read(lambda c: None)
    assert conn._conn is None


async def test_a_read_hung_in_its_thread_times_out_and_close_does_not_wait_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like a read stuck on a dead network mount: the thread never returns while the test runs."""
    for i, name in enumerate(("a", "hung", "b", "c")):
        make_project(tmp_path / name, runs=3, dispatches=2, events=10, seed=i)
    release = threading.Event()
    real_read = reader.read_project

    def read_project(conn: sqlite3.Connection, project: Any, *args: Any, **kwargs: Any) -> Any:
        if project.name == "hung":
            release.wait(60)
        return real_read(conn, project, *args, **kwargs)

    monkeypatch.setattr(reader, "read_project", read_project)
    monkeypatch.setattr(aggregator_module, "CLOSE_WAIT", 0.2)
    aggregator = Aggregator(BigendConfig(roots=[tmp_path], project_timeout=1.0, pool_size=2))
    try:
        state = await aggregator.refresh()
        assert not release.is_set()
        by_name = {p.name: p for p in state.projects}
        assert state.metrics.kernel_errors == {str(tmp_path / "hung"): "read timed out after 1s"}
        assert all(len(by_name[n].runs) == 3 and by_name[n].error is None for n in "abc")
        assert aggregator.open_connections == 3
    finally:
        await aggregator.close()  # returns although the hung read still holds its thread
        release.set()
    assert aggregator.open_connections == 0


def test_a_read_pauses_the_cycle_collector_only_while_it_runs(tmp_path: Path) -> None:
    make_project(tmp_path / "p", runs=3, dispatches=2, events=10)
    project = discover([tmp_path]).projects[0]
    conn = ReadConnection(tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME, busy_timeout=1.0)
    seen: list[bool] = []
    real_build = reader.build_project_state

    def build(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real_build(*args, **kwargs)

    def read() -> Any:
        return conn.read(partial(reader.read_project, project=project, limits=Limits(), reuse=reader.Reuse()),
                         force=True)  # fmt: skip

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "build_project_state", build)
        assert gc.isenabled()
        result = read()
        assert result is not None and len(result.state.runs) == 3
        assert seen == [False] and gc.isenabled()
        gc.disable()
        try:
            read()
            assert not gc.isenabled()  # an owner's choice is left alone
        finally:
            gc.enable()
        patch.setattr(reader, "build_project_state", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            read()
        assert gc.isenabled()
    conn.discard()
