"""What the orchestrator runs for a phase attempt, per `runner.kind`: argv, stdin, parser, environment.

The agent definitions (argv shape, the output parser, how token usage reads) are the kernel's,
`kernel.dispatch.agents`, the ones the dispatch supervisor uses too, so a phase recorded by the
orchestrator and a dispatch recorded by `ic dispatch spawn` count tokens the same way. This module
adds only what the orchestrator chooses: the program (`runner.executable`), the model and extra
arguments, Claude's streaming output format (so the operator sees progress), a command runner's
placeholders, and the environment. Codex and Claude read the prompt on stdin (no size limit); a
command runner gets it through `{prompt}` or `{prompt_file}` and reads /dev/null.
"""

from __future__ import annotations

import os
from pathlib import Path

from kernel.dispatch import agents
from kernel.dispatch.agents import claude, codex, command
from kernel.dispatch.agents.output import AgentParser
from orchestrator.config import RunnerConfig
from orchestrator.runners.base import Invocation

# Used when `runner.args` is not set: without them the agent could not edit the worktree unattended.
DEFAULT_ARGS: dict[str, tuple[str, ...]] = {
    "codex": ("--full-auto",),
    "claude": ("--permission-mode", "acceptEdits"),
    "command": (),
}


class Runner:
    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.kind: str = config.kind

    @property
    def extra_args(self) -> list[str]:
        return list(DEFAULT_ARGS[self.kind]) if self.config.args is None else list(self.config.args)

    def argv(self, inv: Invocation) -> list[str]:
        model = self.config.model
        if self.kind == "codex":
            program = self.config.executable or [codex.PROGRAM]
            return codex.argv(program=program, model=model, extra_args=self.extra_args)
        if self.kind == "claude":
            program = self.config.executable or [claude.PROGRAM]
            return claude.argv(
                program=program, output_format="stream-json", model=model, extra_args=self.extra_args
            )
        values = {
            "{prompt}": inv.prompt, "{prompt_file}": str(inv.prompt_file), "{issue}": inv.issue_id,
            "{phase}": inv.phase, "{cycle}": str(inv.cycle), "{attempt}": str(inv.attempt),
            "{worktree}": str(inv.worktree), "{model}": model or "", "{run_id}": inv.run_id or "",
        }  # fmt: skip
        return command.fill(self.config.command or [], values) + self.extra_args

    def stdin(self, inv: Invocation) -> Path | None:
        """The file the agent reads on stdin: its prompt (codex, claude), or None for /dev/null."""
        return None if self.kind == "command" else inv.prompt_file

    def parser(self) -> AgentParser:
        return agents.parser_for(self.kind)

    def env(self, inv: Invocation) -> dict[str, str]:
        """The agent's environment: ours, the config's `env`, and where it stands in the loop."""
        return {
            **os.environ,
            **self.config.env,
            "ORCHESTRATOR_ISSUE": inv.issue_id,
            "ORCHESTRATOR_PHASE": inv.phase,
            "ORCHESTRATOR_CYCLE": str(inv.cycle),
            "ORCHESTRATOR_ATTEMPT": str(inv.attempt),
            "ORCHESTRATOR_PROMPT_FILE": str(inv.prompt_file),
            "ORCHESTRATOR_WORKTREE": str(inv.worktree),
            "ORCHESTRATOR_RUN_ID": inv.run_id or "",
        }


def make_runner(config: RunnerConfig) -> Runner:
    return Runner(config)
