"""`ic state set|get|delete|list|prune`: small JSON facts under a key and scope, optionally with a TTL.

Text output of `get` is the bare payload as compact JSON, so `ic state get k | jq` works without
--json (control characters in it are JSON escapes, so a terminal shows them rather than obeys them);
`--json` prints the whole entry (contract `state-entry`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kernel import state
from kernel.cli import output
from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, add_commands
from kernel.durations import parse_duration
from kernel.errors import UsageError
from kernel.model import StateEntry


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    add_commands(parser, COMMANDS, argv)


def _set_options(p: Parser) -> None:
    _key_scope(p)
    p.add_argument(
        "--ttl", metavar="DUR", help="expire after this long (e.g. 30s, 10m, 1h; whole seconds, rounded up)"
    )


def _list_options(p: Parser) -> None:
    p.add_argument("--scope", help="only this scope ('' is the global scope)")


def _key_scope(p: Parser) -> None:
    p.add_argument("key", help="the entry's name (at most 200 characters, no control characters)")
    p.add_argument("scope", nargs="?", default="", help="scope (default: the global scope '')")


def read_stdin(what: str, example: str) -> str:
    """The JSON text piped on stdin, bounded by the payload limit; a terminal or nothing is a usage error.

    A terminal would wait for input nobody knows to type, so it is refused rather than read. A UTF-8
    byte order mark (what some editors write) is dropped.
    """
    hint = f"pipe the JSON {what} on stdin, e.g. {example}"
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(f"stdin is a terminal or closed; {hint}")
    data = sys.stdin.buffer.read(state.MAX_PAYLOAD_BYTES + 1)
    if len(data) > state.MAX_PAYLOAD_BYTES:
        raise UsageError(f"{what} on stdin is larger than {state.MAX_PAYLOAD_BYTES} bytes (64 KiB)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} on stdin is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise UsageError(f"stdin is empty; {hint}")
    return text


def _set(args: argparse.Namespace, ctx: Ctx) -> int:
    state.check_name(args.key, "key")
    state.check_name(args.scope, "scope", allow_empty=True)
    ttl = None if args.ttl is None else state.check_duration(parse_duration(args.ttl, flag="ttl"), "ttl")
    payload = state.parse_payload(read_stdin("payload", "echo '{\"ok\": true}' | ic state set KEY"))
    entry = state.set_state(ctx.conn(), args.key, args.scope, payload, ttl=ttl)
    ctx.emit(entry.to_json(), f"set {_describe(entry)}")
    return 0


def _get(args: argparse.Namespace, ctx: Ctx) -> int:
    entry = state.get_state(ctx.conn(), args.key, args.scope)
    ctx.emit(entry.to_json(), output.json_text(entry.payload))
    return 0


def _delete(args: argparse.Namespace, ctx: Ctx) -> int:
    entry = state.delete_state(ctx.conn(), args.key, args.scope)
    ctx.emit(entry.to_json(), f"deleted {_describe(entry)}")
    return 0


def _list(args: argparse.Namespace, ctx: Ctx) -> int:
    entries = state.list_state(ctx.conn(), args.scope)
    ctx.emit(
        [e.to_json() for e in entries],
        lambda: output.emit_table(
            ((e.key, e.scope, e.expires_at, e.updated_at, output.json_text(e.payload)) for e in entries),
            header=("key", "scope", "expires_at", "updated_at", "payload"),
        ),
    )
    return 0


def _prune(args: argparse.Namespace, ctx: Ctx) -> int:
    result = state.prune_state(ctx.conn())
    ctx.emit(result.to_json(), f"pruned {result.pruned} expired entries")
    return 0


def _describe(entry: StateEntry) -> str:
    where = f"{entry.key} [{entry.scope}]" if entry.scope else entry.key
    return where if entry.expires_at is None else f"{where} (expires at {entry.expires_at})"


# -- the group --------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "set": Command(
        "store the JSON payload read from stdin under <key> [<scope>]", _set, _set_options,
        description="Store the JSON value read from stdin (at most 64 KiB, nesting depth 32, nothing that "
        'looks like a credential: store a reference such as "$OPENAI_API_KEY" instead).',
    ),
    "get": Command("print the payload of <key> [<scope>] (exit 1 when missing or expired)", _get, _key_scope),
    "delete": Command("delete <key> [<scope>] (exit 1 when missing)", _delete, _key_scope),
    "list": Command("list live entries: key, scope, expires_at, updated_at, payload", _list, _list_options),
    "prune": Command("delete expired entries", _prune),
}  # fmt: skip
