"""Cheap answers to "did this project change?", so an unchanged project costs (almost) nothing.

Three layers, cheapest first:
- file events: watchfiles on each project's `.clavain/` directory says which projects were written;
- a stat signature of the database and its WAL (a commit in WAL mode appends to the WAL, a checkpoint
  rewrites the database file), a few microseconds per project, used by the periodic safety pass;
- `PRAGMA data_version` on the kept read connection (in reader.py), the authoritative check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from kernel import db as kdb

Signature = tuple[int, ...]

# The files whose change means "a commit happened" (-shm changes through mmap and on every read).
WATCHED_NAMES = frozenset(
    {kdb.DB_NAME, f"{kdb.DB_NAME}-wal", kdb.PORTFOLIO_DB_NAME, f"{kdb.PORTFOLIO_DB_NAME}-wal"}
)


def _stat_part(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def signature(db_path: Path) -> Signature:
    """What the database and its WAL look like on disk; any commit changes it (see module doc)."""
    text = str(db_path)
    return _stat_part(text) + _stat_part(text + "-wal")


def watch_filter(_change: object, path: str) -> bool:
    return os.path.basename(path) in WATCHED_NAMES


async def watch_projects(
    dirs: dict[str, str],
    on_change: Callable[[set[str]], None],
    *,
    debounce_ms: int,
) -> None:
    """Call `on_change(project keys)` whenever files in the watched `.clavain` dirs change; until cancelled.

    `dirs` maps each `.clavain` directory to its project's key. watchfiles groups changes for at most
    `debounce_ms` and yields once nothing new arrived for a short step, so a burst of commits is one call.
    """
    if not dirs:
        await asyncio.Event().wait()  # nothing to watch: sleep until cancelled
        return
    from watchfiles import awatch

    step = max(1, min(50, debounce_ms))
    async for changes in awatch(
        *dirs, watch_filter=watch_filter, debounce=debounce_ms, step=step, recursive=False
    ):
        keys = {dirs[parent] for parent in _parents(path for _, path in changes) if parent in dirs}
        if keys:
            on_change(keys)


def _parents(paths: Iterable[str]) -> set[str]:
    return {os.path.dirname(path) for path in paths}


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
