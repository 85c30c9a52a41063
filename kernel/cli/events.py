"""`ic events tail|cursor|record`: read, follow and feed the unified event stream.

Delivery rule for durable consumers: a batch is written and flushed to stdout first, and only then is
the consumer's cursor moved past it, so a consumer killed at any point resumes with nothing skipped.
SIGINT/SIGTERM only raise a flag that is checked between batches, so a clean stop never leaves a
delivered batch unrecorded (which would repeat it on restart). A consumer name is held by one process
at a time (`events.hold_consumer`); a second `tail --consumer` or a `cursor reset` of it is exit 1.

Text output is for terminals: control characters in event text are shown as escapes, never obeyed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from types import FrameType

from kernel import clikit, events, terminal
from kernel.cli import output
from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, add_commands, non_negative_int
from kernel.errors import UsageError
from kernel.model import Event, EventCursor

# How often `--follow` probes PRAGMA data_version while idle: the wake-up latency after a commit.
FOLLOW_POLL_S = 0.05


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    add_commands(parser, COMMANDS, argv)


def _tail_options(p: Parser) -> None:
    p.add_argument("run", nargs="?", help="only the events of this run")
    p.add_argument("--all", action="store_true", help="the events of every run and none")
    p.add_argument(
        "--since", type=non_negative_int("since"), metavar="ID", help="events after this id (0..newest id)"
    )
    p.add_argument(
        "--limit", type=non_negative_int("limit"), metavar="N", help="at most N events before --follow"
    )
    p.add_argument(
        "--consumer",
        metavar="NAME",
        help="durable cursor: resume where NAME stopped; one process per NAME at a time (else exit 1)",
    )
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")


def _cursor_reset_options(p: Parser) -> None:
    p.add_argument("name")
    p.add_argument("--to", type=non_negative_int("to"), default=0, metavar="ID", help="default 0")


def _cursor_register_options(p: Parser) -> None:
    p.add_argument("name")
    p.add_argument("--from", dest="start", default="0", metavar="latest|ID", help="default 0 (the start)")


def _record_options(p: Parser) -> None:
    p.add_argument("--source", required=True, help="who writes it, e.g. hook, tmux (not a kernel source)")
    p.add_argument("--type", required=True, help="what happened, e.g. pane.opened")
    p.add_argument("--run", metavar="ID", help="the run it belongs to (must exist)")
    p.add_argument(
        "--payload", metavar="JSON|-", help="a JSON object (64 KiB, depth 32, no secrets); - reads stdin"
    )
    p.add_argument("--reason", metavar="TEXT", help="free text, at most 4096 characters")


# -- tail ---------------------------------------------------------------------------------------------


class _StopFlag:
    """Set by SIGINT/SIGTERM; the tail loop finishes its batch (and cursor update), then exits 0."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self) -> bool:
        return self.raised

    def install(self) -> None:
        import signal

        def handle(signum: int, frame: FrameType | None) -> None:
            self.raised = True

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)


class _Delivery:
    """Writes batches, flushes, then advances the consumer's cursor (never the other way round)."""

    def __init__(self, conn: sqlite3.Connection, as_json: bool, consumer: str | None) -> None:
        self.conn = conn
        self.as_json = as_json
        self.consumer = consumer

    def __call__(self, batch: Sequence[Event]) -> None:
        sys.stdout.write("".join(_json_line(e) if self.as_json else _text_line(e) for e in batch))
        sys.stdout.flush()
        if self.consumer is not None:
            events.advance_cursor(self.conn, self.consumer, batch[-1].id)


def printable(value: object) -> str:
    """One cell of a text table: `-` for null; tabs and line breaks spaces, other controls escapes."""
    return "-" if value is None else terminal.one_line(str(value))


def _json_line(event: Event) -> str:
    line = output.dumps(event.to_json())
    if not events.is_unicode(line):
        # A lone surrogate written by some older or foreign writer: escape it (still valid JSON) rather
        # than let one row stop every reader of the stream.
        line = json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True)
    return line + "\n"


def _text_line(event: Event) -> str:
    cells = (event.id, event.timestamp, event.run_id, event.source, event.type, event.from_state)
    return "\t".join(printable(v) for v in (*cells, event.to_state, event.reason)) + "\n"


def _tail(args: argparse.Namespace, ctx: Ctx) -> int:
    if bool(args.run) == bool(args.all):
        raise UsageError("give either a run id or --all (see `ic events tail --help`)")
    if args.consumer is not None:
        events.check_label(args.consumer, "--consumer")
    conn = ctx.conn()
    run_id: str | None = args.run
    if run_id is not None:
        events.require_run_or_events(conn, run_id)
    if args.since is not None:
        events.check_position(conn, args.since, "since")
    stop = _StopFlag()
    if args.follow or args.consumer is not None:
        stop.install()
    deliver = _Delivery(conn, ctx.json, args.consumer)
    with events.hold_consumer(ctx.db_path(), args.consumer):
        try:
            position = _backlog(conn, args, run_id, deliver, stop)
            if args.follow:
                _follow(conn, run_id, position, deliver, stop)
        except BrokenPipeError:
            # The reader went away: nothing more to deliver, and the undelivered batch keeps its cursor.
            clikit.silence_stdout()
    return 0


def _backlog(
    conn: sqlite3.Connection,
    args: argparse.Namespace,
    run_id: str | None,
    deliver: _Delivery,
    stop: _StopFlag,
) -> int:
    """Print the initial events; return the id after which following continues."""
    if args.since is None and args.consumer is None:
        limit = events.DEFAULT_TAIL if args.limit is None else args.limit
        newest = events.latest_events(conn, limit, run_id=run_id) if limit else []
        if newest:
            deliver(newest)
            return newest[-1].id
        return events.max_event_id(conn) if limit == 0 else 0
    if args.since is not None:
        position: int = args.since
        if args.consumer is not None:
            events.ensure_cursor(conn, args.consumer)
    else:
        position = events.ensure_cursor(conn, args.consumer).last_event_id
    remaining: int | None = args.limit
    while not stop() and (remaining is None or remaining > 0):
        page = events.PAGE_SIZE if remaining is None else min(events.PAGE_SIZE, remaining)
        batch = events.events_after(conn, position, run_id=run_id, limit=page)
        if not batch:
            break
        deliver(batch)
        position = batch[-1].id
        if remaining is not None:
            remaining -= len(batch)
        if len(batch) < page:
            break
    return position


def _follow(
    conn: sqlite3.Connection, run_id: str | None, position: int, deliver: _Delivery, stop: _StopFlag
) -> None:
    while not stop():
        # Read the version before the events: a commit landing in between is caught by the next loop.
        version = events.data_version(conn)
        batch = events.events_after(conn, position, run_id=run_id, limit=events.PAGE_SIZE)
        if batch:
            deliver(batch)
            position = batch[-1].id
            continue
        events.wait_for_change(conn, version, interval=FOLLOW_POLL_S, stop=stop)


# -- cursors -------------------------------------------------------------------------------------------


def _emit_cursor(ctx: Ctx, cursor: EventCursor) -> None:
    ctx.emit(cursor.to_json(), f"{cursor.consumer}\t{cursor.last_event_id}")


def _cursor_list(args: argparse.Namespace, ctx: Ctx) -> int:
    rows = events.list_cursors(ctx.conn())
    ctx.emit(
        [r.to_json() for r in rows],
        lambda: output.emit_table(
            ((r.consumer, r.last_event_id, r.created_at, r.updated_at) for r in rows),
            header=("consumer", "last_event_id", "created_at", "updated_at"),
        ),
    )
    return 0


def _cursor_reset(args: argparse.Namespace, ctx: Ctx) -> int:
    conn = ctx.conn()
    events.check_label(args.name, "consumer name")
    events.get_cursor(conn, args.name)  # unknown: exit 1 before a lock file is made for it
    with events.hold_consumer(ctx.db_path(), args.name):
        _emit_cursor(ctx, events.reset_cursor(conn, args.name, args.to))
    return 0


def _cursor_register(args: argparse.Namespace, ctx: Ctx) -> int:
    start: int | None
    if args.start == "latest":
        start = None
    else:
        if not args.start.isdigit():
            raise UsageError(f"--from={args.start!r} must be 'latest' or an event id (a whole number >= 0)")
        start = int(args.start)
    _emit_cursor(ctx, events.register_cursor(ctx.conn(), args.name, start))
    return 0


# -- record --------------------------------------------------------------------------------------------


def _record(args: argparse.Namespace, ctx: Ctx) -> int:
    events.check_label(args.source, "--source")
    events.check_label(args.type, "--type")
    payload = None
    if args.payload is not None:
        from kernel.cli.state import read_stdin
        from kernel.state import parse_payload

        text = args.payload
        if text == "-":
            text = read_stdin("--payload", "echo '{\"pane\": 3}' | ic events record ... --payload=-")
        payload = parse_payload(text, what="--payload")
        if not isinstance(payload, dict):
            raise UsageError("--payload must be a JSON object, e.g. --payload='{\"pane\": 3}'")
    event = events.record_external(
        ctx.conn(), source=args.source, type=args.type, run_id=args.run, reason=args.reason, payload=payload
    )
    ctx.emit(event.to_json(), str(event.id))
    return 0


# -- the group --------------------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "tail": Command(
        "print events of <run> or --all (JSON lines under --json, tab-separated otherwise)", _tail,
        _tail_options,
        description="Without --since/--consumer: the newest --limit events (default 100). With --since=ID "
        "or --consumer=NAME: the events after that position (at most --limit, default all). --follow then "
        "keeps printing new events until SIGINT/SIGTERM. Text columns: id, timestamp, run_id, source, "
        "type, from_state, to_state, reason (control characters shown as escapes).",
    ),
    "cursor": Command(
        "durable consumer cursors: list, reset, register",
        commands={
            "list": Command("list cursors: consumer, last_event_id, created_at, updated_at", _cursor_list),
            "reset": Command("move a consumer that is not running: it next reads the events after --to",
                             _cursor_reset, _cursor_reset_options),
            "register": Command("create a consumer (exit 1 if it exists)", _cursor_register,
                                _cursor_register_options),
        },
    ),
    "record": Command(
        "append an event from outside the kernel (hooks, tmux, messaging)", _record, _record_options
    ),
}  # fmt: skip
