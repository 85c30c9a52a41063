"""Starting a dispatch: validate, admit and record it, hand it to a supervisor, wait for the agent to run.

The order makes refusals leave no trace and failures leave an honest one:
1. input checks (prompt, project, output, command) raise before anything is written; the argv is
   filled in here, so an unreadable prompt is caught before anything is written too. A built-in
   agent command (codex, claude) reads the prompt file on its stdin instead (no argument-size limit);
   an operator's command gets it through its placeholders and reads /dev/null;
2. a missing program is recorded as a dispatch that failed with the reason (exit 2);
3. the portfolio slot (child runs only), then admission and the `spawned` row in one transaction:
   a refusal gives the slot back and writes nothing;
4. the detached supervisor (kernel.dispatch.launch) reads the launch spec from its stdin, execs the
   agent first thing and reports the pid (or why the exec failed) on its stdout;
5. this process, whose database connection is already open, records `running` and then closes the
   supervisor's stdin: that EOF tells the supervisor the spawner is done. A spawner that dies
   before recording closes it too, and the supervisor then records `running` itself.
"""

from __future__ import annotations

import marshal
import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kernel import clock
from kernel.db import write_tx
from kernel.dispatch import config, records
from kernel.dispatch.agents import command as command_kind
from kernel.errors import KernelError, Refused, StorageError, UsageError
from kernel.model import Dispatch

DISPATCH_DIR = "dispatches"
HANDSHAKE_TIMEOUT_S = 60.0
_KERNEL_PARENT = str(Path(__file__).resolve().parent.parent.parent)
# Started with -c rather than -m so the kernel is importable whatever the cwd and PYTHONPATH, and the
# agent inherits the caller's environment untouched; -S skips site-packages start-up (the supervisor
# needs only the standard library and the kernel, whose location is passed in).
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from kernel.dispatch.launch import main; sys.exit(main(sys.argv[1:]))"
)

# Supervisors started by this process; reaped as they exit so a long-lived caller (the orchestrator,
# a test) keeps no zombies. The `ic` process itself exits right away and leaves them to init.
_supervisors: list[subprocess.Popen[bytes]] = []


class SpawnFailed(KernelError):
    """The dispatch could not start (missing program, exec failure): recorded as failed, exit 2."""

    exit_code = 2


def _reap_supervisors() -> None:
    _supervisors[:] = [p for p in _supervisors if p.poll() is None]


def check_prompt(prompt_file: str | os.PathLike[str]) -> Path:
    path = Path(os.path.abspath(prompt_file))
    if not path.exists():
        raise UsageError(f"--prompt-file {path} does not exist; write the prompt there first")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise StorageError(f"--prompt-file {path} cannot be read: {exc.strerror}") from None
    return path


def check_project(project_dir: str | os.PathLike[str]) -> Path:
    path = Path(os.path.abspath(project_dir))
    if not path.is_dir():
        raise UsageError(f"--project {path} is not a directory")
    return path


def output_path(db_path: Path, dispatch_id: str, output_file: str | os.PathLike[str] | None) -> Path:
    if output_file is None:
        return dispatch_dir(db_path, dispatch_id) / "output.log"
    path = Path(os.path.abspath(output_file))
    if path.is_dir():
        raise UsageError(f"--output {path} is a directory; name a file")
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: directory {path.parent} does not exist")
    return path


def dispatch_dir(db_path: Path, dispatch_id: str) -> Path:
    return db_path.parent / DISPATCH_DIR / dispatch_id


def _make_private_dir(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror}") from None


def _start_supervisor(
    db_path: Path, dispatch_id: str, log_file: Path, spec: dict[str, object]
) -> subprocess.Popen[bytes]:
    """Start the supervisor and hand it the spec; its stdin stays open until `running` is recorded."""
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _BOOT, _KERNEL_PARENT, str(db_path), dispatch_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(fd)
    _supervisors.append(proc)
    assert proc.stdin is not None
    data = marshal.dumps(spec)
    try:  # a spec larger than the pipe buffer blocks until the supervisor reads it: it does at once
        proc.stdin.write(len(data).to_bytes(4, "big") + data)
        proc.stdin.flush()
    except BrokenPipeError:
        pass  # it died at birth; the missing report says so
    return proc


def fill_argv(
    template: list[str], *, dispatch_id: str, prompt: Path, output: Path, model: str | None
) -> list[str]:
    """The argv the agent runs: placeholders filled in (the prompt's text only when asked for)."""
    text = ""
    if any("{prompt}" in arg for arg in template):
        try:
            text = os.fsdecode(prompt.read_bytes())
        except OSError as exc:
            raise StorageError(f"--prompt-file {prompt} cannot be read: {exc.strerror}") from None
    values = {
        "{prompt}": text, "{prompt_file}": str(prompt), "{output}": str(output), "{model}": model or "",
        "{id}": dispatch_id,
    }  # fmt: skip
    return command_kind.fill(template, values)


def agent_env(dispatch_id: str, prompt: Path, output: Path, scope_id: str | None) -> dict[str, str]:
    """What the agent finds in its environment besides the caller's own."""
    env = {
        "CLAVAIN_DISPATCH_ID": dispatch_id,
        "CLAVAIN_PROMPT_FILE": str(prompt),
        "CLAVAIN_OUTPUT_FILE": str(output),
    }
    if scope_id:
        env["CLAVAIN_SCOPE_ID"] = scope_id
    return env


def _read_report(proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, object] | None:
    """The supervisor's report (marshal, then EOF), or None if it exited or went silent without one."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    buf = b""
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        proc.stdout.close()
    try:
        report = marshal.loads(buf)
    except (EOFError, ValueError, TypeError):
        return None
    return report if isinstance(report, dict) else None


def _release_supervisor(proc: subprocess.Popen[bytes]) -> None:
    """EOF on the supervisor's stdin: the spawner has recorded what it could."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass


def _record_running(conn: sqlite3.Connection, dispatch_id: str, report: dict[str, object]) -> Dispatch:
    """`running` with the reported pid, written from here: this connection is warm, the supervisor's not."""
    pid = report.get("pid")
    if not isinstance(pid, int):
        raise SpawnFailed(f"dispatch {dispatch_id}: its supervisor reported no pid")
    payload = records.running_payload(
        pid, _int_or_none(report.get("pid_start")), _int_or_none(report.get("supervisor_pid")),
        _int_or_none(report.get("supervisor_start")),
    )  # fmt: skip
    try:
        if records.mark_running(conn, dispatch_id, pid, payload):
            return records.get(conn, dispatch_id)
    except sqlite3.OperationalError as exc:  # busy beyond the timeout: the agent runs all the same
        raise StorageError(
            f"dispatch {dispatch_id}: its agent runs (pid {pid}) but the database stayed busy ({exc}); its "
            f"supervisor records it: see `ic dispatch status {dispatch_id}` rather than spawning again"
        ) from None
    row = records.get(conn, dispatch_id)
    if row.status == "running" and row.pid == pid:  # the supervisor was first: same facts
        return row
    raise Refused(f"dispatch {dispatch_id} ended ({row.status}) before its agent started")


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def spawn(
    conn: sqlite3.Connection,
    db_path: str | os.PathLike[str],
    *,
    prompt_file: str | os.PathLike[str],
    project_dir: str | os.PathLike[str],
    agent_type: str = "codex",
    name: str | None = None,
    model: str | None = None,
    output_file: str | os.PathLike[str] | None = None,
    timeout_s: float | None = None,
    scope_id: str | None = None,
    command: list[str] | None = None,
) -> Dispatch:
    """Start a dispatch and return its row once the agent runs (status `running`, pid set).

    Raises UsageError/StorageError on bad input (nothing written), Refused when the run or portfolio
    does not allow another dispatch (nothing written), SpawnFailed when the agent could not be started
    (the dispatch is recorded as failed with the reason).
    """
    _reap_supervisors()
    db_path = Path(os.path.abspath(db_path))
    if not agent_type or not agent_type.strip():
        raise UsageError("--type must be a non-empty agent type (codex, claude, ...)")
    if timeout_s is not None and not timeout_s > 0:
        raise UsageError("--timeout must be a positive duration, e.g. 30m")
    prompt = check_prompt(prompt_file)
    project = check_project(project_dir)
    resolved = config.resolve(agent_type, project, command=command, model=model, db_path=db_path)
    template = resolved.argv
    dispatch_id = clock.new_id()
    output = output_path(db_path, dispatch_id, output_file)

    def insert_row() -> Dispatch:
        return records.insert(
            conn, dispatch_id=dispatch_id, scope_id=scope_id, project_dir=str(project), agent_type=agent_type,
            name=name, model=model, prompt_file=str(prompt), output_file=str(output), command=template,
            timeout_s=timeout_s,
        )  # fmt: skip

    if resolved.prompt_on_stdin:
        argv = list(template)
    else:
        argv = fill_argv(template, dispatch_id=dispatch_id, prompt=prompt, output=output, model=model)
    program = argv[0]
    if config.find_program(program, project) is None:
        reason = (
            f"program {program!r} not found (PATH or relative to {project}); install it, pass --command, "
            f"or set [{agent_type}] command in .clavain/{config.CONFIG_NAME}"
        )
        with write_tx(conn):
            insert_row()
        records.finish(conn, dispatch_id, "failed", error=reason)
        raise SpawnFailed(f"dispatch {dispatch_id} failed: {reason}")

    run = records.run_of(conn, scope_id)
    if run is not None and run.parent_run_id is not None:
        from kernel.portfolio.slots import acquire_slot  # plain projects never load the portfolio code

        acquire_slot(run, dispatch_id, str(project), None)
    try:
        with write_tx(conn):
            records.admit(conn, scope_id)
            insert_row()
    except BaseException:
        if run is not None and run.parent_run_id is not None:
            from kernel.portfolio.slots import release_slot

            release_slot(run, dispatch_id)
        raise

    spec: dict[str, object] = {
        "argv": argv, "cwd": str(project), "output": str(output),
        "stdin": str(prompt) if resolved.prompt_on_stdin else None,
        "env": agent_env(dispatch_id, prompt, output, scope_id),
    }  # fmt: skip
    try:
        return _launch(conn, db_path, dispatch_id, spec)
    except KeyboardInterrupt:
        # The caller gets no id, so nobody would follow this dispatch: cancel it, and its supervisor
        # (which follows the record) ends the agent if it already runs.
        records.finish(conn, dispatch_id, "cancelled", error="spawn interrupted before it returned")
        raise


def _launch(conn: sqlite3.Connection, db_path: Path, dispatch_id: str, spec: dict[str, object]) -> Dispatch:
    """Start the supervisor of a recorded `spawned` dispatch and record `running` once it reports."""
    directory = dispatch_dir(db_path, dispatch_id)
    try:
        _make_private_dir(directory)
        proc = _start_supervisor(db_path, dispatch_id, directory / "supervisor.log", spec)
    except (OSError, KernelError) as exc:
        reason = exc.message if isinstance(exc, KernelError) else f"cannot start the supervisor: {exc}"
        records.finish(conn, dispatch_id, "failed", error=reason)
        raise SpawnFailed(f"dispatch {dispatch_id} failed: {reason}") from None
    try:
        report = _read_report(proc, HANDSHAKE_TIMEOUT_S)
        if report is None:
            try:  # silent until now: either it is still working, or it is exiting without an answer
                code: int | None = proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                code = None
            if code is None:
                raise SpawnFailed(
                    f"dispatch {dispatch_id}: its supervisor did not report within {HANDSHAKE_TIMEOUT_S:g}s; "
                    f"it keeps supervising, check `ic dispatch poll {dispatch_id}` "
                    f"(log: {directory}/supervisor.log)"
                )
            reason = f"supervisor exited ({code}) before starting the agent; see {directory}/supervisor.log"
            records.finish(conn, dispatch_id, "failed", error=reason)
            raise SpawnFailed(f"dispatch {dispatch_id} failed: {reason}")
        if not report.get("ok"):
            reason = str(report.get("error") or "the agent did not start")
            records.finish(conn, dispatch_id, "failed", error=reason)
            raise SpawnFailed(f"dispatch {dispatch_id} failed: {reason}")
        return _record_running(conn, dispatch_id, report)
    finally:
        _release_supervisor(proc)
