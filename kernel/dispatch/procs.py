"""What `/proc` says about a process or a process group, and how to end a group for sure.

A pid alone is not an identity: after a process dies the number is reused. Every pid the kernel
records is paired with its start time (field 22 of /proc/<pid>/stat), and nothing is signalled
unless both still match, so a stale row can never make `ic` kill an unrelated process. Process
*trees* (descendants that left the group, a child subreaper) are `kernel.proctree`'s.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

PROC = "/proc"


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    state: str
    ppid: int
    pgrp: int
    start: int

    @property
    def is_zombie(self) -> bool:
        return self.state in ("Z", "X")


def stat(pid: int) -> ProcStat | None:
    """The parsed /proc/<pid>/stat, or None when there is no such process."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return ProcStat(pid=pid, state=fields[0], ppid=int(fields[1]), pgrp=int(fields[2]), start=int(fields[19]))


def start_time(pid: int) -> int | None:
    found = stat(pid)
    return None if found is None else found.start


def is_alive(pid: int | None, start: int | None) -> bool:
    """True while the very process recorded as (pid, start) runs; zombies count as dead."""
    if not pid:
        return False
    found = stat(pid)
    if found is None or found.is_zombie:
        return False
    return start is None or found.start == start


def _all() -> list[ProcStat]:
    """Every process /proc shows now (zombies included)."""
    try:
        names = os.listdir(PROC)
    except OSError:
        return []
    found = []
    for name in names:
        if name.isdigit() and (entry := stat(int(name))) is not None:
            found.append(entry)
    return found


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    return [p.pid for p in _all() if p.pgrp == pgid and not p.is_zombie]


class Snapshot:
    """The live processes at one moment, for questions about many records at once (one /proc scan)."""

    def __init__(self) -> None:
        live = [p for p in _all() if not p.is_zombie]
        self.starts = {p.pid: p.start for p in live}
        self.groups = {p.pgrp for p in live}

    def alive(self, pid: int | None, start: int | None) -> bool:
        return bool(pid) and pid in self.starts and (start is None or self.starts[pid] == start)

    def group_alive(self, pgid: int | None, leader_start: int | None) -> bool:
        """Like `owns_group`: a group whose leader number now belongs to another process is not ours."""
        if not pgid or pgid not in self.groups:
            return False
        return leader_start is None or pgid not in self.starts or self.starts[pgid] == leader_start


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _wait_group_gone(pgid: int, deadline: float) -> bool:
    delay = 0.01
    while True:
        if not group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def end_group(pgid: int, grace_s: float) -> bool:
    """TERM the whole group, KILL whatever is left after `grace_s`; True if anything was signalled.

    Returns once no live member remains (bounded: a member stuck in uninterruptible sleep is given
    up on after a further 5 s rather than hanging the caller).
    """
    if pgid <= 1 or not group_members(pgid):
        return False
    _signal_group(pgid, signal.SIGTERM)
    # A stopped process cannot act on TERM until it is continued.
    _signal_group(pgid, signal.SIGCONT)
    if _wait_group_gone(pgid, time.monotonic() + grace_s):
        return True
    _signal_group(pgid, signal.SIGKILL)
    _wait_group_gone(pgid, time.monotonic() + 5.0)
    return True


def owns_group(pid: int | None, start: int | None) -> bool:
    """Whether `pid`'s group may be signalled as ours.

    The group id is the agent's pid (it leads its own session). Linux never hands out a pid that is
    still some group's id, so while any member lives the group is ours; if the leader number exists
    again with another start time, the group emptied and the number was reused: not ours.
    """
    if not pid:
        return False
    leader = stat(pid)
    if leader is not None and start is not None and leader.start != start:
        return False
    return bool(group_members(pid))
