"""Portfolio gate checks, named in the gate engine's table (`kernel.gates.CHECKS`).

- `children_at_phase` guards a portfolio parent: it may enter phase X only when every child that is
  not cancelled is at or past X in its own chain (a failed child blocks).
- `upstreams_at_phase` guards a child: it may enter X only when each of its upstream projects is at or
  past X (a cancelled upstream no longer holds anyone back; a failed one does).

Neither trusts the relayed copies in the portfolio database: both read the children's own project
databases, read-only, at evaluation time, and an unreadable project fails the condition (fail closed)
rather than letting a stale picture through. `count` is the number of children (or upstreams) that hold
the gate back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from kernel import db as kdb
from kernel import queries as q
from kernel.errors import KernelError, StorageError
from kernel.gates import ConditionResult, GateContext
from kernel.model import Run
from kernel.phase import at_or_past
from kernel.portfolio.childdb import CHILD_TIMEOUT, read_child_or_error
from kernel.portfolio.lookup import children

_SHOWN = 5


def _lag(child: Run | str, project: str, phase: str) -> str | None:
    """Why this child holds the gate at `phase` back, or None if it does not."""
    if isinstance(child, str):
        return f"{project}: unreadable ({child})"
    if child.status == "cancelled":
        return None
    if child.status == "failed":
        return f"{project}: failed at {child.phase}"
    if phase not in child.phases:
        return f"{project}: {phase!r} is not in its chain"
    if at_or_past(child.phases, child.phase, phase):
        return None
    return f"{project}: at {child.phase}"


def _lagging(copies: list[Run], phase: str) -> list[str]:
    """Why each of these children (read fresh from its project) holds the gate at `phase` back."""
    found = (
        _lag(read_child_or_error(c.project_dir, c.id, timeout=CHILD_TIMEOUT), c.project_dir, phase)
        for c in copies
    )
    return [reason for reason in found if reason is not None]


def _result(check: str, phase: str, lagging: list[str], total: int, noun: str) -> ConditionResult:
    if not lagging:
        return ConditionResult(check, phase, "pass", 0, f"all {total} {noun} at or past {phase}")
    shown = "; ".join(lagging[:_SHOWN]) + ("; ..." if len(lagging) > _SHOWN else "")
    return ConditionResult(
        check, phase, "fail", len(lagging), f"{len(lagging)} of {total} {noun} behind: {shown}"
    )


def check_children_at_phase(ctx: GateContext, rule: dict[str, Any]) -> ConditionResult:
    """Evaluated on a parent in the portfolio database: every child read fresh from its project."""
    phase = str(rule.get("phase") or ctx.to_phase)
    kids = children(ctx.conn, ctx.run.id)
    return _result("children_at_phase", phase, _lagging(kids, phase), len(kids), "children")


def _upstream_children(run: Run) -> tuple[list[Run], str | None]:
    """The portfolio copies of the run's upstream children, read from its portfolio database.

    Returns (upstreams, note): note explains a run that has a parent but no portfolio on record.
    """
    meta = run.metadata or {}
    db = meta.get("portfolio_db")
    if not isinstance(db, str) or not db:
        return [], "no portfolio database recorded on the run"
    path = Path(db)
    if not path.is_file():
        raise StorageError(f"portfolio database {path} is missing")
    conn = kdb.connect(path, timeout=CHILD_TIMEOUT, readonly=True)
    try:
        kdb.check_schema(conn, path)
        deps = q.fetch_all(conn, q.DEPS_UPSTREAMS_OF, run.parent_run_id, run.project_dir)
        found: list[Run] = []
        for dep in deps:
            up = q.fetch_one(conn, q.CHILD_OF_PROJECT, run.parent_run_id, dep.upstream)
            if up is None:
                raise StorageError(
                    f"upstream {dep.upstream} has no child run in portfolio {run.parent_run_id}"
                )
            found.append(up)
        return found, None
    except sqlite3.Error as exc:
        raise StorageError(f"portfolio database {path}: {exc}") from exc
    finally:
        conn.close()


def check_upstreams_at_phase(ctx: GateContext, rule: dict[str, Any]) -> ConditionResult:
    """Evaluated on a child (in its project or the portfolio database): upstreams read fresh."""
    phase = str(rule.get("phase") or ctx.to_phase)
    try:
        upstreams, note = _upstream_children(ctx.run)
    except KernelError as exc:
        return ConditionResult(
            "upstreams_at_phase", phase, "fail", 1, f"cannot read dependencies: {exc.message}"
        )
    if note is not None:
        return ConditionResult("upstreams_at_phase", phase, "pass", 0, note)
    if not upstreams:
        return ConditionResult("upstreams_at_phase", phase, "pass", 0, "no upstream projects")
    return _result(
        "upstreams_at_phase", phase, _lagging(upstreams, phase), len(upstreams), "upstream projects"
    )
