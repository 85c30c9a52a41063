"""Shared helpers for the portfolio tests: a workspace of real project directories and databases.

(No tests here; the file is named for the portfolio tests' area so it is found with them.)
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel import db as kdb
from kernel import queries as q
from kernel.model import Event, Run
from kernel.portfolio.create import PortfolioSpec, create_portfolio
from tests.conftest import IcResult, hold_lock, ic_executable

SHORT_CHAIN = ["plan", "build", "ship"]


@dataclass
class Workspace:
    """A workspace directory holding `.clavain/portfolio.db` and sibling project directories."""

    root: Path
    projects: list[Path] = field(default_factory=list)

    @property
    def portfolio_db(self) -> Path:
        return self.root / ".clavain" / "portfolio.db"

    def project(self, name: str) -> Path:
        return next(p for p in self.projects if p.name == name)

    def ic(
        self, *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
    ) -> IcResult:
        proc = subprocess.run(
            [*ic_executable(), *args],
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        )
        return IcResult(proc.returncode, proc.stdout, proc.stderr)

    def portfolio_conn(self) -> Any:
        return kdb.open_db(self.portfolio_db)

    def create(self, *, phases: list[str] | None = None, **options: Any) -> tuple[Run, dict[str, Run]]:
        """A portfolio over all projects through the library; returns the parent and {name: child}."""
        spec = PortfolioSpec(
            goal="portfolio goal", projects=[str(p) for p in self.projects], phases=phases, **options
        )
        created = create_portfolio(self.portfolio_db, spec)
        by_name = {Path(c.project_dir).name: c for c in created.children}
        return created.parent, by_name


def make_workspace(tmp_path: Path, names: tuple[str, ...] = ("a", "b", "c")) -> Workspace:
    root = tmp_path / "ws"
    root.mkdir()
    ws = Workspace(root)
    for name in names:
        project = tmp_path / name
        project.mkdir()
        ws.projects.append(project)
    return ws


def project_conn(project: Path | str) -> Any:
    return kdb.open_db(Path(project) / ".clavain" / "intercore.db")


def advance_child(project: Path, run_id: str) -> None:
    """Advance a child in its project database, closing the connection at once (no lingering reader)."""
    from kernel import runs

    conn = project_conn(project)
    try:
        runs.advance(conn, run_id)
    finally:
        conn.close()


def relayed(conn: Any, portfolio_id: str) -> list[Event]:
    return q.fetch_all(conn, q.RELAY_EVENTS_OF_PORTFOLIO, 0, portfolio_id, 10**9)


def one_line_error(result: IcResult, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.startswith("ic: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in result.err, result.err


def hold_write_lock(db: Path) -> subprocess.Popen[str]:
    """A process holding the write lock of a database until its stdin is closed."""
    return hold_lock(db, exclusive=False)
