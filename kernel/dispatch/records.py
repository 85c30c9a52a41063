"""Dispatch rows and every change to them: one `BEGIN IMMEDIATE` transaction per change, with its event.

Status only moves forward (`spawned -> running -> completed | failed | timeout | cancelled`) and a
terminal status is final: whoever makes the terminal transition first wins (the supervisor seeing
the exit, `kill`, `wait` running out, a reconciling `poll`). A later writer may still add facts
that were not known yet (the real exit code, the tokens, the end time), never a different status.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from kernel import clock, events
from kernel import eventtypes as et
from kernel import queries as q
from kernel.db import write_tx
from kernel.dispatch.agents.usage import TokenUsage
from kernel.errors import NotFound, Refused, UsageError
from kernel.model import Dispatch, Run

ACTIVE = ("spawned", "running")
TERMINAL = frozenset(Dispatch.TERMINAL)


def get(conn: sqlite3.Connection, dispatch_id: str) -> Dispatch:
    row = q.fetch_one(conn, q.DISPATCH_BY_ID, dispatch_id)
    if row is None:
        raise NotFound(f"no dispatch {dispatch_id!r} in this database; see `ic dispatch list`")
    return row


def run_of(conn: sqlite3.Connection, scope_id: str | None) -> Run | None:
    """The run a dispatch works for, if its scope names a run of this database."""
    if not scope_id:
        return None
    return q.fetch_one(conn, q.RUN_BY_ID, scope_id)


def admit(conn: sqlite3.Connection, scope_id: str | None) -> Run | None:
    """Refuse a new dispatch its run does not allow; must run inside the inserting transaction.

    Counting and inserting in one `BEGIN IMMEDIATE` transaction is what makes `--max-agents` hold
    under concurrent spawners: the second spawner's count waits for the first one's insert.
    """
    run = run_of(conn, scope_id)
    if run is None:
        return None
    if run.is_terminal:
        raise Refused(f"run {run.id} is {run.status}; it takes no new dispatches")
    if run.budget_enforce and run.token_budget is not None:
        from kernel import budget

        status = budget.budget_status(conn, run)
        if status.exceeded:
            raise Refused(
                f"run {run.id} has used {status.used} of its {run.token_budget} token budget "
                "(--budget-enforce); spawn refused: raise the budget with `ic run set` first"
            )
    if run.max_agents is not None:
        active = q.fetch_one(conn, q.COUNT_ACTIVE_DISPATCHES_OF_SCOPE, run.id) or 0
        if active >= run.max_agents:
            raise Refused(
                f"run {run.id} already has {active} running dispatches (--max-agents={run.max_agents}); "
                "retry when one ends"
            )
    return run


def insert(
    conn: sqlite3.Connection,
    *,
    dispatch_id: str,
    scope_id: str | None,
    project_dir: str,
    agent_type: str,
    name: str | None,
    model: str | None,
    prompt_file: str | None,
    output_file: str | None,
    command: list[str] | None,
    timeout_s: float | None,
    spawned_payload: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Dispatch:
    """Insert a `spawned` row and its event; must run inside the caller's write transaction."""
    now = clock.now()
    conn.execute(
        "INSERT INTO dispatches (id, scope_id, project_dir, agent_type, name, model, prompt_file, "
        "output_file, command, status, timeout_s, created_at, updated_at, metadata) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'spawned', ?, ?, ?, ?)",
        (
            dispatch_id, scope_id, project_dir, agent_type, name, model, prompt_file, output_file,
            None if command is None else json.dumps(command), timeout_s, now, now, json_object_text(metadata),
        ),
    )  # fmt: skip
    payload = {"agent_type": agent_type, "name": name, "model": model, "timeout_s": timeout_s}
    events.record(
        conn, source=et.DISPATCH, type=et.DISPATCH_SPAWNED, run_id=scope_id, to_state="spawned",
        reason=name, dispatch_id=dispatch_id, payload={**payload, **(spawned_payload or {})}, timestamp=now,
    )  # fmt: skip
    return get(conn, dispatch_id)


def json_object_text(metadata: dict[str, Any] | None) -> str | None:
    """A dispatch's `metadata` as stored: a JSON object (keys sorted) or NULL."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise UsageError("dispatch metadata must be a JSON object")
    return json.dumps(metadata, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def mark_running(
    conn: sqlite3.Connection, dispatch_id: str, pid: int | None, payload: dict[str, Any]
) -> bool:
    """spawned -> running with the agent's pid; False if the dispatch already left `spawned`."""
    with write_tx(conn):
        return mark_running_in_tx(conn, dispatch_id, pid, payload)


def mark_running_in_tx(
    conn: sqlite3.Connection, dispatch_id: str, pid: int | None, payload: dict[str, Any]
) -> bool:
    """`mark_running` inside the caller's write transaction."""
    now = clock.now()
    cur = conn.execute(
        "UPDATE dispatches SET status = 'running', pid = ?, started_at = ?, updated_at = ? "
        "WHERE id = ? AND status = 'spawned'",
        (pid, now, now, dispatch_id),
    )
    if cur.rowcount == 0:
        return False
    row = get(conn, dispatch_id)
    events.record(
        conn, source=et.DISPATCH, type=et.DISPATCH_RUNNING, run_id=row.scope_id, from_state="spawned",
        to_state="running", dispatch_id=dispatch_id, payload={"pid": pid, **payload}, timestamp=now,
    )  # fmt: skip
    return True


def _write_tokens(conn: sqlite3.Connection, row: Dispatch, usage: TokenUsage, now: int) -> None:
    cost = usage.cost_usd if usage.cost_usd is not None else row.cost_usd
    conn.execute(
        "UPDATE dispatches SET input_tokens = ?, output_tokens = ?, cache_tokens = ?, cost_usd = ?, "
        "updated_at = ? WHERE id = ?",
        (usage.input_tokens, usage.output_tokens, usage.cache_tokens, cost, now, row.id),
    )
    events.record(
        conn, source=et.DISPATCH, type=et.DISPATCH_TOKENS, run_id=row.scope_id, dispatch_id=row.id,
        payload={
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cache_tokens": usage.cache_tokens, "cost_usd": cost,
        },
        timestamp=now,
    )  # fmt: skip


def _check_budget(conn: sqlite3.Connection, scope_id: str | None) -> None:
    run = run_of(conn, scope_id)
    if run is not None:
        from kernel import budget

        budget.check_budget(conn, run)


def _release_slot(conn: sqlite3.Connection, row: Dispatch) -> None:
    run = run_of(conn, row.scope_id)
    if run is not None and run.parent_run_id is not None:
        from kernel.portfolio.slots import release_slot

        release_slot(run, row.id)


def validate_usage(usage: TokenUsage) -> None:
    for name in ("input_tokens", "output_tokens", "cache_tokens"):
        value = getattr(usage, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"{name} must be a whole number >= 0, got {value!r}")
    if usage.cost_usd is not None and not (usage.cost_usd >= 0):
        raise UsageError(f"cost_usd must be >= 0, got {usage.cost_usd!r}")


def finish(
    conn: sqlite3.Connection,
    dispatch_id: str,
    status: str,
    *,
    exit_code: int | None = None,
    error: str | None = None,
    usage: TokenUsage | None = None,
    release: bool = True,
    metadata: dict[str, Any] | None = None,
) -> tuple[Dispatch, bool]:
    """Move a dispatch to a terminal status; (row, True) if this call made the transition.

    On an already-terminal dispatch the status and error stay; a missing exit code or end time is
    filled in and reported tokens are recorded. Tokens re-check the run's budget in the same
    transaction. `metadata`, when given, replaces the stored metadata (what the caller concluded
    about the dispatch lands with its end). The portfolio slot is given back after the commit by
    whoever made the transition.
    """
    if status not in TERMINAL:
        raise UsageError(f"{status!r} is not a terminal dispatch status ({', '.join(sorted(TERMINAL))})")
    if usage is not None:
        validate_usage(usage)
    stored_metadata = json_object_text(metadata)
    with write_tx(conn):
        row = get(conn, dispatch_id)
        now = clock.now()
        changed = not row.is_terminal
        if changed:
            conn.execute(
                "UPDATE dispatches SET status = ?, exit_code = coalesce(?, exit_code), error = ?, "
                "ended_at = ?, updated_at = ? WHERE id = ?",
                (status, exit_code, error, now, now, dispatch_id),
            )
        else:
            conn.execute(
                "UPDATE dispatches SET exit_code = coalesce(exit_code, ?), ended_at = coalesce(ended_at, ?), "
                "updated_at = ? WHERE id = ?",
                (exit_code, now, now, dispatch_id),
            )
        if metadata is not None:
            conn.execute("UPDATE dispatches SET metadata = ? WHERE id = ?", (stored_metadata, dispatch_id))
        if usage is not None:
            _write_tokens(conn, row, usage, now)
        if changed:
            events.record(
                conn, source=et.DISPATCH, type=status, run_id=row.scope_id, from_state=row.status,
                to_state=status, reason=error, dispatch_id=dispatch_id,
                payload={"exit_code": exit_code if exit_code is not None else row.exit_code}, timestamp=now,
            )  # fmt: skip
        if usage is not None:
            _check_budget(conn, row.scope_id)
        final = get(conn, dispatch_id)
    if changed and release:
        _release_slot(conn, final)
    return final, changed


def set_tokens(conn: sqlite3.Connection, dispatch_id: str, usage: TokenUsage) -> Dispatch:
    """Record a dispatch's token usage (replacing earlier figures) and re-check its run's budget."""
    validate_usage(usage)
    with write_tx(conn):
        row = get(conn, dispatch_id)
        _write_tokens(conn, row, usage, clock.now())
        _check_budget(conn, row.scope_id)
        return get(conn, dispatch_id)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """Who answers for a dispatch: its supervisor (or external owner) and the agent process."""

    supervisor_pid: int | None = None
    supervisor_start: int | None = None
    pid: int | None = None
    pid_start: int | None = None
    pgid: int | None = None
    external: bool = False

    @property
    def answerer(self) -> str:
        return "owner process" if self.external else "supervisor"


def process_info(conn: sqlite3.Connection, dispatch_id: str) -> ProcessInfo:
    merged: dict[str, Any] = {}
    for event in q.fetch_all(conn, q.DISPATCH_LIFECYCLE_EVENTS, dispatch_id):
        merged.update({k: v for k, v in (event.payload or {}).items() if v is not None})

    def as_int(key: str) -> int | None:
        value = merged.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return ProcessInfo(
        supervisor_pid=as_int("supervisor_pid"),
        supervisor_start=as_int("supervisor_start"),
        pid=as_int("pid"),
        pid_start=as_int("pid_start"),
        pgid=as_int("pgid"),
        external=merged.get("external") is True,
    )


def running_payload(
    pid: int, pid_start: int | None, supervisor_pid: int | None, supervisor_start: int | None
) -> dict[str, Any]:
    """The `running` event's payload of a supervised dispatch: who answers for it, and its group."""
    return {
        "pgid": pid, "pid_start": pid_start, "supervisor_pid": supervisor_pid,
        "supervisor_start": supervisor_start,
    }  # fmt: skip


def died_error(answerer: str, pid: int, *, ended_by: str | None) -> str:
    """The one wording for a dispatch whose supervisor (or owner) vanished without a result."""
    error = f"{answerer} (pid {pid}) died without recording a result; exit code unknown"
    return error if ended_by is None else f"{error}; {ended_by} ended the agent's processes"


def own_identity() -> dict[str, int | None]:
    """This process as a supervisor: pid plus start time, so a reused pid is never mistaken for it."""
    from kernel.dispatch import procs

    pid = os.getpid()
    return {"supervisor_pid": pid, "supervisor_start": procs.start_time(pid)}
