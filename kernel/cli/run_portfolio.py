"""Portfolio options of `ic run`: `create --projects`, `list --portfolio`, `set --max-dispatches`, and
status/cancel (and the other run-id commands) on portfolio parents.

`kernel.cli.run` calls `extend(subs, parsers)` on every `ic run ...`, so this module imports nothing
heavy: it adds options and wraps handlers; the portfolio package is only imported once a handler
decides the run at hand is a portfolio. A run id is a portfolio parent when the portfolio database
(`--db`, else `./.clavain/portfolio.db`) holds it with an empty project and no parent; every other
case falls through to the original handler unchanged.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from kernel import clikit
from kernel.cli.common import Ctx
from kernel.clikit import Parser, bounded_int, nullable

Handler = Callable[[argparse.Namespace, Ctx], int]

# Subcommands taking a run id whose default database, for a portfolio parent, is the portfolio one.
_ROUTED = ("events", "advance", "rollback", "skip", "tokens", "budget", "agent", "artifact")


# Accepts `none` on `run set` to clear the limit; on `run create` none is the default anyway.
_max_dispatches = nullable(bounded_int("max-dispatches", 1))


_UNSET: Any = object()


def extend(subs: argparse._SubParsersAction[Parser], parsers: dict[str, Parser]) -> None:
    create = parsers.get("create")
    if create is not None:
        create.add_argument("--projects", help="A,B[,...]: create a portfolio with one child run per project")
        create.add_argument(
            "--max-dispatches",
            type=_max_dispatches,
            help="portfolio: hard limit on running dispatches of all children",
        )
        _wrap(create, _create)
    listing = parsers.get("list")
    if listing is not None:
        listing.add_argument("--portfolio", action="store_true", help="list portfolio runs (parents)")
        _wrap(listing, _list)
    setter = parsers.get("set")
    if setter is not None:
        setter.add_argument("--max-dispatches", type=_max_dispatches, default=_UNSET,
                            help="portfolio runs only: a number, or none to clear")  # fmt: skip
        _wrap(setter, _set)
    for name, handler in (("status", _status), ("cancel", _cancel)):
        if name in parsers:
            _wrap(parsers[name], handler)
    for name in _ROUTED:
        if name in parsers:
            _wrap_leaves(parsers[name])


def _wrap_leaves(parser: Parser) -> None:
    """Route a command, or each command of a group (`run agent add|list`, ...), that takes a run id."""
    if parser.get_default("handler") is not None:
        _wrap(parser, _routed)
        return
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _wrap_leaves(child)


def _wrap(parser: Parser, handler: Callable[[argparse.Namespace, Ctx, Handler], int]) -> None:
    original: Handler = parser.get_default("handler")

    def wrapped(args: argparse.Namespace, ctx: Ctx) -> int:
        return handler(args, ctx, original)

    parser.set_defaults(handler=wrapped)


# -- routing ----------------------------------------------------------------------------------------


def _default_portfolio_db() -> str:
    return os.path.join(os.getcwd(), ".clavain", "portfolio.db")


def route_to_portfolio(ctx: Ctx, run_id: str | None) -> bool:
    """Whether `run_id` is a portfolio parent; if so, `ctx` now points at its portfolio database.

    Used by every `ic run` and `ic gate` command that takes a run id, so a parent id works from the
    workspace without `--db`.

    With `--db`, that database decides. Without it, `./.clavain/portfolio.db` is consulted when it
    exists; a problem with that file never breaks a command meant for the project database.
    """
    if not run_id:
        return False
    from kernel import queries as q
    from kernel.events import is_unicode

    if not is_unicode(run_id):
        return False  # never a portfolio id; the command's own handler reports it

    if ctx.db:
        run = q.fetch_one(ctx.conn(), q.RUN_BY_ID, run_id)
        return run is not None and run.is_portfolio_parent
    path = _default_portfolio_db()
    if not os.path.isfile(path):
        return False
    from pathlib import Path

    from kernel import db as kdb
    from kernel.errors import KernelError

    try:
        conn = kdb.open_db(Path(path), timeout=ctx.timeout)
    except KernelError as exc:
        _unreadable[:] = [exc.message]
        return False
    try:
        run = q.fetch_one(conn, q.RUN_BY_ID, run_id)
    finally:
        conn.close()
    if run is None or not run.is_portfolio_parent:
        return False
    ctx.close()
    ctx.db = path
    return True


# Why ./.clavain/portfolio.db could not be consulted, if it exists but could not be opened.
_unreadable: list[str] = []


def _as_project_run(args: argparse.Namespace, ctx: Ctx, original: Handler) -> int:
    """The original handler; if it fails while an unreadable portfolio database was skipped, say so
    (a parent id would otherwise get a baffling 'no run' or 'no intercore.db' answer)."""
    from kernel.errors import KernelError

    try:
        return original(args, ctx)
    except KernelError as exc:
        if not _unreadable:
            raise
        raise type(exc)(f"{exc.message} (./.clavain/portfolio.db was skipped: {_unreadable[0]})") from exc


def _routed(args: argparse.Namespace, ctx: Ctx, original: Handler) -> int:
    if route_to_portfolio(ctx, getattr(args, "run", None)):
        return original(args, ctx)
    return _as_project_run(args, ctx, original)


# -- handlers ---------------------------------------------------------------------------------------


def _create(args: argparse.Namespace, ctx: Ctx, original: Handler) -> int:
    if args.projects is None:
        if args.max_dispatches is not None:
            from kernel.errors import UsageError

            raise UsageError("--max-dispatches applies to portfolio runs; give --projects=A,B[,...]")
        return original(args, ctx)
    from kernel.cli import output
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


def _list(args: argparse.Namespace, ctx: Ctx, original: Handler) -> int:
    if not args.portfolio:
        return original(args, ctx)
    from kernel import queries as q
    from kernel.cli import output
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


def _status(args: argparse.Namespace, ctx: Ctx, original: Handler) -> int:
    if not route_to_portfolio(ctx, args.run):
        return _as_project_run(args, ctx, original)
    from kernel.cli import output
    from kernel.portfolio.contracts import PortfolioRunStatus
    from kernel.portfolio.lookup import get_portfolio
    from kernel.portfolio.status import portfolio_status

    conn = ctx.conn()
    parent = get_portfolio(conn, args.run)
    rows = portfolio_status(conn, args.run)
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


def _cancel(args: argparse.Namespace, ctx: Ctx, original: Handler) -> int:
    if not route_to_portfolio(ctx, args.run):
        return _as_project_run(args, ctx, original)

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


def _set(args: argparse.Namespace, ctx: Ctx, original: Handler) -> int:
    is_parent = route_to_portfolio(ctx, args.run)
    if args.max_dispatches is _UNSET:
        return original(args, ctx) if is_parent else _as_project_run(args, ctx, original)
    from kernel.errors import UsageError

    if not is_parent:
        raise UsageError(
            f"--max-dispatches applies to portfolio runs only; {args.run} is not a portfolio "
            "(in --db, or ./.clavain/portfolio.db)"
        )
    from kernel import runs
    from kernel.cli import run as run_cli

    changes: dict[str, Any] = {
        key: getattr(args, key) for key in run_cli._SET_FLAGS if getattr(args, key) is not run_cli.UNSET
    }
    metadata = run_cli.json_flag(args, "metadata", "metadata")
    if metadata is not run_cli.UNSET:
        changes["metadata"] = metadata
    if args.gates_file or args.gates is not run_cli.UNSET:
        changes["gate_rules"] = run_cli.gates_arg(args)
    changes["max_dispatches"] = args.max_dispatches
    run = runs.set_run(ctx.conn(), args.run, **changes)
    run_cli._emit_run(ctx, run)
    return 0
