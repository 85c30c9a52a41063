"""`ic init`, `ic health`, `ic version`."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from kernel import __version__, clikit
from kernel import db as kdb
from kernel.cli.common import Ctx
from kernel.clikit import Parser


def build(parser: Parser, name: str, argv: Sequence[str]) -> None:
    handlers = {"init": _init, "health": _health, "version": _version}
    if name == "init":
        parser.description = (
            "Create .clavain/intercore.db in the current directory (or at --db) and migrate it to the "
            "current schema. A non-empty database is backed up before migrating."
        )
    parser.set_defaults(handler=handlers[name])


def _init(args: argparse.Namespace, ctx: Ctx) -> int:
    path = Path(ctx.db).absolute() if ctx.db else Path.cwd() / kdb.DB_DIR / kdb.DB_NAME
    before, after, backup = kdb.init_db(path, timeout=ctx.timeout)
    result = {
        "path": str(path),
        "schema_before": before,
        "schema_version": after,
        "backup": None if backup is None else str(backup),
    }
    if before == after:
        text = f"{path}: already at schema v{after}"
    else:
        text = f"{path}: schema v{before} -> v{after}" + (f" (backup {backup})" if backup else "")
    ctx.emit(result, text)
    return 0


def _health(args: argparse.Namespace, ctx: Ctx) -> int:
    conn = ctx.conn()  # an unopenable, uninitialised or other-schema database fails here, one line
    path = ctx.db_path()
    problems = _integrity_problems(conn)
    result = {
        "path": str(path),
        "ok": not problems,
        "integrity": "; ".join(problems) or "ok",
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "schema_version": kdb.read_schema_version(conn, path),
        "writable": kdb.unwritable_reason(path) is None,
        **{table: _count(conn, table) for table in ("runs", "dispatches", "events")},
    }
    ctx.emit(result)
    if problems:
        clikit.say(
            "ic",
            f"{path}: integrity check failed ({problems[0]}); restore an intercore.db.bak-* copy or "
            "move the file aside and run `ic init`",
        )
        return 2
    return 0


def _integrity_problems(conn: sqlite3.Connection, most: int = 5) -> list[str]:
    """What `PRAGMA quick_check` finds wrong (nothing when healthy); a check that fails is a finding."""
    try:
        text = "\n".join(str(row[0]) for row in conn.execute(f"PRAGMA quick_check({most})"))
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("*** in database")]
    return [] if lines == ["ok"] else lines


def _count(conn: sqlite3.Connection, table: str) -> int:
    """Rows in `table`, or -1 when a damaged database cannot count them."""
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.DatabaseError:
        return -1


def _version(args: argparse.Namespace, ctx: Ctx) -> int:
    ctx.emit(
        {"version": __version__, "schema_version": kdb.code_schema_version()},
        f"ic {__version__} (schema v{kdb.code_schema_version()})",
    )
    return 0
