"""Run tracking: the agents working on a run and the artifacts each phase produced.

Gates read these (`agents_complete`, `artifact_exists`, `verdict_exists`), so every record carries
what a gate needs to decide without trusting the caller: a file artifact is fingerprinted with the
sha256 of its content at the moment it was recorded, and a verdict's outcome is validated.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from typing import Any

from kernel import clock, events
from kernel import eventtypes as et
from kernel import queries as q
from kernel.db import write_tx
from kernel.errors import NotFound, Refused, StorageError, UsageError
from kernel.model import RunAgent, RunArtifact
from kernel.runs import get_run, json_text

AGENT_STATUSES = ("active", "completed", "failed")
VERDICTS = ("pass", "fail")
VERDICT_KIND = "verdict"


def check_status(status: str) -> str:
    if status not in AGENT_STATUSES:
        raise UsageError(f"agent status {status!r} is not one of {', '.join(AGENT_STATUSES)}")
    return status


def _non_empty(flag: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"--{flag} must be a non-empty text")
    return value


# -- agents -----------------------------------------------------------------------------------------


def add_agent(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    name: str,
    agent_type: str | None = None,
    status: str = "active",
    dispatch_id: str | None = None,
) -> RunAgent:
    """Register an agent on a run; refused when the run already has `max_agents` active agents."""
    _non_empty("name", name)
    check_status(status)
    with write_tx(conn):
        run = get_run(conn, run_id)
        if status == "active" and run.max_agents is not None:
            active = q.fetch_one(conn, q.AGENTS_ACTIVE_COUNT, run_id) or 0
            if active >= run.max_agents:
                raise Refused(
                    f"run {run_id} already has {active} active agents (max_agents={run.max_agents}); "
                    "complete one first or raise it with `ic run set --max-agents=N`"
                )
        agent_id = clock.new_id()
        now = clock.now()
        conn.execute(
            "INSERT INTO run_agents (id, run_id, name, agent_type, status, dispatch_id, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (agent_id, run_id, name, agent_type, status, dispatch_id, now, now),
        )
        events.record(
            conn, source=et.RUN, type=et.AGENT_ADDED, run_id=run_id, to_state=status, reason=name,
            dispatch_id=dispatch_id, payload={"agent_id": agent_id, "name": name, "agent_type": agent_type},
            timestamp=now,
        )  # fmt: skip
        agent = q.fetch_one(conn, q.AGENT_BY_ID, agent_id)
    assert agent is not None
    return agent


def list_agents(conn: sqlite3.Connection, run_id: str) -> list[RunAgent]:
    get_run(conn, run_id)
    return q.fetch_all(conn, q.AGENTS_OF_RUN, run_id)


def get_agent(conn: sqlite3.Connection, agent_id: str) -> RunAgent:
    agent = q.fetch_one(conn, q.AGENT_BY_ID, agent_id)
    if agent is None:
        raise NotFound(f"no run agent {agent_id!r} in this database")
    return agent


def update_agent(
    conn: sqlite3.Connection,
    agent_id: str,
    *,
    status: str | None = None,
    dispatch_id: str | None = None,
    name: str | None = None,
) -> RunAgent:
    """Change an agent's status (or link it to a dispatch, or rename it) with an `agent.updated` event."""
    if status is None and dispatch_id is None and name is None:
        raise UsageError("nothing to update; give --status, --dispatch or --name")
    if status is not None:
        check_status(status)
    if name is not None:
        _non_empty("name", name)
    with write_tx(conn):
        agent = get_agent(conn, agent_id)
        new_status = status or agent.status
        new_dispatch = dispatch_id or agent.dispatch_id
        new_name = name or agent.name
        now = clock.now()
        conn.execute(
            "UPDATE run_agents SET status = ?, dispatch_id = ?, name = ?, updated_at = ? WHERE id = ?",
            (new_status, new_dispatch, new_name, now, agent_id),
        )
        events.record(
            conn, source=et.RUN, type=et.AGENT_UPDATED, run_id=agent.run_id, from_state=agent.status,
            to_state=new_status, reason=new_name, dispatch_id=new_dispatch,
            payload={"agent_id": agent_id, "name": new_name}, timestamp=now,
        )  # fmt: skip
        return get_agent(conn, agent_id)


# -- artifacts --------------------------------------------------------------------------------------


def content_hash(path: str) -> str | None:
    """`sha256:<hex>` of a regular file; None when nothing exists at the path (a URL, a note, ...)."""
    if not os.path.lexists(path):
        return None
    if os.path.isdir(path):
        raise UsageError(f"--path={path} is a directory; record a file (or a path that is not on disk)")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
    except OSError as exc:
        raise StorageError(f"cannot read artifact {path}: {exc.strerror or exc}") from None
    return f"sha256:{digest.hexdigest()}"


def _artifact_metadata(
    kind: str, verdict: str | None, metadata: dict[str, Any] | None
) -> dict[str, Any] | None:
    if metadata is not None and not isinstance(metadata, dict):
        raise UsageError("--metadata must be a JSON object")
    if verdict is not None:
        if verdict not in VERDICTS:
            raise UsageError(f"--verdict must be pass or fail, got {verdict!r}")
        if kind != VERDICT_KIND:
            raise UsageError(f"--verdict applies to --kind=verdict artifacts, not {kind!r}")
        return {**(metadata or {}), "status": verdict}
    if kind == VERDICT_KIND and (metadata or {}).get("status") not in VERDICTS:
        raise UsageError("a verdict artifact needs --verdict=pass|fail")
    return metadata


def add_artifact(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    path: str,
    phase: str | None = None,
    kind: str | None = None,
    verdict: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> RunArtifact:
    """Record an artifact for a phase of the run (default: its current phase).

    A path to an existing file is stored absolute with its content hash; any other path is stored
    as given, without a hash. `verdict` makes it a verdict (`kind` "verdict", metadata status).
    """
    _non_empty("path", path)
    kind = kind or (VERDICT_KIND if verdict is not None else "file")
    _non_empty("kind", kind)
    meta = _artifact_metadata(kind, verdict, metadata)
    digest = content_hash(path)
    stored_path = os.path.abspath(path) if digest is not None else path
    with write_tx(conn):
        run = get_run(conn, run_id)
        target = phase or run.phase
        if target not in run.phases:
            raise UsageError(f"phase {target!r} is not in run {run_id}'s chain: {', '.join(run.phases)}")
        artifact_id = clock.new_id()
        now = clock.now()
        conn.execute(
            "INSERT INTO run_artifacts (id, run_id, phase, path, kind, content_hash, metadata, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                artifact_id, run_id, target, stored_path, kind, digest,
                json_text(meta), now,
            ),
        )  # fmt: skip
        payload: dict[str, Any] = {
            "artifact_id": artifact_id, "path": stored_path, "kind": kind, "content_hash": digest,
        }  # fmt: skip
        if kind == VERDICT_KIND and meta is not None:
            payload["verdict"] = meta.get("status")
        events.record(
            conn, source=et.RUN, type=et.ARTIFACT_ADDED, run_id=run_id, to_state=target, reason=kind,
            payload=payload, timestamp=now,
        )  # fmt: skip
    return RunArtifact(
        id=artifact_id, run_id=run_id, phase=target, path=stored_path, kind=kind, content_hash=digest,
        metadata=meta, created_at=now,
    )  # fmt: skip


def list_artifacts(conn: sqlite3.Connection, run_id: str, *, phase: str | None = None) -> list[RunArtifact]:
    get_run(conn, run_id)
    if phase is not None:
        return q.fetch_all(conn, q.ARTIFACTS_OF_RUN_PHASE, run_id, phase)
    return q.fetch_all(conn, q.ARTIFACTS_OF_RUN, run_id)
