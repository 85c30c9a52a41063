"""Shared CLI plumbing: the argument parser that exits 3, global options, and the command context."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from kernel import db as kdb
from kernel.cli import output
from kernel.errors import UsageError

GLOBAL_OPTIONS_EPILOG = (
    "global options (before or after the command): --db=PATH, --json, --timeout=DUR, --verbose; "
    "see `ic --help`"
)


def usage_error(prog: str, message: str) -> UsageError:
    """A usage error naming the command it concerns and where its help is (main prefixes "ic: ")."""
    return UsageError(f"{prog.removeprefix('ic ')}: {message} (see `{prog} --help`)")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is exit 3 with one line (DESIGN 3.2), not argparse's exit 2.

    Each parser records its prog as the `command_prog` default: after parsing, the deepest
    subcommand's wins, so main can name it when arguments are left over.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("epilog", GLOBAL_OPTIONS_EPILOG)
        super().__init__(*args, **kwargs)
        self.set_defaults(command_prog=self.prog)

    def error(self, message: str) -> NoReturn:
        raise usage_error(self.prog, message)


Handler = Callable[[argparse.Namespace, "Ctx"], int]


class Ctx:
    """Global options plus a lazily opened connection, handed to every command handler.

    A plain slotted class, not a dataclass: every `ic` call builds one, and start-up is benchmarked.
    """

    __slots__ = ("_conn", "db", "json", "timeout", "verbose")

    def __init__(
        self,
        db: str | None = None,
        json: bool = False,
        timeout: float = kdb.DEFAULT_TIMEOUT,
        verbose: bool = False,
    ) -> None:
        self.db = db
        self.json = json
        self.timeout = timeout
        self.verbose = verbose
        self._conn: sqlite3.Connection | None = None

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
    """The flag's JSON value; NaN, Infinity and overflowing numbers are refused: every output is JSON
    that strict parsers accept, and such a value would be stored and printed back as is."""
    try:
        return json.loads(text, parse_constant=_non_finite, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--{flag} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except ValueError as exc:
        raise UsageError(f"--{flag} is not valid JSON: {exc}") from None


def _non_finite(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large for a number")
    return value


def bounded_int(
    flag: str, low: int, high: int | None = None, *, what: str = "a whole number"
) -> Callable[[str], int]:
    """An argparse `type=` for a whole number in low..high that names the flag when it is not one."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{flag} must be {what}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"--{flag} must be {bound}, got {value}")
        return value

    return convert


def nullable(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """Accept `none` (or `null`) to clear a setting; anything else goes to `convert`."""

    def wrapped(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else convert(text)

    return wrapped


def non_negative_int(flag: str) -> Callable[[str], int]:
    return bounded_int(flag, 0)


def add_subcommands(parser: Parser, title: str = "commands") -> argparse._SubParsersAction[Parser]:
    subs = parser.add_subparsers(title=title, dest="subcommand", metavar="<command>", parser_class=Parser)
    subs.required = True
    return subs
