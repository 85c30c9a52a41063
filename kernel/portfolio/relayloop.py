"""The relay's loop: tick, sleep, and stop cleanly on SIGINT/SIGTERM.

A signal only sets a flag (so a child's transaction in progress always finishes) and wakes the sleep
at once through `signal.set_wakeup_fd`, so `kill -TERM` ends the relay within one child's work.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from kernel.errors import KernelError, NotFound, StorageError
from kernel.portfolio.paths import db_identity
from kernel.portfolio.relay import ChildReaders, TickReport, relay_tick


class Stopper:
    """Context manager installing SIGINT/SIGTERM handlers that request a clean stop."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stopped = False
        self._pipe: tuple[int, int] | None = None
        self._old_fd = -1
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Stopper:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        self._pipe = (read_end, write_end)
        self._old_fd = signal.set_wakeup_fd(write_end)
        self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._old_fd)
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True

    def is_stopped(self) -> bool:
        return self.stopped

    def sleep(self, seconds: float) -> None:
        """Sleep up to `seconds`, returning early when a stop was requested."""
        if self.stopped or self._pipe is None:
            return
        read_end = self._pipe[0]
        select.select([read_end], [], [], seconds)
        try:
            while os.read(read_end, 512):
                pass
        except BlockingIOError:
            pass


def run_loop(
    conn: sqlite3.Connection,
    portfolio_id: str,
    *,
    path: Path,
    interval: float,
    timeout: float,
    stopper: Stopper,
    on_tick: Callable[[TickReport], None],
    on_error: Callable[[str], None],
) -> None:
    """Tick every `interval` until stopped; a portfolio database error is reported and retried.

    The portfolio disappearing (NotFound) ends the loop with that error, and so does its database file
    `path` being removed or replaced: the open connection would go on writing to a file nobody reads.
    """
    identity = db_identity(path)
    readers = ChildReaders(timeout)
    try:
        while not stopper.stopped:
            if db_identity(path) != identity:
                raise StorageError(
                    f"{path} was removed or replaced while the relay ran; start the relay again on the "
                    "current file"
                )
            try:
                report = relay_tick(conn, portfolio_id, readers=readers, should_stop=stopper.is_stopped)
            except NotFound:
                raise
            except KernelError as exc:
                on_error(exc.message)
            except sqlite3.Error as exc:
                on_error(f"portfolio database {path}: {exc}")
            else:
                on_tick(report)
            stopper.sleep(interval)
    finally:
        readers.close()
