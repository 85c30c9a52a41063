"""The supervisor: one small detached process per dispatch that starts the agent and sees it to its end.

`ic dispatch spawn` returns as soon as the agent runs; this process stays behind, so the real exit
code, the end time and the agent's token usage are recorded even when no `ic` is watching.

- It leads its own session (no terminal signal reaches it) and starts the agent in another new
  session, so the agent's process group can be signalled as a whole without touching the supervisor.
- It is a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): grandchildren orphaned by the agent are
  re-parented to it and reaped, and whatever is left of the agent's group when the agent exits is
  ended. No zombies, no orphans.
- It waits on SIGCHLD (through a wakeup fd), not on a polling loop, and enforces `--timeout`.
- Only the first terminal transition counts (see `records.finish`): after `kill` or `wait` ended the
  dispatch, the supervisor still adds the real exit code and the tokens.

Protocol with the spawner: one JSON line on stdout, `{"ok":true,"pid":N}` once the row says running,
or `{"ok":false,"code":C,"error":"..."}`; stdout is then closed. Diagnostics go to stderr, which the
spawner points at `supervisor.log` in the dispatch's directory.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kernel import db as kdb
from kernel.dispatch import config, procs, records, tokens
from kernel.errors import KernelError
from kernel.model import Dispatch

DB_TIMEOUT = 30.0
TIMEOUT_GRACE_S = 5.0
LEFTOVER_GRACE_S = 2.0
FINAL_WRITE_ATTEMPTS = 8
PR_SET_CHILD_SUBREAPER = 36


def log(message: str) -> None:
    sys.stderr.write(f"supervisor[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


class Reporter:
    """The one-line answer to the spawner; later answers are dropped (the spawner has gone)."""

    def __init__(self) -> None:
        self.done = False

    def send(self, obj: dict[str, Any]) -> None:
        if self.done:
            return
        self.done = True
        try:
            os.write(1, (json.dumps(obj, separators=(",", ":")) + "\n").encode())
        except OSError:
            pass
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def become_subreaper() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError) as exc:  # not Linux: orphans go to init as usual
        log(f"cannot become a child subreaper: {exc}")


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
    """Reap every exited child (agent and adopted orphans); the agent's wait status if it was reaped."""
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


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name} ({-code})"
    return f"exited with code {code}"


def with_retries(what: str, action: Any) -> Any:
    """Final writes must land: retry through lock timeouts rather than lose the result."""
    delay = 0.2
    for attempt in range(1, FINAL_WRITE_ATTEMPTS + 1):
        try:
            return action()
        except (KernelError, sqlite3.Error) as exc:
            if attempt == FINAL_WRITE_ATTEMPTS:
                log(f"giving up on {what}: {exc}")
                raise
            log(f"{what} failed ({exc}); retrying")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    return None


class Supervisor:
    def __init__(self, conn: sqlite3.Connection, row: Dispatch, reporter: Reporter) -> None:
        self.conn = conn
        self.row = row
        self.reporter = reporter
        self.signals = Signals()
        self.timed_out = False
        self.stopped = False

    def fail_before_start(self, error: str, code: int = 2) -> int:
        with_retries(
            "recording the failure", lambda: records.finish(self.conn, self.row.id, "failed", error=error)
        )
        self.reporter.send({"ok": False, "code": code, "error": error})
        return 0

    def argv(self) -> list[str]:
        row = self.row
        prompt = ""
        template = row.command or []
        if any("{prompt}" in arg for arg in template) and row.prompt_file:
            with open(row.prompt_file, "rb") as fh:
                prompt = os.fsdecode(fh.read())
        values = {
            "{prompt}": prompt,
            "{prompt_file}": row.prompt_file or "",
            "{output}": row.output_file or "",
            "{model}": row.model or "",
            "{id}": row.id,
        }
        return config.fill(template, values)

    def start(self) -> subprocess.Popen[bytes] | int:
        row = self.row
        try:
            argv = self.argv()
        except OSError as exc:
            return self.fail_before_start(f"cannot read prompt file {row.prompt_file}: {exc.strerror}")
        if not argv:
            return self.fail_before_start("the dispatch has no command")
        env = dict(os.environ)
        env["CLAVAIN_DISPATCH_ID"] = row.id
        env["CLAVAIN_PROMPT_FILE"] = row.prompt_file or ""
        env["CLAVAIN_OUTPUT_FILE"] = row.output_file or ""
        if row.scope_id:
            env["CLAVAIN_SCOPE_ID"] = row.scope_id
        try:
            out_fd = os.open(row.output_file or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            return self.fail_before_start(f"cannot open output file {row.output_file}: {exc.strerror}")
        try:
            return subprocess.Popen(
                argv,
                cwd=row.project_dir,
                stdin=subprocess.DEVNULL,
                stdout=out_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            return self.fail_before_start(f"cannot start {argv[0]!r}: {reason}")
        finally:
            os.close(out_fd)

    def run(self) -> int:
        started = self.start()
        if isinstance(started, int):
            return started
        agent = started
        pid = agent.pid
        pid_start = procs.start_time(pid)
        payload = {"pgid": pid, "pid_start": pid_start, **records.own_identity()}
        try:
            running = with_retries(
                "recording running", lambda: records.mark_running(self.conn, self.row.id, pid, payload)
            )
        except (KernelError, sqlite3.Error):
            running = False
        if not running:
            # Cancelled between spawn and start (or the database is gone): the agent must not run on.
            procs.end_group(pid, 0.5)
            self.reporter.send(
                {"ok": False, "code": 1, "error": f"dispatch {self.row.id} ended before its agent started"}
            )
        else:
            self.reporter.send({"ok": True, "pid": pid})
        try:
            status = self.supervise(pid)
        except Exception as exc:  # a bug here must not leave the agent running unsupervised
            import traceback

            traceback.print_exc()
            self.end_early("failed", f"supervisor error ({type(exc).__name__}: {exc}); agent ended", pid)
            status = os.waitpid(pid, 0)[1]
        self.record_end(pid, status)
        return 0

    def supervise(self, pid: int) -> int:
        deadline = None if not self.row.timeout_s else time.monotonic() + self.row.timeout_s
        while True:
            status = reap_children(pid)
            if status is not None:
                return status
            if self.signals.stop_signal is not None and not self.stopped:
                self.stopped = True
                name = signal.Signals(self.signals.stop_signal).name
                self.end_early("failed", f"supervisor stopped by {name}; agent process group ended", pid)
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline and not self.timed_out:
                self.timed_out = True
                self.end_early("timeout", f"timed out after {self.row.timeout_s:g}s", pid)
                continue
            wait_for = 5.0 if deadline is None or self.timed_out else min(max(deadline - now, 0.0), 5.0)
            self.signals.wait(wait_for)

    def end_early(self, status: str, error: str, pid: int) -> None:
        try:
            with_retries(
                f"recording {status}", lambda: records.finish(self.conn, self.row.id, status, error=error)
            )
        except (KernelError, sqlite3.Error):
            pass
        procs.end_group(pid, TIMEOUT_GRACE_S)

    def record_end(self, pid: int, wait_status: int) -> None:
        # Whatever the agent left behind in its group goes with it, then adopted orphans are reaped.
        procs.end_group(pid, LEFTOVER_GRACE_S)
        reap_children(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        usage = tokens.parse_file(self.row.output_file) if self.row.output_file else None
        status = "completed" if code == 0 else "failed"
        error = None if code == 0 else describe_exit(code)
        try:
            with_retries(
                "recording the result",
                lambda: records.finish(
                    self.conn, self.row.id, status, exit_code=code, error=error, usage=usage
                ),
            )
        except (KernelError, sqlite3.Error):
            log(f"the result of dispatch {self.row.id} ({describe_exit(code)}) could not be recorded")
        except Exception as exc:  # e.g. the portfolio database failed while giving the slot back
            log(f"after recording dispatch {self.row.id}: {type(exc).__name__}: {exc}")


def main(argv: list[str]) -> int:
    reporter = Reporter()
    if len(argv) != 2:
        reporter.send({"ok": False, "code": 3, "error": "usage: supervisor <db> <dispatch id>"})
        return 3
    db_path, dispatch_id = Path(argv[0]), argv[1]
    try:
        conn = kdb.open_db(db_path, timeout=DB_TIMEOUT)
        row = records.get(conn, dispatch_id)
    except KernelError as exc:
        reporter.send({"ok": False, "code": exc.exit_code, "error": exc.message})
        return exc.exit_code
    if row.status != "spawned":
        reporter.send(
            {"ok": False, "code": 1, "error": f"dispatch {dispatch_id} is {row.status}, not spawned"}
        )
        return 1
    become_subreaper()
    try:
        return Supervisor(conn, row, reporter).run()
    except Exception as exc:  # the spawner needs one line, and the log the whole story
        import traceback

        traceback.print_exc()
        reporter.send({"ok": False, "code": 2, "error": f"supervisor failed: {type(exc).__name__}: {exc}"})
        return 2
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
