"""The aggregator: one KernelState for every project under the roots, kept fresh cheaply.

- `refresh()` reads the projects that need it through a bounded pool (`pool_size`, an asyncio.Semaphore),
  each under its own timeout (`project_timeout`). A project whose read fails, hangs or times out keeps
  its last good data plus an `error` (and counts in `metrics.kernel_errors`); the others update.
  Refreshes never overlap: a second caller waits for the first to finish, then does its own.
  A project read is one hop to a worker thread (reader.read_project on a `readpool.ReadPool`).
- Only changed projects are read again: the live loop hears of writes from watchfiles, a periodic stat
  pass catches what file events miss, and `PRAGMA data_version` on each kept connection confirms.
- A database replaced, overwritten or deleted while Bigend runs is noticed by its next read
  (connection.py: file identity, then data_version): a replaced one is reopened and read, a broken one
  keeps its last good data with an `error`, a deleted project (or one rediscovery no longer finds) stays
  listed as gone, with its last data, until it returns or `dismiss()` forgets it.
- Every ProjectState says how far to trust it (`freshness`: unread, fresh, stale, error, gone) and when
  its data was read (`refreshed_at`); freshness is decided here, when the state is put together.
- `state` is the latest picture; an unchanged refresh returns the very same object, so "did anything
  change?" is an identity check. (In the live loop, a refresh still waiting on a hung project
  publishes what the others brought first.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import count
from pathlib import Path

from bigend.core import changes, reader
from bigend.core.config import BigendConfig
from bigend.core.connection import DatabaseLocked, ProjectGone, ReadConnection, missing_reason
from bigend.core.discovery import Project, discover, inspect_dir
from bigend.core.metrics import EMPTY_TALLY, ProjectTally, combine
from bigend.core.readpool import ReadPool
from bigend.core.snapshot import Freshness, KernelState, Metrics, ProjectState
from kernel.errors import KernelError
from kernel.readmodel import Limits

log = logging.getLogger(__name__)

StateCallback = Callable[[KernelState], None]

# A refresh still waiting on slow projects after this long publishes what it has (live mode only).
PARTIAL_PUBLISH_AFTER = 0.25
# A failing project is retried by the periodic stat pass at most this often (events and `r` retry at once,
# and so does a change of its files). A locked one is retried by every stat pass.
ERROR_RETRY_INTERVAL = 10.0
# Data not confirmed current (by a read, a data_version check or an unchanged stat signature) for this many
# stat-pass intervals (config.poll_interval) is published as stale.
STALE_AFTER_INTERVALS = 3
# A project read still running after this long stops holding back the others (see readpool.py); normal
# reads of a 200-run/500-dispatch project take a few milliseconds.
READ_STALL_AFTER = 0.1
# How long close() waits for reads still running on worker threads (given-up ones included).
CLOSE_WAIT = 3.0


@dataclass
class _Slot:
    """Everything the aggregator keeps about one project between refreshes."""

    project: Project
    state: ProjectState  # the last good read (or the empty state before one)
    tally: ProjectTally = EMPTY_TALLY
    conn: ReadConnection | None = None
    signature: changes.Signature | None = None
    loaded: bool = False
    error: str | None = None
    error_at: float = 0.0  # time.monotonic() of the last failure
    locked: bool = False  # the last failure was a lock held by a writer: retried by every stat pass
    gone_since: float | None = None  # time.time() when it was found missing
    checked_at: float = 0.0  # time.monotonic() when a refresh last confirmed the data current
    last_used: int = 0
    reads: int = 0
    reuse: reader.Reuse = field(default_factory=reader.Reuse)
    _published: tuple[ProjectState, tuple[str | None, Freshness, float | None], ProjectState] | None = None

    @property
    def key(self) -> str:
        return self.project.key

    def freshness(self, now: float, stale_after: float) -> Freshness:
        if self.gone_since is not None:
            return Freshness.GONE
        if self.error is not None:
            return Freshness.ERROR
        if self.project.db_path is None:
            return Freshness.FRESH  # nothing to read: what discovery saw is all there is
        if not self.loaded:
            return Freshness.UNREAD
        return Freshness.STALE if now - self.checked_at > stale_after else Freshness.FRESH

    def published(self, freshness: Freshness) -> ProjectState:
        """The state with this slot's error, freshness and gone mark (one object while they stay the same)."""
        mark = (self.error, freshness, self.gone_since)
        state = self.state
        if (state.error, state.freshness, state.gone_since) == mark:
            return state
        cached = self._published
        if cached is None or cached[0] is not state or cached[1] != mark:
            marked = dataclasses.replace(
                state, error=self.error, freshness=freshness, gone_since=self.gone_since
            )
            cached = self._published = (state, mark, marked)
        return cached[2]


@dataclass
class _LiveRequests:
    """What the live loop owes: projects hinted by file events, and pending safety passes."""

    hints: set[str] = field(default_factory=set)
    stat_pass: bool = False
    verify_all: bool = False
    rediscover: bool = False
    rewatch: bool = False  # a .clavain directory was added or removed: start a new watcher
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, keys: set[str], rewatch: bool = False) -> None:
        self.hints |= keys
        self.rewatch |= rewatch
        self.wake.set()


class Aggregator:
    def __init__(self, config: BigendConfig) -> None:
        self.config = config
        self._slots: dict[str, _Slot] = {}
        self._order: list[str] = []
        self._root_errors: dict[str, str] = {}
        self._discovered = False
        self._generation = 0  # bumped whenever the set of projects or their databases changes
        self._lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(config.pool_size)
        self._limits = Limits(
            runs=config.runs_per_project,
            dispatches=config.dispatches_per_project,
            events=config.events_per_project,
        )
        self._stale_after = STALE_AFTER_INTERVALS * config.poll_interval
        self._published_stale: list[str] = []  # keys published as stale
        self._stale_deadline = math.inf  # before then, no project published fresh can have gone stale
        self._tick = count(1)
        self._busy: set[str] = set()  # projects being read right now: their connections stay
        self._connected: dict[str, _Slot] = {}  # projects with an open read connection
        self._pool = ReadPool(stall_after=READ_STALL_AFTER)
        self._live: _LiveRequests | None = None  # the live loop's requests, while run_live runs
        self._state = self._empty_state()
        #: keys of the projects whose database was actually read by the last refresh (tests, benchmarks)
        self.last_read: frozenset[str] = frozenset()

    # -- public API ---------------------------------------------------------------------------------
    @property
    def state(self) -> KernelState:
        """The latest picture (an empty one, generated_at 0, before the first refresh)."""
        return self._state

    @property
    def projects(self) -> list[Project]:
        return [self._slots[key].project for key in self._order]

    @property
    def open_connections(self) -> int:
        """Read connections currently kept open (capped by max_open_connections)."""
        return len(self._connected)

    def read_count(self, key: str) -> int:
        """How many times the project's database has been read (tests: "only that project was re-read")."""
        slot = self._slots.get(key)
        return 0 if slot is None else slot.reads

    async def refresh(self, *, force: bool = False, only: set[str] | None = None) -> KernelState:
        """Bring the state up to date and return it.

        Without arguments only projects that changed (stat signature, then data_version) are read;
        `only` limits the pass to those project keys and checks each of them with data_version;
        `force` reads every (selected) project whatever it looks like.
        """
        async with self._lock:
            return await self._refresh_locked(force=force, only=only)

    async def rediscover(self) -> None:
        """Scan the roots again: new projects get a slot; vanished ones are marked gone (see `dismiss`)."""
        async with self._lock:
            await self._rediscover_locked()

    async def dismiss(self, key: str) -> bool:
        """Forget a gone project (the operator has seen it go); False when `key` is not a gone project.

        If the project comes back later, rediscovery finds it again as a new project.
        """
        async with self._lock:
            slot = self._slots.get(key)
            if slot is None or slot.gone_since is None:
                return False
            self._drop_conn(slot)
            del self._slots[key]
            self._order.remove(key)
            self._generation += 1
            self._state = self._build_state()
        if self._live is not None:
            self._live.wake.set()  # the live loop publishes the new state
        return True

    async def run_live(self, on_state: StateCallback) -> None:
        """Keep the state fresh until cancelled, calling `on_state` after every refresh that changed it.

        The first call delivers the current picture. While a refresh waits on a slow project, what the
        others brought is published after PARTIAL_PUBLISH_AFTER seconds, so one hung project never
        holds back the rest.
        """
        requests = self._live = _LiveRequests()
        watcher: asyncio.Task[None] | None = None
        watched_generation = -1
        timers = [
            asyncio.create_task(self._every(self.config.poll_interval, requests, "stat_pass")),
            asyncio.create_task(self._every(self.config.rediscover_interval, requests, "rediscover")),
        ]
        try:
            async with self._lock:
                if not self._discovered:
                    await self._rediscover_locked()
            first = True
            while True:
                # (Re)start the watcher when the project set changed or a .clavain directory came or went;
                # before the first read, so a write landing during that read is heard of.
                if (
                    self._generation != watched_generation
                    or requests.rewatch
                    or (watcher is not None and watcher.done())
                ):
                    await changes.cancel_and_wait(watcher)
                    watched_generation = self._generation
                    watcher = asyncio.create_task(self._watch(self._watch_dirs(), requests))
                    if not first:
                        # Writes made before the new watch was set were heard by nobody: let the watcher
                        # task set its watches (its first step), then compare every stat signature.
                        await asyncio.sleep(0)
                        requests.stat_pass = True
                    requests.rewatch = False
                if first:
                    first = False
                    async with self._lock:
                        await self._refresh_locked(force=False, only=None, on_partial=on_state)
                    on_state(self._state)
                    continue
                if not requests.stat_pass:
                    await requests.wake.wait()
                requests.wake.clear()
                before = self._state
                async with self._lock:
                    if requests.rediscover:
                        requests.rediscover = False
                        requests.verify_all = True
                        await self._rediscover_locked()
                    hints, requests.hints = requests.hints, set()
                    if requests.verify_all or requests.stat_pass:
                        verify, requests.verify_all, requests.stat_pass = requests.verify_all, False, False
                        await self._refresh_locked(force=False, only=None, verify=verify, on_partial=on_state)
                    if hints:
                        await self._refresh_locked(force=False, only=hints, on_partial=on_state)
                if self._state is not before:
                    on_state(self._state)
        finally:
            self._live = None
            for timer in timers:
                timer.cancel()
            await changes.cancel_and_wait(watcher)
            for timer in timers:
                with contextlib.suppress(asyncio.CancelledError):
                    await timer

    async def close(self) -> None:
        """Close every read connection and stop the worker threads (a later refresh starts new ones)."""
        async with self._lock:
            for slot in self._slots.values():
                self._drop_conn(slot)
        # Reads given up on may still run: let them end (their connections close then) while the loop
        # still runs, so they have somewhere to report to.
        await self._pool.drain(CLOSE_WAIT)
        self._pool.shutdown()

    # -- refresh ------------------------------------------------------------------------------------
    async def _refresh_locked(
        self,
        *,
        force: bool,
        only: set[str] | None,
        verify: bool = False,
        on_partial: StateCallback | None = None,
    ) -> KernelState:
        if not self._discovered:
            await self._rediscover_locked()
        if only is not None:
            self._reinspect(only)
        candidates = [
            slot
            for key in (self._order if only is None else sorted(k for k in only if k in self._slots))
            if (slot := self._slots[key]).project.db_path is not None
        ]
        mode = "hint" if only is not None else "verify" if verify else "stat"
        now = time.monotonic()
        targets = []
        for slot in candidates:
            if self._worth_checking(slot, force=force, mode=mode):
                targets.append(slot)
            elif slot.error is None:
                slot.checked_at = now  # its stat signature vouches for it
        changed = False
        read: set[str] = set()
        if targets:
            changed = await self._run_pool(targets, force=force, read=read, on_partial=on_partial)
        self.last_read = frozenset(read)
        self._trim_connections()
        if changed or self._state.generated_at == 0 or self._freshness_moved():
            self._state = self._build_state()
        return self._state

    def _worth_checking(self, slot: _Slot, *, force: bool, mode: str) -> bool:
        """Whether to touch the project's database at all this pass (the cheap, stat-level filter).

        mode "hint": a file event named the project, so ask its data_version (or read it);
        "verify": ask data_version where a connection is open, else compare stat signatures;
        "stat": compare stat signatures only (a few microseconds per project).
        """
        if force or mode == "hint" or (not slot.loaded and slot.error is None):
            return True
        assert slot.project.db_path is not None
        moved = changes.signature(slot.project.db_path) != slot.signature
        if slot.error is not None:
            return moved or slot.locked or time.monotonic() - slot.error_at >= ERROR_RETRY_INTERVAL
        return moved or (mode == "verify" and slot.conn is not None)

    def _freshness_moved(self) -> bool:
        """Whether some project's freshness is no longer what the published state says.

        Only time moves it without a read: a project published stale that was checked since, or a
        fresh one whose confirmation has aged past the deadline `_build_state` noted. Cheap until then.
        """
        now = time.monotonic()
        stale_after = self._stale_after
        for key in self._published_stale:
            slot = self._slots.get(key)
            if slot is not None and slot.freshness(now, stale_after) is not Freshness.STALE:
                return True
        if now < self._stale_deadline:
            return False
        slots = [self._slots[key] for key in self._order]
        if any(slot.freshness(now, stale_after) is Freshness.STALE for slot in slots):
            return True
        self._stale_deadline = _stale_deadline(slots, stale_after)
        return False

    async def _run_pool(
        self, targets: list[_Slot], *, force: bool, read: set[str], on_partial: StateCallback | None
    ) -> bool:
        tasks = {asyncio.create_task(self._refresh_slot(slot, force=force, read=read)) for slot in targets}
        changed = unpublished = False
        try:
            pending = tasks
            while pending:
                timeout = PARTIAL_PUBLISH_AFTER if on_partial is not None else None
                done, pending = await asyncio.wait(pending, timeout=timeout)
                step_changed = any(task.result() for task in done)
                changed |= step_changed
                unpublished |= step_changed
                if pending and unpublished and on_partial is not None:
                    self._state = self._build_state()
                    unpublished = False
                    on_partial(self._state)
        finally:
            for task in tasks:
                task.cancel()
        return changed

    async def _refresh_slot(self, slot: _Slot, *, force: bool, read: set[str]) -> bool:
        """Check and maybe read one project; True when its published state changed."""
        async with self._sem:
            before = (slot.error, slot.gone_since, slot.loaded)
            assert slot.project.db_path is not None
            # The files as they were before this attempt: if it fails, any change after this moment is a
            # reason to try again. (Taken after the failure, it could already show the replacement that
            # made the attempt fail, and the stat pass would wait out ERROR_RETRY_INTERVAL.)
            files = changes.signature(slot.project.db_path)
            self._busy.add(slot.key)
            try:
                async with asyncio.timeout(self.config.project_timeout):
                    return await self._read_slot(slot, force=force, read=read)
            except TimeoutError:
                self._fail(slot, f"read timed out after {self.config.project_timeout:g}s", files)
            except ProjectGone as exc:
                self._fail(slot, exc.message, files)
                if slot.gone_since is None:
                    slot.gone_since = time.time()
                    self._generation += 1  # its watches went with it
            except DatabaseLocked as exc:
                self._fail(slot, exc.message, files, locked=True)
            except KernelError as exc:
                self._fail(slot, exc.message, files)
            except (sqlite3.Error, OSError, ValueError) as exc:
                self._fail(slot, f"{type(exc).__name__}: {exc}", files)
            except Exception as exc:  # a bug reading one project must not take the dashboard down
                log.exception("bigend: reading %s failed", slot.key)
                self._fail(slot, f"unexpected {type(exc).__name__}: {exc}", files)
            finally:
                self._busy.discard(slot.key)
                self._trim_connections()  # during the pass too: a first read of 1 000 projects
            return (slot.error, slot.gone_since, slot.loaded) != before

    def _fail(self, slot: _Slot, message: str, files: changes.Signature, *, locked: bool = False) -> None:
        """Record a failed read: the last good data stays, with the reason (shown as `!`)."""
        self._drop_conn(slot)
        slot.reuse = reader.Reuse()  # a read given up on may still be filling the old one
        slot.error = _without_path(message, slot.project.db_path)
        slot.error_at = time.monotonic()
        slot.locked = locked
        slot.signature = files  # the stat pass retries as soon as the files differ from these

    async def _read_slot(self, slot: _Slot, *, force: bool, read: set[str]) -> bool:
        path = slot.project.db_path
        assert path is not None
        if slot.conn is None:
            busy = min(1.0, self.config.project_timeout * 0.4)
            slot.conn = ReadConnection(path, busy_timeout=busy)
            self._connected[slot.key] = slot
        slot.last_used = next(self._tick)
        # After a failure (or before the first read) the data must be read whatever data_version says.
        must_read = force or not slot.loaded or slot.error is not None
        work = partial(_read_in_thread, slot.conn, slot.project, self._limits, slot.reuse, must_read)
        try:
            signature, result = await self._pool.run(work)
        except BaseException:
            self._drop_conn(slot)  # failed or given up on inside its read transaction: never reuse it
            slot.reuse = reader.Reuse()  # a read given up on may still be filling the old one
            raise
        # The database and its WAL as they were before the read looked (ReadConnection._note_stamps): a
        # commit or a rewrite racing the read still looks like a change to the next stat pass, even if its
        # file event is lost (e.g. to a watcher restarting).
        slot.signature = signature
        slot.checked_at = time.monotonic()
        if slot.gone_since is not None:
            slot.gone_since = None
            self._generation += 1  # it is back: watch it again
        if result is None:
            return False
        slot.state, slot.tally = result.state, result.tally
        slot.loaded = True
        slot.error = None
        slot.locked = False
        slot.reads += 1
        read.add(slot.key)
        return True

    # -- connections --------------------------------------------------------------------------------
    def _drop_conn(self, slot: _Slot) -> None:
        if slot.conn is not None:
            slot.conn.discard()
            slot.conn = None
        self._connected.pop(slot.key, None)

    def _trim_connections(self) -> None:
        """Keep at most `max_open_connections` (file handles, page caches): close the least recently used."""
        if len(self._connected) <= self.config.max_open_connections:
            return
        open_slots = [slot for key, slot in self._connected.items() if key not in self._busy]
        excess = len(self._connected) - self.config.max_open_connections
        if excess <= 0:
            return
        open_slots.sort(key=lambda slot: slot.last_used)
        for slot in open_slots[:excess]:
            self._drop_conn(slot)

    # -- discovery ----------------------------------------------------------------------------------
    async def _rediscover_locked(self) -> None:
        cfg = self.config
        result = await asyncio.to_thread(discover, cfg.roots, depth=cfg.depth, exclude=cfg.exclude)
        self._discovered = True
        found = {project.key: project for project in result.projects}
        changed = result.unreadable_roots != self._root_errors
        self._root_errors = dict(result.unreadable_roots)
        now = time.time()
        for key, vanished in self._slots.items():
            if key not in found and vanished.gone_since is None:  # kept, marked gone, until it returns
                changed = True
                self._generation += 1
                self._drop_conn(vanished)
                vanished.gone_since = now
                vanished.error = _gone_reason(vanished.project)
                vanished.error_at = time.monotonic()
        for key, project in found.items():
            slot = self._slots.get(key)
            if slot is None:
                changed = True
                self._slots[key] = _Slot(project=project, state=reader.empty_project_state(project))
            elif slot.project != project:
                changed = True
                self._replace_project(slot, project)
            elif slot.gone_since is not None and project.db_path is None:
                changed = True  # back, and nothing to read: what discovery saw is all there is
                self._generation += 1
                slot.gone_since = None
                slot.error = None
            # a returning project with a database stays gone until a read succeeds (the next stat pass)
        order = sorted(self._slots, key=lambda key: (self._slots[key].project.name.lower(), key))
        if changed or order != self._order:
            self._order = order
            self._generation += 1
            self._state = self._build_state()

    def _replace_project(self, slot: _Slot, project: Project) -> None:
        """A project whose markers or database changed (e.g. `ic init` in a bare .clavain)."""
        self._generation += 1
        if slot.project.db_path != project.db_path:
            self._drop_conn(slot)
            slot.loaded = False
            slot.error = None
            slot.locked = False
            slot.gone_since = None
            slot.tally = EMPTY_TALLY
            slot.reuse = reader.Reuse()
            slot.signature = None
            slot.state = reader.empty_project_state(project)
        slot.project = project

    def _reinspect(self, keys: set[str]) -> None:
        """Hinted projects without a database may just have got one: look again (cheap)."""
        for key in keys:
            slot = self._slots.get(key)
            if slot is None or slot.project.db_path is not None:
                continue
            project = inspect_dir(slot.project.path)
            if project is not None and project.db_path is not None:
                self._replace_project(slot, dataclasses.replace(project, name=slot.project.name))

    # -- live ---------------------------------------------------------------------------------------
    def _watch_dirs(self) -> dict[str, str]:
        """Project directory -> key, for every project (changes.watch_projects skips missing ones)."""
        return {key: key for key in self._order}

    async def _watch(self, dirs: dict[str, str], requests: _LiveRequests) -> None:
        try:
            await changes.watch_projects(dirs, requests.add, debounce_ms=self.config.debounce_ms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. a directory vanished or inotify limits: polling still runs
            log.warning("bigend: file watcher stopped (%s); relying on polling until rediscovery", exc)
            await asyncio.Event().wait()

    @staticmethod
    async def _every(interval: float, requests: _LiveRequests, flag: str) -> None:
        while True:
            await asyncio.sleep(interval)
            setattr(requests, flag, True)
            requests.wake.set()

    # -- state --------------------------------------------------------------------------------------
    def _empty_state(self) -> KernelState:
        return KernelState(
            generated_at=0,
            roots=[str(root) for root in self.config.roots],
            projects=[],
            metrics=Metrics(),
        )

    def _build_state(self) -> KernelState:
        slots = [self._slots[key] for key in self._order]
        errors = {slot.key: slot.error for slot in slots if slot.error is not None}
        metrics = combine((slot.tally for slot in slots), errors, len(slots))
        now = time.monotonic()
        stale_after = self._stale_after
        projects = [slot.published(slot.freshness(now, stale_after)) for slot in slots]
        self._published_stale = [p.path for p in projects if p.freshness is Freshness.STALE]
        self._stale_deadline = _stale_deadline(slots, stale_after)
        return KernelState(
            generated_at=time.time(),
            roots=[str(root) for root in self.config.roots],
            projects=projects,
            metrics=metrics,
            root_errors=dict(self._root_errors),
        )


def _stale_deadline(slots: list[_Slot], stale_after: float) -> float:
    """When the first of the projects that can go stale (read, no error) does, unless checked before."""
    checked = [slot.checked_at for slot in slots if slot.loaded and slot.error is None]
    return min(checked) + stale_after if checked else math.inf


def _gone_reason(project: Project) -> str:
    """Why rediscovery no longer finds a project."""
    if not project.path.is_dir():
        return "the project directory no longer exists"
    if project.db_path is not None and not project.db_path.is_file():
        return missing_reason(project.db_path)
    return "no longer found under the roots (its markers are gone)"


def _without_path(message: str | None, db_path: Path | None) -> str | None:
    """Errors are keyed by project already; "<db path>: " in front of the message only adds noise."""
    if message is None or db_path is None:
        return message
    prefix = f"{db_path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _read_in_thread(
    conn: ReadConnection, project: Project, limits: Limits, reuse: reader.Reuse, must_read: bool
) -> tuple[changes.Signature, reader.ProjectRead | None]:
    """A project's whole check and read, on a worker thread: file identity, data_version, queries, objects."""
    result = conn.read(partial(reader.read_project, project=project, limits=limits, reuse=reuse),
                       force=must_read)  # fmt: skip
    return conn.signature, result
