"""The portfolio cases of `ic run` subcommands, called by their handlers in kernel/cli/run.py.

`run create --projects`, `run list --portfolio`, and `run status`/`run cancel` of a portfolio parent
(which `ctx.run_conn` found in the portfolio database). The options are declared in kernel/cli/run.py
with the rest of the group; the portfolio package is imported only here, once a handler knows the
run at hand is a portfolio.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kernel import clikit
from kernel.cli import output
from kernel.cli.common import Ctx

if TYPE_CHECKING:
    from kernel.model import Run


def create(args: argparse.Namespace, ctx: Ctx) -> int:
    """`ic run create --projects=A,B[,...]`: a parent and one child per project."""
    from kernel.cli.run import gates_arg, json_flag
    from kernel.errors import UsageError
    from kernel.portfolio.create import PortfolioSpec, create_portfolio, parse_projects
    from kernel.portfolio.paths import portfolio_db_path

    if args.project is not None:
        raise UsageError("give either --project (one run) or --projects=A,B[,...] (a portfolio), not both")
    spec = PortfolioSpec(
        goal=args.goal, projects=parse_projects(args.projects), complexity=args.complexity,
        phases=json_flag(args, "phases", "phases"), token_budget=args.token_budget,
        budget_warn_pct=args.budget_warn_pct, budget_enforce=args.budget_enforce, max_agents=args.max_agents,
        max_dispatches=args.max_dispatches, gate_rules=gates_arg(args),
        metadata=json_flag(args, "metadata", "metadata"), force_full=args.force_full,
        auto_advance=args.auto_advance, scope_id=args.scope_id,
    )  # fmt: skip
    created = create_portfolio(portfolio_db_path(ctx.db), spec, timeout=ctx.timeout)

    def text() -> None:
        output.emit_line(created.parent.id)
        output.emit_table((c.id, c.project_dir) for c in created.children)

    ctx.emit(created.to_json(), text)
    return 0


def list_parents(args: argparse.Namespace, ctx: Ctx) -> int:
    """`ic run list --portfolio`: the portfolio runs of the portfolio database."""
    from kernel import queries as q
    from kernel.cli.portfolio import portfolio_conn

    conn = portfolio_conn(ctx)
    parents = q.fetch_all(conn, q.RUNS_PORTFOLIO_PARENTS)
    if args.active:
        parents = [p for p in parents if p.status == "active"]
    if args.scope is not None:
        parents = [p for p in parents if p.scope_id == args.scope]
    counts = {p.id: len(q.fetch_all(conn, q.RUNS_CHILDREN, p.id)) for p in parents}
    ctx.emit(
        [p.to_json() for p in parents],
        lambda: output.emit_table(
            ((p.id, p.status, p.phase, counts[p.id], p.max_dispatches, p.goal) for p in parents),
            ("id", "status", "phase", "children", "max_dispatches", "goal"),
        ),
    )
    return 0


def status(ctx: Ctx, parent: Run) -> int:
    """`ic run status <parent>`: the parent's fields and each child as its project sees it now."""
    from kernel.portfolio.contracts import PortfolioRunStatus
    from kernel.portfolio.status import portfolio_status

    rows = portfolio_status(ctx.conn(), parent.id)
    body = PortfolioRunStatus.of(parent, rows).to_json()

    def text() -> None:
        output.emit_fields(parent.to_json())
        output.emit_line("")
        output.emit_table(
            ((r.run_id, r.project, r.phase, r.status, ",".join(r.blocked_by) or "-") for r in rows),
            ("child", "project", "phase", "status", "blocked_by"),
        )

    ctx.emit(body, text)
    return 0


def cancel(args: argparse.Namespace, ctx: Ctx) -> int:
    """`ic run cancel <parent>`: the parent, every active child and their running dispatches."""
    from kernel.portfolio.cancel import cancel_portfolio

    result = cancel_portfolio(ctx.conn(), args.run, reason=args.reason, timeout=ctx.timeout)
    cancelled = sum(1 for p in result.projects if p.cancelled)
    killed = sum(len(p.killed) for p in result.projects)
    ctx.emit(
        result.to_json(),
        f"cancelled portfolio {result.parent.id}: {cancelled} children, {killed} dispatches killed",
    )
    for failed in result.errors:
        clikit.say("ic", f"{failed.project}: {failed.error}; child {failed.run_id} may still be active")
    return 2 if result.errors else 0
