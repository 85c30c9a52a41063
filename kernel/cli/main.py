"""`ic`: the kernel's command line.

Start-up cost is a product feature (DESIGN 6: within 2.5x of a bare `import sqlite3`), so this module
imports only the one command group the user asked for, and never asyncio, pydantic or Textual.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# group name -> (module, one-line description). Each module defines `build(parser, name, argv)` (argv:
# the words after the group's name, from which it may build only the subcommand they name).
GROUPS: dict[str, tuple[str, str]] = {
    "init": ("kernel.cli.admin", "create .clavain/intercore.db here (or at --db) and migrate it"),
    "health": ("kernel.cli.admin", "check the database: schema, integrity, journal mode"),
    "version": ("kernel.cli.admin", "print the CLI and schema versions"),
    "run": ("kernel.cli.run", "runs: create, inspect and move through phases"),
    "gate": ("kernel.cli.gate", "gates: check, override and list rules"),
    "dispatch": ("kernel.cli.dispatch", "spawn and supervise agent processes, record their tokens"),
    "events": ("kernel.cli.events", "the unified event stream: tail, follow, cursors, record"),
    "state": ("kernel.cli.state", "key/scope JSON state with TTL"),
    "sentinel": ("kernel.cli.sentinel", "rate-limiting sentinels"),
    "portfolio": ("kernel.cli.portfolio", "portfolio runs: deps, order, status, relay, cursors, slots"),
}

# Global options, accepted before or after the command (DESIGN 3.2): flag -> whether it takes a value.
GLOBAL_FLAGS: dict[str, bool] = {
    "--db": True,
    "--timeout": True,
    "--json": False,
    "--verbose": False,
    "-v": False,
}

# Subcommands with an option named like a global one: after the subcommand word, the flag is theirs
# (`ic dispatch wait ID --timeout=30s` is how long to wait, not the database busy timeout). A test
# builds every group's parser and checks this table against the options they declare.
SUBCOMMAND_FLAGS: dict[tuple[str, str], frozenset[str]] = {
    ("dispatch", "spawn"): frozenset({"--timeout"}),
    ("dispatch", "wait"): frozenset({"--timeout"}),
}


def _usage() -> str:
    width = max(len(name) for name in GROUPS)
    lines = [
        "usage: ic [--db=PATH] [--json] [--timeout=DUR] [--verbose] <command> ...",
        "",
        "The orchestration kernel: runs, phases, gates, dispatches and events of this project.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {desc}" for name, (_, desc) in GROUPS.items()),
        "",
        "global options:",
        "  --db=PATH       database to use (default: nearest .clavain/intercore.db walking up)",
        "  --json          compact JSON output, one document per line",
        "  --timeout=DUR   how long to wait for a busy database (default 5s)",
        "  --verbose       diagnostics on stderr",
        "",
        "exit codes: 0 ok, 1 expected negative (not found, blocked, limit), 2 unexpected error, 3 usage",
        "Run `ic <command> --help` for the command's own options.",
    ]
    return "\n".join(lines)


def _split_globals(argv: Sequence[str]) -> tuple[dict[str, str | bool], list[str]]:
    """Pull global options out of argv wherever they stand; return them and the remaining words.

    After the command and subcommand words, a flag listed for that subcommand in SUBCOMMAND_FLAGS is
    left to the subcommand.
    """
    from kernel.errors import UsageError

    found: dict[str, str | bool] = {}
    rest: list[str] = []
    commands: list[str] = []
    owned: frozenset[str] = frozenset()
    i = 0
    words = list(argv)
    while i < len(words):
        word = words[i]
        if word == "--":
            rest.extend(words[i:])
            break
        name, eq, value = word.partition("=")
        takes_value = GLOBAL_FLAGS.get(name if name.startswith("--") else word)
        if takes_value is None or name in owned:
            rest.append(word)
            if not word.startswith("-") and len(commands) < 2:
                commands.append(word)
                if len(commands) == 2:
                    owned = SUBCOMMAND_FLAGS.get((commands[0], commands[1]), frozenset())
        elif takes_value:
            if not eq:
                if i + 1 >= len(words):
                    raise UsageError(f"{name} needs a value")
                value = words[i + 1]
                i += 1
            found[name[2:]] = value
        elif not eq:
            found["verbose" if word == "-v" else word[2:]] = True
        else:
            raise UsageError(f"{name} takes no value; give it alone")
        i += 1
    return found, rest


def run(argv: Sequence[str]) -> int:
    from kernel import clikit
    from kernel.cli.common import GLOBAL_OPTIONS_EPILOG, Ctx
    from kernel.errors import UsageError

    ctx = Ctx()
    try:
        for word in argv:
            # Bytes the OS could not decode arrive as lone surrogates; stored, they would break every
            # later read of the row. Refuse them once here instead of in each command.
            if not word.isascii() and any("\udc80" <= ch <= "\udcff" for ch in word):
                raise UsageError(
                    f"argument {word.encode('utf-8', 'backslashreplace').decode()!r} is not valid UTF-8; "
                    "ic takes UTF-8 text"
                )
        found, rest = _split_globals(argv)
        ctx.db = str(found["db"]) if "db" in found else None
        ctx.json = bool(found.get("json", False))
        ctx.verbose = bool(found.get("verbose", False))
        if "timeout" in found:
            from kernel.durations import parse_duration

            ctx.timeout = parse_duration(str(found["timeout"]), flag="timeout")
        if not rest:
            raise UsageError("no command given; run `ic --help` for the list of commands")
        if rest[0] in ("-h", "--help", "help"):
            sys.stdout.write(_usage() + "\n")
            return 0
        name = rest[0]
        if name not in GROUPS:
            raise UsageError(f"unknown command {name!r}; run `ic --help` for the list")
        module = importlib.import_module(GROUPS[name][0])
        parser = clikit.Parser(prog=f"ic {name}", description=GROUPS[name][1], epilog=GLOBAL_OPTIONS_EPILOG)
        module.build(parser, name, rest[1:])
        args = clikit.parse(parser, rest[1:])
        code: int = args.handler(args, ctx)
        return code
    except BaseException as exc:  # the contract: one line and the exit code, never a traceback
        return clikit.report("ic", exc, verbose=ctx.verbose, db_timeout=ctx.timeout)
    finally:
        ctx.close()


def main() -> None:
    from kernel import clikit

    clikit.finish(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
