"""`ic run agent add|list|update` and `ic run artifact add|list`, wired into the run group by run.py."""

from __future__ import annotations

import argparse
from typing import Any

from kernel.cli.common import Ctx, Parser, add_subcommands, parse_json_arg

AGENT_HEADER = ("id", "name", "type", "status", "dispatch_id")
ARTIFACT_HEADER = ("id", "phase", "kind", "path", "content_hash", "metadata")


def build(subs: argparse._SubParsersAction[Parser]) -> dict[str, Parser]:
    """Add the `agent` and `artifact` groups to the run subcommands; return their parsers."""
    agent = subs.add_parser("agent", help="agents working on a run", description="Agents working on a run.")
    agent_subs = add_subcommands(agent)
    p = agent_subs.add_parser("add", help="register an agent on a run")
    p.add_argument("run")
    p.add_argument("--name", required=True)
    p.add_argument("--type", dest="agent_type", help="e.g. codex, claude")
    p.add_argument("--status", default="active", help="active (default) | completed | failed")
    p.add_argument("--dispatch", dest="dispatch_id", help="the dispatch running this agent")
    p.set_defaults(handler=_agent_add)
    p = agent_subs.add_parser("list", help="list a run's agents")
    p.add_argument("run")
    p.set_defaults(handler=_agent_list)
    p = agent_subs.add_parser("update", help="change an agent's status (or dispatch, or name)")
    p.add_argument("agent")
    p.add_argument("--status", help="active | completed | failed")
    p.add_argument("--dispatch", dest="dispatch_id")
    p.add_argument("--name")
    p.set_defaults(handler=_agent_update)

    artifact = subs.add_parser(
        "artifact", help="artifacts produced by a run's phases", description="Artifacts of a run's phases."
    )
    artifact_subs = add_subcommands(artifact)
    p = artifact_subs.add_parser("add", help="record an artifact (a readable file is hashed)")
    p.add_argument("run")
    p.add_argument("--path", required=True, help="the artifact file (or any reference)")
    p.add_argument("--phase", help="the phase it belongs to (default: the run's current phase)")
    p.add_argument("--kind", help="file (default) | verdict | any label")
    p.add_argument("--verdict", help="pass | fail (makes it a verdict)")
    p.add_argument("--metadata", help="JSON object stored with the artifact")
    p.set_defaults(handler=_artifact_add)
    p = artifact_subs.add_parser("list", help="list a run's artifacts")
    p.add_argument("run")
    p.add_argument("--phase", help="only artifacts of this phase")
    p.set_defaults(handler=_artifact_list)
    return {"agent": agent, "artifact": artifact}


def _agent_row(a: Any) -> tuple[Any, ...]:
    return (a.id, a.name, a.agent_type, a.status, a.dispatch_id)


def _agent_add(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    runtrack.check_status(args.status)
    agent = runtrack.add_agent(
        ctx.conn(), args.run, name=args.name, agent_type=args.agent_type, status=args.status,
        dispatch_id=args.dispatch_id,
    )  # fmt: skip
    ctx.emit(agent.to_json(), agent.id)
    return 0


def _agent_list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack
    from kernel.cli import output

    agents = runtrack.list_agents(ctx.conn(), args.run)
    ctx.emit([a.to_json() for a in agents], lambda: output.emit_table(map(_agent_row, agents), AGENT_HEADER))
    return 0


def _agent_update(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    if args.status is not None:
        runtrack.check_status(args.status)
    agent = runtrack.update_agent(
        ctx.conn(), args.agent, status=args.status, dispatch_id=args.dispatch_id, name=args.name
    )
    ctx.emit(agent.to_json(), f"{agent.id}\t{agent.status}")
    return 0


def _artifact_row(a: Any) -> tuple[Any, ...]:
    return (a.id, a.phase, a.kind, a.path, a.content_hash, a.metadata)


def _artifact_add(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack

    metadata = None if args.metadata is None else parse_json_arg(args.metadata, "metadata")
    artifact = runtrack.add_artifact(
        ctx.conn(), args.run, path=args.path, phase=args.phase, kind=args.kind, verdict=args.verdict,
        metadata=metadata,
    )  # fmt: skip
    ctx.emit(artifact.to_json(), artifact.id)
    return 0


def _artifact_list(args: argparse.Namespace, ctx: Ctx) -> int:
    from kernel import runtrack
    from kernel.cli import output

    found = runtrack.list_artifacts(ctx.conn(), args.run, phase=args.phase)
    ctx.emit(
        [a.to_json() for a in found], lambda: output.emit_table(map(_artifact_row, found), ARTIFACT_HEADER)
    )
    return 0
