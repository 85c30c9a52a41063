"""The one subprocess wrapper every runner goes through, and what a runner is handed per attempt.

Every agent runs under a per-agent reaper (`kernel.proctree`, the kernel's one home for process
trees): a small process that is a child subreaper, starts the agent in its own session, reports its
pid and its exit status, and ends everything below it on request. So the phase ends with nothing of
the agent's left running: not its process group, not a `setsid` daemon it double-forked, and not
even when the orchestrator is killed (the reaper sees its control pipe close). The reapers are
forked by one reaper service per run (`ReaperService`), much cheaper than starting an interpreter
per agent; the orchestrator hands it each agent's stdin and pipes over a socket.

Reading: the agent's stdin is its prompt file or /dev/null (it can never wait for a keyboard), and
its bytes hit the raw log before anything tries to parse them, so when a parser chokes on a line the
evidence is already on disk. The attempt's clock is the agent's own exit, not the end of its output:
an agent that exits while a background child still holds its stdout has finished; its output is
drained for a bounded time (`DRAIN_S`), then the reaper ends what it left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kernel import proctree

MAX_LINE = 16 * 1024 * 1024  # a single JSON event may carry a whole file diff
READ_CHUNK = 64 * 1024
DRAIN_S = 2.0  # after the agent exits, how long its output may stay open (a leftover child holding it)
REAPER_LOST_S = 10.0  # after `end`, how long the reaper may take beyond the grace before it is killed

LineCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class ProcessResult:
    argv: list[str]
    pid: int
    exit_code: int | None  # negative: killed by that signal; None: unknown (the reaper was lost)
    timed_out: bool
    stalled: bool
    duration_s: float  # from the agent's start to its exit
    stderr_tail: str
    leftovers: int = 0  # processes the agent left running when it exited, ended with the phase
    notes: tuple[str, ...] = ()  # what the reaper reported besides (e.g. no subreaper available)


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
    verdict_schema: Path | None = None  # the review's answer schema (review attempts only)


class StartFailed(Exception):
    """The agent program could not be started at all (missing, not executable)."""


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


class _Reaped:
    """The orchestrator's end of one reaper: its status lines in, `end` out."""

    def __init__(self, status: asyncio.StreamReader, control_fd: int) -> None:
        self.status = status
        self.control_fd = control_fd
        self.reaper_pid: int | None = None
        self.notes: list[str] = []
        self.exit_status: int | None = None
        self.ended: int | None = None

    async def line(self) -> tuple[str, str] | None:
        raw = await self.status.readline()
        if not raw:
            return None
        word, _, rest = raw.decode("utf-8", "replace").rstrip("\n").partition(" ")
        return word, rest

    async def until_exit(self) -> None:
        """Read status lines until the agent's exit (or the reaper's end: then the exit is unknown)."""
        while (said := await self.line()) is not None:
            word, rest = said
            if word == "exited":
                self.exit_status = int(rest)
                return
            if word == "ended":
                self.ended = int(rest)
                return
            if word == "note":
                self.notes.append(rest)

    async def until_ended(self) -> None:
        while self.ended is None and (said := await self.line()) is not None:
            word, rest = said
            if word == "exited":
                self.exit_status = int(rest)
            elif word == "ended":
                self.ended = int(rest)
            elif word == "note":
                self.notes.append(rest)

    def end(self, grace: float) -> None:
        """Ask the reaper to end the agent's tree (idempotent; a vanished reaper is fine)."""
        if self.control_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(self.control_fd, f"end {grace:g}\n".encode())
        os.close(self.control_fd)
        self.control_fd = -1


class ReaperService:
    """The run's reaper service (`kernel.proctree.serve`): started on first use, closed with the run."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.sock: socket.socket | None = None

    async def _ready(self) -> socket.socket:
        if self.sock is not None and self.proc is not None and self.proc.returncode is None:
            return self.sock
        await self.close()  # a service that died is replaced
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *proctree.service_argv(sys.executable, theirs.fileno()), pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        return ours

    async def start(
        self, argv: list[str], cwd: Path, env: dict[str, str], stdin_file: Path | None
    ) -> tuple[_Reaped, asyncio.StreamReader, asyncio.StreamReader, int]:
        """Start `argv` under a new reaper: (its status, the agent's stdout and stderr, the agent's pid).

        StartFailed when it cannot start; OSError when `stdin_file` cannot be opened.
        """
        stdin = os.open(stdin_file if stdin_file is not None else os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        pipes = [os.pipe() for _ in range(4)]  # stdout, stderr, status: read by us; control: written by us
        (out_r, out_w), (err_r, err_w), (status_r, status_w), (control_r, control_w) = pipes
        theirs = [stdin, out_w, err_w, status_w, control_r]
        try:
            sock = await self._ready()
            request = proctree.encode_request(argv, str(cwd), env)
            sent = socket.send_fds(sock, [request], theirs)
            sock.sendall(request[sent:])
        except BaseException:
            for fd in (out_r, err_r, status_r, control_w):
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        readers = [await _reader(fd) for fd in (out_r, err_r, status_r)]
        reaped = _Reaped(readers[2], control_w)
        first = await reaped.line()
        if first is None or first[0] != "started":
            reaped.end(0)
            reason = first[1] if first is not None and first[0] == "failed" else "the reaper service is gone"
            raise StartFailed(reason)
        pid, _, reaper = first[1].split()
        reaped.reaper_pid = int(reaper)
        return reaped, readers[0], readers[1], int(pid)

    async def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout=REAPER_LOST_S)
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
            self.proc = None


async def _reader(fd: int) -> asyncio.StreamReader:
    """An asyncio reader of the pipe `fd` (taken over: closed with the transport)."""
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader


async def run_process(
    argv: list[str],
    *,
    service: ReaperService,
    cwd: Path,
    env: dict[str, str],
    stdout_log: Path,
    stderr_log: Path,
    timeout: float,
    stall: float,
    kill_grace: float = 3.0,
    stdin_file: Path | None = None,
    on_start: Callable[[int], Awaitable[None]] | None = None,
    on_line: LineCallback | None = None,
    drain_s: float = DRAIN_S,
) -> ProcessResult:
    """Run `argv` to completion, timeout or stall; nothing of the agent's runs when this returns.

    `stdin_file` is what the agent reads on stdin (its prompt), else /dev/null. Raises StartFailed
    when the program cannot be started at all, OSError when `stdin_file` cannot be opened.
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
        reaped, stdout, stderr, pid = await service.start(argv, cwd, env, stdin_file)
        started = last_output = time.monotonic()
        ended_at: float | None = None
        pumps = [
            asyncio.create_task(_pump(stdout, out_log, "stdout", handle, touch)),
            asyncio.create_task(_pump(stderr, err_log, "stderr", handle, touch)),
        ]
        exit_seen = asyncio.create_task(reaped.until_exit())
        timed_out = stalled = finished = False
        try:
            if on_start is not None:  # e.g. record the dispatch; the agent's output waits in its pipes
                starting = asyncio.ensure_future(on_start(pid))
                try:
                    await asyncio.shield(starting)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):  # interrupted: still let it land, so the
                        await starting  # caller knows what it recorded and can close it
                    raise
            while not exit_seen.done():
                now = time.monotonic()
                if now - started >= timeout:
                    timed_out = True
                    break
                if now - last_output >= stall:
                    stalled = True
                    break
                wake = min(started + timeout, last_output + stall) - now
                await asyncio.wait([exit_seen], timeout=min(max(wake, 0.01), 1.0))
            if timed_out or stalled:
                reaped.end(kill_grace)
            await exit_seen
            ended_at = time.monotonic()
            await asyncio.wait(pumps, timeout=drain_s)  # at once, unless something holds the output
            reaped.end(kill_grace)
            if not await _within(reaped.until_ended(), kill_grace + REAPER_LOST_S) or reaped.ended is None:
                _kill_lost(pid, reaped)
            if not await _within(asyncio.gather(*pumps, return_exceptions=True), REAPER_LOST_S):
                reaped.notes.append(
                    "the agent's output was still open after its processes ended; stopped reading"
                )
            finished = True
        finally:
            if not finished:  # cancelled (Ctrl-C, SIGTERM): take the agent and all it started down with us
                reaped.end(min(kill_grace, 1.0))
                exit_seen.cancel()  # one reader of the status at a time
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(
                        asyncio.shield(asyncio.gather(exit_seen, return_exceptions=True)), 1.0
                    )
                ending = asyncio.ensure_future(reaped.until_ended())
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(ending), timeout=kill_grace + REAPER_LOST_S)
                if reaped.ended is None:
                    ending.cancel()
                    _kill_lost(pid, reaped)
            for task in (*pumps, exit_seen):
                task.cancel()
    exit_code = None if reaped.exit_status is None else os.waitstatus_to_exitcode(reaped.exit_status)
    return ProcessResult(
        argv=argv,
        pid=pid,
        exit_code=exit_code,
        timed_out=timed_out,
        stalled=stalled,
        duration_s=(ended_at or time.monotonic()) - started,
        stderr_tail="\n".join(stderr_tail),
        leftovers=0 if timed_out or stalled else (reaped.ended or 0),
        notes=tuple(reaped.notes),
    )


async def _within(awaitable: Awaitable[object], seconds: float) -> bool:
    """Await `awaitable` for at most `seconds`; False (and it is cancelled) if it took longer."""
    try:
        await asyncio.wait_for(awaitable, timeout=seconds)
    except TimeoutError:
        return False
    return True


def _kill_lost(pid: int, reaped: _Reaped) -> None:
    """The reaper died or hangs: kill it and the agent's process group (what is left of the tree)."""
    reaped.notes.append("the process reaper was lost; it and the agent's process group were killed")
    if reaped.reaper_pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(reaped.reaper_pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
