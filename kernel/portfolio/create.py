"""Creating a portfolio: a parent in the portfolio database and one child per project.

The parent and all its children are written in ONE portfolio transaction; then each child is
mirrored, under the same id, into its project's database (one transaction per project) so that
`ic run current` inside the project finds it. Every database is opened (and initialised if new)
before anything is written, so bad input fails with nothing written; should a project write still
fail afterwards, everything already created is cancelled with the reason, never left half-made, and
an interrupt (Ctrl-C, SIGTERM) waits until the mirroring is done either way.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kernel import clock, runs
from kernel import db as kdb
from kernel.errors import KernelError, UsageError
from kernel.model import JsonObject, Run
from kernel.phase import DEFAULT_CHAIN, validate_chain, validate_complexity
from kernel.portfolio.contracts import CreatedChild, PortfolioCreated
from kernel.portfolio.lookup import children, get_portfolio
from kernel.portfolio.paths import existing_project, open_portfolio, project_db_path


@dataclass(frozen=True, slots=True)
class PortfolioSpec:
    """What `ic run create --projects=...` asked for, validated."""

    goal: str
    projects: list[str]
    complexity: int = 3
    phases: list[str] | None = None
    token_budget: int | None = None
    budget_warn_pct: int = 80
    budget_enforce: bool = False
    max_agents: int | None = None
    max_dispatches: int | None = None
    gate_rules: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    force_full: bool = False
    auto_advance: bool = True
    scope_id: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedPortfolio:
    parent: Run
    children: list[Run]
    portfolio_db: Path

    def to_json(self) -> JsonObject:
        created = PortfolioCreated(
            id=self.parent.id,
            phase=self.parent.phase,
            portfolio_db=str(self.portfolio_db),
            children=[CreatedChild(id=c.id, project=c.project_dir, phase=c.phase) for c in self.children],
        )
        return asdict(created)


def parse_projects(text: str) -> list[str]:
    """`--projects=A,B[,...]`: canonical absolute paths of existing directories, at least two, no repeats."""
    raw = [part for part in text.split(",") if part.strip()]
    projects = [existing_project(part) for part in raw]
    if len(projects) < 2:
        raise UsageError(
            "--projects needs at least two project directories (A,B[,...]); for one project use --project"
        )
    repeated = sorted({p for p in projects if projects.count(p) > 1})
    if repeated:
        raise UsageError(f"--projects names the same project twice: {', '.join(repeated)}")
    return projects


def _whole(name: str, value: int | None, minimum: int, maximum: int | None = None) -> None:
    if value is None:
        return
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise UsageError(f"{name} must be {bound}, got {value}")


def _validate(spec: PortfolioSpec) -> list[str]:
    if not spec.goal.strip():
        raise UsageError("--goal must be a non-empty text")
    chain = list(DEFAULT_CHAIN) if spec.phases is None else validate_chain(spec.phases)
    validate_complexity(spec.complexity)
    _whole("--token-budget", spec.token_budget, 0)
    _whole("--budget-warn-pct", spec.budget_warn_pct, 0, 100)
    _whole("--max-agents", spec.max_agents, 1)
    _whole("--max-dispatches", spec.max_dispatches, 1)
    if spec.metadata is not None and not isinstance(spec.metadata, dict):
        raise UsageError("--metadata must be a JSON object")
    return chain


def _insert(
    conn: sqlite3.Connection, spec: PortfolioSpec, chain: list[str], rules: dict[str, Any] | None, *,
    run_id: str, project: str, parent_id: str | None, metadata: dict[str, Any] | None,
    token_budget: int | None, budget_enforce: bool, max_dispatches: int | None, now: int,
) -> None:  # fmt: skip
    """One runs row plus its `phase`/`created` event, inside the caller's transaction.

    Children carry no budget of their own: the parent's `token_budget` (and its enforcement, applied
    when a child takes a dispatch slot) covers them all.
    """
    runs.insert_run(
        conn, run_id=run_id, project_dir=project, goal=spec.goal, chain=chain, complexity=spec.complexity,
        force_full=spec.force_full, auto_advance=spec.auto_advance, scope_id=spec.scope_id,
        metadata=metadata, token_budget=token_budget, budget_warn_pct=spec.budget_warn_pct,
        budget_enforce=budget_enforce, max_agents=spec.max_agents, parent_run_id=parent_id,
        max_dispatches=max_dispatches, gate_rules=rules, now=now,
    )  # fmt: skip


def _open_project(project: str, timeout: float) -> sqlite3.Connection:
    path = project_db_path(project)
    if not path.exists():
        kdb.init_db(path, timeout=timeout)
    return kdb.open_db(path, timeout=timeout)


def _child_metadata(spec: PortfolioSpec, portfolio_db: Path, portfolio_id: str) -> dict[str, Any]:
    return {**(spec.metadata or {}), "portfolio_db": str(portfolio_db), "portfolio_id": portfolio_id}


def create_portfolio(
    portfolio_db: Path, spec: PortfolioSpec, *, timeout: float = kdb.DEFAULT_TIMEOUT
) -> CreatedPortfolio:
    """Create the parent and its children everywhere, or nothing that is left active."""
    chain = _validate(spec)
    rules = None
    if spec.gate_rules is not None:
        from kernel.gates import validate_rules

        rules = validate_rules(spec.gate_rules, chain)
    portfolio_db = portfolio_db.absolute()
    conn = open_portfolio(portfolio_db, timeout=timeout, create=True)
    project_conns: dict[str, sqlite3.Connection] = {}
    try:
        for project in spec.projects:
            project_conns[project] = _open_project(project, timeout)
        parent_id = clock.new_id()
        child_ids = {project: clock.new_id() for project in spec.projects}
        child_meta = _child_metadata(spec, portfolio_db, parent_id)
        now = clock.now()
        with kdb.write_tx(conn):
            _insert(
                conn, spec, chain, rules, run_id=parent_id, project="", parent_id=None,
                metadata=spec.metadata, token_budget=spec.token_budget, budget_enforce=spec.budget_enforce,
                max_dispatches=spec.max_dispatches, now=now,
            )  # fmt: skip
            for project, child_id in child_ids.items():
                _insert(
                    conn, spec, chain, rules, run_id=child_id, project=project, parent_id=parent_id,
                    metadata=child_meta, token_budget=None, budget_enforce=False, max_dispatches=None,
                    now=now,
                )  # fmt: skip
        with _signals_deferred():
            _mirror_children(conn, project_conns, spec, rules, parent_id, child_ids, child_meta)
        parent = get_portfolio(conn, parent_id)
        return CreatedPortfolio(parent=parent, children=children(conn, parent_id), portfolio_db=portfolio_db)
    finally:
        for pconn in project_conns.values():
            pconn.close()
        conn.close()


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back while children are mirrored (or cancelled again after a failure).

    Between the portfolio's commit and the last project's, an interrupt would leave a portfolio whose
    children exist in some projects only; a held signal is delivered as soon as every database is
    consistent again (complete, or cancelled), so Ctrl-C still ends the command right after.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _mirror_children(
    conn: sqlite3.Connection,
    project_conns: dict[str, sqlite3.Connection],
    spec: PortfolioSpec,
    rules: dict[str, Any] | None,
    parent_id: str,
    child_ids: dict[str, str],
    child_meta: dict[str, Any],
) -> None:
    from kernel.runs import cancel_run, create_run

    done: list[str] = []
    try:
        for project, child_id in child_ids.items():
            create_run(
                project_conns[project], goal=spec.goal, project_dir=project, complexity=spec.complexity,
                phases=spec.phases, scope_id=spec.scope_id, budget_warn_pct=spec.budget_warn_pct,
                max_agents=spec.max_agents, gate_rules=rules,
                metadata=child_meta, force_full=spec.force_full, auto_advance=spec.auto_advance,
                parent_run_id=parent_id, run_id=child_id,
            )  # fmt: skip
            done.append(project)
    except (KernelError, sqlite3.Error) as exc:
        reason = f"portfolio creation failed: {getattr(exc, 'message', exc)}"
        for project in done:
            try:
                cancel_run(project_conns[project], child_ids[project], reason=reason)
            except (KernelError, sqlite3.Error):
                pass
        from kernel.portfolio.cancel import cancel_in_portfolio_db

        cancel_in_portfolio_db(conn, parent_id, reason=reason)
        raise
