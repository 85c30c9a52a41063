"""Shared fixtures: real kernel databases in temp dirs and a runner for the real `ic` executable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernel import db as kdb

REPO_ROOT = Path(__file__).resolve().parent.parent


def ic_executable() -> list[str]:
    """The installed `ic` console script, or the module as a fallback (same code path).

    The script beside this interpreter comes first: a `PATH` lookup may find a version manager's
    shim (a shell script that re-resolves the interpreter), which slows every call and every timing.
    """
    beside = Path(sys.executable).parent / "ic"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("ic")
    return [found] if found else [sys.executable, "-m", "kernel.cli.main"]


def default_sigint() -> None:
    """`preexec_fn` for a child meant to get Ctrl-C as in a terminal.

    A shell starts background jobs with SIGINT ignored and children inherit that, so a test suite run
    from a background job (as CI may be) would otherwise test an `ic` that cannot be interrupted;
    Python only installs its KeyboardInterrupt handler when SIGINT is not ignored at start-up.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class IcResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@dataclass
class Project:
    """A real project directory with an initialised `.clavain/intercore.db`."""

    dir: Path

    @property
    def db(self) -> Path:
        return self.dir / kdb.DB_DIR / kdb.DB_NAME

    def ic(
        self, *args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 60
    ) -> IcResult:
        proc = subprocess.run(
            [*ic_executable(), *args],
            cwd=cwd or self.dir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        return IcResult(proc.returncode, proc.stdout, proc.stderr)

    def connect(self) -> Any:
        return kdb.open_db(self.db)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = Project(tmp_path / "proj")
    proj.dir.mkdir()
    kdb.init_db(proj.db)
    yield proj


def hold_lock(db: Path, *, exclusive: bool) -> subprocess.Popen[str]:
    """Another process holding the write lock (BEGIN IMMEDIATE), or with `exclusive` a lock that also
    keeps readers out, until its stdin closes."""
    begin = (
        "c.execute('PRAGMA locking_mode=EXCLUSIVE'); c.execute('BEGIN EXCLUSIVE')"
        if exclusive
        else ("c.execute('BEGIN IMMEDIATE')")
    )
    code = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        f"{begin}\n"
        "c.execute('SELECT count(*) FROM runs').fetchone()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
