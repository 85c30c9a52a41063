"""`ic gate check|override|rules`: inspect and overrule the gates that guard a run's hops."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, add_commands, non_negative_int

RULES_HEADER = ("phase", "check", "params", "source")


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    parser.description = "Gates: check, override and list rules."
    add_commands(parser, COMMANDS, argv)


def _check_options(p: Parser) -> None:
    p.add_argument("run", metavar="RUN", help="the run id")
    p.add_argument("--priority", type=non_negative_int("priority"), default=1, metavar="N",
                   help="gate tier: 0-1 hard (default 1), 2-3 soft, >= 4 none")  # fmt: skip


def _override_options(p: Parser) -> None:
    p.add_argument("run", metavar="RUN", help="the run id")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why the gate is overridden")


def _rules_options(p: Parser) -> None:
    p.add_argument("--phase", metavar="PHASE", help="only rules for leaving this phase")
    p.add_argument("--run", metavar="RUN", help="the rules that apply to this run")


def _condition_row(c: dict[str, Any]) -> tuple[Any, ...]:
    return (c["result"], c["check"], c["phase"], c["count"], c["detail"])


def _check(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import gates, runs
    from kernel.cli import output

    conn = ctx.run_conn(args.run)
    run, hop = runs.peek_hop(conn, args.run)
    gate = gates.evaluate(conn, run, hop, priority=args.priority, disable_gates=False, db_path=ctx.db_path())
    body = {"run_id": run.id, **hop.to_json(), "passed": gate.passed, **gate.to_json()}

    def text() -> None:
        output.emit_line(f"{gate.result}\t{hop.from_phase} -> {hop.to_phase}\t{gate.tier}")
        output.emit_table(_condition_row(c) for c in gate.evidence["conditions"])

    ctx.emit(body, text)
    return 0 if gate.passed else 1


def _override(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runs

    conn = ctx.run_conn(args.run)
    result = runs.override_gate(conn, args.run, reason=args.reason, db_path=ctx.db_path())
    ctx.emit(result.to_json(), f"{result.from_phase} -> {result.to_phase} (gate overridden)")
    return 0


def rule_rows(table: dict[str, list[dict[str, Any]]], source: str) -> list[dict[str, Any]]:
    return [
        {"phase": phase, "check": rule["check"], "params": {k: v for k, v in rule.items() if k != "check"},
         "source": source}
        for phase, rules in table.items()
        for rule in rules
    ]  # fmt: skip


def _rules(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import gates, runs
    from kernel.cli import output
    from kernel.errors import UsageError

    if args.run is None:
        rows = rule_rows(gates.DEFAULT_RULES, "default")
    else:
        run = runs.get_run(ctx.run_conn(args.run), args.run)
        if args.phase is not None and args.phase not in run.phases:
            raise UsageError(f"phase {args.phase!r} is not in run {run.id}'s chain: {', '.join(run.phases)}")
        rows = rule_rows(gates.rule_table(run), "default" if run.gate_rules is None else "run")
        # Conditions added to every hop because of what the run is; "<next>" is the phase entered.
        rows += [
            {"phase": "*", "check": r["check"], "params": {k: v for k, v in r.items() if k != "check"},
             "source": "auto"}
            for r in gates.automatic_rules(run, "<next>")
        ]  # fmt: skip
    if args.phase is not None:
        rows = [r for r in rows if r["phase"] in (args.phase, "*")]
    ctx.emit(
        rows,
        lambda: output.emit_table(
            ((r["phase"], r["check"], r["params"] or None, r["source"]) for r in rows), RULES_HEADER
        ),
    )
    return 0


# -- the group --------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "check": Command(
        "evaluate the gate of the hop `ic run advance` would take (exit 1 when it fails)", _check,
        _check_options,
        description="Evaluate the gate of exactly the hop `ic run advance` would take now (skips "
        "included), without moving the run or writing anything. Exit 1 when it fails.",
    ),
    "override": Command(
        "advance past the gate whatever it says, recording why", _override, _override_options,
        description="Advance the run one hop past its gate (also through a pause), writing a "
        "gate/override event with the reason and the evidence.",
    ),
    "rules": Command(
        "list gate rules: the default table, or a run's", _rules, _rules_options,
        description="List gate rules, keyed by the phase being left: the default table, or with --run "
        "the table that run uses plus the conditions added because of what it is (phase *).",
    ),
}  # fmt: skip
