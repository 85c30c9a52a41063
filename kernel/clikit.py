"""The command-line kit of `ic`, `bigend` and `orchestrator`: one parser, one error -> exit code mapping.

Every command line of the project keeps the kernel's contract (DESIGN 3.2): exit 0 ok, 1 expected
negative, 2 unexpected, 3 usage; an error is one line on stderr, `<tool>: <message>`, never a
traceback (unless `--verbose` asks for one). This module is the one place that contract lives:

- `Parser`: argparse whose usage errors are `UsageError`s (exit 3) naming the command and its help,
  `<tool>: <command>: <problem> (see `<tool> <command> --help`)`; `parse` also refuses words left over
  (argparse would blame the top-level command for arguments a subcommand was given).
- The argument types every tool shares (`bounded_int`, `nullable`, `json_value`): one parser of
  whole numbers and JSON, so a rule about them is one change here.
- `failure(exc)`: the exit code and message of anything a command can end with (kernel errors, argparse
  exits, Ctrl-C, a closed pipe, SQLite errors, any other exception); `report` prints it, `finish`
  flushes and exits.

`bigend` and `orchestrator` import this module; the kernel never imports them. It is on `ic`'s start-up
path, so it imports only what every `ic` call needs anyway.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys

from kernel.errors import KernelError, UsageError
from kernel.terminal import one_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, NoReturn

# Exit codes of the contract that are not carried by a KernelError.
EXIT_OK, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 0, 2, 130


def usage_error(prog: str, message: str) -> UsageError:
    """A usage error naming the command (the words after the tool) and where its help is."""
    _tool, _, command = prog.partition(" ")
    where = f"{command}: " if command else ""
    return UsageError(f"{where}{message} (see `{prog} --help`)")


_columns: list[int] = []


def terminal_columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` reports it (COLUMNS, else the terminal, else
    80), without importing shutil, and asked once per process."""
    if not _columns:
        width = 0
        try:
            width = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            pass
        if width <= 0:
            try:
                width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                width = 0
        _columns.append(width if width > 0 else 80)
    return _columns[0]


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help layout at the terminal's width. argparse builds a formatter on every
    `add_argument`, and its own asks `shutil` for the width each time: importing shutil alone cost a
    few milliseconds of every `ic` call (benchmarks/cli_latency.py --importtime)."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        width = terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse with the contract: a usage error is a `UsageError` (exit 3, one line), not exit 2.

    Abbreviated long options are refused (`--verb` must not silently mean `--verbose`). Each parser
    records its prog as the `command_prog` default: after parsing, the deepest subcommand's wins, so
    `parse` can name it when words are left over.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.set_defaults(command_prog=self.prog)

    def error(self, message: str) -> NoReturn:
        raise usage_error(self.prog, message)


class Subcommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommand parsers are `Parser`s and end their help with their parent's epilog."""

    parent_epilog: str | None = None

    def add_parser(self, name: str, **kwargs: Any) -> Parser:
        kwargs.setdefault("epilog", self.parent_epilog)
        parser: Parser = super().add_parser(name, **kwargs)
        return parser


def add_subcommands(parser: Parser, title: str = "commands") -> Subcommands:
    """The required `<command>` word of `parser` (its value lands in `args.subcommand`)."""
    subs = parser.add_subparsers(
        title=title, dest="subcommand", metavar="<command>", parser_class=Parser, action=Subcommands
    )
    assert isinstance(subs, Subcommands)
    subs.required = True
    subs.parent_epilog = parser.epilog
    return subs


class Command:
    """One subcommand of a group: its one-line help, the handler that runs it, the function declaring
    its options, and, for a group of its own (`ic run agent`), its subcommands."""

    __slots__ = ("commands", "description", "handler", "help", "options")

    def __init__(
        self,
        help: str,
        handler: Callable[..., int] | None = None,
        options: Callable[[Parser], None] | None = None,
        *,
        description: str | None = None,
        commands: Mapping[str, Command] | None = None,
    ) -> None:
        self.help = help
        self.handler = handler
        self.options = options
        self.description = description
        self.commands = commands


def add_commands(
    parser: Parser, commands: Mapping[str, Command], argv: Sequence[str], title: str = "commands"
) -> None:
    """The `<command>` word of `parser`, and the parser of each command in `commands`.

    Only the command `argv` (the words after this group) names is built, with its options: building
    every parser of the `run` group was most of `ic run phase`'s own start-up
    (benchmarks/cli_latency.py). When argv names none (`--help`, a typo, nothing) all of them are
    built, for the help and the usage error listing them.
    """
    subs = add_subcommands(parser, title)
    word = argv[0] if argv else ""
    chosen = [word] if word in commands else list(commands)
    for name in chosen:
        command = commands[name]
        sub = subs.add_parser(name, help=command.help, description=command.description or command.help)
        if command.handler is not None:
            sub.set_defaults(handler=command.handler)
        if command.options is not None:
            command.options(sub)
        if command.commands is not None:
            add_commands(sub, command.commands, argv[1:] if name == word else ())


def parse(parser: Parser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; words no (sub)command takes are a usage error naming the deepest command."""
    args, extra = parser.parse_known_args(list(argv))
    if extra:
        raise usage_error(args.command_prog, f"unrecognized arguments: {' '.join(extra)}")
    return args


# -- argument types ---------------------------------------------------------------------------------


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


def non_negative_int(flag: str) -> Callable[[str], int]:
    return bounded_int(flag, 0)


def nullable(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """Accept `none` (or `null`) to clear a setting; anything else goes to `convert`."""

    def wrapped(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else convert(text)

    return wrapped


def json_value(text: str, flag: str) -> Any:
    """The flag's JSON value; NaN, Infinity and overflowing numbers are refused: every output is JSON
    that strict parsers accept, and such a value would be stored and printed back as is."""
    import json

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


# -- errors and exit codes --------------------------------------------------------------------------


def failure(exc: BaseException, *, db_timeout: float | None = None) -> tuple[int, str | None]:
    """The exit code of a command that ended with `exc`, and its one-line message (None: say nothing).

    `db_timeout` is the busy timeout the command used, named in the hint of a "database is locked".
    """
    if isinstance(exc, KernelError):
        return exc.exit_code, exc.message
    if isinstance(exc, SystemExit):  # argparse's --help, or an explicit exit
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK, None
        return EXIT_UNEXPECTED, str(exc.code)
    if isinstance(exc, KeyboardInterrupt):  # a write in progress was rolled back by its transaction
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, BrokenPipeError):  # the reader went away (`ic ... | head`): nothing to say
        return EXIT_OK, None
    if isinstance(exc, sqlite3.Error):
        from kernel import db as kdb

        timeout = kdb.DEFAULT_TIMEOUT if db_timeout is None else db_timeout
        return EXIT_UNEXPECTED, kdb.explain(exc, kdb.only_database_opened(), timeout).message
    return EXIT_UNEXPECTED, f"unexpected {type(exc).__name__}: {exc}"


def report(tool: str, exc: BaseException, *, verbose: bool = False, db_timeout: float | None = None) -> int:
    """Say how a command failed, on one line of stderr, and return its exit code.

    The traceback of an unexpected exception (not a kernel error, an exit, Ctrl-C or a closed pipe) is
    printed only under `--verbose`.
    """
    code, message = failure(exc, db_timeout=db_timeout)
    if isinstance(exc, BrokenPipeError):
        silence_stdout()
    if verbose and not isinstance(exc, KernelError | SystemExit | KeyboardInterrupt | BrokenPipeError):
        import traceback

        traceback.print_exception(exc)
    if message is not None:
        sys.stderr.write(f"{tool}: {one_line(message)}\n")
    return code


def say(tool: str, message: str) -> None:
    """One line of stderr from the tool that is not its failure (a note, a warning)."""
    sys.stderr.write(f"{tool}: {one_line(message)}\n")


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into a closed pipe stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def finish(code: int) -> NoReturn:
    """Flush stdout (a reader that went away is not an error) and exit with `code`."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    sys.exit(code)
