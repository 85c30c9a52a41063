"""Databases that change identity while the aggregator runs: replaced, overwritten, deleted, locked.

Every case uses real databases, the real `ic` and a second real process holding locks, and checks what
the aggregator's state says after one ordinary refresh (the live loop's stat pass; no forced re-read
unless the case is about one).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bigend.core.aggregator import Aggregator
from bigend.core.config import BigendConfig
from bigend.core.connection import LOCKED_MESSAGE, ProjectGone
from bigend.core.snapshot import Freshness, KernelState, ProjectState
from bigend.core.synthetic import make_project
from kernel import db as kdb
from tests.conftest import Project, hold_lock, ic_executable, release

NEVER = 3600.0


def ic(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [*ic_executable(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def the(state: KernelState, path: Path) -> ProjectState:
    (found,) = [p for p in state.projects if p.path == str(path)]
    return found


def goals(project: ProjectState) -> list[str]:
    return sorted(r.goal for r in project.runs)


@pytest.fixture
async def aggregator(tmp_path: Path) -> AsyncIterator[Aggregator]:
    agg = Aggregator(BigendConfig(roots=[tmp_path], poll_interval=NEVER, rediscover_interval=NEVER))
    yield agg
    await agg.close()


@pytest.fixture
def proj(tmp_path: Path) -> Project:
    p = Project(tmp_path / "proj")
    p.dir.mkdir()
    ic(p.dir, "init")
    ic(p.dir, "run", "create", "--goal=before")
    return p


# -- replaced -------------------------------------------------------------------------------------------
async def test_a_database_replaced_by_rm_and_ic_init_is_read_on_the_next_refresh(
    proj: Project, aggregator: Aggregator
) -> None:
    first = the(await aggregator.refresh(), proj.dir)
    assert goals(first) == ["before"] and aggregator.open_connections == 1

    shutil.rmtree(proj.dir / kdb.DB_DIR)
    ic(proj.dir, "init")
    ic(proj.dir, "run", "create", "--goal=after")

    after = the(await aggregator.refresh(), proj.dir)
    assert goals(after) == ["after"]  # not the unlinked old file the open connection still held
    assert (after.error, after.freshness, after.gone_since) == (None, Freshness.FRESH, None)
    assert after.refreshed_at is not None and first.refreshed_at is not None
    assert after.refreshed_at > first.refreshed_at
    ic(proj.dir, "run", "create", "--goal=later")
    assert goals(the(await aggregator.refresh(), proj.dir)) == [
        "after",
        "later",
    ]  # the new file stays followed


async def test_a_database_restored_by_rename_is_read_even_by_a_hinted_check(
    proj: Project, aggregator: Aggregator, tmp_path: Path
) -> None:
    backup = Project(tmp_path / "backup")
    backup.dir.mkdir()
    ic(backup.dir, "init")
    ic(backup.dir, "run", "create", "--goal=from the backup")
    assert goals(the(await aggregator.refresh(), proj.dir)) == ["before"]

    os.replace(backup.db, proj.db)  # a restore: a new file (inode) under the same name

    state = await aggregator.refresh(only={str(proj.dir)})  # what a file event triggers: data_version
    assert goals(the(state, proj.dir)) == ["from the backup"]
    assert aggregator.last_read == {str(proj.dir)}


# -- overwritten ----------------------------------------------------------------------------------------
async def test_garbage_written_over_the_database_is_an_error_and_the_last_data_stays_with_its_age(
    proj: Project, aggregator: Aggregator, tmp_path: Path
) -> None:
    good = the(await aggregator.refresh(), proj.dir)
    good_copy = tmp_path / "good.db"
    shutil.copyfile(proj.db, good_copy)

    proj.db.write_bytes(b"overwritten by a bad script\n" * 200)  # in place: same inode

    broken = the(await aggregator.refresh(), proj.dir)
    assert broken.freshness is Freshness.ERROR
    assert broken.error is not None and ("not a SQLite database" in broken.error or "corrupt" in broken.error)
    assert broken.runs == good.runs and broken.refreshed_at == good.refreshed_at  # last data, its age
    assert aggregator.state.metrics.kernel_errors == {str(proj.dir): broken.error}

    shutil.copyfile(good_copy, proj.db)
    mended = the(await aggregator.refresh(), proj.dir)
    assert (mended.error, mended.freshness, goals(mended)) == (None, Freshness.FRESH, ["before"])


async def test_a_corrupt_page_under_a_valid_header_is_reported_as_corrupt(
    tmp_path: Path, aggregator: Aggregator
) -> None:
    make_project(tmp_path / "p", runs=50, dispatches=50, events=500, seed=3)
    db = tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME
    first = the(await aggregator.refresh(), tmp_path / "p")
    assert first.runs_total == 50
    with db.open("r+b") as handle:  # keep the 100-byte header, smash every page after the first
        size = handle.seek(0, os.SEEK_END)
        handle.seek(4096)
        handle.write(b"\xa5" * (size - 4096))

    broken = the(await aggregator.refresh(), tmp_path / "p")
    assert broken.freshness is Freshness.ERROR and broken.error is not None
    assert "corrupt" in broken.error or "malformed" in broken.error or "not a SQLite" in broken.error
    assert broken.runs == first.runs


# -- deleted --------------------------------------------------------------------------------------------
async def test_a_deleted_project_stays_gone_with_its_data_until_it_returns(
    proj: Project, aggregator: Aggregator
) -> None:
    before = the(await aggregator.refresh(), proj.dir)

    shutil.rmtree(proj.dir)

    gone = the(await aggregator.refresh(), proj.dir)
    assert gone.freshness is Freshness.GONE and gone.gone_since is not None
    assert gone.error == "the project directory no longer exists"
    assert gone.runs == before.runs and gone.refreshed_at == before.refreshed_at
    assert aggregator.open_connections == 0
    await aggregator.rediscover()  # no longer found, still listed
    again = the(await aggregator.refresh(), proj.dir)
    assert (again.freshness, again.gone_since) == (Freshness.GONE, gone.gone_since)
    assert aggregator.state.metrics.projects_total == 1

    proj.dir.mkdir()
    ic(proj.dir, "init")
    ic(proj.dir, "run", "create", "--goal=back again")

    back = the(await aggregator.refresh(), proj.dir)
    assert (back.freshness, back.gone_since, back.error) == (Freshness.FRESH, None, None)
    assert goals(back) == ["back again"]


class RecreatedAfterItsReadFailed(Aggregator):
    """A test hook: the database comes back right after a read found it missing, before the failure is
    recorded (the race of a read with `rm -rf .clavain && ic init && ic run create`)."""

    def __init__(self, cfg: BigendConfig, recreate: Callable[[], None]) -> None:
        super().__init__(cfg)
        self.recreate: Callable[[], None] | None = recreate

    async def _read_slot(self, slot: Any, *, force: bool, read: set[str]) -> bool:
        try:
            return await super()._read_slot(slot, force=force, read=read)
        except ProjectGone:
            if self.recreate is not None:
                self.recreate()
                self.recreate = None
            raise


async def test_a_database_back_before_its_failed_read_was_recorded_is_read_by_the_next_pass(
    proj: Project, tmp_path: Path
) -> None:
    def recreate() -> None:
        ic(proj.dir, "init")
        ic(proj.dir, "run", "create", "--goal=after")

    cfg = BigendConfig(roots=[tmp_path], poll_interval=NEVER, rediscover_interval=NEVER)
    aggregator = RecreatedAfterItsReadFailed(cfg, recreate)
    try:
        await aggregator.refresh()
        shutil.rmtree(proj.dir / kdb.DB_DIR)
        assert the(await aggregator.refresh(), proj.dir).freshness is Freshness.GONE
        back = the(await aggregator.refresh(), proj.dir)  # the stat pass, well within ERROR_RETRY_INTERVAL
        assert (back.freshness, goals(back)) == (Freshness.FRESH, ["after"])
    finally:
        await aggregator.close()


async def test_a_removed_clavain_directory_is_gone_and_dismiss_forgets_it(
    proj: Project, aggregator: Aggregator
) -> None:
    await aggregator.refresh()
    shutil.rmtree(proj.dir / kdb.DB_DIR)
    gone = the(await aggregator.refresh(), proj.dir)
    assert (gone.freshness, gone.error) == (Freshness.GONE, ".clavain/ no longer exists")

    assert await aggregator.dismiss(str(proj.dir))
    assert aggregator.state.projects == [] and aggregator.state.metrics.projects_total == 0
    assert not await aggregator.dismiss(str(proj.dir))


# -- locked ---------------------------------------------------------------------------------------------
async def test_a_rollback_journal_database_held_exclusively_reads_locked_then_recovers(
    proj: Project, tmp_path: Path
) -> None:
    with sqlite3.connect(proj.db) as conn:
        assert conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    conn.close()
    aggregator = Aggregator(BigendConfig(roots=[tmp_path], poll_interval=NEVER, project_timeout=2.5))
    try:
        good = the(await aggregator.refresh(), proj.dir)
        holder = _begin_exclusive(proj.db)
        try:
            locked = the(await aggregator.refresh(force=True), proj.dir)  # `r` while a writer holds it
            assert (locked.error, locked.freshness) == (LOCKED_MESSAGE, Freshness.ERROR)
            assert locked.runs == good.runs and locked.refreshed_at == good.refreshed_at
        finally:
            release(holder)
        # Nothing changed on disk (the writer rolled back), yet the plain stat pass retries a lock.
        recovered = the(await aggregator.refresh(), proj.dir)
        assert (recovered.error, recovered.freshness, goals(recovered)) == (None, Freshness.FRESH, ["before"])
    finally:
        await aggregator.close()


async def test_a_wal_database_locked_in_exclusive_mode_reads_locked_not_unusable(
    proj: Project, tmp_path: Path
) -> None:
    holder = hold_lock(proj.db, exclusive=True)
    aggregator = Aggregator(BigendConfig(roots=[tmp_path], poll_interval=NEVER, project_timeout=2.5))
    try:
        never_read = the(await aggregator.refresh(), proj.dir)
        assert (never_read.error, never_read.freshness) == (LOCKED_MESSAGE, Freshness.ERROR)
        assert never_read.refreshed_at is None and never_read.runs == []
        release(holder)
        read = the(await aggregator.refresh(), proj.dir)
        assert (read.error, read.freshness, goals(read)) == (None, Freshness.FRESH, ["before"])
    finally:
        holder.kill()
        holder.wait()
        await aggregator.close()


def _begin_exclusive(db: Path) -> subprocess.Popen[str]:
    """A second process inside BEGIN EXCLUSIVE (with a write) on a rollback-journal database."""
    code = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        'c.execute("INSERT INTO state (key, scope, payload, created_at, updated_at) '
        "VALUES ('lock', '', '1', 0, 0)\")\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


# -- not read yet, stale --------------------------------------------------------------------------------
async def test_a_project_not_read_yet_says_so(proj: Project, aggregator: Aggregator) -> None:
    await aggregator.rediscover()
    (unread,) = aggregator.state.projects
    assert (unread.freshness, unread.refreshed_at, unread.runs_total) == (Freshness.UNREAD, None, 0)
    (read,) = (await aggregator.refresh()).projects
    assert read.freshness is Freshness.FRESH and read.refreshed_at is not None and read.runs_total == 1
    assert aggregator.state.generated_at >= read.refreshed_at


async def test_data_not_confirmed_for_three_intervals_is_stale_until_the_next_pass(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        ic(tmp_path / name, "init")
    aggregator = Aggregator(BigendConfig(roots=[tmp_path], poll_interval=0.05))  # stale after 0.15 s
    try:
        await aggregator.refresh()
        await asyncio.sleep(0.2)
        hinted = await aggregator.refresh(only={str(tmp_path / "a")})  # checks a only
        assert [p.freshness for p in hinted.projects] == [Freshness.FRESH, Freshness.STALE]
        passed = await aggregator.refresh()  # the stat pass vouches for b again
        assert [p.freshness for p in passed.projects] == [Freshness.FRESH, Freshness.FRESH]
    finally:
        await aggregator.close()


# -- live -----------------------------------------------------------------------------------------------
async def test_the_live_loop_follows_a_replaced_clavain_without_the_periodic_pass(
    proj: Project, tmp_path: Path
) -> None:
    aggregator = Aggregator(
        BigendConfig(roots=[tmp_path], poll_interval=NEVER, rediscover_interval=NEVER, debounce_ms=50)
    )
    states: list[KernelState] = []
    arrived = asyncio.Event()

    def on_state(state: KernelState) -> None:
        states.append(state)
        arrived.set()

    async def until(check: Callable[[ProjectState], bool]) -> ProjectState:
        while not (states and check(the(states[-1], proj.dir))):
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 30)
        return the(states[-1], proj.dir)

    live = asyncio.create_task(aggregator.run_live(on_state))
    try:
        await until(lambda p: goals(p) == ["before"])
        await asyncio.to_thread(shutil.rmtree, proj.dir / kdb.DB_DIR)
        gone = await until(lambda p: p.freshness is Freshness.GONE)
        assert goals(gone) == ["before"]
        await asyncio.to_thread(ic, proj.dir, "init")
        await asyncio.to_thread(ic, proj.dir, "run", "create", "--goal=after")
        back = await until(lambda p: goals(p) == ["after"])
        assert (back.freshness, back.error) == (Freshness.FRESH, None)
        await asyncio.to_thread(ic, proj.dir, "run", "create", "--goal=watched again")
        await until(lambda p: goals(p) == ["after", "watched again"])  # file events, no periodic pass
    finally:
        live.cancel()
        await asyncio.gather(live, return_exceptions=True)
        await aggregator.close()
