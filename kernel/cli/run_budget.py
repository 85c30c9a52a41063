"""`ic run tokens <run>` and `ic run budget <run>`, added to the run group by kernel/cli/run.py.

Imported for every `ic run ...` call, so it imports nothing at module level beyond what the run group
already loaded; the budget code is imported by the handlers.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kernel.cli import output
from kernel.cli.common import Ctx
from kernel.clikit import Parser

if TYPE_CHECKING:
    from kernel.model import Run


def extend(subs: argparse._SubParsersAction[Parser], parsers: dict[str, Parser]) -> None:
    p = subs.add_parser(
        "tokens",
        help="token totals of a run's dispatches",
        description="Sum of the run's dispatch tokens: input_tokens, output_tokens, cache_hits, total_tokens "
        "(input + output). For a portfolio parent, the sum over its children's projects.",
    )
    p.add_argument("run")
    p.set_defaults(handler=_tokens)
    parsers["tokens"] = p

    p = subs.add_parser(
        "budget",
        help="where a run stands against its token budget; exit 1 while used >= budget",
        description="Level-triggered: exit 1 whenever the run has used at least its --token-budget, 0 "
        "otherwise (also when it has no budget). Writes budget.warning/budget.exceeded events for "
        "thresholds crossed and not yet announced.",
    )
    p.add_argument("run")
    p.set_defaults(handler=_budget)
    parsers["budget"] = p


def _run(ctx: Ctx, run_id: str) -> Run:
    from kernel import queries as q
    from kernel.errors import NotFound

    run = q.fetch_one(ctx.conn(), q.RUN_BY_ID, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r} in this database; see `ic run list`")
    return run


def _tokens(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import budget

    run = _run(ctx, args.run)
    totals = budget.tokens_of_run(ctx.conn(), run)
    ctx.emit(totals.to_json(), lambda: output.emit_fields(totals.to_json()))
    return 0


def _budget(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import budget

    run = _run(ctx, args.run)
    status = budget.check_budget(ctx.conn(), run)
    if status.token_budget is None:
        text = f"{run.id}: no token budget (used {status.used})"
    else:
        text = f"{run.id}: {status.level}, used {status.used} of {status.token_budget}"
    ctx.emit(status.to_json(), text)
    return 1 if status.exceeded else 0
