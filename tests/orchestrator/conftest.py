"""Fixtures: a real git repository with issue files, and the real `orchestrator` driving a fake agent."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernel import db as kdb
from kernel import queries as q
from kernel.model import Dispatch, Run

FAKE_AGENT = Path(__file__).with_name("fake_agent.py")


def orchestrator_executable() -> list[str]:
    found = shutil.which("orchestrator")
    return [found] if found else [sys.executable, "-m", "orchestrator"]


def runner_config(
    shape: str = "command", *, timeout: str = "20s", stall: str = "20s", retries: int = 0, extra: str = ""
) -> str:
    """The [runner] table pointing at the fake agent in the given shape."""
    argv = json.dumps([sys.executable, str(FAKE_AGENT), "--shape", shape])
    if shape == "command":
        head = f'kind = "command"\ncommand = {argv}\n'
    else:
        head = f'kind = "{shape}"\nexecutable = {argv}\n'
    timing = (
        f'timeout = "{timeout}"\nstall = "{stall}"\nkill_grace = "0.5s"\nretries = {retries}\n'
        'retry_backoff = "0.1s"\n'
    )
    return f"[runner]\n{head}{timing}{extra}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Repo:
    dir: Path
    state: Path

    @property
    def scenario_file(self) -> Path:
        return self.state.parent / "scenario.json"

    def git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.dir, capture_output=True, text=True, check=True, timeout=30
        )
        return proc.stdout.strip()

    def write(self, rel: str, text: str) -> Path:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def issue(
        self, issue_id: str, *, milestone: str = "M1", depends: str | None = None, title: str = ""
    ) -> Path:
        lines = ["---", f"id: {issue_id}", f"milestone: {milestone}"]
        if depends is not None:
            lines.append(f"depends_on: {depends}")
        if title:
            lines.append(f"title: {title}")
        lines += ["---", f"# Issue {issue_id}", "", f"Make thing {issue_id} happen."]
        return self.write(f"issues/{issue_id}.md", "\n".join(lines) + "\n")

    def config(self, text: str) -> None:
        self.write("orchestrator.toml", text)

    def commit(self, message: str = "setup") -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def scenario(self, issues: dict[str, Any]) -> None:
        self.scenario_file.write_text(json.dumps({"issues": issues}))

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FAKE_STATE": str(self.state),
            "FAKE_SCENARIO": str(self.scenario_file),
            "PYTHONDONTWRITEBYTECODE": "1",
            "COLUMNS": "200",
        }

    def orch(self, *args: str, timeout: float = 90, cwd: Path | None = None) -> Result:
        proc = subprocess.run(
            [*orchestrator_executable(), *args],
            cwd=cwd or self.dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def cli(self, *args: str) -> Result:
        """The same CLI in this process (no interpreter start-up): for plans and error paths."""
        from orchestrator import cli

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.run(list(args))
        return Result(code, out.getvalue(), err.getvalue())

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*orchestrator_executable(), *args],
            cwd=self.dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            stdin=subprocess.DEVNULL,
        )

    def calls(self) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def db(self) -> sqlite3.Connection:
        return kdb.open_db(self.dir / kdb.DB_DIR / kdb.DB_NAME, readonly=True)

    def runs(self) -> list[Run]:
        conn = self.db()
        try:
            return q.fetch_all(conn, q.RUNS_ALL)
        finally:
            conn.close()

    def runs_of(self, issue_id: str) -> list[Run]:
        return [r for r in self.runs() if (r.metadata or {}).get("orchestrator", {}).get("issue") == issue_id]

    def dispatches(self, run_id: str) -> list[Dispatch]:
        conn = self.db()
        try:
            return q.fetch_all(conn, q.DISPATCHES_OF_SCOPE, run_id)
        finally:
            conn.close()

    def phase_events(self, run_id: str) -> list[tuple[str, str | None, str | None]]:
        conn = self.db()
        try:
            rows = conn.execute(
                "SELECT type, from_state, to_state FROM events "
                "WHERE run_id = ? AND source = 'phase' ORDER BY id",
                (run_id,),
            ).fetchall()
        finally:
            conn.close()
        return [(r[0], r[1], r[2]) for r in rows]

    def worktrees(self) -> list[str]:
        text = self.git("worktree", "list", "--porcelain")
        return [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("worktree ")]

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / ".orchestrator/logs/summary.json").read_text())
        return data

    def outcomes(self) -> dict[str, str]:
        return {i["issue"]: i["outcome"] for i in self.summary()["issues"]}


def make_repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path / "repo", tmp_path / "fake-state")
    repo.dir.mkdir()
    repo.state.mkdir()
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "dev@example.com")
    repo.git("config", "user.name", "Dev")
    repo.write("README.md", "# demo\n")
    repo.scenario({})
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    """A git repo with one commit, a fake-agent config (command shape) and no issues yet."""
    made = make_repo(tmp_path)
    made.config(runner_config())
    made.commit("init")
    yield made
