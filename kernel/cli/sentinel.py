"""`ic sentinel check|reset|list|prune`: "at most once per interval" for hooks and scripts.

`check` exits 0 when the caller may proceed (and records the firing in the same transaction) and 1
when throttled, so a hook can write `ic sentinel check nudge --interval=10m && notify ...`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kernel import state
from kernel.cli import output
from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, add_commands
from kernel.durations import parse_duration

SENTINEL_HEADER = ("name", "scope", "last_fired")


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    add_commands(parser, COMMANDS, argv)


def _check_options(p: Parser) -> None:
    _name_scope(p)
    p.add_argument(
        "--interval", required=True, metavar="DUR", help="minimum time between firings (0: always fire)"
    )


def _prune_options(p: Parser) -> None:
    p.add_argument("--older-than", required=True, metavar="DUR", help="e.g. 7d: the age of the last firing")


def _name_scope(p: Parser) -> None:
    p.add_argument("name", help="the sentinel's name (at most 200 characters, no control characters)")
    p.add_argument("scope", nargs="?", default="", help="scope (default: the global scope '')")


def _check(args: argparse.Namespace, ctx: Ctx) -> int:
    interval = state.check_duration(parse_duration(args.interval, flag="interval"), "interval")
    state.check_name(args.name, "sentinel name")
    state.check_name(args.scope, "scope", allow_empty=True)
    result = state.check_sentinel(ctx.conn(), args.name, args.scope, interval)
    if result.allowed:
        text = f"allowed (next at {result.next_allowed_at})"
    else:
        text = f"throttled until {result.next_allowed_at} (last fired at {result.last_fired})"
    ctx.emit(result.to_json(), text)
    return 0 if result.allowed else 1


def _reset(args: argparse.Namespace, ctx: Ctx) -> int:
    removed = state.reset_sentinel(ctx.conn(), args.name, args.scope)
    ctx.emit(removed.to_json(), f"reset {removed.name}" + (f" [{removed.scope}]" if removed.scope else ""))
    return 0


def _list(args: argparse.Namespace, ctx: Ctx) -> int:
    rows = state.list_sentinels(ctx.conn())
    ctx.emit(
        [r.to_json() for r in rows],
        lambda: output.emit_table(((r.name, r.scope, r.last_fired) for r in rows), SENTINEL_HEADER),
    )
    return 0


def _prune(args: argparse.Namespace, ctx: Ctx) -> int:
    older_than = parse_duration(args.older_than, flag="older-than")
    result = state.prune_sentinels(ctx.conn(), older_than)
    ctx.emit(result.to_json(), f"pruned {result.pruned} sentinels")
    return 0


# -- the group --------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "check": Command(
        "exit 0 and fire if <name> [<scope>] last fired at least --interval ago, else exit 1", _check,
        _check_options,
    ),
    "reset": Command("forget when <name> [<scope>] last fired (exit 1 when unknown)", _reset, _name_scope),
    "list": Command("list sentinels: name, scope, last_fired", _list),
    "prune": Command("delete sentinels that last fired more than --older-than ago", _prune, _prune_options),
}  # fmt: skip
