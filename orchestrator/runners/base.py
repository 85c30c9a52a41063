"""The one subprocess wrapper every runner goes through, and what a runner is handed per attempt.

The agent runs as its own process group (so a timeout kills the agent *and* everything it started),
reads its prompt file or /dev/null on stdin (so it can never wait for a keyboard), and its bytes hit
the raw log before anything tries to parse them: when a parser chokes on a line, the evidence is
already on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_LINE = 16 * 1024 * 1024  # a single JSON event may carry a whole file diff
READ_CHUNK = 64 * 1024
DRAIN_S = 2.0  # after the agent exits, how long its pipes may stay open (a leftover child holding them)

LineCallback = Callable[[str, str], None]


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
    stdin_file: Path | None = None,
    on_start: Callable[[int], None] | None = None,
    on_line: LineCallback | None = None,
) -> ProcessResult:
    """Run `argv` to completion, timeout or stall; the whole process group is gone when this returns.

    `stdin_file` is what the agent reads on stdin (its prompt), else /dev/null. Raises OSError when
    the program cannot be started at all (missing, not executable) or `stdin_file` cannot be opened.
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

    with (
        open(stdout_log, "ab") as out_log,
        open(stderr_log, "ab") as err_log,
        open(stdin_file if stdin_file is not None else os.devnull, "rb") as stdin,
    ):
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=env,
            stdin=stdin,
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
