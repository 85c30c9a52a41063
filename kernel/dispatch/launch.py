"""The first moments of a dispatch's supervisor: the agent is exec'd before the kernel is even imported.

`ic dispatch spawn` starts `python3 -S -c <boot> <kernel dir> <db> <dispatch id>` detached and writes
the agent's launch spec (argv, cwd, environment additions, output file, stdin file) to its stdin as `marshal`
data behind a 4-byte length (the same interpreter reads it back; no JSON decoder, hence no `re`, on
this path). This module then:

1. becomes a child subreaper (`kernel.proctree`; before the agent exists, so even an instant
   double-fork is adopted);
2. forks the agent into its own session and process group (stdin the prompt file for a built-in
   agent command, else /dev/null; stdout and stderr to the output file; SIGPIPE/SIGXFSZ back to
   their defaults) and learns through a close-on-exec pipe whether the exec worked;
3. reports to the spawner on stdout (marshal, then EOF): the agent's pid and start time and its
   own, or why the agent could not start. The spawner records `running` from its warm connection;
4. forks the watchdog: a tiny process in its own session that blocks on a pipe only the supervisor
   holds. If the supervisor dies without disarming it (kill -9, a crash), the read returns EOF and
   the watchdog ends the agent's processes and fails the dispatch with that reason;
5. only then imports `kernel.dispatch.supervisor` (the database, the records), which sees the agent
   to its end.

Imports here are the interpreter's built-ins (`_signal` is the C half of `signal`, whose enum-based
wrapper costs more than everything else on this path).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stubs for the C half of `signal`
import marshal
import os
import sys
import time

TYPE_CHECKING = False  # `typing` is not imported on this path; mypy reads the name all the same
if TYPE_CHECKING:
    from collections.abc import Callable

EXEC_FAILED = 127


class Launched:
    """What the supervisor proper is handed: the running agent, or why it could not start.

    A plain class: `dataclasses` would cost more to import than the rest of this module.
    """

    __slots__ = ("error", "pid", "start", "started", "watchdog_fd", "watchdog_pid")

    def __init__(
        self,
        *,
        pid: int | None,
        start: int | None,
        started: float,
        error: str | None = None,
        watchdog_pid: int | None = None,
        watchdog_fd: int | None = None,
    ) -> None:
        self.pid = pid
        self.start = start  # /proc start time of the agent: (pid, start) is its identity
        self.started = started  # time.monotonic() at the fork, for --timeout
        self.error = error
        self.watchdog_pid = watchdog_pid
        self.watchdog_fd = watchdog_fd  # write end: a byte disarms the watchdog, EOF sets it off

    def disarm_watchdog(self) -> None:
        """Tell the watchdog the supervisor ends normally, and reap it (bounded: never hang here)."""
        if self.watchdog_fd is None or self.watchdog_pid is None:
            return
        try:
            os.write(self.watchdog_fd, b"x")
            os.close(self.watchdog_fd)
        except OSError:
            pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                if os.waitpid(self.watchdog_pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            time.sleep(0.01)


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (the same value `kernel.dispatch.procs` pairs with a pid)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := os.read(fd, size - len(data))):
        data += chunk
    return data


def read_spec(fd: int = 0) -> dict[str, object] | None:
    """The launch spec: a 4-byte length, then marshal data. The spawner keeps the pipe open after it."""
    header = _read_exactly(fd, 4)
    if len(header) < 4:
        return None
    try:
        spec = marshal.loads(_read_exactly(fd, int.from_bytes(header, "big")))
    except (EOFError, ValueError, TypeError):
        return None
    return spec if isinstance(spec, dict) else None


def report(answer: dict[str, object]) -> None:
    """Answer the spawner on stdout, then let go of it: EOF is the end of the answer."""
    try:
        os.write(1, marshal.dumps(answer))
    except OSError:
        pass  # the spawner has gone; the supervisor records everything itself
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def _exec_agent(
    argv: list[str], cwd: str, env: dict[str, str], stdin: str | None, out_fd: int, report_fd: int
) -> None:
    """In the forked child: detach, wire the descriptors, exec. Never returns."""
    stage = "setsid"
    try:
        os.setsid()
        stage = f"chdir to {cwd}"
        os.chdir(cwd)
        source = stdin if stdin is not None else os.devnull
        stage = f"open {source} as stdin"
        os.dup2(os.open(source, os.O_RDONLY | os.O_CLOEXEC), 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        # Python ignores these two; an exec'd program expects the defaults.
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        stage = "exec"
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = reason if stage == "exec" else f"{stage}: {reason}"
        try:
            os.write(report_fd, message.encode("utf-8", "replace"))
        except OSError:
            pass
    os._exit(EXEC_FAILED)


def start_agent(spec: dict[str, object]) -> tuple[int | None, str | None]:
    """Fork and exec the agent; (pid, None) once the exec succeeded, else (None, reason)."""
    argv, cwd, output, extra_env = spec.get("argv"), spec.get("cwd"), spec.get("output"), spec.get("env")
    stdin = spec.get("stdin")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return None, "the dispatch has no command"
    if not isinstance(cwd, str) or not isinstance(output, str) or not isinstance(extra_env, dict):
        return None, "malformed launch spec"
    if stdin is not None and not isinstance(stdin, str):
        return None, "malformed launch spec"
    try:
        out_fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return None, f"cannot open output file {output}: {exc.strerror}"
    env = {**os.environ, **{str(k): str(v) for k, v in extra_env.items()}}
    report_r, report_w = os.pipe()  # both close-on-exec: EOF with no message means the exec worked
    try:
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            _exec_agent(argv, cwd, env, stdin, out_fd, report_w)
    except OSError as exc:
        os.close(report_r)
        return None, f"cannot start {argv[0]!r}: fork failed: {exc.strerror}"
    finally:
        os.close(report_w)
        os.close(out_fd)
    failure = b""
    while chunk := os.read(report_r, 4096):
        failure += chunk
    os.close(report_r)
    if failure:
        os.waitpid(pid, 0)
        return None, f"cannot start {argv[0]!r}: {failure.decode('utf-8', 'replace')}"
    return pid, None


def start_watchdog(on_supervisor_death: Callable[[], None]) -> tuple[int | None, int | None]:
    """Fork the watchdog; (its pid, the write end of its pipe). (None, None) if it cannot be forked."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None, None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None, None
    if pid:
        os.close(read_fd)
        return pid, write_fd
    code = 0
    try:
        os.close(write_fd)
        os.setsid()  # a signal to the supervisor's process group does not reach the watchdog
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)  # never hold the spawner's report pipe open
        _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
        _signal.signal(_signal.SIGHUP, _signal.SIG_IGN)
        data = b""
        while chunk := os.read(read_fd, 64):
            data += chunk
        if not data:
            on_supervisor_death()
    except BaseException as exc:
        sys.stderr.write(f"watchdog[{os.getpid()}]: {type(exc).__name__}: {exc}\n")
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _after_supervisor_death(
    db_path: str, dispatch_id: str, supervisor_pid: int, pid: int, start: int | None
) -> None:
    from kernel.dispatch import supervisor

    supervisor.after_supervisor_death(db_path, dispatch_id, supervisor_pid, pid, start)


def launch(db_path: str, dispatch_id: str) -> Launched:
    from kernel.proctree import become_subreaper

    subreaper_error = become_subreaper()
    spec = read_spec()
    started = time.monotonic()
    pid, error = (None, "malformed launch spec") if spec is None else start_agent(spec)
    if pid is None:
        report({"ok": False, "error": error})
        return Launched(pid=None, start=None, started=started, error=error)
    start = start_time(pid)
    supervisor_pid = os.getpid()
    report(
        {"ok": True, "pid": pid, "pid_start": start, "supervisor_pid": supervisor_pid,
         "supervisor_start": start_time(supervisor_pid)}
    )  # fmt: skip
    if subreaper_error is not None:
        sys.stderr.write(
            f"supervisor[{supervisor_pid}]: cannot become a child subreaper: {subreaper_error}\n"
        )
    watchdog_pid, watchdog_fd = start_watchdog(
        lambda: _after_supervisor_death(db_path, dispatch_id, supervisor_pid, pid, start)
    )
    return Launched(pid=pid, start=start, started=started, watchdog_pid=watchdog_pid, watchdog_fd=watchdog_fd)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        report({"ok": False, "error": "usage: supervisor <db> <dispatch id>"})
        return 3
    db_path, dispatch_id = argv
    launched = launch(db_path, dispatch_id)
    from kernel.dispatch import supervisor

    return supervisor.main(db_path, dispatch_id, launched)
