"""The one subprocess wrapper every runner goes through, and the adapter interface.

The agent runs as its own process group (so a timeout kills the agent *and* everything it started),
reads /dev/null (so it can never wait for a keyboard), and its bytes hit the raw log before anything
tries to parse them: when a parser chokes on a line, the evidence is already on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.config import RunnerConfig

MAX_LINE = 16 * 1024 * 1024  # a single JSON event may carry a whole file diff
READ_CHUNK = 64 * 1024
DRAIN_S = 2.0  # after the agent exits, how long its pipes may stay open (a leftover child holding them)

LineCallback = Callable[[str, str], None]


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    cost_usd: float | None = None

    def add(self, other: Usage) -> Usage:
        cost = None
        if self.cost_usd is not None or other.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_tokens + other.cache_tokens,
            cost,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_tokens": self.cache_tokens,
            "cost_usd": self.cost_usd,
        }


@dataclass
class RunnerOutput:
    """What an adapter understood of the agent's output."""

    final_message: str | None = None
    structured: Any = None  # a structured result the agent reported itself (command runner `result`)
    usage: Usage = field(default_factory=Usage)
    error: str | None = None  # the agent said it failed (codex turn.failed, claude is_error)
    json_lines: int = 0
    other_lines: int = 0


@dataclass(frozen=True)
class ProcessResult:
    argv: list[str]
    pid: int
    exit_code: int | None  # negative: killed by that signal
    timed_out: bool
    stalled: bool
    duration_s: float
    stderr_tail: str


@dataclass(frozen=True)
class Invocation:
    """One attempt of one phase: everything a runner needs to build its command line."""

    prompt: str
    prompt_file: Path
    issue_id: str
    phase: str
    cycle: int
    attempt: int
    worktree: Path
    run_id: str | None = None


class OutputParser(ABC):
    """Incremental: fed one stdout line at a time, so a killed agent still yields what it said."""

    def __init__(self) -> None:
        self.out = RunnerOutput()

    def feed(self, line: str) -> str | None:
        """Digest a line; return what to show the operator for it (None: nothing)."""
        stripped = line.strip()
        if not stripped:
            return None
        try:
            event = json.loads(stripped)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.out.other_lines += 1
            return stripped
        self.out.json_lines += 1
        try:
            return self.on_event(event)
        except (TypeError, ValueError, AttributeError, KeyError):
            return None  # a JSON line of an unexpected shape is tolerated like a non-JSON one

    @abstractmethod
    def on_event(self, event: dict[str, Any]) -> str | None: ...

    def result(self) -> RunnerOutput:
        return self.out


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    return 0


class Runner(ABC):
    kind: str = ""
    default_args: tuple[str, ...] = ()

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config

    @property
    def extra_args(self) -> list[str]:
        return list(self.default_args) if self.config.args is None else list(self.config.args)

    @abstractmethod
    def argv(self, inv: Invocation) -> list[str]: ...

    @abstractmethod
    def parser(self) -> OutputParser: ...

    def env(self, inv: Invocation) -> dict[str, str]:
        """The agent's environment: ours, the config's `env`, and where it stands in the loop."""
        return {
            **os.environ,
            **self.config.env,
            "ORCHESTRATOR_ISSUE": inv.issue_id,
            "ORCHESTRATOR_PHASE": inv.phase,
            "ORCHESTRATOR_CYCLE": str(inv.cycle),
            "ORCHESTRATOR_ATTEMPT": str(inv.attempt),
            "ORCHESTRATOR_PROMPT_FILE": str(inv.prompt_file),
            "ORCHESTRATOR_WORKTREE": str(inv.worktree),
            "ORCHESTRATOR_RUN_ID": inv.run_id or "",
        }


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _pump(
    stream: asyncio.StreamReader,
    log: BinaryIO,
    name: str,
    on_line: LineCallback,
    touch: Callable[[], None],
) -> None:
    """Copy a pipe to its log as bytes arrive, then hand complete lines (≤ MAX_LINE) to `on_line`."""
    buffer = bytearray()
    while True:
        chunk = await stream.read(READ_CHUNK)
        if not chunk:
            break
        touch()
        log.write(chunk)
        log.flush()
        buffer.extend(chunk)
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > MAX_LINE:  # an endless line: hand over what we have, keep going
                    on_line(name, buffer.decode(errors="replace"))
                    buffer.clear()
                break
            on_line(name, buffer[:newline].decode(errors="replace"))
            del buffer[: newline + 1]
    if buffer:  # output cut off mid-line (truncated JSON): still offered, parsers tolerate it
        on_line(name, buffer.decode(errors="replace"))


async def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout_log: Path,
    stderr_log: Path,
    timeout: float,
    stall: float,
    kill_grace: float = 3.0,
    on_start: Callable[[int], None] | None = None,
    on_line: LineCallback | None = None,
) -> ProcessResult:
    """Run `argv` to completion, timeout or stall; the whole process group is gone when this returns.

    Raises OSError when the program cannot be started at all (missing, not executable).
    """
    stderr_tail: deque[str] = deque(maxlen=20)
    last_output = time.monotonic()

    def touch() -> None:
        nonlocal last_output
        last_output = time.monotonic()

    def handle(name: str, line: str) -> None:
        if name == "stderr" and line.strip():
            stderr_tail.append(line.rstrip())
        if on_line is not None:
            on_line(name, line)

    with open(stdout_log, "ab") as out_log, open(stderr_log, "ab") as err_log:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=MAX_LINE,
        )
        pgid = proc.pid
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [
            asyncio.create_task(_pump(proc.stdout, out_log, "stdout", handle, touch)),
            asyncio.create_task(_pump(proc.stderr, err_log, "stderr", handle, touch)),
        ]
        waiter = asyncio.create_task(proc.wait())
        timed_out = stalled = False
        finished = False
        try:
            if on_start is not None:
                on_start(proc.pid)
            while not waiter.done():
                now = time.monotonic()
                if now - started >= timeout:
                    timed_out = True
                    break
                if now - last_output >= stall:
                    stalled = True
                    break
                wake = min(started + timeout, last_output + stall) - now
                await asyncio.wait([waiter], timeout=min(max(wake, 0.01), 1.0))
            if timed_out or stalled:
                await _kill(pgid, waiter, kill_grace)
            await waiter
            done, _ = await asyncio.wait(pumps, timeout=DRAIN_S)
            _signal_group(pgid, signal.SIGKILL)  # whatever the agent left running in its group
            for task in pumps:
                if task not in done:
                    task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            finished = True
        finally:
            if not finished:  # cancelled (Ctrl-C, SIGTERM): take the agent down with us
                _signal_group(pgid, signal.SIGTERM)
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(waiter), timeout=min(kill_grace, 1.0))
                _signal_group(pgid, signal.SIGKILL)
                waiter.cancel()
                for task in pumps:
                    task.cancel()
    return ProcessResult(
        argv=argv,
        pid=proc.pid,
        exit_code=proc.returncode,
        timed_out=timed_out,
        stalled=stalled,
        duration_s=time.monotonic() - started,
        stderr_tail="\n".join(stderr_tail),
    )


async def _kill(pgid: int, waiter: asyncio.Task[int], grace: float) -> None:
    """TERM the group, then KILL it if the leader is still there after `grace` seconds."""
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(waiter), timeout=grace)
    _signal_group(pgid, signal.SIGKILL)
