"""`orchestrator`: run a milestone's issues through dev -> review -> fix in an opted-in repository.

    orchestrator init                       write a commented orchestrator.toml at the repository root
    orchestrator run --milestone M [--issue ID] [--config PATH] [--dry-run] [--jobs N] [--retry]

Exit codes: 0 every selected issue passed (or was passed before); 1 an expected negative (an issue
capped, over budget, blocked, held or busy; nothing in the milestone; config already exists);
2 unexpected trouble (git, kernel database, I/O, a runner's infrastructure failure); 3 usage
(no or invalid config, bad issue files, unknown issue, dependency cycle); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.errors import OrchestratorError, UsageError

PROG = "orchestrator"
EXIT_CODES = (
    "exit codes: 0 all selected issues passed; 1 an issue capped, over budget, blocked, held or busy;\n"
    "2 git/database/I-O trouble or a runner's infrastructure failure; 3 usage (config, issues, cycle);\n"
    "130 interrupted. `orchestrator run` resumes where an interrupted run stopped."
)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 3, like `ic`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Run a milestone's issues through dev -> review -> fix in an opted-in repository.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
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
    run.add_argument("--jobs", type=int, help="issues worked on at once (overrides loop.jobs)")
    run.add_argument(
        "--retry", action="store_true", help="run again issues capped or failed in an earlier run"
    )
    run.add_argument("--quiet", action="store_true", help="do not stream the agents' output")
    run.add_argument("--json", action="store_true", help="print the plan or the summary as JSON on stdout")
    return parser


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# -- init -------------------------------------------------------------------------------------------


async def cmd_init(args: argparse.Namespace) -> int:
    from orchestrator.config import CONFIG_NAMES, EXAMPLE
    from orchestrator.git import repo_root

    repo = await repo_root(Path(args.repo or ".").absolute())
    target = repo / CONFIG_NAMES[0]
    other = repo / CONFIG_NAMES[1]
    if (target.exists() or other.exists()) and not args.force:
        existing = target if target.exists() else other
        sys.stderr.write(f"{PROG}: {existing} already exists; edit it, or pass --force to overwrite\n")
        return 1
    target.write_text(EXAMPLE, encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
    return 0


# -- run --------------------------------------------------------------------------------------------


def _wanted_issues(raw: list[str]) -> list[str]:
    return [part.strip() for item in raw for part in item.split(",") if part.strip()]


def _preflight_runner(argv0: str, repo: Path, key: str) -> None:
    """Fail before any worktree or run exists when the agent program is not there."""
    found = (
        (repo / argv0).exists() if ("/" in argv0 and not Path(argv0).is_absolute()) else shutil.which(argv0)
    )
    if not found:
        raise OrchestratorError(f"runner program {argv0!r} not found; install it or set {key} in the config")


async def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator import dag, issues
    from orchestrator.config import load_config
    from orchestrator.git import repo_root

    repo = await repo_root(Path(args.repo or ".").absolute())
    explicit = Path(args.config).absolute() if args.config else None
    config, config_path = load_config(repo, explicit)
    if args.jobs is not None:
        if not 1 <= args.jobs <= 16:
            raise UsageError(f"--jobs must be 1..16, got {args.jobs}")
        config = config.model_copy(update={"loop": config.loop.model_copy(update={"jobs": args.jobs})})
    found = issues.load_issues(repo, config.issues)
    selected = issues.select(found, milestone=args.milestone, only=_wanted_issues(args.issue) or None)
    if not selected:
        sys.stderr.write(
            f"{PROG}: no issue has {config.issues.milestone_field}: {args.milestone} "
            f"({len(found)} issue file(s) matched {', '.join(config.issues.globs)})\n"
        )
        return 1
    plan = dag.plan(selected, order=config.issues.order)
    if args.dry_run:
        return _print_plan(repo, config_path, args, plan, config.worktrees.branch_prefix)
    return await _execute(repo, config_path, config, args, plan)


def _print_plan(repo: Path, config_path: Path, args: argparse.Namespace, plan: list[Any], prefix: str) -> int:
    from orchestrator.kernel_bridge import KernelBridge

    bridge = KernelBridge.open_readonly(repo)
    known = bridge.runs_by_issue() if bridge is not None else {}
    if bridge is not None:
        bridge.close()
    rows = []
    for order, entry in enumerate(plan, 1):
        run = known.get(entry.issue.id)
        if run is None:
            state = "new"
        elif run.status == "completed":
            state = "passed earlier (skipped)"
        elif run.status == "active":
            state = f"resume at {run.phase}"
        else:
            state = f"{run.status} earlier (held; --retry to run again)"
        rows.append(
            {
                "order": order,
                "issue": entry.issue.id,
                "title": entry.issue.title,
                "path": str(entry.issue.path.relative_to(repo)),
                "waits_for": list(entry.waits_for),
                "external": list(entry.external),
                "state": state,
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
        title = row["title"].replace("\t", " ")
        sys.stdout.write(
            f"{row['order']}\t{row['issue']}\t{title}\t{waits}\t{row['state']}\t{row['branch']}\n"
        )
    return 0


async def _execute(
    repo: Path, config_path: Path, config: Any, args: argparse.Namespace, plan: list[Any]
) -> int:
    from orchestrator.kernel_bridge import KernelBridge
    from orchestrator.logs import LogLayout, write_json
    from orchestrator.loop import Options, Orchestrator, exit_code
    from orchestrator.prompts import load_templates
    from orchestrator.runners import make_runner
    from orchestrator.runners.base import Invocation
    from orchestrator.status import StatusBoard
    from orchestrator.worktrees import Worktrees

    runner = make_runner(config.runner)
    probe = Invocation("", repo, "probe", "dev", 0, 1, repo)
    key = "runner.command" if config.runner.kind == "command" else "runner.executable"
    _preflight_runner(runner.argv(probe)[0], repo, key)
    templates = load_templates(repo, config.prompts)
    worktrees = await Worktrees.open(repo, config.worktrees)
    logs = LogLayout((repo / config.logs.root).resolve())
    console = Console(stderr=args.json, highlight=False)
    bridge = KernelBridge.open(repo)
    started_at = time.time()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with StatusBoard(console, max_cycles=config.loop.max_cycles, show_output=not args.quiet) as board:
            orchestrator = Orchestrator(
                repo=repo, config=config, bridge=bridge, worktrees=worktrees, runner=runner, logs=logs,
                board=board, templates=templates, options=Options(milestone=args.milestone, retry=args.retry),
            )  # fmt: skip
            reports = await orchestrator.run(plan)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        bridge.close()
    code = exit_code(reports)
    summary = {
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
    write_json(logs.summary, summary)
    _print_summary(console, reports, logs.summary)
    if args.json:
        sys.stdout.write(dumps(summary) + "\n")
    return code


def _print_summary(console: Console, reports: list[Any], summary_path: Path) -> None:
    from orchestrator.status import GLYPHS, format_elapsed, format_tokens

    table = Table(title="orchestrator summary", title_justify="left")
    for column in ("", "issue", "outcome", "cycles", "tokens", "time", "branch / worktree", "reason"):
        table.add_column(column, overflow="fold")
    for r in reports:
        glyph, color = GLYPHS.get(str(r.outcome), ("?", "magenta"))
        where = r.worktree or r.branch or "-"
        table.add_row(
            Text(glyph, style=color),
            Text(r.issue_id),
            Text(str(r.outcome), style=color),
            Text(str(r.fix_cycles)),
            Text(format_tokens(r.input_tokens, r.output_tokens)),
            Text(format_elapsed(r.duration_s)),
            Text(where),
            Text(r.reason),
        )
    console.print(table)
    console.print(Text(f"summary: {summary_path}"))


# -- entry ------------------------------------------------------------------------------------------


def run(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
        if args.command is None:
            sys.stdout.write(parser.format_help())
            return 3
        handler = cmd_init if args.command == "init" else cmd_run
        return asyncio.run(handler(args))
    except OrchestratorError as exc:
        sys.stderr.write(f"{PROG}: {exc.message}\n")
        return exc.exit_code
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:  # the contract is one line, never a traceback
        sys.stderr.write(f"{PROG}: unexpected {type(exc).__name__}: {exc}\n")
        return 2


def main() -> None:
    code = run(sys.argv[1:])
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(code)
