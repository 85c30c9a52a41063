"""Starting a dispatch: validate, admit and record it, hand it to a supervisor, wait for the agent to run.

The order makes refusals leave no trace and failures leave an honest one:
1. input checks (prompt, project, output, command) raise before anything is written;
2. a missing program is recorded as a dispatch that failed with the reason (exit 2);
3. the portfolio slot (child runs only), then admission and the `spawned` row in one transaction:
   a refusal gives the slot back and writes nothing;
4. the detached supervisor starts the agent and answers with its pid once the row says `running`.
"""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kernel import clock
from kernel.db import write_tx
from kernel.dispatch import config, records, slots
from kernel.errors import KernelError, StorageError, UsageError
from kernel.model import Dispatch

DISPATCH_DIR = "dispatches"
HANDSHAKE_TIMEOUT_S = 60.0
_KERNEL_PARENT = str(Path(__file__).resolve().parent.parent.parent)
# Started with -c rather than -m so the kernel is importable whatever the cwd and PYTHONPATH, and the
# agent inherits the caller's environment untouched; -S skips site-packages start-up (the supervisor
# needs only the standard library and the kernel, whose location is passed in).
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from kernel.dispatch.supervisor import main; sys.exit(main(sys.argv[1:]))"
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


def _start_supervisor(db_path: Path, dispatch_id: str, log_file: Path) -> subprocess.Popen[bytes]:
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _BOOT, _KERNEL_PARENT, str(db_path), dispatch_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(fd)
    _supervisors.append(proc)
    return proc


def _read_report(proc: subprocess.Popen[bytes], timeout_s: float) -> dict[str, object] | None:
    """The supervisor's one-line answer, or None if it exited (or went silent) without one."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout_s
    buf = b""
    try:
        while b"\n" not in buf:
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
        report = json.loads(buf.split(b"\n", 1)[0])
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def spawn(
    conn: sqlite3.Connection,
    db_path: Path,
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
    template = config.resolve(agent_type, project, command=command, model=model, db_path=db_path)
    dispatch_id = clock.new_id()
    output = output_path(db_path, dispatch_id, output_file)

    def insert_row() -> Dispatch:
        return records.insert(
            conn, dispatch_id=dispatch_id, scope_id=scope_id, project_dir=str(project), agent_type=agent_type,
            name=name, model=model, prompt_file=str(prompt), output_file=str(output), command=template,
            timeout_s=timeout_s,
        )  # fmt: skip

    program = config.fill(template[:1], {"{model}": model or "", "{id}": dispatch_id})[0]
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
        slots.acquire(run, dispatch_id, str(project), None)
    try:
        with write_tx(conn):
            records.admit(conn, scope_id)
            insert_row()
    except BaseException:
        if run is not None:
            slots.release(run, dispatch_id)
        raise

    directory = dispatch_dir(db_path, dispatch_id)
    try:
        _make_private_dir(directory)
        proc = _start_supervisor(db_path, dispatch_id, directory / "supervisor.log")
    except (OSError, KernelError) as exc:
        reason = exc.message if isinstance(exc, KernelError) else f"cannot start the supervisor: {exc}"
        records.finish(conn, dispatch_id, "failed", error=reason)
        raise SpawnFailed(f"dispatch {dispatch_id} failed: {reason}") from None

    report = _read_report(proc, HANDSHAKE_TIMEOUT_S)
    if report is None:
        try:  # silent until now: either it is still working, or it is exiting without an answer
            code: int | None = proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            raise SpawnFailed(
                f"dispatch {dispatch_id}: its supervisor did not report within {HANDSHAKE_TIMEOUT_S:g}s; it "
                f"keeps supervising, check `ic dispatch poll {dispatch_id}` (log: {directory}/supervisor.log)"
            )
        reason = f"supervisor exited ({code}) before starting the agent; see {directory}/supervisor.log"
        records.finish(conn, dispatch_id, "failed", error=reason)
        raise SpawnFailed(f"dispatch {dispatch_id} failed: {reason}")
    if not report.get("ok"):
        reported = report.get("code")
        error = KernelError(f"dispatch {dispatch_id}: {report.get('error')}")
        error.exit_code = reported if isinstance(reported, int) and reported in (1, 2, 3) else 2
        raise error
    return records.get(conn, dispatch_id)
