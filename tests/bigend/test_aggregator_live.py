"""Live change detection: file events, the stat safety net and rediscovery, with real `ic` writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bigend.core.aggregator import Aggregator
from bigend.core.config import BigendConfig
from bigend.core.snapshot import KernelState
from kernel import db as kdb
from tests.conftest import ic_executable

NEVER = 3600.0


def new_project(path: Path) -> Path:
    kdb.init_db(path / kdb.DB_DIR / kdb.DB_NAME)
    return path


async def ic(cwd: Path, *args: str) -> str:
    """The real `ic` in a subprocess, off the event loop (the watcher keeps running meanwhile)."""

    def call() -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run([*ic_executable(), *args], cwd=cwd, capture_output=True, text=True, env=env)

    done = await asyncio.to_thread(call)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Live:
    aggregator: Aggregator
    states: list[KernelState] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_state(self, state: KernelState) -> None:
        self.states.append(state)
        self.changed.set()

    async def until(self, predicate: Callable[[KernelState], bool], timeout: float = 30) -> KernelState:
        async def wait() -> KernelState:
            while True:
                if self.states and predicate(self.states[-1]):
                    return self.states[-1]
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), timeout)


@contextlib.asynccontextmanager
async def start(aggregator: Aggregator) -> AsyncIterator[Live]:
    live = Live(aggregator)
    task = asyncio.create_task(aggregator.run_live(live.on_state))
    try:
        yield live
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await aggregator.close()


def runs_of(state: KernelState, path: Path) -> list[str]:
    return [r.goal for p in state.projects if p.path == str(path) for r in p.runs]


async def test_a_write_through_ic_is_seen_and_only_its_project_is_read(tmp_path: Path) -> None:
    a, b, c = (new_project(tmp_path / name) for name in "abc")
    cfg = BigendConfig(roots=[tmp_path], poll_interval=NEVER, rediscover_interval=NEVER, debounce_ms=50)
    async with start(Aggregator(cfg)) as live:
        await live.until(lambda s: s.metrics.projects_total == 3)
        agg = live.aggregator
        before = {p: agg.read_count(str(p)) for p in (a, b, c)}

        await ic(b, "run", "create", "--goal=seen live")

        state = await live.until(lambda s: runs_of(s, b) == ["seen live"])
        assert runs_of(state, a) == runs_of(state, c) == []
        assert agg.read_count(str(a)) == before[a] and agg.read_count(str(c)) == before[c]
        assert agg.read_count(str(b)) > before[b]

        await ic(b, "events", "record", "--source=hook", "--type=ping")
        state = await live.until(lambda s: any(e.type == "ping" for p in s.projects for e in p.events))
        assert agg.read_count(str(a)) == before[a] and agg.read_count(str(c)) == before[c]


class NoFileEvents(Aggregator):
    """A test hook standing in for a filesystem without change notifications (e.g. NFS)."""

    async def _watch(self, dirs: dict[str, str], requests: Any) -> None:
        await asyncio.Event().wait()


async def test_without_file_events_the_stat_pass_still_catches_writes(tmp_path: Path) -> None:
    p = new_project(tmp_path / "p")
    q = new_project(tmp_path / "q")
    cfg = BigendConfig(roots=[tmp_path], poll_interval=0.1, rediscover_interval=NEVER)
    async with start(NoFileEvents(cfg)) as live:
        await live.until(lambda s: s.metrics.projects_total == 2)
        reads_q = live.aggregator.read_count(str(q))
        await ic(p, "run", "create", "--goal=polled")
        await live.until(lambda s: runs_of(s, p) == ["polled"])
        assert live.aggregator.read_count(str(q)) == reads_q


async def test_nothing_changed_means_no_new_state(tmp_path: Path) -> None:
    new_project(tmp_path / "p")
    cfg = BigendConfig(roots=[tmp_path], poll_interval=0.05, rediscover_interval=NEVER)
    async with start(Aggregator(cfg)) as live:
        await live.until(lambda s: s.metrics.projects_total == 1)
        published = len(live.states)
        await asyncio.sleep(0.5)  # ten stat passes over an idle project
        assert len(live.states) == published
        assert live.aggregator.read_count(str(tmp_path / "p")) == 1


async def test_periodic_rediscovery_picks_up_new_projects(tmp_path: Path) -> None:
    new_project(tmp_path / "first")
    cfg = BigendConfig(roots=[tmp_path], poll_interval=NEVER, rediscover_interval=0.2)
    async with start(Aggregator(cfg)) as live:
        await live.until(lambda s: [p.name for p in s.projects] == ["first"])
        second = new_project(tmp_path / "second")
        await ic(second, "run", "create", "--goal=late arrival")
        state = await live.until(lambda s: runs_of(s, second) == ["late arrival"])
        assert [p.name for p in state.projects] == ["first", "second"]
        # and the new project is watched: a later write arrives without waiting for a stat pass
        await ic(second, "run", "create", "--goal=second run")
        await live.until(lambda s: sorted(runs_of(s, second)) == ["late arrival", "second run"])


@pytest.mark.parametrize("force", [False, True])
async def test_refresh_only_asks_data_version(tmp_path: Path, force: bool) -> None:
    p = new_project(tmp_path / "p")
    aggregator = Aggregator(BigendConfig(roots=[tmp_path]))
    try:
        await aggregator.refresh()
        await aggregator.refresh(only={str(p)}, force=force)
        assert aggregator.last_read == ({str(p)} if force else frozenset())
        await ic(p, "run", "create", "--goal=x")
        await aggregator.refresh(only={str(p)})
        assert aggregator.last_read == {str(p)}
    finally:
        await aggregator.close()
