"""The orchestrator's record in the kernel: each issue a run, each phase attempt a dispatch.

The run's chain is `queued, dev, review, fix, done`. The loop moves it with the kernel's own verbs,
so Bigend sees ordinary phase events:

    queued -> dev        advance (the issue starts: its dependencies passed)
    queued               block (a dependency did not pass, or its branch does not merge): the run
                         waits, shown as blocked with the reason, until the next move
    dev -> review        advance
    review -> fix        advance (the review failed)
    fix -> review        rollback (the fix is committed; review again)
    review -> done       pre-skip `fix`, then advance (the review passed; the run completes)
    capped / broken      fail_run with the reason

Gates are disabled on every move: the review verdict is the orchestrator's gate. The run's metadata
`{"orchestrator": {"issue", "milestone", "branch", "base", "outcome", "reason"}}` is how a rerun finds
it again (and where it forked); each dispatch's metadata `{"orchestrator": {"issue", "phase", "cycle",
"attempt", ...}}` is where the loop stood, and a completed review's carries its `verdict`. Runs made
before the `queued` phase existed (chain `dev, review, fix, done`) are resumed all the same.

Every kernel call runs on one writer thread that owns the connection, never on the event loop: a
write waiting up to the busy timeout for another process's lock must not freeze the agents' output.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kernel import db as kdb
from kernel import events, runs
from kernel import queries as q
from kernel.dispatch.agents.usage import TokenUsage
from kernel.errors import KernelError
from kernel.model import Dispatch, Run

CHAIN = ["queued", "dev", "review", "fix", "done"]
SOURCE = "orchestrator"
META = "orchestrator"  # the metadata key of runs and dispatches
PHASE_RANK = {"dev": 0, "fix": 0, "review": 1}

T = TypeVar("T")


class KernelTrouble(KernelError):
    """The kernel refused or failed a write the loop depends on (exit 2)."""


@dataclass(frozen=True)
class Step:
    """A dispatch read back as a step of the loop, from its metadata."""

    dispatch: Dispatch
    phase: str
    cycle: int
    attempt: int

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.cycle, PHASE_RANK.get(self.phase, 2), self.attempt)

    @property
    def meta(self) -> dict[str, Any]:
        found = (self.dispatch.metadata or {}).get(META)
        return found if isinstance(found, dict) else {}


def dispatch_name(issue_id: str, phase: str, cycle: int, attempt: int) -> str:
    """A readable name for Bigend and `ic dispatch list`; never parsed back (the metadata is)."""
    return f"{issue_id}/{phase}/{cycle}/{attempt}"


def step_of(dispatch: Dispatch) -> Step | None:
    meta = (dispatch.metadata or {}).get(META)
    if not isinstance(meta, dict):
        return None
    phase, cycle, attempt = meta.get("phase"), meta.get("cycle"), meta.get("attempt")
    if phase not in PHASE_RANK or not isinstance(cycle, int) or not isinstance(attempt, int):
        return None
    return Step(dispatch, phase, cycle, attempt)


def db_path(repo: Path) -> Path:
    return repo / kdb.DB_DIR / kdb.DB_NAME


def run_meta(run: Run) -> dict[str, Any]:
    meta = (run.metadata or {}).get(META)
    return meta if isinstance(meta, dict) else {}


def issue_of(run: Run) -> str | None:
    issue = run_meta(run).get("issue")
    return issue if isinstance(issue, str) else None


def _wrap(doing: str, exc: Exception) -> KernelTrouble:
    message = exc.message if isinstance(exc, KernelError) else str(exc)
    return KernelTrouble(f"kernel: cannot {doing}: {message}")


class KernelBridge:
    """One connection to the repository's kernel database, used only from its own writer thread."""

    def __init__(self, repo: Path, conn: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self.repo = repo
        self.conn = conn
        self.thread = thread
        self.posted: set[asyncio.Future[Any]] = set()
        self.post_errors: list[str] = []

    @classmethod
    async def open(cls, repo: Path, *, readonly: bool = False) -> KernelBridge | None:
        """Open `<repo>/.clavain/intercore.db`, creating (and migrating) it when missing.

        `readonly` (for --dry-run): None when there is no database (it is never created or written).
        """
        path = db_path(repo)
        if readonly and not path.exists():
            return None
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernel")

        def connect() -> sqlite3.Connection:
            if not readonly and not path.exists():
                kdb.init_db(path)
            return kdb.open_db(path, readonly=readonly)

        try:
            conn = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except (KernelError, sqlite3.Error) as exc:
            thread.shutdown(wait=False)
            raise _wrap("open the kernel database", exc) from None
        return cls(repo, conn, thread)

    async def close(self) -> None:
        if self.posted:
            await asyncio.gather(*self.posted, return_exceptions=True)
        await self._call("close the kernel database", self.conn.close)
        self.thread.shutdown(wait=True)

    async def _call(self, doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the writer thread; kernel errors become one KernelTrouble."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.thread, functools.partial(fn, *args, **kwargs))
        except (KernelError, sqlite3.Error) as exc:
            raise _wrap(doing, exc) from None

    def _post(self, doing: str, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Queue a write nobody waits for (live token figures); it lands before any later call."""
        future = asyncio.get_running_loop().run_in_executor(
            self.thread, functools.partial(fn, *args, **kwargs)
        )
        self.posted.add(future)

        def done(f: asyncio.Future[Any]) -> None:
            self.posted.discard(f)
            if not f.cancelled() and f.exception() is not None:
                self.post_errors.append(f"cannot {doing}: {f.exception()}")

        future.add_done_callback(done)

    # -- runs ---------------------------------------------------------------------------------------

    async def runs_by_issue(self) -> dict[str, Run]:
        """The newest orchestrator run of each issue of this repository."""
        return await self._call("list the runs", self._runs_by_issue)

    def _runs_by_issue(self) -> dict[str, Run]:
        project = runs.absolute_project(self.repo)
        found: dict[str, Run] = {}
        for run in runs.list_runs(self.conn):  # newest first
            issue = issue_of(run)
            if issue is not None and run.project_dir == project and issue not in found:
                found[issue] = run
        return found

    async def create_run(
        self, *, issue_id: str, title: str, milestone: str, branch: str, token_budget: int | None
    ) -> Run:
        meta = {"issue": issue_id, "milestone": milestone, "branch": branch}
        return await self._call(
            "create the issue's run", runs.create_run, self.conn, goal=f"{issue_id}: {title}",
            project_dir=self.repo, phases=list(CHAIN), scope_id=None, token_budget=token_budget,
            metadata={META: meta},
        )  # fmt: skip

    async def get(self, run_id: str) -> Run:
        return await self._call("read the run", runs.get_run, self.conn, run_id)

    async def update_meta(self, run_id: str, **fields: Any) -> Run:
        """Merge `fields` into the run's orchestrator metadata (one `set` event)."""

        def update() -> Run:
            run = runs.get_run(self.conn, run_id)
            metadata = dict(run.metadata or {})
            metadata[META] = {**run_meta(run), **fields}
            return runs.set_run(self.conn, run_id, metadata=metadata)

        return await self._call(f"update run {run_id}'s metadata", update)

    async def enter(self, run_id: str, target: str, *, reason: str) -> Run:
        """Move the run to `target` by the legal verbs from where it stands; no-op when there."""
        return await self._call(f"move run {run_id} to {target}", self._enter, run_id, target, reason)

    def _enter(self, run_id: str, target: str, reason: str) -> Run:
        run = runs.get_run(self.conn, run_id)
        here = run.phase
        if here == target and (target != "done" or run.status == "completed"):
            return run
        if (here, target) == ("queued", "review"):  # --retry: the dev work is on the branch
            self._enter(run_id, "dev", reason)
            return self._enter(run_id, "review", reason)
        if (here, target) in (("queued", "dev"), ("dev", "review"), ("review", "fix")):
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
        return runs.get_run(self.conn, run_id)

    async def fail(self, run_id: str, *, outcome: str, reason: str) -> None:
        """Fail an active run with `<outcome>: <reason>` and keep both in its metadata."""

        def fail() -> None:
            run = runs.get_run(self.conn, run_id)
            if run.status != "active":
                return
            metadata = dict(run.metadata or {})
            metadata[META] = {**run_meta(run), "outcome": outcome, "reason": reason}
            runs.set_run(self.conn, run_id, metadata=metadata)
            runs.fail_run(self.conn, run_id, reason=f"{outcome}: {reason}")

        await self._call(f"mark run {run_id} failed", fail)

    async def block(self, run_id: str, *, reason: str, payload: dict[str, Any]) -> None:
        """The run waits (a dependency did not pass, its branch does not merge): a `block` event."""
        await self._call(
            f"record that run {run_id} is blocked",
            runs.block,
            self.conn,
            run_id,
            reason=reason,
            payload=payload,
        )

    async def record(
        self, run_id: str, type: str, *, reason: str | None = None, payload: dict[str, Any] | None = None
    ) -> None:
        """An orchestrator event in the run's stream (Bigend shows it as an Unknown kind)."""

        def record() -> None:
            with kdb.write_tx(self.conn):
                events.record(
                    self.conn, source=SOURCE, type=type, run_id=run_id, reason=reason, payload=payload
                )

        await self._call("record an event", record)

    # -- dispatches ---------------------------------------------------------------------------------

    async def steps(self, run_id: str) -> list[Step]:
        """The run's phase attempts in loop order (cycle, phase, attempt)."""

        def steps() -> list[Step]:
            found = [step_of(d) for d in q.fetch_all(self.conn, q.DISPATCHES_OF_SCOPE, run_id)]
            return sorted((s for s in found if s is not None), key=lambda s: s.order)

        return await self._call("read the run's dispatches", steps)

    async def tokens(self, run_id: str) -> tuple[int, int, int]:
        def tokens() -> tuple[int, int, int]:
            totals = q.fetch_one(self.conn, q.TOKENS_OF_SCOPE, run_id)
            if totals is None:
                return (0, 0, 0)
            return (totals.input_tokens, totals.output_tokens, totals.cache_hits)

        return await self._call("read the run's tokens", tokens)

    async def begin(
        self,
        *,
        run_id: str,
        name: str,
        agent_type: str,
        model: str | None,
        command: list[str],
        output_file: Path,
        pid: int | None,
        position: dict[str, Any],
    ) -> str:
        from kernel.dispatch import api

        dispatch = await self._call(
            "record the phase's dispatch", api.begin_external, self.conn, project_dir=str(self.repo),
            agent_type=agent_type, scope_id=run_id, name=name, model=model, command=command,
            output_file=str(output_file), pid=pid, metadata={META: position},
        )  # fmt: skip
        return dispatch.id

    def post_tokens(self, dispatch_id: str, usage: TokenUsage) -> None:
        """The running attempt's token use so far, written without waiting (Bigend shows it live)."""
        from kernel.dispatch import api

        self._post(
            "record live tokens", api.set_tokens, self.conn, dispatch_id, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, cache_tokens=usage.cache_tokens,
        )  # fmt: skip

    async def reconcile(self, dispatch_id: str) -> Dispatch:
        """The kernel's verdict on a dispatch whose owner may have died: `poll` ends its processes and
        fails it when the process that began it is gone (a crashed orchestrator)."""
        from kernel.dispatch import api

        return await self._call(f"poll dispatch {dispatch_id}", api.poll, self.conn, dispatch_id)

    async def finish(
        self,
        dispatch_id: str,
        *,
        status: str,
        exit_code: int | None,
        error: str | None,
        usage: TokenUsage | None,
        position: dict[str, Any] | None = None,
    ) -> None:
        """Record an attempt's end; `usage` None (the agent reported none) keeps the stored figures;
        `position`, the attempt's metadata with what it concluded, replaces the stored one."""
        from kernel.dispatch import api

        await self._call(
            f"finish dispatch {dispatch_id}", api.finish, self.conn, dispatch_id, status=status,
            exit_code=exit_code, error=error,
            input_tokens=None if usage is None else usage.input_tokens,
            output_tokens=None if usage is None else usage.output_tokens,
            cache_tokens=None if usage is None else usage.cache_tokens,
            cost_usd=None if usage is None else usage.cost_usd,
            metadata=None if position is None else {META: position},
        )  # fmt: skip
