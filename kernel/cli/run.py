"""`ic run ...`: create runs, inspect them and move them through their phases.

Every subcommand of the group is declared here, with all its options: the budget ones (`tokens`,
`budget`), the portfolio ones (`create --projects`, `set --max-dispatches`, `list --portfolio`) and
the run tracking ones (`agent`, `artifact`, built by kernel/cli/runtrack.py). The handler a
subcommand names is the one that runs: a handler that takes a run id opens the database holding it
through `ctx.run_conn` (kernel.runlocator: the project's, or the portfolio database for a portfolio
parent), and one that has a portfolio case calls kernel/cli/run_portfolio.py for it.

Handlers import the kernel modules they need when they run: `ic run phase` is benchmarked against a
bare `import sqlite3`, so the read path touches only `kernel.queries` (never the gate engine).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Callable, Sequence

from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, add_commands, bounded_int, json_value, non_negative_int, nullable
from kernel.errors import NotFound, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kernel.model import Run

# Default of `ic run set` options: "not given" must differ from "clear it" (`none`).
UNSET: Any = object()


# -- argument types -----------------------------------------------------------------------------------


def boolean(flag: str) -> Callable[[str], bool]:
    def convert(text: str) -> bool:
        value = text.strip().lower()
        if value in ("true", "yes", "on", "1"):
            return True
        if value in ("false", "no", "off", "0"):
            return False
        raise argparse.ArgumentTypeError(f"--{flag} must be true or false, got {text!r}")

    return convert


# Accepts `none` on `run set` to clear the limit; on `run create` none is the default anyway.
_max_dispatches = nullable(bounded_int("max-dispatches", 1))


def json_flag(args: argparse.Namespace, name: str, flag: str) -> Any:
    value = getattr(args, name)
    return value if value is None or value is UNSET else json_value(value, flag)


def gates_arg(args: argparse.Namespace) -> Any:
    """`--gates=JSON` or `--gates-file=F` (mutually exclusive), parsed; UNSET/None when absent."""
    if getattr(args, "gates_file", None):
        try:
            with open(args.gates_file, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise UsageError(f"cannot read --gates-file={args.gates_file}: {exc.strerror or exc}") from None
        return json_value(text, "gates-file")
    return json_flag(args, "gates", "gates")


# -- build ------------------------------------------------------------------------------------------


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    parser.description = "Runs: create, inspect and move through phases."
    from kernel.cli import runtrack

    add_commands(parser, {**COMMANDS, **runtrack.COMMANDS}, argv)


def _run_arg(p: Parser) -> None:
    p.add_argument("run", metavar="RUN", help="the run id")


def _create_options(p: Parser) -> None:
    p.add_argument("--goal", required=True, metavar="TEXT", help="what the run is for")
    p.add_argument("--project", metavar="DIR",
                   help="project directory (default: the current directory), stored absolute")  # fmt: skip
    p.add_argument("--complexity", type=bounded_int("complexity", 1, 5), default=3, metavar="1..5",
                   help="default 3; 1 and 2 walk fewer phases of the default chain")  # fmt: skip
    p.add_argument("--phases", metavar="JSON", help='custom chain, a JSON array: ["plan","build","done"]')
    p.add_argument("--force-full", action="store_true", help="walk every phase whatever the complexity")
    p.add_argument("--auto-advance", type=boolean("auto-advance"), default=True, metavar="BOOL",
                   help="default true; false: every advance pauses unless given --skip-reason")  # fmt: skip
    p.add_argument("--scope-id", metavar="S", help="free-form scope (e.g. a sprint or parent id)")
    p.add_argument("--token-budget", type=non_negative_int("token-budget"), metavar="N",
                   help="tokens the run's dispatches may use")  # fmt: skip
    p.add_argument("--budget-warn-pct", type=bounded_int("budget-warn-pct", 0, 100), default=80,
                   metavar="0..100", help="warn at this share of the budget (default 80)")  # fmt: skip
    p.add_argument("--budget-enforce", action="store_true", help="gate every hop on the token budget")
    p.add_argument("--max-agents", type=bounded_int("max-agents", 1), metavar="N",
                   help="refuse adding an active agent beyond N active ones")  # fmt: skip
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--gates", metavar="JSON", help='rules replacing the default table, e.g. {"plan":["artifact_exists"]}'
    )
    group.add_argument("--gates-file", metavar="FILE", help="read the per-run gate rules from a JSON file")
    p.add_argument("--metadata", metavar="JSON", help="JSON object stored with the run")
    p.add_argument("--projects", metavar="A,B[,...]",
                   help="create a portfolio with one child run per project")  # fmt: skip
    p.add_argument("--max-dispatches", type=_max_dispatches, metavar="N",
                   help="portfolio: hard limit on running dispatches of all children")  # fmt: skip


def _list_options(p: Parser) -> None:
    p.add_argument("--active", action="store_true", help="only active runs")
    p.add_argument("--scope", metavar="S", help="only runs with this scope id")
    p.add_argument("--portfolio", action="store_true", help="list portfolio runs (parents)")


def _events_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--since", type=non_negative_int("since"), default=0, metavar="ID",
                   help="only events after this event id")  # fmt: skip
    p.add_argument("--limit", type=non_negative_int("limit"), metavar="N", help="at most N events")


def _cancel_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--reason", metavar="TEXT", help="recorded on the cancel event")


def _current_options(p: Parser) -> None:
    p.add_argument("--project", metavar="DIR", help="project directory (default: the current directory)")


def _set_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--goal", default=UNSET, metavar="TEXT")
    p.add_argument("--auto-advance", type=boolean("auto-advance"), nargs="?", const=True, default=UNSET,
                   metavar="BOOL", help="alone: true")  # fmt: skip
    p.add_argument("--force-full", type=boolean("force-full"), nargs="?", const=True, default=UNSET,
                   metavar="BOOL", help="alone: true")  # fmt: skip
    p.add_argument("--complexity", type=bounded_int("complexity", 1, 5), default=UNSET, metavar="1..5")
    p.add_argument("--token-budget", type=nullable(non_negative_int("token-budget")), default=UNSET,
                   metavar="N|none", help="tokens, or none to clear")  # fmt: skip
    p.add_argument("--budget-warn-pct", type=bounded_int("budget-warn-pct", 0, 100), default=UNSET,
                   metavar="0..100")  # fmt: skip
    p.add_argument("--budget-enforce", type=boolean("budget-enforce"), nargs="?", const=True, default=UNSET,
                   metavar="BOOL", help="alone: true")  # fmt: skip
    p.add_argument("--max-agents", type=nullable(bounded_int("max-agents", 1)), default=UNSET,
                   metavar="N|none", help="a number, or none to clear")  # fmt: skip
    p.add_argument("--scope-id", default=UNSET, metavar="S", help="scope id; empty to clear")
    p.add_argument("--metadata", default=UNSET, metavar="JSON", help="JSON object, or null to clear")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--gates", default=UNSET, metavar="JSON",
                       help="per-run gate rules, or null for the default table")  # fmt: skip
    group.add_argument("--gates-file", metavar="FILE", help="read the per-run gate rules from a JSON file")
    p.add_argument("--max-dispatches", type=_max_dispatches, default=UNSET, metavar="N|none",
                   help="portfolio runs only: a number, or none to clear")  # fmt: skip


def _skip_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("phase", metavar="PHASE", help="a phase ahead of the current one, not the terminal one")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why it is skipped")


def _advance_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--priority", type=non_negative_int("priority"), default=1, metavar="N",
                   help="gate tier: 0-1 hard (default 1), 2-3 soft, >= 4 none")  # fmt: skip
    p.add_argument("--disable-gates", action="store_true", help="evaluate no gate (tier none)")
    p.add_argument("--skip-reason", metavar="TEXT",
                   help="advance a paused run (auto_advance off), recording why")  # fmt: skip
    p.add_argument("--expect-phase", metavar="PHASE",
                   help="refuse (exit 1) unless the run is still at this phase")  # fmt: skip


def _rollback_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--to-phase", required=True, metavar="PHASE", help="an earlier phase of the chain")
    p.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    p.add_argument("--reason", metavar="TEXT", help="recorded on the rollback event")


# -- output -----------------------------------------------------------------------------------------

RUN_TABLE_HEADER = ("id", "status", "phase", "complexity", "project_dir", "goal")


def run_row(run: Run) -> tuple[Any, ...]:
    return (run.id, run.status, run.phase, run.complexity, run.project_dir or "-", run.goal)


def _emit_run(ctx: Ctx, run: Run) -> None:
    from kernel.cli import output

    ctx.emit(run.to_json(), lambda: output.emit_fields(run.to_json()))


# -- handlers ---------------------------------------------------------------------------------------


def _create(args: argparse.Namespace, ctx: Ctx) -> int:
    if args.projects is not None:
        from kernel.cli import run_portfolio

        return run_portfolio.create(args, ctx)
    if args.max_dispatches is not None:
        raise UsageError("--max-dispatches applies to portfolio runs; give --projects=A,B[,...]")
    from kernel import runs

    phases = json_flag(args, "phases", "phases")
    gate_rules = gates_arg(args)
    metadata = json_flag(args, "metadata", "metadata")
    run = runs.create_run(
        ctx.conn(), goal=args.goal, project_dir=args.project or os.getcwd(), complexity=args.complexity,
        phases=phases, scope_id=args.scope_id, token_budget=args.token_budget,
        budget_warn_pct=args.budget_warn_pct, budget_enforce=args.budget_enforce, max_agents=args.max_agents,
        gate_rules=gate_rules, metadata=metadata, force_full=args.force_full, auto_advance=args.auto_advance,
    )  # fmt: skip
    ctx.emit({"id": run.id, "phase": run.phase}, run.id)
    return 0


def _status(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    run = runs.get_run(ctx.run_conn(args.run), args.run)
    if run.is_portfolio_parent:
        from kernel.cli import run_portfolio

        return run_portfolio.status(ctx, run)
    _emit_run(ctx, run)
    return 0


def _phase(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import queries as q

    row = q.fetch_one(ctx.run_conn(args.run), q.RUN_PHASE, args.run)
    if row is None:
        raise NotFound(f"no run {args.run!r} in this database")
    run_id, phase, status = row
    ctx.emit({"id": run_id, "phase": phase, "status": status}, phase)
    return 0


def _list(args: argparse.Namespace, ctx: Ctx) -> int:
    if args.portfolio:
        from kernel.cli import run_portfolio

        return run_portfolio.list_parents(args, ctx)
    from kernel import runs
    from kernel.cli import output

    found = runs.list_runs(ctx.conn(), active=args.active, scope=args.scope)
    ctx.emit([r.to_json() for r in found], lambda: output.emit_table(map(run_row, found), RUN_TABLE_HEADER))
    return 0


def _events(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import queries as q
    from kernel import runs
    from kernel.cli import output

    conn = ctx.run_conn(args.run)
    runs.get_run(conn, args.run)
    limit = -1 if args.limit is None else args.limit
    found = q.fetch_all(conn, q.EVENTS_OF_RUN_SINCE, args.run, args.since, limit)
    if ctx.json:
        for event in found:
            output.emit_json(event.to_json())
        return 0
    # The same columns as `ic events tail`, no header: it is a stream, not a table.
    output.emit_table(
        (e.id, e.timestamp, e.run_id, e.source, e.type, e.from_state, e.to_state, e.reason) for e in found
    )
    return 0


def _cancel(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    conn = ctx.run_conn(args.run)
    if runs.get_run(conn, args.run).is_portfolio_parent:
        from kernel.cli import run_portfolio

        return run_portfolio.cancel(args, ctx)
    run = runs.cancel_run(conn, args.run, reason=args.reason)
    ctx.emit(run.to_json(), f"cancelled {run.id} at {run.phase}")
    return 0


def _current(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    project = runs.absolute_project(args.project or os.getcwd())
    conn = ctx.conn()
    run = runs.current_run(conn, project)
    if run is None:
        above = runs.nearest_run_above(conn, project)
        hint = ""
        if above is not None:
            import shlex

            hint = f"; run {above.id} is active in {above.project_dir} above it: pass "
            hint += f"--project={shlex.quote(above.project_dir)}"
        raise NotFound(f"no active run for project {project}{hint}")
    ctx.emit(run.to_json(), run.id)
    return 0


_SET_FLAGS = (
    "goal", "auto_advance", "force_full", "complexity", "token_budget", "budget_warn_pct", "budget_enforce",
    "max_agents", "scope_id",
)  # fmt: skip


def _set(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    conn = ctx.run_conn(args.run)
    changes = {key: getattr(args, key) for key in _SET_FLAGS if getattr(args, key) is not UNSET}
    metadata = json_flag(args, "metadata", "metadata")
    if metadata is not UNSET:
        changes["metadata"] = metadata
    if args.gates_file or args.gates is not UNSET:
        changes["gate_rules"] = gates_arg(args)
    if args.max_dispatches is not UNSET:
        if not runs.get_run(conn, args.run).is_portfolio_parent:
            raise UsageError(
                f"--max-dispatches applies to portfolio runs only; {args.run} is not a portfolio "
                "(in --db, or ./.clavain/portfolio.db)"
            )
        changes["max_dispatches"] = args.max_dispatches
    run = runs.set_run(conn, args.run, **changes)
    _emit_run(ctx, run)
    return 0


def _skip(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    added = runs.skip_phase(ctx.run_conn(args.run), args.run, args.phase, args.reason)
    body = {"run_id": args.run, "phase": args.phase, "skipped": True, "already": not added}
    ctx.emit(body, f"{args.run}: {args.phase} will be skipped" + ("" if added else " (already was)"))
    return 0


def _advance(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    result = runs.advance(
        ctx.run_conn(args.run), args.run, priority=args.priority, disable_gates=args.disable_gates,
        skip_reason=args.skip_reason, expect_phase=args.expect_phase, db_path=ctx.db_path(),
    )  # fmt: skip
    text = f"{result.from_phase} -> {result.to_phase}"
    if result.skipped:
        text += f" (skipped {', '.join(result.skipped)})"
    if result.gate_result == "fail":
        text += f" [{result.gate_tier} gate failed, advanced anyway]"
    if result.status == "completed":
        text += " (run completed)"
    ctx.emit(result.to_json(), text)
    return 0


def _rollback(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    conn = ctx.run_conn(args.run)
    result = runs.rollback(conn, args.run, args.to_phase, dry_run=args.dry_run, reason=args.reason)
    verb = "would roll back" if result.dry_run else "rolled back"
    ctx.emit(result.to_json(), f"{verb} {result.from_phase} -> {result.to_phase}")
    return 0


def _tokens(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import budget
    from kernel.cli import output

    conn = ctx.run_conn(args.run)
    totals = budget.tokens_of_run(conn, _run_or_not_found(conn, args.run))
    ctx.emit(totals.to_json(), lambda: output.emit_fields(totals.to_json()))
    return 0


def _budget(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import budget

    conn = ctx.run_conn(args.run)
    run = _run_or_not_found(conn, args.run)
    status = budget.check_budget(conn, run)
    if status.token_budget is None:
        text = f"{run.id}: no token budget (used {status.used})"
    else:
        text = f"{run.id}: {status.level}, used {status.used} of {status.token_budget}"
    ctx.emit(status.to_json(), text)
    return 1 if status.exceeded else 0


def _run_or_not_found(conn: sqlite3.Connection, run_id: str) -> Run:
    from kernel import queries as q

    run = q.fetch_one(conn, q.RUN_BY_ID, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r} in this database; see `ic run list`")
    return run


# -- the group --------------------------------------------------------------------------------------

# Every subcommand of `ic run` (with `agent` and `artifact` from kernel/cli/runtrack.py): its help, the
# handler that runs it, and the function declaring its options.
COMMANDS: dict[str, Command] = {
    "create": Command("create a run at the first phase of its chain", _create, _create_options),
    "status": Command("show a run (a portfolio parent: with its children)", _status, _run_arg),
    "phase": Command("print a run's current phase", _phase, _run_arg),
    "list": Command("list runs, newest first", _list, _list_options),
    "events": Command("list a run's events, oldest first", _events, _events_options),
    "cancel": Command("cancel an active run", _cancel, _cancel_options),
    "current": Command(
        "the newest active run of a project (exit 1 when none)",
        _current,
        _current_options,
        description="The newest active run of a project (exit 1 when none). The run's project directory "
        "must equal the absolute form of --project exactly: there is no walking up, so from a "
        "subdirectory of the project pass --project=<project dir>.",
    ),
    "set": Command("change a run's settings (one event lists old and new values)", _set, _set_options),
    "skip": Command("pre-skip a phase ahead of the run (advances pass over it)", _skip, _skip_options),
    "advance": Command("move the run to its next phase through the gate", _advance, _advance_options),
    "rollback": Command(
        "move the run back to an earlier phase (reopens a completed run)", _rollback, _rollback_options
    ),
    "tokens": Command(
        "token totals of a run's dispatches",
        _tokens,
        _run_arg,
        description="Token totals of a run's dispatches: input_tokens, output_tokens, cache_hits, "
        "total_tokens (input + output). For a portfolio parent, the sum over its children's projects.",
    ),
    "budget": Command(
        "where a run stands against its token budget; exit 1 while used >= budget",
        _budget,
        _run_arg,
        description="Where a run stands against its token budget. Level-triggered: exit 1 whenever the "
        "run has used at least its --token-budget, 0 otherwise (also when it has no budget). Writes "
        "budget.warning/budget.exceeded events for thresholds crossed and not yet announced.",
    ),
}  # fmt: skip
