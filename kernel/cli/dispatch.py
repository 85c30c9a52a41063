"""`ic dispatch ...`: spawn agent processes, follow them to their end, record their tokens.

`spawn` and `wait` own a `--timeout=DUR` of their own (how long the agent may run / how long to
wait), so the global `--timeout` (database busy timeout) must come before `dispatch` for them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernel.cli import output
from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, add_commands, non_negative_int
from kernel.errors import Refused, UsageError

if TYPE_CHECKING:
    from kernel.model import Dispatch


LIST_HEADER = ("id", "status", "type", "name", "pid", "exit", "in", "out", "scope", "created_at")


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    add_commands(parser, COMMANDS, argv)


def _spawn_options(p: Parser) -> None:
    p.add_argument("--prompt-file", required=True, help="file holding the prompt")
    p.add_argument("--project", help="directory the agent runs in (default: the current directory)")
    p.add_argument("--type", dest="agent_type", default="codex", help="agent type: codex, claude, ...")
    p.add_argument("--name", help="a label for the dispatch")
    p.add_argument("--model", help="model passed to the agent ({model})")
    p.add_argument("--output", help="output file (default .clavain/dispatches/<id>/output.log)")
    p.add_argument(
        "--timeout", dest="run_timeout", metavar="DUR", help="end the agent after this long (e.g. 30m)"
    )
    p.add_argument("--scope-id", help="the run this dispatch works for")
    p.add_argument("--command", help='argv as a JSON array (["prog","arg"]) or words split like a shell')
    p.add_argument("argv", nargs="*", help="after `--`: the command, taken literally")


def _id_arg(p: Parser) -> None:
    p.add_argument("id")


def _list_options(p: Parser) -> None:
    p.add_argument("--active", action="store_true", help="only spawned or running ones")
    p.add_argument("--scope", help="only those of this run")


def _wait_options(p: Parser) -> None:
    p.add_argument("id")
    p.add_argument(
        "--timeout", dest="wait_timeout", metavar="DUR", help="give up (and end the dispatch) after this"
    )


def _kill_options(p: Parser) -> None:
    p.add_argument("id")
    p.add_argument("--grace", default="5s", metavar="DUR", help="time between TERM and KILL (default 5s)")


def _tokens_options(p: Parser) -> None:
    p.add_argument("id")
    p.add_argument("--in", dest="input_tokens", type=non_negative_int("in"), required=True)
    p.add_argument("--out", dest="output_tokens", type=non_negative_int("out"), required=True)
    p.add_argument("--cache", dest="cache_tokens", type=non_negative_int("cache"), default=0)


def _prune_options(p: Parser) -> None:
    p.add_argument("--older-than", required=True, metavar="DUR", help="e.g. 7d")


def _duration(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    from kernel.durations import parse_duration

    return parse_duration(text, flag=flag)


def _emit_dispatch(ctx: Ctx, row: Dispatch) -> None:
    ctx.emit(row.to_json(), lambda: output.emit_fields(row.to_json()))


def _spawn(args: argparse.Namespace, ctx: Ctx) -> int:
    import os

    from kernel.dispatch import api, config

    timeout_s = _duration(args.run_timeout, "timeout")
    if args.command is not None and args.argv:
        raise UsageError("give the command either as --command or after `--`, not both")
    command = config.parse_command_flag(args.command) if args.command is not None else (args.argv or None)
    row = api.spawn(
        ctx.conn(), ctx.db_path(),
        prompt_file=args.prompt_file, project_dir=args.project or os.getcwd(), agent_type=args.agent_type,
        name=args.name, model=args.model, output_file=args.output, timeout_s=timeout_s,
        scope_id=args.scope_id, command=command,
    )  # fmt: skip
    ctx.emit(api.SpawnResult.of(row).to_json(), row.id)
    return 0


def _status(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.dispatch import api

    _emit_dispatch(ctx, api.get(ctx.conn(), args.id))
    return 0


def _poll(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.dispatch import api

    _emit_dispatch(ctx, api.poll(ctx.conn(), args.id))
    return 0


def _list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.dispatch import api

    rows = api.list_dispatches(ctx.conn(), active=args.active, scope=args.scope)
    table = [
        (r.id, r.status, r.agent_type, r.name, r.pid, r.exit_code, r.input_tokens, r.output_tokens,
         r.scope_id, r.created_at)
        for r in rows
    ]  # fmt: skip
    ctx.emit([r.to_json() for r in rows], lambda: output.emit_table(table, LIST_HEADER))
    return 0


def _wait(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.dispatch import api

    timeout_s = _duration(args.wait_timeout, "timeout")
    conn = ctx.conn()
    api.get(conn, args.id)
    row = api.wait(conn, ctx.db_path(), args.id, timeout_s)
    _emit_dispatch(ctx, row)
    return 0 if row.status == "completed" else 1


def _kill(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.dispatch import api

    grace = _duration(args.grace, "grace") or 0.0
    conn = ctx.conn()
    before = api.get(conn, args.id)
    if before.is_terminal:
        raise Refused(f"dispatch {before.id} already ended ({before.status}); nothing to kill")
    row = api.kill(conn, args.id, grace_s=grace)
    if row.status != "cancelled":  # it ended on its own while we were asking
        raise Refused(f"dispatch {row.id} already ended ({row.status}); nothing to kill")
    _emit_dispatch(ctx, row)
    return 0


def _tokens(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.dispatch import api

    row = api.set_tokens(
        ctx.conn(), args.id,
        input_tokens=args.input_tokens, output_tokens=args.output_tokens, cache_tokens=args.cache_tokens,
    )  # fmt: skip
    _emit_dispatch(ctx, row)
    return 0


def _prune(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel.dispatch import api

    older = _duration(args.older_than, "older-than") or 0.0
    done = api.prune(ctx.conn(), older)
    text = f"pruned {done.pruned} dispatches"
    if done.kept_live:
        text += f"; kept {done.kept_live} that ended but still have running processes"
    ctx.emit({"pruned": done.pruned}, text)
    return 0


# -- the group --------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "spawn": Command(
        "start an agent detached, under a supervisor; prints the dispatch id", _spawn, _spawn_options,
        description="Start an agent in its own process group (stdin /dev/null, stdout+stderr to --output). "
        "Command: --command or the words after `--` (never run through a shell), else "
        ".clavain/dispatch.toml [<type>] command, else the built-in default for codex/claude. "
        "Placeholders {prompt} {prompt_file} {output} {model} {id} are filled in.",
    ),
    "status": Command("show a dispatch as recorded", _status, _id_arg),
    "poll": Command(
        "show a dispatch after checking its supervisor is alive (a dead one fails the dispatch with the "
        "reason)", _poll, _id_arg,
    ),
    "list": Command("list dispatches, newest first", _list, _list_options),
    "wait": Command(
        "wait until a dispatch ends: exit 0 completed, 1 failed/timeout/cancelled", _wait, _wait_options,
        description="Wait until the dispatch ends. On --timeout its processes are ended and it is "
        "recorded as timeout. Exit 0 when it completed, 1 otherwise.",
    ),
    "kill": Command(
        "cancel a dispatch: TERM its process group, KILL after --grace (exit 1 if it had ended)", _kill,
        _kill_options,
    ),
    "tokens": Command("record a dispatch's token usage by hand", _tokens, _tokens_options),
    "prune": Command(
        "delete dispatches that ended more than --older-than ago (not those with live processes)", _prune,
        _prune_options,
    ),
}  # fmt: skip
