"""`ic init`, `ic health`, `ic version`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kernel import __version__
from kernel import db as kdb
from kernel.cli.common import Ctx, Parser


def build(parser: Parser, name: str) -> None:
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
    path = ctx.db_path()
    conn = ctx.conn()
    integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    counts = {
        table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("runs", "dispatches", "events")
    }
    ok = integrity == "ok"
    result = {
        "path": str(path),
        "ok": ok,
        "integrity": integrity,
        "journal_mode": journal,
        "schema_version": kdb.read_schema_version(conn, path),
        "writable": os.access(path, os.W_OK),
        **counts,
    }
    ctx.emit(result)
    return 0 if ok else 2


def _version(args: argparse.Namespace, ctx: Ctx) -> int:
    ctx.emit(
        {"version": __version__, "schema_version": kdb.code_schema_version()},
        f"ic {__version__} (schema v{kdb.code_schema_version()})",
    )
    return 0
