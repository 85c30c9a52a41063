"""`bigend`: the mission-control TUI, its headless snapshot, and the demo workspace.

    bigend [--root DIR ...] [--config PATH]          open the TUI
    bigend --once [--json] [--root DIR ...]          print the state once (JSON or a summary table)
    bigend --demo                                    the TUI on a fresh, live demo workspace
    bigend demo [DIR] [--live] [--interval SECONDS]  build a demo workspace (and keep it changing)

Exit codes as for `ic`: 0 ok, 1 expected negative, 2 unexpected (no readable root, I/O), 3 usage;
parsing and the error -> exit code mapping are the kernel's (`kernel.clikit`), shared with `ic`.
The TUI (bigend.ui) is imported only when it is asked for: `--once` and `demo` never load Textual.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kernel import clikit
from kernel.clikit import Parser
from kernel.errors import StorageError, UsageError

PROG = "bigend"
DEFAULT_DEMO_DIR = "bigend-demo"


def _main_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Mission control for the kernel projects under your roots.",
        epilog="`bigend demo --help` builds a demo workspace. Exit codes: 0 ok, 1 expected negative, "
        "2 unexpected error, 3 usage.",
    )
    parser.add_argument(
        "--root", action="append", metavar="DIR", help="directory to scan for projects (repeatable; "
        "default: the config's roots, else the current directory)",
    )  # fmt: skip
    parser.add_argument("--config", metavar="PATH", help="config file (default ~/.config/bigend/config.toml)")
    parser.add_argument("--once", action="store_true", help="print the state once and exit (no TUI)")
    parser.add_argument("--json", action="store_true", help="with --once: the state as one JSON document")
    parser.add_argument("--demo", action="store_true", help="open the TUI on a fresh, live demo workspace")
    parser.add_argument("--verbose", action="store_true", help="the traceback of an unexpected error")
    return parser


def _demo_parser() -> Parser:
    parser = Parser(
        prog=f"{PROG} demo",
        description="Build a realistic demo workspace (8 projects, a portfolio, blocked and failed work, "
        "one corrupt database) through the kernel API. Deterministic when IC_NOW and IC_ID_SEED are set.",
    )
    parser.add_argument("dir", nargs="?", default=DEFAULT_DEMO_DIR, help=f"default ./{DEFAULT_DEMO_DIR}")
    parser.add_argument(
        "--live", action="store_true", help="keep it changing until Ctrl-C (resumes an existing demo)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between changes with --live"
    )
    parser.add_argument("--verbose", action="store_true", help="the traceback of an unexpected error")
    return parser


# -- headless ---------------------------------------------------------------------------------------
def _snapshot(config: Any) -> Any:
    from bigend.core.aggregator import Aggregator

    async def once() -> Any:
        aggregator = Aggregator(config)
        try:
            return await aggregator.refresh()
        finally:
            await aggregator.close()

    return asyncio.run(once())


def _no_readable_root(state: Any) -> str | None:
    if state.roots and len(state.root_errors) == len(state.roots):
        detail = "; ".join(f"{root} {why}" for root, why in state.root_errors.items())
        return f"no readable root: {detail}"
    return None


def _print_summary(state: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    m = state.metrics
    console = Console(highlight=False)
    projects = f"{m.projects_ok}/{m.projects_total}" if m.kernel_errors else str(m.projects_total)
    console.print(
        Text(
            f"Projects {projects} | Active runs {m.active_runs} | Blocked {m.blocked_agents} | "
            f"Dispatches {m.active_dispatches} | Tokens {m.total_tokens_in:,} in / {m.total_tokens_out:,} out"
        )
    )
    rows = [_summary_row(project) for project in state.projects]
    table = Table(box=None, pad_edge=False)
    headers = ("", "project", "runs", "active", "blocked", "dispatches", "tokens in/out")
    for index, header in enumerate(headers):
        # Figures never wrap; only the note gives way (cut with an ellipsis) on a narrow terminal.
        width = max([len(header), *(len(row[index].plain) for row in rows)])
        if index >= 2:
            table.add_column(header, justify="right", no_wrap=True, min_width=width)
        else:
            table.add_column(header, no_wrap=True, min_width=min(width, 32))
    fixed = sum(column.min_width or 0 for column in table.columns) + 2 * len(table.columns)
    room = max(console.width - fixed, 12)
    table.add_column("note", no_wrap=True, max_width=room)
    for row in rows:
        row[-1].truncate(room, overflow="ellipsis")
        table.add_row(*row)
    console.print(table)


def _summary_row(project: Any) -> list[Any]:
    """One project's line of the summary. Data (names, errors) goes through `kernel.terminal.one_line`,
    so no escape sequence reaches the terminal, and into Text(), so no markup in it is parsed."""
    from rich.text import Text

    from bigend.core.status import UnifiedStatus
    from kernel.terminal import one_line

    active = sum(1 for r in project.runs if r.status == "active")
    blocked = sum(1 for r in project.runs if r.unified is UnifiedStatus.BLOCKED)
    live = sum(1 for d in project.dispatches if d.unified is not UnifiedStatus.DONE and d.ended_at is None)
    if project.error:
        mark, note = Text("!", style="bold red"), Text(one_line(project.error), style="red")
    elif not project.has_intercore and not project.portfolio:
        markers = one_line(", ".join(project.markers))
        mark, note = Text(" "), Text(f"no kernel database ({markers})", style="dim")
    else:
        mark, note = Text(" "), Text("portfolio" if project.portfolio else "")
    figures = (project.runs_total or len(project.runs), active, blocked, live)
    tokens = f"{project.tokens.input_tokens:,}/{project.tokens.output_tokens:,}"
    return [mark, Text(one_line(project.name)), *(Text(str(n)) for n in figures), Text(tokens), note]


def _run_once(args: argparse.Namespace) -> int:
    from bigend.core.config import load_config

    config = load_config(Path(args.config) if args.config else None, roots=args.root)
    state = _snapshot(config)
    problem = _no_readable_root(state)
    if problem is not None:
        raise StorageError(problem)
    if args.json:
        from bigend.core.statejson import state_json  # the JSON edge (pydantic)

        sys.stdout.write(state_json(state) + "\n")
    else:
        _print_summary(state)
    return 0


# -- TUI --------------------------------------------------------------------------------------------
def _run_app(config: Any, demo_dir: Path | None = None) -> int:
    from bigend.ui.app import run_app

    return int(run_app(config, demo_dir=demo_dir) or 0)


def _run_tui(args: argparse.Namespace) -> int:
    from bigend.core.config import load_config

    config = load_config(Path(args.config) if args.config else None, roots=args.root)
    return _run_app(config)


@contextlib.contextmanager
def _live_demo_in_background(root: Path) -> Iterator[None]:
    from bigend.demo import live_changes

    stop = threading.Event()
    thread = threading.Thread(target=live_changes, args=(root, stop), name="bigend-demo-changer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _run_demo_tui(args: argparse.Namespace) -> int:
    from bigend.core.config import load_config
    from bigend.demo import build_demo

    if args.root or args.once:
        raise UsageError("--demo builds its own workspace; it takes neither --root nor --once")
    workdir = Path(tempfile.mkdtemp(prefix="bigend-demo-"))
    try:
        with _exit_on_termination():
            root = workdir / "workspace"
            build_demo(root)
            config = load_config(Path(args.config) if args.config else None, roots=[str(root)])
            with _live_demo_in_background(root):
                return _run_app(config, demo_dir=root)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _exit_on_termination() -> Iterator[None]:
    """SIGTERM/SIGHUP become SystemExit, so the temporary demo workspace is removed on the way out."""

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- demo -------------------------------------------------------------------------------------------
def _run_demo(args: argparse.Namespace) -> int:
    from bigend.demo import build_demo, is_demo_workspace, live_changes

    if args.interval <= 0:
        raise UsageError(f"demo: --interval must be > 0, got {args.interval:g}")
    root = Path(args.dir).absolute()
    resuming = args.live and root.is_dir() and is_demo_workspace(root)
    if not resuming:
        info = build_demo(root)
        sys.stdout.write(
            f"demo workspace in {info.root}: {len(info.projects)} projects, {info.counts.runs} runs, "
            f"{info.counts.dispatches} dispatches; open it with `bigend --root {info.root}`\n"
        )
    if not args.live:
        return 0
    sys.stdout.write(f"changing {root} every {args.interval:g}s; Ctrl-C stops\n")
    sys.stdout.flush()
    stop = threading.Event()
    try:
        live_changes(root, stop, args.interval)
    except KeyboardInterrupt:
        stop.set()
    return 0


# -- entry ------------------------------------------------------------------------------------------
def run(argv: Sequence[str]) -> int:
    verbose = False
    try:
        if argv and argv[0] == "demo":
            demo_args = clikit.parse(_demo_parser(), argv[1:])
            verbose = demo_args.verbose
            return _run_demo(demo_args)
        args = clikit.parse(_main_parser(), argv)
        verbose = args.verbose
        if args.json and not args.once:
            raise UsageError("--json goes with --once (the TUI has no JSON output)")
        if args.demo:
            return _run_demo_tui(args)
        if args.once:
            return _run_once(args)
        return _run_tui(args)
    except BaseException as exc:  # the contract: one line and the exit code, never a traceback
        return clikit.report(PROG, exc, verbose=verbose)


def main() -> None:
    clikit.finish(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
