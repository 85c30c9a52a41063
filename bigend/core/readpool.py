"""The worker thread that reads project databases: one thread hop per project read.

Three choices, all about the aggregator's full refresh (DESIGN 6) and about never hanging Bigend:
- One read runs at a time, on one worker thread that takes queued reads back to back. A read is
  mostly Python turning rows into tuples and snapshot objects under the GIL, and SQLite releases the
  GIL around every row it steps, so reads running side by side hand the GIL back and forth once per
  row; and a thread that sleeps between reads wakes up on a cold core. Measured on the 50-project
  forced refresh (benchmarks/aggregator.py, machine loaded by other work): 1 worker 142 ms median
  (126 ms CPU), 2 workers 199 ms (141 ms CPU), 3 workers 175 ms (146 ms CPU). The aggregator's bounded
  pool decides how many reads are queued at once.
- A read still running `stall_after` seconds after it started (a normal one takes a few milliseconds)
  is left to its thread, which ends with it, and a fresh thread takes the queue: a slow or hung project
  holds the others back by that long at most.
- Daemon threads. `asyncio.to_thread` and `ThreadPoolExecutor` join their threads at exit, so one read
  stuck in the filesystem (a hung network mount) would hang Bigend's exit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_Done = tuple["_Job[Any]", Any, "BaseException | None"]  # a finished read: job, value, error

# Results wait at most this long for the queue to run dry before they are reported anyway.
MAX_REPORT_DELAY = 0.02


class _Worker:
    """One worker thread's state, shared with the event loop's stall check."""

    def __init__(self) -> None:
        self.retiring = False  # set when its read stalled: it ends after that read
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._ready: list[_Done] = []  # results not reported yet (see `_work`)
        self._since = 0.0

    def add(self, done: _Done) -> None:
        with self._lock:
            if not self._ready:
                self._since = time.monotonic()
            self._ready.append(done)

    def has_ready(self) -> bool:
        return bool(self._ready)

    def ready_for(self) -> float:
        return time.monotonic() - self._since if self._ready else 0.0

    def report(self) -> None:
        """Hand the results gathered so far to their event loops (any thread may call this)."""
        with self._lock:
            ready, self._ready = self._ready, []
        for loop in {job.loop for job, _, _ in ready}:
            mine = [done for done in ready if done[0].loop is loop]
            try:
                loop.call_soon_threadsafe(_settle, mine)
            except RuntimeError:
                pass  # the event loop is closed: nobody is waiting for these reads any more


class _Job(Generic[T]):
    """One read: its work, where to report, and what the worker thread says about it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Callable[[], T]) -> None:
        self.loop = loop
        self.work = work
        self.result: asyncio.Future[T] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()  # its thread is done with it
        # Written by the worker thread, read by the loop's stall check (plain attributes: a stale read
        # only delays that check by one period).
        self.worker: _Worker | None = None
        self.started: float | None = None
        self.done = False


class ReadPool:
    def __init__(self, *, stall_after: float = 0.1) -> None:
        self._stall_after = stall_after
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._current: _Worker | None = None  # the thread taking queued reads
        self._unfinished: set[asyncio.Future[None]] = set()

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` on the worker thread; cancelling the caller abandons it.

        An abandoned read that has not started is skipped; one already running finishes on its thread,
        its result unused (close its connection so it stops early).
        """
        loop = asyncio.get_running_loop()
        job = _Job(loop, work)
        self._unfinished.add(job.finished)
        job.finished.add_done_callback(self._unfinished.discard)
        if self._current is None:
            self._start_worker()
        self._jobs.put(job)
        handle = loop.call_later(self._stall_after, self._check_stall, job)
        try:
            return await job.result
        finally:
            if job.done:
                handle.cancel()
            else:  # given up on: skipped if not started, else the stall check still replaces its thread
                job.result.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` seconds) for reads still running, abandoned ones included."""
        if self._unfinished:
            await asyncio.wait(set(self._unfinished), timeout=timeout)

    def shutdown(self) -> None:
        """Let the worker thread end once the queue is empty; a later `run` starts a new one."""
        if self._current is not None:
            self._jobs.put(None)
        self._current = None
        self._jobs = queue.SimpleQueue()

    def _start_worker(self) -> None:
        worker = self._current = _Worker()
        worker.thread = threading.Thread(
            target=_work, args=(self._jobs, worker), name="bigend-read", daemon=True
        )
        worker.thread.start()

    def _check_stall(self, job: _Job[Any]) -> None:
        if job.done:
            return
        started, worker = job.started, job.worker
        if started is None or worker is None:  # still queued, behind a read that gets its own check
            if job.result.done():
                return  # given up on: the worker will skip it
            current = self._current
            if current is not None and current.thread is not None and not current.thread.is_alive():
                self._start_worker()  # cannot happen short of a bug in _work; never leave the queue stuck
            job.loop.call_later(self._stall_after, self._check_stall, job)
            return
        left = started + self._stall_after - time.monotonic()
        if left > 0:
            job.loop.call_later(left, self._check_stall, job)
        elif worker is self._current:
            worker.retiring = True  # it ends with this read; a fresh thread takes the queue
            worker.report()  # results it finished before this read must not wait for it
            self._start_worker()


def _work(jobs: queue.SimpleQueue[_Job[Any] | None], me: _Worker) -> None:
    """Run queued reads back to back, reporting results when the queue runs dry.

    Reporting wakes the event loop, and an event loop that wakes while the worker reads is what costs:
    it needs the GIL for each of its steps and gets it only when the worker lets go (up to the 5 ms
    switch interval each time). So results are reported together when no read is queued (the worker
    would sleep anyway), after MAX_REPORT_DELAY, or by the stall check when this thread is replaced.
    """
    try:
        while not me.retiring:
            if me.has_ready():
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    me.report()
                    continue
            else:
                job = jobs.get()
            if job is None:
                return
            value: Any = None
            error: BaseException | None = None
            if not job.result.cancelled():  # given up on before it started: skip the work
                job.worker, job.started = me, time.monotonic()
                try:
                    value = job.work()
                except BaseException as exc:  # delivered to the caller, whatever it is
                    error = exc
            job.done = True
            me.add((job, value, error))
            del job, value, error
            if me.ready_for() > MAX_REPORT_DELAY:
                me.report()
    finally:
        me.report()


def _settle(items: list[_Done]) -> None:
    for job, value, error in items:
        job.finished.set_result(None)
        if job.result.done():
            continue
        if error is None:
            job.result.set_result(value)
        else:
            job.result.set_exception(error)
