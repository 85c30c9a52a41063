"""The loop: per issue dev -> review -> (fix -> review) at most `max_cycles` times; issues in plan order.

Where an issue stands is never kept in memory only: it is the kernel run's phase plus its dispatches
(`<issue>/<phase>/<cycle>/<attempt>`), and the attempt logs beside them. A rerun reads those back,
so a crash costs at most the phase attempt that was running (it is redone from its last commit).
Each phase's changes are committed before its dispatch is marked completed, and the run moves on
only after that: "completed dispatch" therefore means "its work is in git".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from string import Template
from typing import Any

from kernel.dispatch import procs
from kernel.dispatch.agents.output import AgentResult
from kernel.errors import KernelError
from kernel.model import Run
from kernel.terminal import one_line
from orchestrator.config import Config
from orchestrator.dag import PlanEntry
from orchestrator.issues import Issue
from orchestrator.kernel_bridge import KernelBridge, Step, dispatch_name
from orchestrator.logs import AttemptPaths, LogLayout, write_json
from orchestrator.prompts import render
from orchestrator.review import ReviewMissing, ReviewResult, parse_review
from orchestrator.runners import Runner
from orchestrator.runners.base import Invocation, ProcessResult, run_process
from orchestrator.status import StatusBoard
from orchestrator.worktrees import Worktree, Worktrees, ensure_ignored


class Outcome(StrEnum):
    PASSED = "passed"  # the review passed in this run
    SKIPPED = "skipped"  # passed in an earlier run
    CAPPED = "capped"  # still failing review after max_cycles fixes
    OVER_BUDGET = "over-budget"  # the issue's runs used more tokens than runner.token_budget
    FAILED = "failed"  # infrastructure: runner crash/timeout/no verdict, git or kernel trouble
    HELD = "held"  # capped or failed in an earlier run and not retried (--retry)
    BLOCKED = "blocked"  # a dependency did not pass
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM; the next run resumes it

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


@dataclass
class PhaseResult:
    ok: bool
    error: str | None = None
    verdict: ReviewResult | None = None
    commit: str | None = None


class IssueStopped(Exception):
    """Ends an issue's loop with an outcome (not an error of the orchestrator itself)."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def fix_cycles(steps: list[Step]) -> int:
    """Fix cycles that ran to the end (committed), whatever attempts it took."""
    return len({s.cycle for s in steps if s.phase == "fix" and s.dispatch.status == "completed"})


@dataclass
class IssueWork:
    """One issue in flight: the run, the worktree, and running totals for the report."""

    issue: Issue
    run: Run
    wt: Worktree
    report: IssueReport
    base: str  # the commit the issue's branch forked from: what reviews diff against


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
        self.runner = runner
        self.logs = logs
        self.board = board
        self.templates = templates
        self.options = options

    # -- the milestone --------------------------------------------------------------------------------

    async def run(self, plan: list[PlanEntry]) -> list[IssueReport]:
        """Work through the plan, `loop.jobs` issues at a time; dependencies pass before dependents."""
        ensure_ignored(self.repo, self.logs.root)
        for entry in plan:
            self.board.track(entry.issue.id, entry.issue.title)
        reports: dict[str, IssueReport] = {}
        pending = list(plan)
        running: dict[asyncio.Task[IssueReport], str] = {}
        try:
            while pending or running:
                for entry in list(pending):
                    if len(running) >= self.config.loop.jobs:
                        break
                    failed = [d for d in entry.waits_for if d in reports and not reports[d].outcome.ok]
                    if failed:
                        pending.remove(entry)
                        report = IssueReport(
                            entry.issue.id, entry.issue.title, Outcome.BLOCKED,
                            f"dependency {', '.join(failed)} did not pass",
                        )  # fmt: skip
                        reports[entry.issue.id] = report
                        self.board.finish(entry.issue.id, "blocked", report.reason)
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

    # -- one issue ------------------------------------------------------------------------------------

    async def issue(self, issue: Issue) -> IssueReport:
        """Drive one issue to an outcome; never raises (a cancellation becomes an `interrupted` report)."""
        report = IssueReport(
            issue.id, issue.title, Outcome.FAILED, "", branch=self.worktrees.branch_for(issue.id)
        )
        report.logs = str(self.logs.issue_dir(issue.id))
        started = time.monotonic()
        work: IssueWork | None = None
        try:
            work = await self._prepare(issue, report)
            if work is not None:
                self.board.start(issue.id)
                await self._loop(work)
        except IssueStopped as stop:
            report.outcome, report.reason = stop.outcome, stop.reason
            await self._settle(work, stop)
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
            await self._settle(work, IssueStopped(Outcome.FAILED, report.reason))
        if work is not None:
            self._fill_tokens(work.run.id, report)
        report.duration_s = time.monotonic() - started
        if report.outcome not in (Outcome.SKIPPED, Outcome.HELD):
            self.board.finish(issue.id, str(report.outcome), report.reason)
        return report

    def _fill_tokens(self, run_id: str, report: IssueReport) -> None:
        """The report's token totals are the kernel's: every dispatch of the issue's run, all attempts."""
        with contextlib.suppress(Exception):
            report.input_tokens, report.output_tokens, report.cache_tokens = self.bridge.tokens(run_id)

    async def _settle(self, work: IssueWork | None, stop: IssueStopped) -> None:
        """Record a non-passing end: fail the run with the reason, keep the worktree for a human."""
        if work is None:
            return
        work.report.worktree = str(work.wt.path)
        with contextlib.suppress(KernelError):
            if self.bridge.get(work.run.id).status == "active":
                self.bridge.fail(work.run.id, f"{stop.outcome}: {stop.reason}")

    async def _prepare(self, issue: Issue, report: IssueReport) -> IssueWork | None:
        """Find or create the issue's run and worktree; None when there is nothing to do."""
        previous = self.bridge.runs_by_issue().get(issue.id)
        if previous is not None and previous.status != "active":
            self._fill_tokens(previous.id, report)  # what the earlier run spent, not 0
            report.fix_cycles = fix_cycles(self.bridge.steps(previous.id))
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
        wt = await self.worktrees.ensure(issue.id)
        if wt.adopted:
            self.board.note(issue.id, f"adopted existing worktree {wt.path} (branch {wt.branch})")
        if previous is not None and previous.status == "active":
            run = previous
            self._reap_interrupted(issue.id, run)
            self.board.note(issue.id, f"resuming run {run.id} at phase {run.phase}")
        else:
            run = self.bridge.create_run(
                issue_id=issue.id, title=issue.title, milestone=self.options.milestone, branch=wt.branch,
                token_budget=self.config.runner.token_budget,
            )  # fmt: skip
            if previous is not None and await self._has_work(wt):
                # --retry of a capped/failed issue: its dev work is on the branch; review it afresh.
                run = self.bridge.enter(
                    run.id, "review", reason=f"retry of {previous.id}: dev work is on the branch"
                )
        if wt.adopted and await self.worktrees.dirty(wt):
            await self.worktrees.discard(wt)
            self.board.note(issue.id, "discarded uncommitted changes of an interrupted attempt")
        report.run_id = run.id
        return IssueWork(issue, run, wt, report, base=await self.worktrees.base(wt))

    async def _has_work(self, wt: Worktree) -> bool:
        return await self.worktrees.base(wt) != await self.worktrees.head(wt)

    def _reap_interrupted(self, issue_id: str, run: Run) -> None:
        """Attempts left `running` by a crashed orchestrator: end their process groups, mark them failed."""
        for step in self.bridge.steps(run.id):
            if step.dispatch.is_terminal:
                continue
            row = self.bridge.reconcile(step.dispatch.id)  # the kernel ends an orphan whose owner died
            if row.is_terminal:
                self.board.note(issue_id, f"interrupted attempt {step.dispatch.name}: {row.error}")
                continue
            # Still "owned" by a live process, yet we hold the repository's run lock: that owner is
            # not an orchestrator working on this issue, so the attempt is ours to end.
            if step.dispatch.pid and procs.owns_group(step.dispatch.pid, None):
                procs.end_group(step.dispatch.pid, self.config.runner.kill_grace)
                self.board.note(issue_id, f"ended the leftover agent process group {step.dispatch.pid}")
            self.bridge.finish(
                step.dispatch.id, status="failed", exit_code=None, usage=None,
                error="interrupted: the orchestrator stopped before this attempt ended; the phase is redone",
            )  # fmt: skip

    def _resume_point(self, work: IssueWork) -> tuple[str, int, ReviewResult | None]:
        """(next step, its cycle, a verdict already reached) from the run's completed dispatches."""
        completed = [s for s in self.bridge.steps(work.run.id) if s.dispatch.status == "completed"]
        work.report.fix_cycles = fix_cycles(completed)
        if not completed:
            return (work.run.phase if work.run.phase in ("dev", "review") else "dev"), 0, None
        last = completed[-1]
        if last.phase in ("dev", "fix"):
            return "review", last.cycle, None
        verdict = self._logged_verdict(last)
        if verdict is not None and verdict.status == "fail" and work.run.phase == "fix":
            return "fix", last.cycle + 1, None  # the move to fix was recorded; the fix itself never ran
        return "review", last.cycle, verdict

    def _logged_verdict(self, step: Step) -> ReviewResult | None:
        """The verdict a completed review attempt reached, read back from its result.json."""
        if not step.dispatch.output_file:
            return None
        result = Path(step.dispatch.output_file).with_name("result.json")
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
            return ReviewResult.model_validate(data["verdict"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _last_fail_verdict(self, work: IssueWork) -> ReviewResult | None:
        reviews = [
            s
            for s in self.bridge.steps(work.run.id)
            if s.phase == "review" and s.dispatch.status == "completed"
        ]
        return self._logged_verdict(reviews[-1]) if reviews else None

    async def _loop(self, work: IssueWork) -> None:
        step, cycle, verdict = self._resume_point(work)
        max_cycles = self.config.loop.max_cycles
        findings: ReviewResult | None = None
        while True:
            if step == "dev":
                await self._phase(work, "dev", 0, findings=None)
                step = "review"
            elif step == "fix":
                work.run = self.bridge.enter(work.run.id, "fix", reason=f"review failed; fix cycle {cycle}")
                if findings is None:
                    findings = self._last_fail_verdict(work)
                await self._phase(work, "fix", cycle, findings=findings)
                work.report.fix_cycles = max(work.report.fix_cycles, cycle)
                work.run = self.bridge.enter(
                    work.run.id, "review", reason=f"fix cycle {cycle} committed; review again"
                )
                step, findings = "review", None
            else:  # review
                work.run = self.bridge.enter(work.run.id, "review", reason="work committed; review")
                if verdict is None:
                    verdict = (await self._phase(work, "review", cycle, findings=None)).verdict
                assert verdict is not None
                work.report.findings = [f.describe() for f in verdict.findings]
                if verdict.status == "pass":
                    work.run = self.bridge.enter(work.run.id, "done", reason="review passed")
                    await self.worktrees.remove(work.wt)
                    work.report.worktree = None
                    work.report.outcome = Outcome.PASSED
                    work.report.reason = f"review passed after {work.report.fix_cycles} fix cycle(s)"
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

    def _prompt(
        self, work: IssueWork, phase: str, cycle: int, base: str, findings: ReviewResult | None
    ) -> str:
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
            base=base,
            cycle=cycle,
            max_cycles=self.config.loop.max_cycles,
            findings=listed or "- (none listed; see the summary)",
            summary=(findings.summary if findings and findings.summary else "-"),
        )

    async def _phase(
        self, work: IssueWork, phase: str, cycle: int, *, findings: ReviewResult | None
    ) -> PhaseResult:
        """Run a phase, retrying infrastructure failures; IssueStopped(FAILED) when every attempt failed."""
        prompt = self._prompt(work, phase, cycle, work.base, findings)
        error = "no attempt made"
        for index in range(self.config.runner.retries + 1):
            self._check_budget(work)
            if index > 0:
                await self.worktrees.discard(work.wt)
            result = await self._attempt(work, phase, cycle, prompt)
            work.report.phases_run += 1
            if result.ok:
                return result
            error = result.error or "failed"
            self.board.note(work.issue.id, f"{phase} attempt failed: {error}")
        raise IssueStopped(Outcome.FAILED, f"{phase} (cycle {cycle}) failed as infrastructure: {error}")

    def _check_budget(self, work: IssueWork) -> None:
        budget = self.config.runner.token_budget
        if budget is None:
            return
        used_in, used_out, _ = self.bridge.tokens(work.run.id)
        if used_in + used_out >= budget:
            raise IssueStopped(
                Outcome.OVER_BUDGET, f"token budget exceeded: {used_in + used_out:,} of {budget:,}"
            )

    async def _attempt(self, work: IssueWork, phase: str, cycle: int, prompt: str) -> PhaseResult:
        issue = work.issue
        paths = self.logs.new_attempt(issue.id, cycle, phase)
        paths.prompt.write_text(prompt, encoding="utf-8")
        inv = Invocation(
            prompt=prompt, prompt_file=paths.prompt, issue_id=issue.id, phase=phase, cycle=cycle,
            attempt=paths.attempt, worktree=work.wt.path, run_id=work.run.id,
        )  # fmt: skip
        argv = self.runner.argv(inv)
        parser = self.runner.parser()
        name = dispatch_name(issue.id, phase, cycle, paths.attempt)
        dispatch_id: str | None = None
        before_in, before_out, _ = self.bridge.tokens(work.run.id)
        self.board.phase(issue.id, phase, cycle, paths.attempt)

        def on_start(pid: int) -> None:
            nonlocal dispatch_id
            dispatch_id = self.bridge.begin(
                run_id=work.run.id, name=name, agent_type=self.runner.kind, model=self.runner.config.model,
                command=argv, output_file=paths.raw, pid=pid,
            )  # fmt: skip

        def on_line(stream: str, line: str) -> None:
            shown = parser.feed(line) if stream == "stdout" else line
            if shown:
                self.board.output(issue.id, shown)
            if parser.usage is not None:
                used = parser.usage
                self.board.tokens(issue.id, before_in + used.input_tokens, before_out + used.output_tokens)

        started = time.monotonic()
        try:
            proc = await run_process(
                argv, cwd=work.wt.path, env=self.runner.env(inv), stdout_log=paths.raw,
                stderr_log=paths.stderr, timeout=self.config.runner.timeout, stall=self.config.runner.stall,
                kill_grace=self.config.runner.kill_grace, stdin_file=self.runner.stdin(inv),
                on_start=on_start, on_line=on_line,
            )  # fmt: skip
        except asyncio.CancelledError:
            if dispatch_id is not None:
                with contextlib.suppress(Exception):
                    self.bridge.finish(
                        dispatch_id, status="cancelled", exit_code=None, usage=parser.result().usage,
                        error="orchestrator interrupted; the phase is redone on the next run",
                    )  # fmt: skip
            raise
        except OSError as exc:
            cannot = f"cannot start {argv[0]!r}: {exc.strerror or exc}"
            failed_id = self.bridge.begin(
                run_id=work.run.id, name=name, agent_type=self.runner.kind, model=self.runner.config.model,
                command=argv, output_file=paths.raw, pid=None,
            )  # fmt: skip
            self.bridge.finish(failed_id, status="failed", exit_code=None, error=cannot, usage=None)
            self._write_result(
                paths, phase, cycle, None, parser.result(), cannot, None, None, time.monotonic() - started
            )
            return PhaseResult(ok=False, error=cannot)
        out = parser.result()
        status, error, verdict = self._judge(phase, proc, out)
        commit = None
        if error is None:
            commit = await self.worktrees.commit(
                work.wt,
                f"{issue.id}: {phase} (cycle {cycle})\n\n{issue.title}",
                expect_changes=phase != "review",
            )
            if commit:
                self.board.note(issue.id, f"committed {commit[:10]} after {phase}")
        self._write_result(paths, phase, cycle, proc, out, error, verdict, commit, proc.duration_s)
        if verdict is not None:
            self.bridge.record(
                work.run.id, "review.verdict", reason=f"{verdict.status}: {len(verdict.findings)} finding(s)",
                payload={"status": verdict.status, "findings": len(verdict.findings), "cycle": cycle},
            )  # fmt: skip
        assert dispatch_id is not None
        self.bridge.finish(dispatch_id, status=status, exit_code=proc.exit_code, error=error, usage=out.usage)
        if out.usage is not None and out.usage.cost_usd is not None:
            work.report.cost_usd = (work.report.cost_usd or 0.0) + out.usage.cost_usd
        return PhaseResult(ok=error is None, error=error, verdict=verdict, commit=commit)

    def _judge(
        self, phase: str, proc: ProcessResult, out: AgentResult
    ) -> tuple[str, str | None, ReviewResult | None]:
        """(dispatch status, infrastructure error or None, verdict) for one finished attempt."""
        if proc.timed_out:
            return "timeout", f"timed out after {self.config.runner.timeout:g}s; process group killed", None
        if proc.stalled:
            return (
                "timeout",
                f"no output for {self.config.runner.stall:g}s (stalled); process group killed",
                None,
            )
        if proc.exit_code != 0:
            detail = one_line(out.failure or (proc.stderr_tail.splitlines()[-1] if proc.stderr_tail else ""))
            code = proc.exit_code or 0
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            return "failed", f"runner {how}" + (f": {detail}" if detail else ""), None
        if out.failure:
            return "failed", f"runner reported an error: {one_line(out.failure)}", None
        if phase != "review":
            return "completed", None, None
        try:
            verdict = parse_review(out.structured, out.final_message)
        except ReviewMissing as exc:
            return "failed", f"no valid review verdict: {exc}", None
        return "completed", None, verdict

    def _write_result(
        self,
        paths: AttemptPaths,
        phase: str,
        cycle: int,
        proc: ProcessResult | None,
        out: AgentResult,
        error: str | None,
        verdict: ReviewResult | None,
        commit: str | None,
        duration: float,
    ) -> None:
        write_json(
            paths.result,
            {
                "phase": phase,
                "cycle": cycle,
                "attempt": paths.attempt,
                "ok": error is None,
                "error": error,
                "argv": proc.argv if proc else None,
                "exit_code": proc.exit_code if proc else None,
                "timed_out": proc.timed_out if proc else False,
                "stalled": proc.stalled if proc else False,
                "duration_s": round(duration, 3),
                "final_message": out.final_message,
                "structured": out.structured,
                "runner_error": out.failure,
                "problems": list(out.problems),
                "usage": None if out.usage is None else out.usage.to_json(),
                "lines": {"json": out.json_lines, "other": out.other_lines},
                "verdict": verdict.model_dump(mode="json") if verdict else None,
                "commit": commit,
            },
        )
