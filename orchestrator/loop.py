"""The loop: per issue dev -> review -> (fix -> review) at most `max_cycles` times; issues in plan order.

Where an issue stands is never kept in memory only: it is the kernel run's phase plus its dispatches,
whose metadata holds each attempt's loop position and a review's verdict. A rerun reads those back,
so a crash costs at most the phase attempt that was running (it is redone from its last commit).
One attempt of one phase is `orchestrator.attempt`; this module schedules issues, prepares each one
(its run, its branch with the dependencies' work merged in), walks its phases and settles its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from string import Template
from typing import Any

from kernel.dispatch import procs
from kernel.errors import KernelError
from kernel.model import Run
from kernel.terminal import one_line
from orchestrator import preflight
from orchestrator.attempt import AttemptResult, Attempts, IssueWork
from orchestrator.config import Config
from orchestrator.dag import PlanEntry
from orchestrator.errors import MergeConflict
from orchestrator.issues import Issue
from orchestrator.kernel_bridge import KernelBridge, Step, run_meta
from orchestrator.logs import LogLayout
from orchestrator.prompts import render
from orchestrator.review import Verdict
from orchestrator.runners import Runner
from orchestrator.runners.base import ReaperService
from orchestrator.status import StatusBoard
from orchestrator.worktrees import Worktrees, ensure_ignored

MAX_BACKOFF_S = 300.0


class Outcome(StrEnum):
    PASSED = "passed"  # the review passed in this run
    SKIPPED = "skipped"  # passed in an earlier run
    CAPPED = "capped"  # still failing review after max_cycles fixes
    OVER_BUDGET = "over-budget"  # the issue's runs used more tokens than runner.token_budget
    FAILED = "failed"  # infrastructure: runner crash/timeout/no verdict, git or kernel trouble
    HELD = "held"  # capped or failed in an earlier run and not retried (--retry)
    BLOCKED = "blocked"  # a dependency did not pass, or its branch does not merge
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM / the output's reader gone; the next run resumes it
    NOT_STARTED = "not-started"  # the run stopped before it (the agent's login was refused)

    @property
    def ok(self) -> bool:
        return self in (Outcome.PASSED, Outcome.SKIPPED)


EXIT_CODES = {
    Outcome.PASSED: 0,
    Outcome.SKIPPED: 0,
    Outcome.CAPPED: 1,
    Outcome.OVER_BUDGET: 1,
    Outcome.HELD: 1,
    Outcome.BLOCKED: 1,
    Outcome.FAILED: 2,
    Outcome.NOT_STARTED: 2,
    Outcome.INTERRUPTED: 130,
}


@dataclass
class IssueReport:
    issue_id: str
    title: str
    outcome: Outcome
    reason: str
    run_id: str | None = None
    branch: str | None = None
    worktree: str | None = None  # kept for a human (capped, failed); None once removed
    fix_cycles: int = 0
    phases_run: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    findings: list[str] = field(default_factory=list)
    logs: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue_id,
            "title": self.title,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "run_id": self.run_id,
            "branch": self.branch,
            "worktree": self.worktree,
            "fix_cycles": self.fix_cycles,
            "phases_run": self.phases_run,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens, "cache": self.cache_tokens},
            "cost_usd": self.cost_usd,
            "duration_s": round(self.duration_s, 3),
            "findings": self.findings,
            "logs": self.logs,
        }


def exit_code(reports: list[IssueReport]) -> int:
    """The worst outcome decides: interrupted 130 > infrastructure 2 > expected negative 1 > 0."""
    return max((EXIT_CODES[r.outcome] for r in reports), default=0)


@dataclass
class Options:
    milestone: str
    retry: bool = False
    adopt: frozenset[str] = frozenset()  # issues whose existing, foreign branch the operator adopted
    dependency_rank: dict[str, int] = field(default_factory=dict)  # merge order of dependency branches


class IssueStopped(Exception):
    """Ends an issue's loop with an outcome (not an error of the orchestrator itself)."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def fix_cycles(steps: list[Step]) -> int:
    """Fix cycles that ran to the end (committed), whatever attempts it took."""
    return len({s.cycle for s in steps if s.phase == "fix" and s.dispatch.status == "completed"})


def verdict_of(step: Step) -> Verdict | None:
    """The verdict a completed review attempt reached, as recorded in its dispatch's metadata."""
    found = step.meta.get("verdict")
    if step.phase != "review" or step.dispatch.status != "completed" or not isinstance(found, dict):
        return None
    try:
        return Verdict.model_validate(found)
    except ValueError:
        return None


class Orchestrator:
    def __init__(
        self,
        *,
        repo: Path,
        config: Config,
        bridge: KernelBridge,
        worktrees: Worktrees,
        runner: Runner,
        logs: LogLayout,
        board: StatusBoard,
        templates: dict[str, Template],
        options: Options,
    ) -> None:
        self.repo = repo
        self.config = config
        self.bridge = bridge
        self.worktrees = worktrees
        self.logs = logs
        self.board = board
        self.templates = templates
        self.options = options
        self.reapers = ReaperService()  # every agent of the run starts through it (kernel.proctree)
        self.attempts = Attempts(
            config=config, bridge=bridge, worktrees=worktrees, runner=runner, logs=logs, board=board,
            reapers=self.reapers,
        )  # fmt: skip
        self.stopped: str | None = None  # why no further issue starts (the agent's login was refused)

    # -- the milestone --------------------------------------------------------------------------------

    async def run(self, plan: list[PlanEntry]) -> list[IssueReport]:
        """Work through the plan, `loop.jobs` issues at a time; dependencies pass before dependents."""
        try:
            return await self._schedule(plan)
        finally:
            await self.reapers.close()

    async def _schedule(self, plan: list[PlanEntry]) -> list[IssueReport]:
        ensure_ignored(self.repo, self.logs.root)
        for entry in plan:
            self.board.track(entry.issue.id, entry.issue.title)
        reports: dict[str, IssueReport] = {}
        pending = list(plan)
        running: dict[asyncio.Task[IssueReport], str] = {}
        try:
            while pending or running:
                for entry in list(pending):
                    if self.stopped is not None or len(running) >= self.config.loop.jobs:
                        break
                    failed = [d for d in entry.waits_for if d in reports and not reports[d].outcome.ok]
                    if failed:
                        pending.remove(entry)
                        reports[entry.issue.id] = await self.blocked(entry.issue, failed, reports)
                        continue
                    if all(d in reports for d in entry.waits_for):
                        pending.remove(entry)
                        task = asyncio.create_task(self.issue(entry.issue))
                        running[task] = entry.issue.id
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    reports[running.pop(task)] = task.result()
            for entry in pending:  # the run stopped early
                reports[entry.issue.id] = IssueReport(
                    entry.issue.id, entry.issue.title, Outcome.NOT_STARTED, f"not started: {self.stopped}"
                )
                self.board.finish(entry.issue.id, str(Outcome.NOT_STARTED), reports[entry.issue.id].reason)
        except asyncio.CancelledError:
            # Ctrl-C / SIGTERM: every issue in flight stops its agent, records the interruption and
            # reports; what never started is reported too. The caller turns this into exit 130.
            for task in running:
                task.cancel()
            for task, issue_id in running.items():
                try:
                    reports[issue_id] = await task
                except BaseException as exc:  # a task cancelled before it ran at all
                    reports[issue_id] = IssueReport(
                        issue_id, "", Outcome.INTERRUPTED, f"interrupted ({exc!r})"
                    )
            for entry in pending:
                reports[entry.issue.id] = IssueReport(
                    entry.issue.id, entry.issue.title, Outcome.INTERRUPTED, "interrupted before it started"
                )
        return [reports[e.issue.id] for e in plan if e.issue.id in reports]

    async def blocked(self, issue: Issue, failed: list[str], reports: dict[str, IssueReport]) -> IssueReport:
        """An issue whose dependency did not pass: its run (made if needed) records the block, with why."""
        why = "; ".join(f"{d} {reports[d].outcome}" for d in failed)
        reason = f"dependency {', '.join(failed)} did not pass ({why})"
        report = IssueReport(
            issue.id, issue.title, Outcome.BLOCKED, reason, branch=self.worktrees.branch_for(issue.id)
        )
        previous = (await self.bridge.runs_by_issue()).get(issue.id)
        if previous is not None and previous.status == "completed":
            report.outcome, report.reason, report.run_id = (
                Outcome.SKIPPED,
                f"passed in an earlier run ({previous.id})",
                previous.id,
            )
        elif previous is not None and previous.status != "active" and not self.options.retry:
            report.run_id = previous.id  # held: its earlier end stands; it is not blocked anew
        else:
            run = (
                previous
                if previous is not None and previous.status == "active"
                else await self._create_run(issue)
            )
            await self.bridge.block(run.id, reason=reason, payload={"waits_for": failed})
            report.run_id = run.id
        self.board.finish(issue.id, str(report.outcome), report.reason)
        return report

    # -- one issue ------------------------------------------------------------------------------------

    async def issue(self, issue: Issue) -> IssueReport:
        """Drive one issue to an outcome; never raises (a cancellation becomes an `interrupted` report)."""
        report = IssueReport(
            issue.id, issue.title, Outcome.FAILED, "", branch=self.worktrees.branch_for(issue.id)
        )
        report.logs = str(self.logs.issue_dir(issue.id))
        started = time.monotonic()
        work: IssueWork | None = None
        run_id: str | None = None
        try:
            prepared = await self._prepare(issue, report)
            if prepared is not None:
                run, work = prepared
                run_id = run.id
                self.board.start(issue.id)
                await self._loop(run, work, report)
        except IssueStopped as stop:
            report.outcome, report.reason = stop.outcome, stop.reason
            await self._settle(report.run_id, work, report, stop)
        except asyncio.CancelledError:
            # Swallowed on purpose: the scheduler cancelled us and wants this report back.
            report.outcome, report.reason = Outcome.INTERRUPTED, "interrupted; the next run resumes it"
            report.worktree = str(work.wt.path) if work else None
        except Exception as exc:  # git, kernel, I/O, or a bug: this issue fails, the others go on
            if isinstance(exc, KernelError):
                message = exc.message
            elif isinstance(exc, OSError):
                message = f"{exc.strerror or exc}: {exc.filename}"
            else:
                message = f"unexpected {type(exc).__name__}: {exc}"
            report.outcome, report.reason = Outcome.FAILED, one_line(message)
            await self._settle(report.run_id, work, report, IssueStopped(Outcome.FAILED, report.reason))
        if run_id is not None or report.run_id is not None:
            await self._fill_tokens(run_id or report.run_id or "", report)
        report.duration_s = time.monotonic() - started
        if report.outcome not in (Outcome.SKIPPED, Outcome.HELD):
            self.board.finish(issue.id, str(report.outcome), report.reason)
        return report

    async def _fill_tokens(self, run_id: str, report: IssueReport) -> None:
        """The report's token totals are the kernel's: every dispatch of the issue's run, all attempts."""
        with contextlib.suppress(Exception):
            report.input_tokens, report.output_tokens, report.cache_tokens = await self.bridge.tokens(run_id)

    async def _settle(
        self, run_id: str | None, work: IssueWork | None, report: IssueReport, stop: IssueStopped
    ) -> None:
        """Record a non-passing end: a blocked run waits (block), any other fails; the worktree is kept."""
        if work is not None:
            report.worktree = str(work.wt.path)
        if run_id is None:
            return
        with contextlib.suppress(KernelError):
            if stop.outcome is Outcome.BLOCKED:
                await self.bridge.block(run_id, reason=stop.reason, payload={"outcome": str(stop.outcome)})
            elif (await self.bridge.get(run_id)).status == "active":
                await self.bridge.fail(run_id, outcome=str(stop.outcome), reason=stop.reason)

    async def _create_run(self, issue: Issue) -> Run:
        return await self.bridge.create_run(
            issue_id=issue.id, title=issue.title, milestone=self.options.milestone,
            branch=self.worktrees.branch_for(issue.id), token_budget=self.config.runner.token_budget,
        )  # fmt: skip

    async def _prepare(self, issue: Issue, report: IssueReport) -> tuple[Run, IssueWork] | None:
        """Find or create the issue's run and worktree; None when there is nothing to do."""
        known = await self.bridge.runs_by_issue()
        previous = known.get(issue.id)
        if previous is not None and previous.status != "active":
            await self._fill_tokens(previous.id, report)  # what the earlier run spent, not 0
            report.fix_cycles = fix_cycles(await self.bridge.steps(previous.id))
        if previous is not None and previous.status == "completed":
            report.outcome, report.run_id = Outcome.SKIPPED, previous.id
            report.reason = f"passed in an earlier run ({previous.id})"
            self.board.finish(issue.id, "skipped", report.reason)
            return None
        if previous is not None and previous.status != "active" and not self.options.retry:
            report.outcome, report.run_id = Outcome.HELD, previous.id
            path = self.worktrees.path_for(issue.id)
            report.worktree = str(path) if path.exists() else None
            report.reason = (
                f"{previous.status} in an earlier run ({previous.id}); rerun with --retry to try again"
            )
            self.board.finish(issue.id, "held", report.reason)
            return None
        if previous is not None and previous.status == "active":
            run = previous
            await self._reap_interrupted(issue.id, run)
            self.board.note(issue.id, f"resuming run {run.id} at phase {run.phase}")
        else:
            run = await self._create_run(issue)
        report.run_id = run.id
        work = await self._worktree(issue, run, previous, known)
        return run, work

    async def _worktree(
        self, issue: Issue, run: Run, previous: Run | None, known: dict[str, Run]
    ) -> IssueWork:
        """The issue's worktree; a new branch starts with its passed dependencies' branches merged in."""
        passed = preflight.dependencies_to_merge(issue, known, self.options.dependency_rank)
        merge = [preflight.branch_of(dep, known, self.worktrees.prefix) for dep in passed]
        for dep in issue.depends_on:
            if dep not in passed:
                self.board.note(issue.id, f"dependency {dep} has not passed; its work is not merged in")
        try:
            wt = await self.worktrees.ensure(issue.id, merge=merge)
        except MergeConflict as conflict:
            raise IssueStopped(Outcome.BLOCKED, conflict.message) from None
        if wt.adopted:
            adopted = (
                "adopted existing branch" if issue.id in self.options.adopt else "adopted existing worktree"
            )
            self.board.note(issue.id, f"{adopted} {wt.path} (branch {wt.branch})")
            if await self.worktrees.dirty(wt):
                await self.worktrees.discard(wt)
                self.board.note(issue.id, "discarded uncommitted changes of an interrupted attempt")
            recorded = run_meta(run).get("base") or (run_meta(previous).get("base") if previous else None)
            base = str(recorded) if recorded else await self.worktrees.base(wt)
        else:
            base = wt.forked_from or self.worktrees.start_head
            if merge:
                self.board.note(issue.id, f"started from {', '.join(merge)} (merged in dependency order)")
        if run_meta(run).get("base") != base:
            await self.bridge.update_meta(run.id, base=base, merged=merge if not wt.adopted else [])
        head = await self.worktrees.head(wt) if wt.adopted else base
        return IssueWork(issue, run.id, wt, base=base, head=head)

    async def _reap_interrupted(self, issue_id: str, run: Run) -> None:
        """Attempts left `running` by a crashed orchestrator: end their process groups, mark them failed."""
        for step in await self.bridge.steps(run.id):
            if step.dispatch.is_terminal:
                continue
            row = await self.bridge.reconcile(step.dispatch.id)  # the kernel ends an orphan whose owner died
            if row.is_terminal:
                self.board.note(issue_id, f"interrupted attempt {step.dispatch.name}: {row.error}")
                continue
            # Still "owned" by a live process, yet we hold the repository's run lock: that owner is
            # not an orchestrator working on this issue, so the attempt is ours to end.
            if step.dispatch.pid and procs.owns_group(step.dispatch.pid, None):
                await asyncio.to_thread(procs.end_group, step.dispatch.pid, self.config.runner.kill_grace)
                self.board.note(issue_id, f"ended the leftover agent process group {step.dispatch.pid}")
            await self.bridge.finish(
                step.dispatch.id, status="failed", exit_code=None, usage=None,
                error="interrupted: the orchestrator stopped before this attempt ended; the phase is redone",
            )  # fmt: skip

    async def _resume_point(
        self, run: Run, work: IssueWork, report: IssueReport
    ) -> tuple[str, int, Verdict | None]:
        """(next step, its cycle, a verdict already reached) from the run's completed dispatches."""
        completed = [s for s in await self.bridge.steps(run.id) if s.dispatch.status == "completed"]
        report.fix_cycles = fix_cycles(completed)
        if not completed:
            return ("review" if run.phase == "review" else "dev"), 0, None
        last = completed[-1]
        if last.phase in ("dev", "fix"):
            return "review", last.cycle, None
        verdict = verdict_of(last)
        if verdict is not None and verdict.status == "fail" and run.phase == "fix":
            return "fix", last.cycle + 1, None  # the move to fix was recorded; the fix itself never ran
        return "review", last.cycle, verdict

    async def _last_fail_verdict(self, run_id: str) -> Verdict | None:
        reviews = [s for s in await self.bridge.steps(run_id) if s.phase == "review" and verdict_of(s)]
        return verdict_of(reviews[-1]) if reviews else None

    async def _loop(self, run: Run, work: IssueWork, report: IssueReport) -> None:
        if run.phase == "queued":  # a new run (or one whose start was blocked): its dependencies passed
            has_work = work.head != work.base and not work.base.startswith(work.head)
            target, why = (
                ("review", "retry: the dev work is on the branch") if has_work else ("dev", "dev starts")
            )
            run = await self.bridge.enter(run.id, target, reason=why)
        step, cycle, verdict = await self._resume_point(run, work, report)
        max_cycles = self.config.loop.max_cycles
        findings: Verdict | None = None
        while True:
            if step == "dev":
                await self.bridge.enter(run.id, "dev", reason="dev starts")
                await self._phase(work, report, "dev", 0, findings=None)
                step = "review"
            elif step == "fix":
                await self.bridge.enter(run.id, "fix", reason=f"review failed; fix cycle {cycle}")
                if findings is None:
                    findings = await self._last_fail_verdict(run.id)
                await self._phase(work, report, "fix", cycle, findings=findings)
                report.fix_cycles = max(report.fix_cycles, cycle)
                await self.bridge.enter(run.id, "review", reason=f"fix cycle {cycle} committed; review again")
                step, findings = "review", None
            else:  # review
                await self.bridge.enter(run.id, "review", reason="work committed; review")
                if verdict is None:
                    verdict = (await self._phase(work, report, "review", cycle, findings=None)).verdict
                assert verdict is not None
                report.findings = [f.describe() for f in verdict.findings]
                if verdict.status == "pass":
                    await self.bridge.enter(run.id, "done", reason="review passed")
                    await self.worktrees.remove(work.wt)
                    report.worktree = None
                    report.outcome = Outcome.PASSED
                    report.reason = f"review passed after {report.fix_cycles} fix cycle(s)"
                    return
                if cycle >= max_cycles:
                    raise IssueStopped(
                        Outcome.CAPPED,
                        f"review still failing after {max_cycles} fix cycle(s) "
                        f"({len(verdict.findings)} finding(s))",
                    )
                findings, verdict = verdict, None
                step, cycle = "fix", cycle + 1

    # -- one phase ------------------------------------------------------------------------------------

    def _prompt(self, work: IssueWork, phase: str, cycle: int, findings: Verdict | None) -> str:
        issue = work.issue
        listed = "\n".join(f"- {f.describe()}" for f in findings.findings) if findings else ""
        return render(
            self.templates[phase],
            issue_id=issue.id,
            title=issue.title,
            body=issue.body,
            issue_path=issue.path.relative_to(self.repo)
            if issue.path.is_relative_to(self.repo)
            else issue.path,
            branch=work.wt.branch,
            base=work.base,
            cycle=cycle,
            max_cycles=self.config.loop.max_cycles,
            findings=listed or "- (none listed; see the summary)",
            summary=(findings.summary if findings and findings.summary else "-"),
        )

    async def _phase(
        self, work: IssueWork, report: IssueReport, phase: str, cycle: int, *, findings: Verdict | None
    ) -> AttemptResult:
        """Run a phase, retrying infrastructure failures with a growing pause; IssueStopped(FAILED)
        when every attempt failed, at once when the agent's login was refused (and the run stops)."""
        prompt = self._prompt(work, phase, cycle, findings)
        error = "no attempt made"
        runner = self.config.runner
        for index in range(runner.retries + 1):
            await self._check_budget(work)
            if index > 0:
                pause = min(runner.retry_backoff * 2 ** (index - 1), MAX_BACKOFF_S)
                self.board.note(work.issue.id, f"retrying {phase} in {pause:g}s")
                await asyncio.sleep(pause)
                await self.worktrees.discard(work.wt, to=work.head)
            result = await self.attempts.run(work, phase, cycle, prompt)
            report.phases_run += 1
            if result.ok:
                return result
            error = result.error or "failed"
            self.board.note(work.issue.id, f"{phase} attempt failed: {error}")
            if result.auth:
                self.stopped = f"the agent's login was refused ({error}); log it in and rerun"
                raise IssueStopped(
                    Outcome.FAILED,
                    f"{phase} (cycle {cycle}) failed: the agent's login was refused: {error}; "
                    "log the agent in and rerun (no further issue was started)",
                )
        raise IssueStopped(Outcome.FAILED, f"{phase} (cycle {cycle}) failed as infrastructure: {error}")

    async def _check_budget(self, work: IssueWork) -> None:
        budget = self.config.runner.token_budget
        if budget is None:
            return
        used_in, used_out, _ = await self.bridge.tokens(work.run_id)
        if used_in + used_out >= budget:
            raise IssueStopped(
                Outcome.OVER_BUDGET, f"token budget exceeded: {used_in + used_out:,} of {budget:,}"
            )
