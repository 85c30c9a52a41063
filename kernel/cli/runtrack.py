"""`ic run agent add|list|update` and `ic run artifact add|list`, in the run group (kernel/cli/run.py)."""

from __future__ import annotations

import argparse

from kernel import clikit
from kernel.cli import output
from kernel.cli.common import Ctx
from kernel.clikit import Command, Parser, json_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AGENT_HEADER = ("id", "name", "type", "status", "dispatch_id")
ARTIFACT_HEADER = ("id", "phase", "kind", "path", "content_hash", "metadata")


def _run_arg(p: Parser) -> None:
    p.add_argument("run", metavar="RUN", help="the run id")


def _agent_add_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--name", required=True, metavar="TEXT", help="who the agent is (e.g. coder)")
    p.add_argument("--type", dest="agent_type", metavar="TYPE", help="e.g. codex, claude")
    p.add_argument("--status", default="active", metavar="STATUS", help="active (default)|completed|failed")
    p.add_argument("--dispatch", dest="dispatch_id", metavar="ID", help="the dispatch running this agent")


def _agent_update_options(p: Parser) -> None:
    p.add_argument("agent", metavar="AGENT", help="the agent id (from `ic run agent add`)")
    p.add_argument("--status", metavar="STATUS", help="active | completed | failed")
    p.add_argument("--dispatch", dest="dispatch_id", metavar="ID", help="the dispatch running this agent")
    p.add_argument("--name", metavar="TEXT")


def _artifact_add_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--path", required=True, metavar="PATH", help="the artifact file (or any reference)")
    p.add_argument("--phase", metavar="PHASE", help="the phase it belongs to (default: the current phase)")
    p.add_argument("--kind", metavar="KIND", help="file (default) | verdict | any label")
    p.add_argument("--verdict", metavar="pass|fail", help="makes it a verdict (kind verdict)")
    p.add_argument("--metadata", metavar="JSON", help="JSON object stored with the artifact")


def _artifact_list_options(p: Parser) -> None:
    _run_arg(p)
    p.add_argument("--phase", metavar="PHASE", help="only artifacts of this phase")


def _agent_row(a: Any) -> tuple[Any, ...]:
    return (a.id, a.name, a.agent_type, a.status, a.dispatch_id)


def _agent_add(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    agent = runtrack.add_agent(
        ctx.run_conn(args.run), args.run, name=args.name, agent_type=args.agent_type, status=args.status,
        dispatch_id=args.dispatch_id,
    )  # fmt: skip
    ctx.emit(agent.to_json(), agent.id)
    return 0


def _agent_list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    agents = runtrack.list_agents(ctx.run_conn(args.run), args.run)
    ctx.emit([a.to_json() for a in agents], lambda: output.emit_table(map(_agent_row, agents), AGENT_HEADER))
    return 0


def _agent_update(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    agent = runtrack.update_agent(
        ctx.conn(), args.agent, status=args.status, dispatch_id=args.dispatch_id, name=args.name
    )
    ctx.emit(agent.to_json(), f"{agent.id}\t{agent.status}")
    return 0


def _artifact_row(a: Any) -> tuple[Any, ...]:
    return (a.id, a.phase, a.kind, a.path, a.content_hash, a.metadata)


def _artifact_add(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    metadata = None if args.metadata is None else json_value(args.metadata, "metadata")
    artifact = runtrack.add_artifact(
        ctx.run_conn(args.run), args.run, path=args.path, phase=args.phase, kind=args.kind,
        verdict=args.verdict, metadata=metadata,
    )  # fmt: skip
    if artifact.content_hash is None:  # a typo in a file name would otherwise pass unnoticed
        clikit.say(
            "ic", f"note: {artifact.path} is not a file here; recorded as a reference, without a content hash"
        )
    ctx.emit(artifact.to_json(), artifact.id)
    return 0


def _artifact_list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    found = runtrack.list_artifacts(ctx.run_conn(args.run), args.run, phase=args.phase)
    ctx.emit(
        [a.to_json() for a in found], lambda: output.emit_table(map(_artifact_row, found), ARTIFACT_HEADER)
    )
    return 0


# The `agent` and `artifact` subcommands of `ic run` (kernel/cli/run.py adds them to its table).
COMMANDS: dict[str, Command] = {
    "agent": Command(
        "agents working on a run", description="Agents working on a run.",
        commands={
            "add": Command("register an agent on a run", _agent_add, _agent_add_options,
                           description="Register an agent."),
            "list": Command("list a run's agents", _agent_list, _run_arg,
                            description="A run's agents, oldest first."),
            "update": Command("change an agent's status (or dispatch, or name)", _agent_update,
                              _agent_update_options,
                              description="Change an agent's status, dispatch or name (at least one)."),
        },
    ),
    "artifact": Command(
        "artifacts produced by a run's phases", description="Artifacts of a run's phases.",
        commands={
            "add": Command("record an artifact (a readable file is hashed)", _artifact_add,
                           _artifact_add_options,
                           description="Record an artifact of a phase. A path to a file is stored absolute "
                           "with the sha256 of its content; any other text (a URL, a note) is stored as "
                           "given, without a hash."),
            "list": Command("list a run's artifacts", _artifact_list, _artifact_list_options,
                            description="List a run's artifacts, oldest first."),
        },
    ),
}  # fmt: skip
