"""Did an agent finish its work? Only terminal outcomes say no.

What fails an attempt: a timeout or a stall (the orchestrator ended it); a terminal failure the agent
reported itself (Codex `turn.failed` or an `error` as its final event, a Claude `result` with an
`error_*` subtype or `is_error`, a command runner's `error` line); a non-zero exit without a
completed turn. What does not: a transient error the agent recovered from (Codex prints
`{"type":"error","message":"Reconnecting... 1/5"}` and carries on), denied tools, a non-zero exit
after a completed turn. Those are the attempt's problems, reported with it.

A refused login is marked (`auth`): retrying it, or starting the next issue, would only repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel.dispatch.agents.output import AgentResult
from kernel.terminal import one_line
from orchestrator.runners.base import ProcessResult


@dataclass(frozen=True)
class Judgement:
    status: str  # the dispatch's terminal status: completed | failed | timeout
    error: str | None  # None: the agent finished; else why the attempt failed (infrastructure)
    problems: tuple[str, ...] = ()  # worth reporting, not failures
    auth: bool = False  # the failure is a refused login: no retry, and the run stops


def _exit(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def judge(proc: ProcessResult, out: AgentResult, *, timeout: float, stall: float) -> Judgement:
    problems = [*out.problems, *proc.notes]
    if proc.leftovers:
        problems.append(f"the agent left {proc.leftovers} process(es) running when it exited; ended")
    if proc.timed_out:
        return Judgement("timeout", f"timed out after {timeout:g}s; process group killed", tuple(problems))
    if proc.stalled:
        return Judgement(
            "timeout", f"no output for {stall:g}s (stalled); process group killed", tuple(problems)
        )
    failure = one_line(out.failure) if out.failure else None
    code = proc.exit_code
    if code is None:
        return Judgement("failed", "exit status unknown: the agent's process owner was lost", tuple(problems))
    if code != 0 and not out.completed:
        last_stderr = proc.stderr_tail.splitlines()[-1] if proc.stderr_tail else ""
        detail = failure or one_line(last_stderr)
        error = f"runner {_exit(code)}" + (f": {detail}" if detail else "")
        return Judgement("failed", error, tuple(problems), auth=out.auth_failed)
    if failure is not None:
        return Judgement(
            "failed", f"runner reported an error: {failure}", tuple(problems), auth=out.auth_failed
        )
    if code != 0:
        problems.append(
            f"the agent {_exit(code).replace('exit code', 'exited with code')} after completing its turn"
        )
    return Judgement("completed", None, tuple(problems))
