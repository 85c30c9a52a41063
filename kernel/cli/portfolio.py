"""`ic portfolio ...`: dependencies, order, status and the relay of cross-project portfolio runs.

The database is the portfolio database: `--db=PATH`, else `.clavain/portfolio.db` in the current
directory (the workspace). Kernel modules are imported inside handlers so `ic --help` stays cheap.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernel import clikit, terminal
from kernel.cli import output
from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, add_commands, bounded_int

if TYPE_CHECKING:
    from kernel.portfolio.relay import TickReport


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


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    parser.description = (
        "Cross-project portfolio runs: dependencies between projects, their order, status, and the relay "
        "that keeps the portfolio in step with its children. Database: --db, else "
        "./.clavain/portfolio.db (the current directory is the workspace)."
    )
    add_commands(parser, COMMANDS, argv)


def _portfolio_arg(p: Parser) -> None:
    p.add_argument("portfolio", help="portfolio (parent) run id")


def _relay_options(p: Parser) -> None:
    _portfolio_arg(p)
    p.add_argument("--interval", default="2s", help="pause between ticks (default 2s)")
    p.add_argument("--once", action="store_true", help="one tick, then exit")


def _cursor_reset_options(p: Parser) -> None:
    _portfolio_arg(p)
    p.add_argument("--project", required=True, help="child project path (made absolute)")
    p.add_argument(
        "--to", type=bounded_int("to", 0, what="a whole number (an event id)"),
        help="event id in the project database (default: its newest)",
    )  # fmt: skip


def _dep_options(p: Parser) -> None:
    _portfolio_arg(p)
    p.add_argument("--upstream", required=True, help="project path (made absolute)")
    p.add_argument("--downstream", required=True, help="project path (made absolute)")


def _status(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.contracts import PortfolioStatus
    from kernel.portfolio.lookup import get_portfolio
    from kernel.portfolio.status import portfolio_status

    conn = portfolio_conn(ctx)
    parent = get_portfolio(conn, args.portfolio)
    rows = portfolio_status(conn, args.portfolio)
    body = PortfolioStatus(parent.id, parent.phase, parent.status, rows).to_json()

    def text() -> None:
        output.emit_table(
            ((r.project, r.run_id, r.phase, r.status, r.next_phase, r.ready, ",".join(r.blocked_by) or "-",
              r.error) for r in rows),
            ("project", "run", "phase", "status", "next", "ready", "blocked_by", "error"),
        )  # fmt: skip

    ctx.emit(body, text)
    for row in rows:
        if row.error:
            clikit.say("ic", f"{row.project}: {row.error} (showing the relayed copy)")
    return 0


def _order(args: argparse.Namespace, ctx: Ctx) -> int:
    from dataclasses import asdict

    from kernel.portfolio.contracts import PortfolioOrder
    from kernel.portfolio.status import portfolio_order

    order = portfolio_order(portfolio_conn(ctx), args.portfolio)
    ctx.emit(asdict(PortfolioOrder(args.portfolio, order)), lambda: output.emit_table((p,) for p in order))
    return 0


def _dep_add(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.deps import add_dep

    dep = add_dep(portfolio_conn(ctx), args.portfolio, args.upstream, args.downstream)
    ctx.emit(dep.to_json(), terminal.one_line(f"added {dep.upstream} -> {dep.downstream}"))
    return 0


def _dep_remove(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.deps import remove_dep

    dep = remove_dep(portfolio_conn(ctx), args.portfolio, args.upstream, args.downstream)
    ctx.emit(dep.to_json(), terminal.one_line(f"removed {dep.upstream} -> {dep.downstream}"))
    return 0


def _dep_list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.deps import list_deps

    deps = list_deps(portfolio_conn(ctx), args.portfolio)
    ctx.emit(
        [d.to_json() for d in deps],
        lambda: output.emit_table(((d.upstream, d.downstream) for d in deps), ("upstream", "downstream")),
    )
    return 0


def _slots(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.slots import list_slots

    conn = portfolio_conn(ctx)
    parent, slots = list_slots(conn, args.portfolio)

    def text() -> None:
        output.emit_table(
            ((s.dispatch_id, s.project_dir, s.pid, s.acquired_at, live) for s, live in slots),
            ("dispatch", "project", "pid", "acquired_at", "live"),
        )
        limit = "no limit" if parent.max_dispatches is None else f"max_dispatches {parent.max_dispatches}"
        output.emit_line(f"{len(slots)} held ({limit})")

    ctx.emit([s.to_json() for s, _ in slots], text)
    return 0


def _cursor_list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.cursors import list_cursors

    cursors = list_cursors(portfolio_conn(ctx), args.portfolio)
    ctx.emit(
        [c.to_json() for c in cursors],
        lambda: output.emit_table(
            ((c.project_dir, c.position, "replaced" if c.stalled else "ok", c.updated_at) for c in cursors),
            ("project", "cursor", "state", "updated_at"),
        ),
    )
    return 0


def _cursor_reset(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.portfolio.cursors import reset_cursor

    cursor = reset_cursor(portfolio_conn(ctx), args.portfolio, args.project, args.to)
    ctx.emit(
        cursor.to_json(),
        f"relay cursor of {terminal.one_line(cursor.project_dir)} set to {cursor.last_event_id}",
    )
    return 0


# -- relay ------------------------------------------------------------------------------------------

MIN_INTERVAL = 0.01  # below this the loop would only burn a core: nothing changes that fast


class _RelayReporter:
    """What the relay prints: ticks on stdout; each problem on stderr once, until it changes or clears
    (a relay that runs for days must not repeat the same line every two seconds)."""

    def __init__(self, ctx: Ctx, *, always: bool) -> None:
        self.ctx = ctx
        self.always = always  # --once: the table even when nothing moved
        self.seen: dict[str, str] = {}  # project (or "" for the portfolio database) -> last problem

    def _say(self, key: str, problem: str, line: str) -> None:
        if self.seen.get(key) != problem:
            self.seen[key] = problem
            sys.stderr.write(terminal.one_line(line) + "\n")
            sys.stderr.flush()

    def error(self, message: str) -> None:
        self._say("", message, f"ic: relay: {message}; retrying")

    def tick(self, report: TickReport) -> None:
        self.seen.pop("", None)
        for child in report.children:
            if child.error is None:
                self.seen.pop(child.project, None)
                continue
            where = "" if child.error.startswith(child.project) else f"{child.project}: "
            problem = "stalled" if child.stalled else child.error  # a stop is said once, whatever wording
            self._say(child.project, problem, f"ic: relay: {where}{child.error}; skipped")
        if report.stopped:
            sys.stderr.write(f"ic: relay: stopped by a signal after {len(report.children)} project(s)\n")
        if not self.always and report.relayed == 0:
            return
        if self.ctx.json:
            output.emit_json(report.to_json())
        elif self.always:
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


def _relay(args: argparse.Namespace, ctx: Ctx) -> int:
    from pathlib import Path

    from kernel.durations import parse_duration
    from kernel.errors import UsageError
    from kernel.portfolio.childdb import CHILD_TIMEOUT
    from kernel.portfolio.lookup import get_portfolio
    from kernel.portfolio.relay import ChildReaders, relay_tick, tune_for_relay
    from kernel.portfolio.relayloop import Stopper, run_loop

    interval = parse_duration(args.interval, flag="interval")
    if interval < MIN_INTERVAL:
        raise UsageError(f"--interval={args.interval} is too short; give at least 10ms (e.g. 2s)")
    child_timeout = min(CHILD_TIMEOUT, ctx.timeout)
    reporter = _RelayReporter(ctx, always=args.once)
    # The handlers go in first: a signal from here on ends the relay between two children's
    # transactions with exit 0, --once included.
    with Stopper() as stopper:
        conn = portfolio_conn(ctx)
        get_portfolio(conn, args.portfolio)
        tune_for_relay(conn)
        if args.once:
            readers = ChildReaders(child_timeout)
            try:
                report = relay_tick(conn, args.portfolio, readers=readers, should_stop=stopper.is_stopped)
            finally:
                readers.close()
            reporter.tick(report)
            return 0
        run_loop(
            conn, args.portfolio, path=Path(str(ctx.db)), interval=interval, timeout=child_timeout,
            stopper=stopper, on_tick=reporter.tick, on_error=reporter.error,
        )  # fmt: skip
    return 0


# -- the group --------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "status": Command(
        "each child: project, phase, status, ready, blocked_by", _status, _portfolio_arg,
        description="Each child as its own project database has it now: phase, status, the phase it would "
        "enter next, whether its upstream projects let it (ready) and which ones hold it back (blocked_by).",
    ),
    "order": Command(
        "projects in dependency order (smallest ready project first)", _order, _portfolio_arg,
        description="A stable topological order of the portfolio's projects: among the projects whose "
        "upstreams are all placed, the lexicographically smallest comes first.",
    ),
    "relay": Command(
        "copy children's phase changes into the portfolio database", _relay, _relay_options,
        description="Read each child project's new phase events (read-only) and write child_* and "
        "upstream_changed events, the child's phase/status and the cursor in one transaction per child. "
        "Unreadable projects are reported on stderr and skipped. SIGINT/SIGTERM stop it (exit 0).",
    ),
    "slots": Command(
        "the dispatch slots held against the portfolio's max_dispatches", _slots, _portfolio_arg,
        description="One row per running child dispatch that holds a slot of the portfolio's "
        "--max-dispatches: dispatch, project, holder pid, when taken, and whether it is still live (a dead "
        "one is reclaimed by the next spawn that finds the portfolio full).",
    ),
    "cursor": Command(
        "the relay's cursor per child project; reset one after its database was replaced",
        description="The relay remembers, per child project, the last project event it relayed. When a "
        "project database is replaced (restored from a backup, re-created), relaying from it stops until "
        "its cursor is reset here.",
        commands={
            "list": Command(
                "each child project's cursor and whether relaying from it is stopped", _cursor_list,
                _portfolio_arg,
                description="Each child project's relay cursor (the last project event id relayed) and its "
                "state: ok, or replaced (relaying stopped until `cursor reset`).",
            ),
            "reset": Command(
                "point a project's cursor at its newest event (or --to=ID) and resume relaying it",
                _cursor_reset, _cursor_reset_options,
                description="Point the project's relay cursor at its newest event (nothing already there "
                "is relayed), or at --to=ID (the events after ID are relayed; 0: its whole history). "
                "Clears the stop of a replaced database. The project must hold the portfolio's child run.",
            ),
        },
    ),
    "dep": Command(
        "dependencies between the portfolio's projects",
        description="upstream -> downstream: the downstream child may enter a phase only once the upstream "
        "child is at or past it. Paths are made absolute and canonical; self-edges, duplicates and cycles "
        "are refused.",
        commands={
            "add": Command(
                "upstream must reach a phase before downstream may enter it", _dep_add, _dep_options
            ),
            "remove": Command("remove a dependency", _dep_remove, _dep_options),
            "list": Command("list the portfolio's dependencies", _dep_list, _portfolio_arg,
                            description="List the dependencies."),
        },
    ),
}  # fmt: skip
