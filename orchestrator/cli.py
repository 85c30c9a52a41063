"""`orchestrator`: run a milestone's issues through dev -> review -> fix in an opted-in repository.

    orchestrator init                       write a commented orchestrator.toml at the repository root
    orchestrator run --milestone M [--issue ID] [--config PATH] [--dry-run] [--jobs N] [--retry]
                     [--ignore-deps] [--adopt]
    orchestrator plugin install --claude|--codex [--dest DIR]
                                            write the /dev-auto-orchestrate command for an agent

Exit codes: 0 every selected issue passed (or was passed before); 1 an expected negative (an issue
capped, over budget, blocked or held; nothing in the milestone; another orchestrator already running
in the repository; config already exists; a foreign issue branch without --adopt; --issue with a
dependency that has not passed, without --ignore-deps); 2 unexpected trouble (git, kernel database,
I/O, a runner's infrastructure failure, a refused agent login); 3 usage (no or invalid config, bad
issue files, unknown issue, dependency cycle); 130 interrupted. Parsing and the error -> exit code
mapping are the kernel's (`kernel.clikit`), shared with `ic` and `bigend`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kernel import clikit
from kernel.clikit import Parser, bounded_int
from kernel.errors import NotFound, Refused, UsageError
from orchestrator.errors import RunnerMissing

if TYPE_CHECKING:
    from orchestrator.config import RunnerConfig

PROG = "orchestrator"
EXIT_CODES = (
    "exit codes: 0 all selected issues passed; 1 an issue capped, over budget, blocked or held, another\n"
    "orchestrator already running in the repository, a foreign issue branch (--adopt) or an unpassed\n"
    "dependency of --issue (--ignore-deps); 2 git/database/I-O trouble or a runner's infrastructure\n"
    "failure; 3 usage (config, issues, cycle); 130 interrupted.\n"
    "`orchestrator run` resumes where an interrupted run stopped."
)


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Run a milestone's issues through dev -> review -> fix in an opted-in repository.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=Parser)
    init = sub.add_parser("init", help="write a commented orchestrator.toml at the repository root")
    init.add_argument("--repo", help="repository (default: the one containing the current directory)")
    init.add_argument("--force", action="store_true", help="overwrite an existing orchestrator.toml")
    run = sub.add_parser("run", help="work through a milestone's issues")
    run.add_argument("--milestone", required=True, help="the milestone value to select (compared as text)")
    run.add_argument(
        "--issue", action="append", default=[], metavar="ID", help="only this issue (repeatable, or a,b)"
    )
    run.add_argument("--config", help="config file (default: orchestrator.toml/.json at the repository root)")
    run.add_argument("--repo", help="repository (default: the one containing the current directory)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    run.add_argument(
        "--jobs",
        type=bounded_int("jobs", 1, 16),
        help="issues worked on at once, 1..16 (overrides loop.jobs)",
    )
    run.add_argument(
        "--retry", action="store_true", help="run again issues capped or failed in an earlier run"
    )
    run.add_argument("--quiet", action="store_true", help="do not stream the agents' output")
    run.add_argument("--json", action="store_true", help="print the plan or the summary as JSON on stdout")
    run.add_argument(
        "--ignore-deps", action="store_true",
        help="with --issue: start even though a dependency has not passed (without its work)",
    )  # fmt: skip
    run.add_argument(
        "--adopt", action="store_true",
        help="work on existing issue branches the orchestrator did not create (else refused)",
    )  # fmt: skip
    plugin = sub.add_parser("plugin", help="the /dev-auto-orchestrate entrypoint for Claude Code and Codex")
    plugin_sub = plugin.add_subparsers(dest="plugin_command", metavar="<command>", parser_class=Parser)
    install = plugin_sub.add_parser("install", help="write the plugin (Claude Code) or custom prompt (Codex)")
    target = install.add_mutually_exclusive_group(required=True)
    target.add_argument("--claude", action="store_true", help="a Claude Code plugin (a local marketplace)")
    target.add_argument("--codex", action="store_true", help="a Codex custom prompt")
    install.add_argument(
        "--dest",
        help="where to write (default: ~/.local/share/clavain/claude-plugins, or $CODEX_HOME/prompts)",
    )
    install.add_argument("--force", action="store_true", help="overwrite files written before")
    for command in (init, run, install):
        command.add_argument("--verbose", action="store_true", help="the traceback of an unexpected error")
    return parser


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# -- init -------------------------------------------------------------------------------------------


async def cmd_init(args: argparse.Namespace) -> int:
    from orchestrator.config import CONFIG_NAMES, EXAMPLE
    from orchestrator.git import repo_root

    repo = await repo_root(Path(args.repo or ".").absolute())
    target = repo / CONFIG_NAMES[0]
    existing = next((repo / name for name in CONFIG_NAMES if (repo / name).exists()), None)
    if existing is not None and not args.force:
        raise Refused(f"{existing} already exists; edit it, or pass --force to overwrite")
    target.write_text(EXAMPLE, encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
    return 0


# -- plugin -----------------------------------------------------------------------------------------


async def cmd_plugin(args: argparse.Namespace) -> int:
    from orchestrator import plugin

    if args.plugin_command != "install":
        raise UsageError("plugin: say what to do: orchestrator plugin install --claude|--codex")
    dest = Path(args.dest).expanduser().absolute() if args.dest else plugin.default_dest(args.claude)
    program = plugin.orchestrator_program()
    install = plugin.install_claude if args.claude else plugin.install_codex
    written = install(dest, force=args.force, program=program)
    for path in written.files:
        sys.stdout.write(f"wrote {path}\n")
    sys.stdout.write(f"next: {written.next_step}\n")
    return 0


# -- run --------------------------------------------------------------------------------------------


def _wanted_issues(raw: list[str]) -> list[str]:
    wanted = [part.strip() for item in raw for part in item.split(",")]
    if any(not part for part in wanted):
        raise UsageError("--issue: empty issue id; give ids like --issue 7 or --issue 7,8")
    return wanted


def _note(text: str) -> None:
    clikit.say(PROG, f"note: {text}")


async def _warn_uncommitted(repo: Path, head: str | None) -> None:
    """Worktrees start from the last commit: edits only in the checkout would silently be missing."""
    from orchestrator.git import tracked_changes

    changed = await tracked_changes(repo)
    if changed:
        start = f"HEAD {head[:10]}" if head else "HEAD"
        _note(
            f"{changed} tracked file(s) in {repo} have uncommitted changes; the issue worktrees start "
            f"from {start} without them (commit them first if the agents need them)"
        )


def _anchor_program(repo: Path, runner: RunnerConfig) -> RunnerConfig:
    """The runner config with its program located, checked before any worktree or run exists.

    A relative program path (`tools/agent.sh`) means the repository's file, like every other path
    in the config: the agent runs in an issue worktree, where a relative path would name that
    worktree's copy (missing when the script is not committed).
    """
    key = "command" if runner.kind == "command" else "executable"
    argv = getattr(runner, key) or [runner.kind]
    program = argv[0]
    if "/" in program and not Path(program).is_absolute():
        program = str(repo / program)
        runner = runner.model_copy(update={key: [program, *argv[1:]]})
    found = Path(program).is_file() if "/" in program else shutil.which(program)
    if not found:
        raise RunnerMissing(
            f"runner program {argv[0]!r} not found; install it or set runner.{key} in the config"
        )
    if "/" in program and not os.access(program, os.X_OK):
        raise RunnerMissing(
            f"runner program {argv[0]!r} is not executable; chmod +x it, or name its interpreter first "
            f'(runner.{key} = ["python3", "{argv[0]}", ...])'
        )
    return runner


async def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator import dag, issues
    from orchestrator.config import load_config
    from orchestrator.git import repo_root

    if not args.milestone.strip():
        raise UsageError("--milestone: empty; give the milestone value of the issues, e.g. --milestone 1.10")
    repo = await repo_root(Path(args.repo or ".").absolute())
    explicit = Path(args.config).absolute() if args.config else None
    config, config_path = load_config(repo, explicit)
    if args.jobs is not None:
        config = config.model_copy(update={"loop": config.loop.model_copy(update={"jobs": args.jobs})})
    found, notes = issues.resolve_dependencies(issues.load_issues(repo, config.issues))
    for note in notes:
        _note(note)
    selected = issues.select(found, milestone=args.milestone, only=_wanted_issues(args.issue) or None)
    if not selected:
        raise NotFound(
            f"no issue has {config.issues.milestone_field}: {args.milestone} "
            f"({len(found)} issue file(s) matched {', '.join(config.issues.globs)})"
        )
    plan = dag.plan(selected, order=config.issues.order)
    rank = dag.dependency_rank(found)
    if args.dry_run:
        return await _dry_run(repo, config_path, config, args, plan, rank)
    return await _execute(repo, config_path, config, args, plan, rank)


async def _preflight(
    repo: Path, config: Any, args: argparse.Namespace, plan: list[Any], rank: dict[str, int], bridge: Any
) -> Any:
    """The preflight (orchestrator.preflight) of the plan, from the kernel and the branches that exist."""
    from orchestrator import preflight
    from orchestrator.worktrees import Worktrees

    known = await bridge.runs_by_issue() if bridge is not None else {}
    worktrees = await Worktrees.open(repo, config.worktrees)
    return known, preflight.check(
        plan, known=known, existing_branches=await worktrees.existing_branches(), narrowed=bool(args.issue),
        rank=rank,
    )  # fmt: skip


async def _dry_run(
    repo: Path,
    config_path: Path,
    config: Any,
    args: argparse.Namespace,
    plan: list[Any],
    rank: dict[str, int],
) -> int:
    from orchestrator import runlock
    from orchestrator.git import common_dir
    from orchestrator.kernel_bridge import KernelBridge

    holder = runlock.holder(await common_dir(repo))
    if holder is not None:
        _note(f"an orchestrator is running in this repository now ({holder.describe()}); states may change")
    await _warn_uncommitted(repo, None)
    bridge = await KernelBridge.open(repo, readonly=True)
    try:
        known, checked = await _preflight(repo, config, args, plan, rank, bridge)
    finally:
        if bridge is not None:
            await bridge.close()
    return _print_plan(repo, config_path, args, plan, config.worktrees.branch_prefix, known, checked)


def _plan_state(run: Any, issue_id: str, checked: Any, args: argparse.Namespace, prefix: str) -> str:
    """What a run would do with the issue, including what the preflight would refuse."""
    if run is None:
        state = "new"
    elif run.status == "completed":
        return "passed earlier (skipped)"
    elif run.status == "active":
        state = f"resume at {run.phase}"
    else:
        state = f"{run.status} earlier (held; --retry to run again)"
    if issue_id in checked.foreign:
        state += (
            f"; adopts existing branch {prefix}{issue_id} (--adopt)"
            if args.adopt
            else f"; refused: branch {prefix}{issue_id} exists, not made by the orchestrator (--adopt)"
        )
    unpassed = checked.unpassed.get(issue_id)
    if unpassed:
        deps = ", ".join(f"{dep} ({why})" for dep, why in unpassed)
        state += (
            f"; starts without dependency {deps} (--ignore-deps)"
            if args.ignore_deps
            else f"; refused: dependency {deps} has not passed (--ignore-deps)"
        )
    return state


def _print_plan(
    repo: Path,
    config_path: Path,
    args: argparse.Namespace,
    plan: list[Any],
    prefix: str,
    known: dict[str, Any],
    checked: Any,
) -> int:
    from kernel.terminal import one_line

    rows = []
    for order, entry in enumerate(plan, 1):
        run = known.get(entry.issue.id)
        rows.append(
            {
                "order": order,
                "issue": entry.issue.id,
                "title": entry.issue.title,
                "path": str(entry.issue.path.relative_to(repo)),
                "waits_for": list(entry.waits_for),
                "external": list(entry.external),
                "merges": checked.merges.get(entry.issue.id, []),
                "state": _plan_state(run, entry.issue.id, checked, args, prefix),
                "run_id": run.id if run else None,
                "branch": f"{prefix}{entry.issue.id}",
            }
        )
    if args.json:
        sys.stdout.write(
            dumps({"milestone": args.milestone, "config": str(config_path), "plan": rows}) + "\n"
        )
        return 0
    sys.stdout.write("order\tissue\ttitle\twaits_for\tstate\tbranch\n")
    for row in rows:
        waits = ",".join(row["waits_for"]) or "-"
        if row["external"]:
            waits += f" (outside: {','.join(row['external'])})"
        cells = (row["order"], row["issue"], row["title"], waits, row["state"], row["branch"])
        sys.stdout.write("\t".join(one_line(str(cell)) for cell in cells) + "\n")
    return 0


async def _execute(
    repo: Path,
    config_path: Path,
    config: Any,
    args: argparse.Namespace,
    plan: list[Any],
    rank: dict[str, int],
) -> int:
    from kernel.db import DB_DIR as KDB_DIR
    from orchestrator import runlock
    from orchestrator.kernel_bridge import KernelBridge
    from orchestrator.logs import LogLayout, write_json
    from orchestrator.loop import Options, Orchestrator, exit_code
    from orchestrator.prompts import load_templates
    from orchestrator.runners import make_runner
    from orchestrator.status import StatusBoard
    from orchestrator.worktrees import Worktrees, exclude_locally

    runner = make_runner(_anchor_program(repo, config.runner))
    templates = load_templates(repo, config.prompts)
    worktrees = await Worktrees.open(repo, config.worktrees)
    with runlock.hold(worktrees.common_dir, repo, args.milestone):
        peek = await KernelBridge.open(repo, readonly=True)
        try:
            _, checked = await _preflight(repo, config, args, plan, rank, peek)
        finally:
            if peek is not None:
                await peek.close()
        checked.refuse(adopt=args.adopt, ignore_deps=args.ignore_deps, prefix=config.worktrees.branch_prefix)
        await _warn_uncommitted(repo, worktrees.start_head)
        exclude_locally(worktrees.common_dir, f"/{KDB_DIR}/")
        logs = LogLayout((repo / config.logs.root).resolve())
        bridge = await KernelBridge.open(repo)
        assert bridge is not None
        started_at = time.time()
        try:
            with Interrupts() as interrupts:
                console = OutputConsole(interrupts.output_closed, stderr=args.json, highlight=False)
                board = StatusBoard(console, max_cycles=config.loop.max_cycles, show_output=not args.quiet)
                with board:
                    orchestrator = Orchestrator(
                        repo=repo, config=config, bridge=bridge, worktrees=worktrees, runner=runner,
                        logs=logs, board=board, templates=templates,
                        options=Options(
                            milestone=args.milestone, retry=args.retry, dependency_rank=rank,
                            adopt=frozenset(checked.foreign) if args.adopt else frozenset(),
                        ),
                    )  # fmt: skip
                    reports = await orchestrator.run(plan)
                interrupts.loop_done()
                code = exit_code(reports)
                summary = _summary(args, repo, config_path, started_at, code, reports)
                write_json(logs.summary, summary)
                write_json(logs.summary_of(started_at), summary)
                _print_summary(console, repo, reports, logs.summary)
                if args.json:
                    sys.stdout.write(dumps(summary) + "\n")
        finally:
            await bridge.close()
    return code


class OutputConsole(Console):
    """The run's console: when the reader of its output goes away (a pager quit), it goes quiet and
    says so once, so the run stops as for Ctrl-C (every attempt in flight recorded as cancelled)
    instead of rich's default, exiting the process with 1 in the middle of the loop."""

    def __init__(self, on_closed: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_closed: Callable[[], None] | None = on_closed

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self.file.fileno())  # later writes by anyone (the JSON summary) go nowhere
        os.close(devnull)
        if self._on_closed is not None:
            self._on_closed()
            self._on_closed = None


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP while the loop runs.

    The first stops the run gracefully: every agent's process group is ended, each interrupted
    attempt is recorded as cancelled and the summary is written (exit 130); the next run resumes.
    A second one only says so (cancelling again would cut that clean-up short); a third quits at
    once, leaving the next run to clean up as it does after a crash.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.count = 0
        self.task = asyncio.current_task()
        self.loop = asyncio.get_running_loop()

    def __enter__(self) -> Interrupts:
        for sig in self.SIGNALS:
            self.loop.add_signal_handler(sig, self._received)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in self.SIGNALS:
            self.loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)  # the summary is written: only closing up remains (run())

    def loop_done(self) -> None:
        """From now on a signal must not cancel anything: the summary is being written."""
        self.task = None

    def output_closed(self) -> None:
        """The reader of our output went away (a pager quit): stop as for a first Ctrl-C, so every
        attempt in flight is recorded as cancelled instead of being left `running`."""
        if self.count == 0:
            self._received()

    def _received(self) -> None:
        self.count += 1
        if self.count == 1 and self.task is not None:
            self.task.cancel()
        elif self.count == 2:
            sys.stderr.write(
                f"{PROG}: stopping: ending the agents and recording where each issue stood; "
                "interrupt again to quit at once\n"
            )
        elif self.count >= 3:
            sys.stderr.write(f"{PROG}: quitting at once; the next run cleans up after this one\n")
            sys.stderr.flush()
            os._exit(130)


def _summary(
    args: argparse.Namespace, repo: Path, config_path: Path, started_at: float, code: int, reports: list[Any]
) -> dict[str, Any]:
    return {
        "milestone": args.milestone,
        "repo": str(repo),
        "config": str(config_path),
        "started_at": round(started_at, 3),
        "finished_at": round(time.time(), 3),
        "exit_code": code,
        "counts": {
            o: sum(1 for r in reports if r.outcome == o) for o in sorted({r.outcome for r in reports})
        },
        "issues": [r.to_json() for r in reports],
    }


def _print_summary(console: Console, repo: Path, reports: list[Any], summary_path: Path) -> None:
    from kernel.terminal import one_line
    from orchestrator.status import GLYPHS, format_elapsed

    table = Table(
        title="orchestrator summary",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("", "issue", "outcome", "fixes", "tokens in/out", "time", "branch"):
        table.add_column(column, no_wrap=column != "issue")
    table.add_column("reason", ratio=1, overflow="fold")
    for r in reports:
        glyph, color = GLYPHS.get(str(r.outcome), ("?", "magenta"))
        reason = r.reason
        if r.worktree:
            kept = Path(r.worktree)
            reason += f"; worktree kept: {kept.relative_to(repo) if kept.is_relative_to(repo) else kept}"
        table.add_row(
            Text(glyph, style=color),
            Text(one_line(r.issue_id)),
            Text(str(r.outcome), style=color),
            Text(str(r.fix_cycles)),
            Text(f"{r.input_tokens:,}/{r.output_tokens:,}"),
            Text(format_elapsed(r.duration_s)),
            Text(one_line(r.branch or "-")),
            Text(one_line(reason)),
        )
    console.print(table)
    console.print(Text(f"summary: {summary_path}"))


# -- entry ------------------------------------------------------------------------------------------


def run(argv: Sequence[str]) -> int:
    parser = build_parser()
    saved = {sig: signal.getsignal(sig) for sig in Interrupts.SIGNALS}
    verbose = False
    try:
        args = clikit.parse(parser, argv)
        if args.command is None:
            sys.stdout.write(parser.format_help())
            return 3
        verbose = bool(getattr(args, "verbose", False))  # `plugin` alone has no --verbose
        handlers = {"init": cmd_init, "run": cmd_run, "plugin": cmd_plugin}
        return asyncio.run(handlers[args.command](args))
    except BaseException as exc:  # the contract: one line and the exit code, never a traceback
        return clikit.report(PROG, exc, verbose=verbose)
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def main() -> None:
    clikit.finish(run(sys.argv[1:]))
