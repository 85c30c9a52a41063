"""The supervisor: one small detached process per dispatch that sees its agent to a real end.

`kernel.dispatch.launch` has already started the agent, reported it to the spawner and forked the
watchdog when this module is imported; `main` takes over from there. The real exit code, the end
time and the agent's token usage are recorded even when no `ic` is watching. The output file is read
by the parser of the dispatch's agent kind (`kernel.dispatch.agents`, the one the orchestrator uses
too): its token usage is recorded, and a failure the agent reported itself (Codex `turn.failed`,
a Claude error result) fails the dispatch even when the exit code is 0.

- It leads its own session (no terminal signal reaches it); the agent leads another, so the
  agent's process group can be signalled as a whole without touching the supervisor.
- It waits for the spawner to let go (EOF on stdin: `running` is recorded, or the spawner died),
  then reads the row: `running` with its agent's pid is the normal case; still `spawned` means the
  spawner died first, so it records `running` itself; already terminal means the dispatch was
  cancelled before its agent started, so the agent is ended at once.
- It is a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): processes orphaned anywhere in the
  agent's tree are re-parented to it and reaped. When the agent exits, its group is ended, then
  every process still below the supervisor (those that left the group with setsid/setpgid too).
- It waits on SIGCHLD (through a wakeup fd), not on a polling loop, and enforces `--timeout`.
- Every few seconds it re-reads its row: when someone else ended the dispatch (`kill`, `wait
  --timeout`, `poll`) and the agent still runs (that `ic` was interrupted during the grace
  period), it ends the group itself. A terminal status is always followed by the processes.
- Only the first terminal transition counts (see `records.finish`): after `kill` or `wait` ended the
  dispatch, the supervisor still adds the real exit code and the tokens.

Diagnostics go to stderr, which the spawner points at `supervisor.log` in the dispatch's directory.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from kernel import db as kdb
from kernel import proctree
from kernel.dispatch import agents, procs, records
from kernel.dispatch.agents.output import describe_exit
from kernel.dispatch.launch import Launched
from kernel.errors import KernelError, NotFound
from kernel.model import Dispatch

DB_TIMEOUT = 30.0
TIMEOUT_GRACE_S = 5.0
LEFTOVER_GRACE_S = 2.0
FINAL_WRITE_ATTEMPTS = 8
RECHECK_EVERY_S = 2.0
SPAWNER_WAIT_S = 60.0


def log(message: str) -> None:
    sys.stderr.write(f"supervisor[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


class Signals:
    """SIGCHLD and stop signals turned into readable bytes on a pipe, so the loop can `select` on it."""

    def __init__(self) -> None:
        self.read_fd, write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(write_fd, False)
        self.stop_signal: int | None = None
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, self._noop)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._stop)

    def _noop(self, signum: int, frame: object) -> None:
        pass

    def _stop(self, signum: int, frame: object) -> None:
        self.stop_signal = signum

    def wait(self, timeout: float | None) -> None:
        try:
            select.select([self.read_fd], [], [], timeout)
        except InterruptedError:
            pass
        try:
            while os.read(self.read_fd, 512):
                pass
        except (BlockingIOError, InterruptedError):
            pass


def reap_children(agent_pid: int) -> int | None:
    """Reap every exited child (agent, adopted orphans, watchdog); the agent's wait status if reaped."""
    agent_status = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return agent_status
        if pid == 0:
            return agent_status
        if pid == agent_pid:
            agent_status = status


def outcome_error(code: int, failure: str | None) -> str | None:
    """The dispatch's error: how the agent exited (when non-zero) and the failure it reported, if any."""
    parts = [describe_exit(code)] if code != 0 else []
    if failure is not None:
        parts.append(f"the agent reported: {failure}")
    return "; ".join(parts) or None


def with_retries(what: str, action: Any) -> Any:
    """Final writes must land: retry through lock timeouts rather than lose the result."""
    delay = 0.2
    for attempt in range(1, FINAL_WRITE_ATTEMPTS + 1):
        try:
            return action()
        except (KernelError, sqlite3.Error) as exc:
            if attempt == FINAL_WRITE_ATTEMPTS or isinstance(exc, NotFound):
                log(f"giving up on {what}: {exc}")
                raise
            log(f"{what} failed ({exc}); retrying")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    return None


def record_quietly(what: str, action: Any) -> None:
    try:
        with_retries(what, action)
    except (KernelError, sqlite3.Error):
        pass


def await_spawner(timeout_s: float) -> None:
    """Block until the spawner closes our stdin (it recorded `running`, or died), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            ready, _, _ = select.select([0], [], [], remaining)
        except InterruptedError:
            continue
        if ready and not os.read(0, 4096):
            break
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


class Supervisor:
    def __init__(self, conn: sqlite3.Connection, row: Dispatch, agent: Launched) -> None:
        assert agent.pid is not None
        self.conn = conn
        self.row = row
        self.agent = agent
        self.pid = agent.pid
        self.signals = Signals()
        self.timed_out = False
        self.stopped = False
        self.enforced = False

    def run(self) -> int:
        self.take_over()
        try:
            status = self.supervise()
        except Exception as exc:  # a bug here must not leave the agent running unsupervised
            import traceback

            traceback.print_exc()
            self.end_early("failed", f"supervisor error ({type(exc).__name__}: {exc}); agent ended")
            status = os.waitpid(self.pid, 0)[1]
        self.record_end(status)
        return 0

    def take_over(self) -> None:
        """Make sure the record says `running` with this agent, or end the agent if it may not run."""
        row = self.row
        if row.status == "spawned":  # the spawner died before recording it
            payload = records.running_payload(self.pid, self.agent.start, **records.own_identity())
            try:
                with_retries(
                    "recording running", lambda: records.mark_running(self.conn, row.id, self.pid, payload)
                )
                row = records.get(self.conn, row.id)
            except (KernelError, sqlite3.Error):
                pass
        if row.status != "running" or row.pid != self.pid:
            log(f"dispatch {row.id} is {row.status} before its agent ran; ending the agent")
            self.enforced = True
            procs.end_group(self.pid, 0.5)

    def supervise(self) -> int:
        timeout_s = self.row.timeout_s
        deadline = None if not timeout_s else self.agent.started + timeout_s
        next_check = time.monotonic() + RECHECK_EVERY_S
        while True:
            status = reap_children(self.pid)
            if status is not None:
                return status
            if self.signals.stop_signal is not None and not self.stopped:
                self.stopped = True
                name = signal.Signals(self.signals.stop_signal).name
                self.end_early("failed", f"supervisor stopped by {name}; agent process group ended")
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline and not self.timed_out:
                self.timed_out = True
                self.end_early("timeout", f"timed out after {timeout_s:g}s")
                continue
            if now >= next_check:
                next_check = now + RECHECK_EVERY_S
                self.follow_the_record()
                continue
            wake = next_check if deadline is None or self.timed_out else min(deadline, next_check)
            self.signals.wait(max(wake - now, 0.0))

    def follow_the_record(self) -> None:
        """End the agent once its dispatch is terminal: whoever recorded that may not have finished."""
        if self.enforced:
            return
        try:
            row = records.get(self.conn, self.row.id)
        except (KernelError, sqlite3.Error):
            return  # a locked or vanished database is no verdict; the agent runs on
        if row.is_terminal:
            self.enforced = True
            log(f"dispatch is {row.status} while its agent runs; ending the agent's process group")
            procs.end_group(self.pid, LEFTOVER_GRACE_S)

    def end_early(self, status: str, error: str) -> None:
        conn, dispatch_id = self.conn, self.row.id
        record_quietly(f"recording {status}", lambda: records.finish(conn, dispatch_id, status, error=error))
        procs.end_group(self.pid, TIMEOUT_GRACE_S)

    def record_end(self, wait_status: int) -> None:
        # Whatever the agent left behind goes with it: its group, then anything else still below this
        # process (escaped with setsid, adopted as orphans); the watchdog alone stays until disarmed.
        procs.end_group(self.pid, LEFTOVER_GRACE_S)
        keep = {self.agent.watchdog_pid} if self.agent.watchdog_pid else set()
        proctree.end_descendants(os.getpid(), LEFTOVER_GRACE_S, keep=keep)
        reap_children(self.pid)
        code = os.waitstatus_to_exitcode(wait_status)
        said = agents.read_output(self.row.agent_type, self.row.output_file) if self.row.output_file else None
        usage = said.usage if said is not None else None
        failure = said.failure if said is not None else None
        status = "completed" if code == 0 and failure is None else "failed"
        error = outcome_error(code, failure)
        try:
            record_quietly(
                "recording the result",
                lambda: records.finish(
                    self.conn, self.row.id, status, exit_code=code, error=error, usage=usage
                ),
            )
        except Exception as exc:  # e.g. the portfolio database failed while giving the slot back
            log(f"after recording dispatch {self.row.id}: {type(exc).__name__}: {exc}")


def fail(conn: sqlite3.Connection, dispatch_id: str, error: str) -> None:
    records.finish(conn, dispatch_id, "failed", error=error)


def main(db_path: str, dispatch_id: str, agent: Launched) -> int:
    """Take over from `launch`: make the record match the agent, then supervise it to the end."""
    try:
        try:  # opening takes no lock (WAL), so a busy database is no reason to fail here
            conn = kdb.open_db(Path(db_path), timeout=DB_TIMEOUT)
        except KernelError as exc:
            if agent.pid is not None:  # nowhere to record it: the agent must not run unrecorded
                log(f"ending the agent: the database cannot be opened ({exc})")
                procs.end_group(agent.pid, 0.5)
                reap_children(agent.pid)
            return 2
        try:
            await_spawner(SPAWNER_WAIT_S)
            if agent.pid is None:  # the spawner records this too; terminal is final, so both is fine
                record_quietly(
                    "recording the failure", lambda: fail(conn, dispatch_id, agent.error or "no agent")
                )
                return 0
            row = with_retries("reading the dispatch", lambda: records.get(conn, dispatch_id))
            return Supervisor(conn, row, agent).run()
        except Exception as exc:
            import traceback

            traceback.print_exc()
            if agent.pid is not None:
                procs.end_group(agent.pid, 0.5)
                reap_children(agent.pid)
            log(f"supervisor failed ({type(exc).__name__}: {exc}); agent ended")
            return 2
        finally:
            conn.close()
    finally:
        agent.disarm_watchdog()


def after_supervisor_death(
    db_path: str, dispatch_id: str, supervisor_pid: int, pid: int, start: int | None
) -> None:
    """The watchdog's one job: the supervisor died without a word, so end the agent and say so.

    The agent's exit code is unknowable here (it was the supervisor's child), so the dispatch fails
    with the reason and no exit code; a result recorded just before the death stays (terminal is final).
    """
    ended = False
    if procs.owns_group(pid, start):
        stragglers = proctree.descendants(pid)
        ended = procs.end_group(pid, TIMEOUT_GRACE_S)
        ended = proctree.end_pids(stragglers, LEFTOVER_GRACE_S) or ended
    error = records.died_error("supervisor", supervisor_pid, ended_by="its watchdog" if ended else None)
    sys.stderr.write(f"watchdog[{os.getpid()}]: {error}\n")
    try:
        conn = kdb.open_db(Path(db_path), timeout=DB_TIMEOUT)
    except KernelError as exc:
        sys.stderr.write(f"watchdog[{os.getpid()}]: cannot record it: {exc.message}\n")
        return
    try:
        record_quietly("recording the failure", lambda: fail(conn, dispatch_id, error))
    finally:
        conn.close()
