"""The orchestrator's record in the kernel: each issue a run, each phase attempt a dispatch.

The run's chain is `dev, review, fix, done`. The loop moves it with the kernel's own verbs, so Bigend
sees ordinary phase events:

    dev -> review        advance
    review -> fix        advance (the review failed)
    fix -> review        rollback (the fix is committed; review again)
    review -> done       pre-skip `fix`, then advance (the review passed; the run completes)
    capped / broken      fail_run with the reason

Gates are disabled on every move: the review verdict is the orchestrator's gate. The run's metadata
`{"orchestrator": {"issue", "milestone", "branch"}}` is how a rerun finds it again, and dispatch names
`<issue>/<phase>/<cycle>/<attempt>` are how it finds where the loop stood.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel import db as kdb
from kernel import events, runs
from kernel import queries as q
from kernel.dispatch.agents.usage import TokenUsage
from kernel.errors import KernelError
from kernel.model import Dispatch, Run

CHAIN = ["dev", "review", "fix", "done"]
SOURCE = "orchestrator"
PHASE_RANK = {"dev": 0, "fix": 0, "review": 1}


class KernelTrouble(KernelError):
    """The kernel refused or failed a write the loop depends on (exit 2)."""


@dataclass(frozen=True)
class Step:
    """A dispatch read back as a step of the loop."""

    dispatch: Dispatch
    phase: str
    cycle: int
    attempt: int

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.cycle, PHASE_RANK.get(self.phase, 2), self.attempt)


def dispatch_name(issue_id: str, phase: str, cycle: int, attempt: int) -> str:
    return f"{issue_id}/{phase}/{cycle}/{attempt}"


def parse_step(dispatch: Dispatch) -> Step | None:
    parts = (dispatch.name or "").split("/")
    if len(parts) != 4 or parts[1] not in PHASE_RANK or not (parts[2].isdigit() and parts[3].isdigit()):
        return None
    return Step(dispatch, parts[1], int(parts[2]), int(parts[3]))


def db_path(repo: Path) -> Path:
    return repo / kdb.DB_DIR / kdb.DB_NAME


def issue_of(run: Run) -> str | None:
    meta = (run.metadata or {}).get("orchestrator")
    if isinstance(meta, dict) and isinstance(meta.get("issue"), str):
        return str(meta["issue"])
    return None


def _wrap(doing: str, exc: Exception) -> KernelTrouble:
    message = exc.message if isinstance(exc, KernelError) else str(exc)
    return KernelTrouble(f"kernel: cannot {doing}: {message}")


class KernelBridge:
    """One connection to the repository's kernel database, used from the event loop's thread only."""

    def __init__(self, repo: Path, conn: sqlite3.Connection) -> None:
        self.repo = repo
        self.conn = conn

    @classmethod
    def open(cls, repo: Path) -> KernelBridge:
        """Open `<repo>/.clavain/intercore.db`, creating (and migrating) it when missing."""
        path = db_path(repo)
        try:
            if not path.exists():
                kdb.init_db(path)
            return cls(repo, kdb.open_db(path))
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap("open the kernel database", exc) from None

    @classmethod
    def open_readonly(cls, repo: Path) -> KernelBridge | None:
        """For --dry-run: the database if it exists (never created, never written)."""
        path = db_path(repo)
        if not path.exists():
            return None
        try:
            return cls(repo, kdb.open_db(path, readonly=True))
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap("open the kernel database", exc) from None

    def close(self) -> None:
        self.conn.close()

    # -- runs ---------------------------------------------------------------------------------------

    def runs_by_issue(self) -> dict[str, Run]:
        """The newest orchestrator run of each issue of this repository."""
        project = runs.absolute_project(self.repo)
        found: dict[str, Run] = {}
        for run in runs.list_runs(self.conn):  # newest first
            issue = issue_of(run)
            if issue is not None and run.project_dir == project and issue not in found:
                found[issue] = run
        return found

    def create_run(
        self, *, issue_id: str, title: str, milestone: str, branch: str, token_budget: int | None
    ) -> Run:
        try:
            return runs.create_run(
                self.conn,
                goal=f"{issue_id}: {title}",
                project_dir=self.repo,
                phases=list(CHAIN),
                scope_id=None,
                token_budget=token_budget,
                metadata={"orchestrator": {"issue": issue_id, "milestone": milestone, "branch": branch}},
            )
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap("create the issue's run", exc) from None

    def get(self, run_id: str) -> Run:
        try:
            return runs.get_run(self.conn, run_id)
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap("read the run", exc) from None

    def enter(self, run_id: str, target: str, *, reason: str) -> Run:
        """Move the run to `target` by the one legal verb from where it stands; no-op when there."""
        run = self.get(run_id)
        here = run.phase
        if here == target and (target != "done" or run.status == "completed"):
            return run
        try:
            if (here, target) in (("dev", "review"), ("review", "fix")):
                if target == "fix" and "fix" in runs.pre_skipped(self.conn, run_id):
                    raise KernelTrouble(f"run {run_id} has `fix` pre-skipped; it cannot enter fix again")
                runs.advance(self.conn, run_id, disable_gates=True, expect_phase=here, skip_reason=reason)
            elif (here, target) == ("fix", "review"):
                runs.rollback(self.conn, run_id, "review", reason=reason)
            elif (here, target) == ("review", "done"):
                runs.skip_phase(self.conn, run_id, "fix", reason)
                runs.advance(self.conn, run_id, disable_gates=True, expect_phase=here, skip_reason=reason)
            else:
                raise KernelTrouble(f"run {run_id} is at {here!r}; the loop cannot move it to {target!r}")
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap(f"move run {run_id} from {here} to {target}", exc) from None
        return self.get(run_id)

    def fail(self, run_id: str, reason: str) -> None:
        try:
            runs.fail_run(self.conn, run_id, reason=reason)
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap(f"mark run {run_id} failed", exc) from None

    def fix_pre_skipped(self, run_id: str) -> bool:
        return "fix" in runs.pre_skipped(self.conn, run_id)

    def record(
        self, run_id: str, type: str, *, reason: str | None = None, payload: dict[str, Any] | None = None
    ) -> None:
        """An orchestrator event in the run's stream (Bigend shows it as an Unknown kind)."""
        try:
            with kdb.write_tx(self.conn):
                events.record(
                    self.conn, source=SOURCE, type=type, run_id=run_id, reason=reason, payload=payload
                )
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap("record an event", exc) from None

    # -- dispatches ---------------------------------------------------------------------------------

    def steps(self, run_id: str) -> list[Step]:
        """The run's phase attempts in loop order (cycle, phase, attempt)."""
        found = [parse_step(d) for d in q.fetch_all(self.conn, q.DISPATCHES_OF_SCOPE, run_id)]
        return sorted((s for s in found if s is not None), key=lambda s: s.order)

    def tokens(self, run_id: str) -> tuple[int, int, int]:
        totals = q.fetch_one(self.conn, q.TOKENS_OF_SCOPE, run_id)
        if totals is None:
            return (0, 0, 0)
        return (totals.input_tokens, totals.output_tokens, totals.cache_hits)

    def begin(
        self,
        *,
        run_id: str,
        name: str,
        agent_type: str,
        model: str | None,
        command: list[str],
        output_file: Path,
        pid: int | None,
    ) -> str:
        from kernel.dispatch import api

        try:
            dispatch = api.begin_external(
                self.conn,
                project_dir=str(self.repo),
                agent_type=agent_type,
                scope_id=run_id,
                name=name,
                model=model,
                command=command,
                output_file=str(output_file),
                pid=pid,
            )
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap("record the phase's dispatch", exc) from None
        return dispatch.id

    def reconcile(self, dispatch_id: str) -> Dispatch:
        """The kernel's verdict on a dispatch whose owner may have died: `poll` ends its processes and
        fails it when the process that began it is gone (a crashed orchestrator)."""
        from kernel.dispatch import api

        try:
            return api.poll(self.conn, dispatch_id)
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap(f"poll dispatch {dispatch_id}", exc) from None

    def finish(
        self,
        dispatch_id: str,
        *,
        status: str,
        exit_code: int | None,
        error: str | None,
        usage: TokenUsage | None,
    ) -> None:
        """Record an attempt's end; `usage` None (the agent reported none) keeps the stored figures."""
        from kernel.dispatch import api

        try:
            api.finish(
                self.conn,
                dispatch_id,
                status=status,
                exit_code=exit_code,
                error=error,
                input_tokens=None if usage is None else usage.input_tokens,
                output_tokens=None if usage is None else usage.output_tokens,
                cache_tokens=None if usage is None else usage.cache_tokens,
                cost_usd=None if usage is None else usage.cost_usd,
            )
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap(f"finish dispatch {dispatch_id}", exc) from None
