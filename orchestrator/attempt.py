"""One attempt of one phase, from its logs to its record: the loop's innermost step, one job per piece.

- `_open` lays the attempt out: its log directory, prompt, answer schema (reviews), command line;
- `_run_agent` runs the agent under its reaper, records the dispatch when it starts, streams its
  output and writes its token use to the kernel as it goes (throttled), so Bigend sees it live;
- `judge` (orchestrator.judge) says whether the agent finished its work;
- `_verdict` reads a review's answer from its structured channel (orchestrator.review);
- `_settle` commits a writing phase's work (and fails one that changed nothing, unless the issue says
  `expect_changes: false`), or discards whatever a reviewer changed and reports it;
- `_record` writes result.json and finishes the dispatch with what the attempt concluded (the
  verdict lives in the dispatch's metadata: a rerun reads it from the kernel, not from a log file).

A phase's changes are committed before its dispatch is marked completed: "completed dispatch" means
"its work is in git".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from kernel.dispatch.agents.output import AgentParser, AgentResult
from kernel.dispatch.agents.usage import TokenUsage
from orchestrator.config import Config
from orchestrator.issues import Issue
from orchestrator.judge import Judgement, judge
from orchestrator.kernel_bridge import KernelBridge, dispatch_name
from orchestrator.logs import AttemptPaths, LogLayout, write_json
from orchestrator.review import VERDICT_SCHEMA, ReadVerdict, Verdict, VerdictError, read_verdict
from orchestrator.runners import REVIEW, Runner
from orchestrator.runners.base import Invocation, ProcessResult, ReaperService, StartFailed, run_process
from orchestrator.status import StatusBoard
from orchestrator.worktrees import Worktree, Worktrees

LIVE_TOKENS_EVERY_S = 0.5  # at most this often, a running attempt's token use is written to the kernel


@dataclass
class IssueWork:
    """One issue in flight: its run, worktree and where its branch stands."""

    issue: Issue
    run_id: str
    wt: Worktree
    base: str  # the commit the issue's branch forked from (dependencies merged): what reviews diff against
    head: str  # the branch's last commit, as the orchestrator knows it


@dataclass
class AttemptResult:
    ok: bool
    error: str | None = None
    verdict: Verdict | None = None
    commit: str | None = None
    auth: bool = False  # a refused login: no retry, and no further issue started


@dataclass
class _Laid:
    """An attempt laid out before its agent starts."""

    paths: AttemptPaths
    inv: Invocation
    argv: list[str]
    parser: AgentParser
    name: str
    position: dict[str, Any]  # the dispatch's metadata: where the loop stands


@dataclass
class _Settled:
    commit: str | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)


class _Live:
    """The running attempt as the kernel and the board see it: its dispatch and its tokens so far."""

    def __init__(
        self, bridge: KernelBridge, board: StatusBoard, issue_id: str, before: tuple[int, int]
    ) -> None:
        self.bridge = bridge
        self.board = board
        self.issue_id = issue_id
        self.before = before
        self.dispatch_id: str | None = None
        self.posted: TokenUsage | None = None
        self.posted_at = 0.0

    def tokens(self, usage: TokenUsage) -> None:
        self.board.tokens(
            self.issue_id, self.before[0] + usage.input_tokens, self.before[1] + usage.output_tokens
        )
        now = time.monotonic()
        if self.dispatch_id is None or usage == self.posted or now - self.posted_at < LIVE_TOKENS_EVERY_S:
            return
        self.posted, self.posted_at = usage, now
        self.bridge.post_tokens(self.dispatch_id, usage)


class Attempts:
    """Runs attempts of phases for the loop; everything an attempt needs but the issue in hand."""

    def __init__(
        self,
        *,
        config: Config,
        bridge: KernelBridge,
        worktrees: Worktrees,
        runner: Runner,
        logs: LogLayout,
        board: StatusBoard,
        reapers: ReaperService,
    ) -> None:
        self.config = config
        self.bridge = bridge
        self.worktrees = worktrees
        self.runner = runner
        self.logs = logs
        self.board = board
        self.reapers = reapers

    async def run(self, work: IssueWork, phase: str, cycle: int, prompt: str) -> AttemptResult:
        laid = self._open(work, phase, cycle, prompt)
        self.board.phase(work.issue.id, phase, cycle, laid.paths.attempt)
        live = _Live(self.bridge, self.board, work.issue.id, (await self.bridge.tokens(work.run_id))[:2])
        try:
            proc = await self._run_agent(work, laid, live)
        except StartFailed as exc:
            return await self._not_started(work, laid, f"cannot start {laid.argv[0]!r}: {exc}")
        except asyncio.CancelledError:
            if live.dispatch_id is not None:
                with contextlib.suppress(Exception):
                    await self.bridge.finish(
                        live.dispatch_id, status="cancelled", exit_code=None,
                        usage=laid.parser.result().usage,
                        error="orchestrator interrupted; the phase is redone on the next run",
                    )  # fmt: skip
            raise
        out = laid.parser.result()
        judged = judge(proc, out, timeout=self.config.runner.timeout, stall=self.config.runner.stall)
        read = self._verdict(phase, judged, out)
        error = judged.error or (read if isinstance(read, str) else None)
        verdict = read if isinstance(read, ReadVerdict) else None
        settled = await self._settle(work, phase, cycle, ok=error is None)
        error = error or settled.error
        for problem in (*judged.problems, *settled.problems):
            self.board.note(work.issue.id, f"{phase}: {problem}")
        result = AttemptResult(
            ok=error is None, error=error, verdict=verdict.verdict if verdict and error is None else None,
            commit=settled.commit, auth=judged.auth,
        )  # fmt: skip
        assert live.dispatch_id is not None
        await self._record(work, laid, live.dispatch_id, proc, out, judged, verdict, settled, result)
        return result

    # -- the pieces ---------------------------------------------------------------------------------

    def _open(self, work: IssueWork, phase: str, cycle: int, prompt: str) -> _Laid:
        issue = work.issue
        paths = self.logs.new_attempt(issue.id, cycle, phase)
        paths.prompt.write_text(prompt, encoding="utf-8")
        schema = None
        if phase == REVIEW:
            schema = paths.dir / "verdict.schema.json"
            schema.write_text(json.dumps(VERDICT_SCHEMA, indent=2) + "\n", encoding="utf-8")
        inv = Invocation(
            prompt=prompt, prompt_file=paths.prompt, issue_id=issue.id, phase=phase, cycle=cycle,
            attempt=paths.attempt, worktree=work.wt.path, run_id=work.run_id, verdict_schema=schema,
        )  # fmt: skip
        position = {"issue": issue.id, "phase": phase, "cycle": cycle, "attempt": paths.attempt}
        name = dispatch_name(issue.id, phase, cycle, paths.attempt)
        return _Laid(paths, inv, self.runner.argv(inv), self.runner.parser(phase), name, position)

    async def _begin(self, work: IssueWork, laid: _Laid, pid: int | None) -> str:
        return await self.bridge.begin(
            run_id=work.run_id, name=laid.name, agent_type=self.runner.kind, model=self.runner.config.model,
            command=laid.argv, output_file=laid.paths.raw, pid=pid, position=laid.position,
        )  # fmt: skip

    async def _run_agent(self, work: IssueWork, laid: _Laid, live: _Live) -> ProcessResult:
        issue_id = work.issue.id

        async def on_start(pid: int) -> None:
            live.dispatch_id = await self._begin(work, laid, pid)

        def on_line(stream: str, line: str) -> None:
            shown = laid.parser.feed(line) if stream == "stdout" else line
            if shown:
                self.board.output(issue_id, shown)
            if laid.parser.usage is not None:
                live.tokens(laid.parser.usage)

        runner = self.config.runner
        return await run_process(
            laid.argv, service=self.reapers, cwd=work.wt.path, env=self.runner.env(laid.inv),
            stdout_log=laid.paths.raw, stderr_log=laid.paths.stderr, timeout=runner.timeout,
            stall=runner.stall, kill_grace=runner.kill_grace, stdin_file=self.runner.stdin(laid.inv),
            on_start=on_start, on_line=on_line,
        )  # fmt: skip

    async def _not_started(self, work: IssueWork, laid: _Laid, error: str) -> AttemptResult:
        dispatch_id = await self._begin(work, laid, None)
        await self.bridge.finish(
            dispatch_id, status="failed", exit_code=None, error=error, usage=None,
            position={**laid.position, "error": error},
        )  # fmt: skip
        write_json(laid.paths.result, {**laid.position, "ok": False, "error": error, "argv": laid.argv})
        return AttemptResult(ok=False, error=error)

    def _verdict(self, phase: str, judged: Judgement, out: AgentResult) -> ReadVerdict | str | None:
        """A finished review's verdict, or why there is none (an error); None for other phases."""
        if phase != REVIEW or judged.error is not None:
            return None
        try:
            return read_verdict(
                out.structured, conflict=out.structured_conflict, channel=self.runner.verdict_channel
            )
        except VerdictError as exc:
            return f"no valid review verdict: {exc}"

    async def _settle(self, work: IssueWork, phase: str, cycle: int, *, ok: bool) -> _Settled:
        """Commit a writing phase's work; discard (and report) whatever a review changed."""
        issue = work.issue
        if phase == REVIEW:
            changed = await self.worktrees.changes(work.wt, work.head)
            if not changed:
                return _Settled()
            await self.worktrees.discard(work.wt, to=work.head)
            shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
            return _Settled(problems=[f"the review changed {len(changed)} file(s); discarded: {shown}"],
                            discarded=changed)  # fmt: skip
        if not ok:
            return _Settled()  # the next attempt (or run) starts from the last commit again
        commit = await self.worktrees.commit(work.wt, f"{issue.id}: {phase} (cycle {cycle})\n\n{issue.title}")
        settled = _Settled(commit=commit)
        if commit is None:
            head = await self.worktrees.head(work.wt)
            if not head.startswith(work.head) and not work.head.startswith(head):
                settled.commit = head
                settled.problems.append("the agent committed its work itself")
            elif issue.expect_changes:
                settled.error = (
                    "made no changes: the agent finished but the worktree is as it was (an issue that "
                    "needs no change says `expect_changes: false`)"
                )
        if settled.commit:
            work.head = settled.commit
            self.board.note(issue.id, f"committed {settled.commit[:10]} after {phase}")
        return settled

    async def _record(
        self,
        work: IssueWork,
        laid: _Laid,
        dispatch_id: str,
        proc: ProcessResult,
        out: AgentResult,
        judged: Judgement,
        verdict: ReadVerdict | None,
        settled: _Settled,
        result: AttemptResult,
    ) -> None:
        problems = [*judged.problems, *settled.problems]
        concluded: dict[str, Any] = {**laid.position, "problems": problems}
        if result.error is not None:
            concluded["error"] = result.error
        if result.auth:
            concluded["auth_failed"] = True
        if settled.discarded:
            concluded["discarded"] = settled.discarded
        if settled.commit:
            concluded["commit"] = settled.commit
        if verdict is not None and result.ok:
            concluded["verdict"] = verdict.verdict.model_dump(mode="json")
            concluded["normalised"] = list(verdict.normalised)
        write_json(
            laid.paths.result,
            {
                **laid.position, "ok": result.ok, "error": result.error, "argv": proc.argv,
                "exit_code": proc.exit_code, "timed_out": proc.timed_out, "stalled": proc.stalled,
                "duration_s": round(proc.duration_s, 3), "final_message": out.final_message,
                "structured": out.structured, "runner_error": out.failure, "problems": problems,
                "usage": None if out.usage is None else out.usage.to_json(),
                "lines": {"json": out.json_lines, "other": out.other_lines},
                "verdict": concluded.get("verdict"), "normalised": concluded.get("normalised", []),
                "discarded": settled.discarded, "leftovers": proc.leftovers, "commit": settled.commit,
            },
        )  # fmt: skip
        if result.verdict is not None:
            verdict_text = f"{result.verdict.status}: {len(result.verdict.findings)} finding(s)"
            payload = {**concluded["verdict"], "cycle": laid.position["cycle"]}
            await self.bridge.record(
                work.run_id, "review.verdict", reason=verdict_text,
                payload={**payload, "normalised": concluded["normalised"]},
            )  # fmt: skip
        status = judged.status if judged.error else ("failed" if result.error else "completed")
        await self.bridge.finish(
            dispatch_id, status=status, exit_code=proc.exit_code, error=result.error, usage=out.usage,
            position=concluded,
        )  # fmt: skip
