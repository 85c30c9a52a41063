"""`ic portfolio ...`: dependencies, order, status and the relay of cross-project portfolio runs.

The database is the portfolio database: `--db=PATH`, else `.clavain/portfolio.db` in the current
directory (the workspace). Kernel modules are imported inside handlers so `ic --help` stays cheap.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import TYPE_CHECKING

from kernel.cli.common import Ctx, Parser, add_subcommands

if TYPE_CHECKING:
    from kernel.portfolio.relay import TickReport

OWN_FLAGS: dict[str, set[str]] = {}


def portfolio_conn(ctx: Ctx) -> sqlite3.Connection:
    """The portfolio database of this command (the context's connection, closed at exit)."""
    from kernel.errors import StorageError
    from kernel.portfolio.paths import portfolio_db_path

    path = portfolio_db_path(ctx.db)
    if not path.exists():
        raise StorageError(
            f"no portfolio database at {path}; create a portfolio with `ic run create --projects=...` "
            "in this workspace or pass --db=PATH"
        )
    ctx.db = str(path)
    return ctx.conn()


def build(parser: Parser, name: str) -> None:
    parser.description = (
        "Cross-project portfolio runs: dependencies between projects, their order, status, and the relay "
        "that keeps the portfolio in step with its children. Database: --db, else "
        "./.clavain/portfolio.db (the current directory is the workspace)."
    )
    subs = add_subcommands(parser)

    p = subs.add_parser(
        "status",
        help="each child: project, phase, status, ready, blocked_by",
        description="Each child as its own project database has it now: phase, status, the phase it would "
        "enter next, whether its upstream projects let it (ready) and which ones hold it back (blocked_by).",
    )
    p.add_argument("portfolio", help="portfolio (parent) run id")
    p.set_defaults(handler=_status)

    p = subs.add_parser(
        "order",
        help="projects in dependency order (smallest ready project first)",
        description="A stable topological order of the portfolio's projects: among the projects whose "
        "upstreams are all placed, the lexicographically smallest comes first.",
    )
    p.add_argument("portfolio")
    p.set_defaults(handler=_order)

    p = subs.add_parser(
        "relay",
        help="copy children's phase changes into the portfolio database",
        description="Read each child project's new phase events (read-only) and write child_* and "
        "upstream_changed events, the child's phase/status and the cursor in one transaction per child. "
        "Unreadable projects are reported on stderr and skipped. SIGINT/SIGTERM stop it (exit 0).",
    )
    p.add_argument("portfolio")
    p.add_argument("--interval", default="2s", help="pause between ticks (default 2s)")
    p.add_argument("--once", action="store_true", help="one tick, then exit")
    p.set_defaults(handler=_relay)

    dep = subs.add_parser(
        "dep",
        help="dependencies between the portfolio's projects",
        description="upstream -> downstream: the downstream child may enter a phase only once the upstream "
        "child is at or past it. Paths are made absolute and canonical; self-edges, duplicates and cycles "
        "are refused.",
    )
    dep_subs = add_subcommands(dep)
    for verb, handler, text in (
        ("add", _dep_add, "upstream must reach a phase before downstream may enter it"),
        ("remove", _dep_remove, "remove a dependency"),
    ):
        d = dep_subs.add_parser(verb, help=text, description=text)
        d.add_argument("portfolio")
        d.add_argument("--upstream", required=True, help="project path (made absolute)")
        d.add_argument("--downstream", required=True, help="project path (made absolute)")
        d.set_defaults(handler=handler)
    d = dep_subs.add_parser(
        "list", help="list the portfolio's dependencies", description="List the dependencies."
    )
    d.add_argument("portfolio")
    d.set_defaults(handler=_dep_list)


def _status(args: argparse.Namespace, ctx: Ctx) -> int:
    from dataclasses import asdict

    from kernel.cli import output
    from kernel.portfolio.contracts import PortfolioStatus
    from kernel.portfolio.lookup import get_portfolio
    from kernel.portfolio.status import portfolio_status

    conn = portfolio_conn(ctx)
    parent = get_portfolio(conn, args.portfolio)
    rows = portfolio_status(conn, args.portfolio)
    body = asdict(PortfolioStatus(parent.id, parent.phase, parent.status, rows))

    def text() -> None:
        output.emit_table(
            ((r.project, r.run_id, r.phase, r.status, r.next_phase, r.ready, ",".join(r.blocked_by) or "-",
              r.error) for r in rows),
            ("project", "run", "phase", "status", "next", "ready", "blocked_by", "error"),
        )  # fmt: skip

    ctx.emit(body, text)
    for row in rows:
        if row.error:
            sys.stderr.write(f"ic: {row.project}: {row.error} (showing the relayed copy)\n")
    return 0


def _order(args: argparse.Namespace, ctx: Ctx) -> int:
    from dataclasses import asdict

    from kernel.portfolio.contracts import PortfolioOrder
    from kernel.portfolio.status import portfolio_order

    order = portfolio_order(portfolio_conn(ctx), args.portfolio)
    ctx.emit(asdict(PortfolioOrder(args.portfolio, order)), "\n".join(order))
    return 0


def _dep_add(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.deps import add_dep

    dep = add_dep(portfolio_conn(ctx), args.portfolio, args.upstream, args.downstream)
    ctx.emit(dep.to_json(), f"added {dep.upstream} -> {dep.downstream}")
    return 0


def _dep_remove(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.deps import remove_dep

    dep = remove_dep(portfolio_conn(ctx), args.portfolio, args.upstream, args.downstream)
    ctx.emit(dep.to_json(), f"removed {dep.upstream} -> {dep.downstream}")
    return 0


def _dep_list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.cli import output
    from kernel.portfolio.deps import list_deps

    deps = list_deps(portfolio_conn(ctx), args.portfolio)
    ctx.emit(
        [d.to_json() for d in deps],
        lambda: output.emit_table(((d.upstream, d.downstream) for d in deps), ("upstream", "downstream")),
    )
    return 0


# -- relay ------------------------------------------------------------------------------------------


def _report_tick(ctx: Ctx, report: TickReport, seen_errors: dict[str, str], *, always: bool) -> None:
    from kernel.cli import output

    for child in report.children:
        if child.error is None:
            seen_errors.pop(child.project, None)
        elif seen_errors.get(child.project) != child.error:
            seen_errors[child.project] = child.error
            sys.stderr.write(f"ic: relay: {child.project}: {child.error}; skipped\n")
    if not always and report.relayed == 0:
        return
    if ctx.json:
        output.emit_json(report.to_json())
    elif always:
        output.emit_table(
            ((c.project, c.relayed, c.cursor, c.error) for c in report.children),
            ("project", "relayed", "cursor", "error"),
        )
    else:
        moved = sum(1 for c in report.children if c.relayed)
        events = "event" if report.relayed == 1 else "events"
        projects = "project" if moved == 1 else "projects"
        output.emit_line(f"relayed {report.relayed} {events} from {moved} {projects}")
    sys.stdout.flush()


def _report_error(message: str) -> None:
    sys.stderr.write(f"ic: relay: {message}\n")
    sys.stderr.flush()


def _relay(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.durations import parse_duration
    from kernel.portfolio.childdb import CHILD_TIMEOUT
    from kernel.portfolio.lookup import get_portfolio
    from kernel.portfolio.relay import ChildReaders, relay_tick, tune_for_relay
    from kernel.portfolio.relayloop import Stopper, run_loop

    interval = parse_duration(args.interval, flag="interval")
    conn = portfolio_conn(ctx)
    get_portfolio(conn, args.portfolio)
    tune_for_relay(conn)
    child_timeout = min(CHILD_TIMEOUT, ctx.timeout)
    seen: dict[str, str] = {}
    if args.once:
        readers = ChildReaders(child_timeout)
        try:
            report = relay_tick(conn, args.portfolio, readers=readers)
        finally:
            readers.close()
        _report_tick(ctx, report, seen, always=True)
        return 0
    with Stopper() as stopper:
        run_loop(
            conn, args.portfolio, interval=interval, timeout=child_timeout, stopper=stopper,
            on_tick=lambda report: _report_tick(ctx, report, seen, always=False),
            on_error=_report_error,
        )  # fmt: skip
    return 0
