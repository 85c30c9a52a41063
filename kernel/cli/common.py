"""Shared CLI plumbing: the argument parser that exits 3, global options, and the command context."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from kernel import db as kdb
from kernel.cli import output
from kernel.errors import UsageError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is exit 3 with one line (DESIGN 3.2), not argparse's exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # main prints "ic: " before every error; the prog without it names the command.
        raise UsageError(f"{self.prog.removeprefix('ic ')}: {message} (see `{self.prog} --help`)")


Handler = Callable[[argparse.Namespace, "Ctx"], int]


@dataclass
class Ctx:
    """Global options plus a lazily opened connection, handed to every command handler."""

    db: str | None = None
    json: bool = False
    timeout: float = kdb.DEFAULT_TIMEOUT
    verbose: bool = False
    _conn: sqlite3.Connection | None = field(default=None, repr=False)

    def db_path(self) -> Path:
        return kdb.resolve_db_path(self.db)

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = kdb.open_db(self.db_path(), timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def emit(self, json_obj: Any, text: Callable[[], None] | str | None = None) -> None:
        """Write the JSON form under --json, else the text form (a string or a printer).

        A list is written as JSON lines, one document per row (an empty list prints nothing), so
        `grep '"status":"running"'` picks rows, as DESIGN 3.2 promises.
        """
        if self.json:
            if isinstance(json_obj, list):
                for item in json_obj:
                    output.emit_json(item)
            else:
                output.emit_json(json_obj)
        elif callable(text):
            text()
        elif text is not None:
            output.emit_line(text)
        elif isinstance(json_obj, dict):
            output.emit_fields(json_obj)
        else:
            output.emit_line(str(json_obj))

    def log(self, message: str) -> None:
        if self.verbose:
            sys.stderr.write(f"ic: {message}\n")


def parse_json_arg(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--{flag} is not valid JSON: {exc.msg} at position {exc.pos}") from None


def non_negative_int(flag: str) -> Callable[[str], int]:
    """An argparse `type=` that reports the flag by name when the value is not an int >= 0."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{flag} must be a whole number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"--{flag} must be >= 0, got {value}")
        return value

    return convert


def add_subcommands(parser: Parser, title: str = "commands") -> argparse._SubParsersAction[Parser]:
    subs = parser.add_subparsers(title=title, dest="subcommand", metavar="<command>", parser_class=Parser)
    subs.required = True
    return subs
