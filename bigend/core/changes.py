"""Cheap answers to "did this project change?", so an unchanged project costs (almost) nothing.

Three layers, cheapest first:
- file events: watchfiles on each project's directory and its `.clavain/` says which projects were
  written, and whose `.clavain/` was removed or created;
- a stat signature of the database and its WAL (a commit in WAL mode appends to the WAL, a checkpoint
  rewrites the database file), a few microseconds per project, used by the periodic safety pass;
- `PRAGMA data_version` on the kept read connection (connection.py), the authoritative check, after the
  file identity check that notices a replaced or deleted database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from kernel import db as kdb

# The files whose change means "a commit happened" (-shm changes through mmap and on every read).
WATCHED_NAMES = frozenset(
    {kdb.DB_NAME, f"{kdb.DB_NAME}-wal", kdb.PORTFOLIO_DB_NAME, f"{kdb.PORTFOLIO_DB_NAME}-wal"}
)

Stamp = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns of one file
MISSING: Stamp = (0, 0, 0, 0)  # the stamp of a file that does not exist (or cannot be stat'ed)
Signature = tuple[Stamp, Stamp]  # the database's and its WAL's


def stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def signature(db_path: Path) -> Signature:
    """What the database and its WAL look like on disk; any commit, replacement or deletion changes it."""
    text = str(db_path)
    return (stamp(text), stamp(text + "-wal"))


def watch_filter(_change: object, path: str) -> bool:
    name = os.path.basename(path)
    return name in WATCHED_NAMES or name == kdb.DB_DIR


async def watch_projects(
    projects: dict[str, str],
    on_change: Callable[[set[str], bool], None],
    *,
    debounce_ms: int,
) -> None:
    """Call `on_change(project keys, rewatch)` whenever a project's database files change; until cancelled.

    `projects` maps each project directory to its key. Each that exists is watched (not recursively) for its
    `.clavain` directory appearing or disappearing, and each existing `.clavain` for writes to the
    database and its WAL. `rewatch` is True when a `.clavain` directory itself was added or removed
    (`rm -rf .clavain && ic init`): a watch follows the directory it was set on, so the caller must start
    a new watcher to hear of writes in the new one. watchfiles groups changes for at most `debounce_ms`
    and yields once nothing new arrived for a short step, so a burst of commits is one call.
    """
    clavains = {os.path.join(path, kdb.DB_DIR): key for path, key in projects.items()}
    dirs = {path: key for path, key in (*projects.items(), *clavains.items()) if os.path.isdir(path)}
    if not dirs:
        await asyncio.Event().wait()  # nothing to watch: sleep until cancelled
        return
    from watchfiles import awatch

    step = max(1, min(50, debounce_ms))
    async for changes in awatch(
        *dirs, watch_filter=watch_filter, debounce=debounce_ms, step=step, recursive=False
    ):
        keys: set[str] = set()
        rewatch = False
        for _, path in changes:
            if path in clavains:  # a .clavain directory itself, seen from its project directory
                keys.add(clavains[path])
                rewatch = True
            else:
                key = clavains.get(os.path.dirname(path))
                if key is not None:
                    keys.add(key)
        if keys:
            on_change(keys, rewatch)


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
