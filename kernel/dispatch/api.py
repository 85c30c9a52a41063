"""The dispatch API used by `ic dispatch`, the orchestrator and the portfolio.

Two ways a dispatch comes to exist:
- `spawn`: the kernel starts the agent under its own supervisor (kernel.dispatch.supervisor);
- `begin_external` + `finish`: a caller that runs its own subprocess (the orchestrator) records it.
Either way the rows, events, budgets and portfolio slots behave the same, and `poll` can tell when
whoever answers for a dispatch (its supervisor, or the external owner process) died without
recording a result: the dispatch then fails with that reason, never with a guessed exit code.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kernel import clock, proctree
from kernel import queries as q
from kernel.db import write_tx
from kernel.dispatch import procs, records
from kernel.dispatch.agents.usage import TokenUsage
from kernel.dispatch.records import get
from kernel.dispatch.spawn import DISPATCH_DIR, SpawnFailed, check_project, spawn
from kernel.errors import UsageError
from kernel.model import Dispatch

DEFAULT_GRACE_S = 5.0
# A dispatch still `spawned` this long after creation, with no supervisor on record, never started.
STALE_SPAWN_S = 120
RECONCILE_EVERY_S = 1.0

__all__ = [
    "SpawnFailed",
    "SpawnResult",
    "begin_external",
    "finish",
    "get",
    "kill",
    "list_dispatches",
    "poll",
    "prune",
    "set_tokens",
    "spawn",
    "wait",
]


@dataclass(frozen=True, slots=True)
class SpawnResult:
    """`ic dispatch spawn --json`: the new dispatch and its agent's pid."""

    id: str
    pid: int | None

    @classmethod
    def of(cls, row: Dispatch) -> SpawnResult:
        return cls(id=row.id, pid=row.pid)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def list_dispatches(
    conn: sqlite3.Connection, *, active: bool = False, scope: str | None = None
) -> list[Dispatch]:
    if scope is not None:
        return q.fetch_all(conn, q.DISPATCHES_ACTIVE_OF_SCOPE if active else q.DISPATCHES_OF_SCOPE, scope)
    return q.fetch_all(conn, q.DISPATCHES_ACTIVE if active else q.DISPATCHES_ALL)


def _end_processes(info: records.ProcessInfo, grace_s: float) -> bool:
    """End the agent: its whole group when it leads one (spawned dispatches always do)."""
    pgid = info.pgid or info.pid
    if pgid and procs.owns_group(pgid, info.pid_start if pgid == info.pid else None):
        return procs.end_group(pgid, grace_s)
    if info.pid and procs.is_alive(info.pid, info.pid_start):
        return proctree.end_pids([info.pid], grace_s)
    return False


def poll(conn: sqlite3.Connection, dispatch_id: str) -> Dispatch:
    """The dispatch now, after reconciling one whose supervisor died without recording a result."""
    row = get(conn, dispatch_id)
    if row.is_terminal:
        return row
    info = records.process_info(conn, dispatch_id)
    if info.supervisor_pid is None:
        if row.status == "spawned" and clock.now() - row.created_at > STALE_SPAWN_S:
            final, _ = records.finish(
                conn, dispatch_id, "failed",
                error=f"never started: no supervisor reported within {STALE_SPAWN_S}s of the spawn",
            )  # fmt: skip
            return final
        return row
    if procs.is_alive(info.supervisor_pid, info.supervisor_start):
        return row
    row = get(conn, dispatch_id)  # it may have recorded the result just before exiting
    if row.is_terminal:
        return row
    ended = _end_processes(info, DEFAULT_GRACE_S)
    error = records.died_error(info.answerer, info.supervisor_pid, ended_by="poll" if ended else None)
    final, _ = records.finish(conn, dispatch_id, "failed", error=error)
    return final


def kill(conn: sqlite3.Connection, dispatch_id: str, grace_s: float = DEFAULT_GRACE_S) -> Dispatch:
    """Cancel a dispatch: record `cancelled`, then TERM its process group and KILL what is left.

    The status is written first so the supervisor, seeing the agent die, adds the exit code instead
    of calling it a failure. Killing a terminal dispatch changes nothing and returns it as it is.
    """
    if grace_s < 0:
        raise UsageError("--grace must be >= 0")
    row = get(conn, dispatch_id)
    if row.is_terminal:
        return row
    info = records.process_info(conn, dispatch_id)
    _, changed = records.finish(conn, dispatch_id, "cancelled", error="cancelled by request")
    if changed:
        _end_processes(info, grace_s)
    return get(conn, dispatch_id)


def _expire(conn: sqlite3.Connection, dispatch_id: str, timeout_s: float) -> Dispatch:
    info = records.process_info(conn, dispatch_id)
    _, changed = records.finish(conn, dispatch_id, "timeout", error=f"wait timed out after {timeout_s:g}s")
    if changed:
        _end_processes(info, DEFAULT_GRACE_S)
    return get(conn, dispatch_id)


def wait(
    conn: sqlite3.Connection,
    db_path: str | os.PathLike[str] | None,
    dispatch_id: str,
    timeout_s: float | None = None,
) -> Dispatch:
    """Block until the dispatch is terminal; on `timeout_s`, end its processes and record `timeout`.

    `db_path` is accepted for symmetry with `spawn`; the connection is all this needs. The loop reads
    one indexed row per tick (backing off to 0.25 s) and reconciles about once a second, so a
    supervisor that died is noticed instead of waited on forever.
    """
    if timeout_s is not None and timeout_s < 0:
        raise UsageError("--timeout must be >= 0")
    started = time.monotonic()
    deadline = None if timeout_s is None else started + timeout_s
    next_reconcile = started + RECONCILE_EVERY_S
    delay = 0.02
    while True:
        row = get(conn, dispatch_id)
        if row.is_terminal:
            return row
        now = time.monotonic()
        if now >= next_reconcile:
            next_reconcile = now + RECONCILE_EVERY_S
            row = poll(conn, dispatch_id)
            if row.is_terminal:
                return row
        if deadline is not None and now >= deadline:
            return _expire(conn, dispatch_id, float(timeout_s or 0))
        pause = delay if deadline is None else min(delay, max(deadline - now, 0.0))
        time.sleep(pause)
        delay = min(delay * 1.5, 0.25)


def set_tokens(
    conn: sqlite3.Connection,
    dispatch_id: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_tokens: int = 0,
) -> Dispatch:
    """Record token usage by hand (replacing earlier figures); re-checks the run's budget."""
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens, cache_tokens=cache_tokens)
    return records.set_tokens(conn, dispatch_id, usage)


def _default_dir(db_file: str, row: Dispatch) -> Path | None:
    """The dispatch's own directory under `.clavain/dispatches/`, never a user-chosen output path."""
    if not db_file:
        return None
    directory = Path(db_file).parent / DISPATCH_DIR / row.id
    return directory if directory.is_dir() and not directory.is_symlink() else None


def _has_live_processes(info: records.ProcessInfo, live: procs.Snapshot) -> bool:
    """Whether anything of a dispatch still runs: its supervisor, its agent, or its agent's group.

    An external dispatch's owner (the orchestrator) outlives its dispatches and does not count.
    """
    if not info.external and live.alive(info.supervisor_pid, info.supervisor_start):
        return True
    if live.alive(info.pid, info.pid_start):
        return True
    return live.group_alive(info.pgid, info.pid_start if info.pgid == info.pid else None)


@dataclass(frozen=True, slots=True)
class PruneResult:
    pruned: int
    kept_live: int  # ended long enough ago, but a process of theirs still runs (e.g. a kill in its grace)


def prune(conn: sqlite3.Connection, older_than_s: float) -> PruneResult:
    """Delete terminal dispatches that ended more than `older_than_s` ago, and their own directories.

    A dispatch whose supervisor, agent or agent's group still runs is kept, whatever its status: its
    supervisor still has a result to write, and its directory holds the live output. Their events
    stay: the stream is history. A custom `--output` file is the caller's and is kept.
    """
    if older_than_s < 0:
        raise UsageError("--older-than must be >= 0")
    cutoff = clock.now() - int(older_than_s)
    db_file = str(conn.execute("PRAGMA database_list").fetchone()[2] or "")
    candidates = q.fetch_all(conn, q.DISPATCHES_ENDED_BEFORE, cutoff)
    live = procs.Snapshot()
    rows = [r for r in candidates if not _has_live_processes(records.process_info(conn, r.id), live)]
    with write_tx(conn):  # a racing prune may have deleted some already
        deleted = sum(conn.execute("DELETE FROM dispatches WHERE id = ?", (r.id,)).rowcount for r in rows)
    for row in rows:
        directory = _default_dir(db_file, row)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    return PruneResult(pruned=deleted, kept_live=len(candidates) - len(rows))


def begin_external(
    conn: sqlite3.Connection,
    *,
    project_dir: str | os.PathLike[str],
    agent_type: str,
    scope_id: str | None = None,
    name: str | None = None,
    model: str | None = None,
    command: list[str] | None = None,
    output_file: str | os.PathLike[str] | None = None,
    pid: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Dispatch:
    """Record a dispatch whose process the caller runs itself: created `running` (events spawned, running).

    One write transaction: the row, both events and the admission check land together or not at all.
    `metadata` (a JSON object) is the caller's structured description of the dispatch, e.g. the
    orchestrator's loop position.

    The calling process is recorded as its owner: should it die before `finish`, `poll` fails the
    dispatch. Admission (run state, enforced budget, `--max-agents`, portfolio slot) is the same as
    for `spawn`.
    """
    if not agent_type or not agent_type.strip():
        raise UsageError("agent_type must be a non-empty string")
    if command is not None and (
        not isinstance(command, list) or not all(isinstance(a, str) for a in command)
    ):
        raise UsageError("command must be a list of strings")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise UsageError(f"pid must be a positive integer, got {pid!r}")
    project = check_project(project_dir)
    dispatch_id = clock.new_id()
    output = None if output_file is None else str(Path(os.path.abspath(output_file)))
    run = records.run_of(conn, scope_id)
    if run is not None and run.parent_run_id is not None:
        from kernel.portfolio.slots import acquire_slot  # plain projects never load the portfolio code

        acquire_slot(run, dispatch_id, str(project), pid)
    owner = records.own_identity()
    pid_start = None if pid is None else procs.start_time(pid)
    try:
        with write_tx(conn):  # one transaction: nobody ever sees it `spawned`
            records.admit(conn, scope_id)
            records.insert(
                conn, dispatch_id=dispatch_id, scope_id=scope_id, project_dir=str(project),
                agent_type=agent_type, name=name, model=model, prompt_file=None, output_file=output,
                command=command, timeout_s=None, spawned_payload={**owner, "external": True},
                metadata=metadata,
            )  # fmt: skip
            records.mark_running_in_tx(conn, dispatch_id, pid, {"pid_start": pid_start, **owner})
            return get(conn, dispatch_id)
    except BaseException:
        if run is not None and run.parent_run_id is not None:
            from kernel.portfolio.slots import release_slot

            release_slot(run, dispatch_id)
        raise


def finish(
    conn: sqlite3.Connection,
    dispatch_id: str,
    *,
    status: str,
    exit_code: int | None = None,
    error: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cache_tokens: int | None = None,
    cost_usd: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> Dispatch:
    """Record the end of a dispatch (`completed|failed|timeout|cancelled`) with its tokens.

    Terminal is final: on a dispatch already ended (e.g. killed meanwhile) the stored status is kept
    and the returned row says so; tokens and a missing exit code are still recorded. Token figures
    not given keep their stored values; `metadata`, when given, replaces the stored metadata in the
    same transaction.
    """
    given = (input_tokens, output_tokens, cache_tokens, cost_usd)
    usage = None
    if any(v is not None for v in given):
        row = get(conn, dispatch_id)
        usage = TokenUsage(
            input_tokens=row.input_tokens if input_tokens is None else input_tokens,
            output_tokens=row.output_tokens if output_tokens is None else output_tokens,
            cache_tokens=row.cache_tokens if cache_tokens is None else cache_tokens,
            cost_usd=cost_usd,
        )
    final, _ = records.finish(
        conn, dispatch_id, status, exit_code=exit_code, error=error, usage=usage, metadata=metadata
    )
    return final
