"""One `orchestrator run` per repository at a time; a second one refuses instead of racing.

Two runs on one repository would share the kernel runs, the worktrees, the logs and summary.json:
the second would find the first's issues in flight, report them as its own failures and block their
dependents. So the run holds an `flock` on a file in the git common directory (shared by every
worktree of the repository, whatever `--config` says) for as long as it works, and writes who holds
it into the file so the refusal can name the holder. The kernel drops the lock when the process dies,
even by `kill -9`, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kernel.dispatch import procs
from kernel.errors import Refused

LOCK_NAME = "orchestrator-run.lock"


class RepositoryBusy(Refused):
    """Another orchestrator is running in this repository (exit 1: an expected negative)."""


@dataclass(frozen=True)
class Holder:
    pid: int | None
    milestone: str | None
    started_at: float | None

    def describe(self) -> str:
        if self.pid is None:
            return "an orchestrator that is just starting"
        since = time.strftime("%H:%M:%S", time.localtime(self.started_at)) if self.started_at else "?"
        return f"pid {self.pid}, milestone {self.milestone}, since {since}"


def _read_holder(fd: int) -> Holder:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return Holder(int(data["pid"]), str(data["milestone"]), float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(None, None, None)  # the holder has not written its name yet


def _busy(repo: Path, holder: Holder) -> RepositoryBusy:
    stop = f"; or stop it: kill -INT {holder.pid}" if holder.pid else ""
    return RepositoryBusy(
        f"another orchestrator is already running in {repo} ({holder.describe()}); "
        f"wait for it to finish{stop}"
    )


@contextlib.contextmanager
def hold(common_dir: Path, repo: Path, milestone: str) -> Iterator[None]:
    """Hold the repository's run lock for the block; RepositoryBusy at once when another run has it."""
    fd = os.open(common_dir / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(repo, _read_holder(fd)) from None
        me = {"pid": os.getpid(), "milestone": milestone, "started_at": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(common_dir: Path) -> Holder | None:
    """Who seems to hold the repository's run lock (None: nobody), for `--dry-run` to mention.

    Read from the file, never by trying the lock: even a shared lock taken for a moment would make
    a run starting at that instant refuse. A holder that died by `kill -9` left its name behind, so
    its pid must still be alive to count.
    """
    try:
        fd = os.open(common_dir / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        found = _read_holder(fd)
    finally:
        os.close(fd)
    if found.pid is None or not procs.is_alive(found.pid, None):
        return None
    return found
