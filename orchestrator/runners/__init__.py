"""What the orchestrator runs for a phase attempt, per `runner.kind`: argv, stdin, parser, environment.

The agent definitions (argv shape, the output parser, how token usage reads) are the kernel's,
`kernel.dispatch.agents`, the ones the dispatch supervisor uses too, so a phase recorded by the
orchestrator and a dispatch recorded by `ic dispatch spawn` count tokens the same way. This module
adds only what the orchestrator chooses:

- what the agent may do in each phase. Dev and fix change the worktree and run its tests: Codex
  `--sandbox workspace-write`, Claude `--permission-mode acceptEdits` with Bash allowed (headless
  Claude denies every tool that would need a prompt). Reviews only read: Codex `--sandbox read-only`,
  Claude with the edit tools denied and only read-only git commands allowed. (Whatever a reviewer
  changes anyway is discarded by the loop.) These flags are refused in `runner.args`;
- how a review answers: the verdict schema (`orchestrator.review`), given as Codex `--output-schema
  FILE`, Claude `--json-schema SCHEMA`, and to a command runner as `{verdict_schema}`;
- the program (`runner.executable`), the model and extra arguments, Claude's streaming output
  format (so the operator sees progress), a command runner's placeholders, and the environment.

Codex and Claude read the prompt on stdin (no size limit); a command runner gets it through
`{prompt}` or `{prompt_file}` and reads /dev/null.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kernel.dispatch import agents
from kernel.dispatch.agents import claude, codex, command
from kernel.dispatch.agents.output import AgentParser
from orchestrator.config import RunnerConfig
from orchestrator.runners.base import Invocation

REVIEW = "review"

# Claude Code's file-editing tools, denied to a reviewer; and the commands a reviewer may run.
CLAUDE_EDIT_TOOLS = "Edit,MultiEdit,Write,NotebookEdit"
CLAUDE_REVIEW_TOOLS = "Read,Grep,Glob,Bash(git diff:*),Bash(git log:*),Bash(git show:*),Bash(git status:*)"

PHASE_ARGS: dict[tuple[str, bool], tuple[str, ...]] = {
    # (kind, is_review) -> what the agent may do in that phase
    ("codex", False): ("--sandbox", "workspace-write"),
    ("codex", True): ("--sandbox", "read-only"),
    ("claude", False): ("--permission-mode", "acceptEdits", "--allowedTools", "Bash"),
    ("claude", True): (
        "--permission-mode", "default", "--disallowedTools", CLAUDE_EDIT_TOOLS,
        "--allowedTools", CLAUDE_REVIEW_TOOLS,
    ),
    ("command", False): (),
    ("command", True): (),
}  # fmt: skip

VERDICT_CHANNEL = {
    "codex": "codex exec --output-schema: the final message",
    "claude": "claude --json-schema: the result's structured_output",
    "command": 'the {"type": "result"} line',
}


class Runner:
    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.kind: str = config.kind

    def argv(self, inv: Invocation) -> list[str]:
        review = inv.phase == REVIEW
        model = self.config.model
        extra = [*PHASE_ARGS[(self.kind, review)], *self.config.args]
        schema = inv.verdict_schema if review else None
        if self.kind == "codex":
            program = self.config.executable or [codex.PROGRAM]
            return codex.argv(
                program=program, model=model, extra_args=extra,
                output_schema=str(schema) if schema is not None else None,
            )  # fmt: skip
        if self.kind == "claude":
            program = self.config.executable or [claude.PROGRAM]
            schema_text = None
            if schema is not None:
                schema_text = json.dumps(
                    json.loads(schema.read_text(encoding="utf-8")), separators=(",", ":")
                )
            return claude.argv(
                program=program, output_format="stream-json", model=model, extra_args=extra,
                json_schema=schema_text,
            )  # fmt: skip
        values = {
            "{prompt}": inv.prompt, "{prompt_file}": str(inv.prompt_file), "{issue}": inv.issue_id,
            "{phase}": inv.phase, "{cycle}": str(inv.cycle), "{attempt}": str(inv.attempt),
            "{worktree}": str(inv.worktree), "{model}": model or "", "{run_id}": inv.run_id or "",
            "{verdict_schema}": str(schema) if schema is not None else "",
        }  # fmt: skip
        return command.fill(self.config.command or [], values) + extra

    def stdin(self, inv: Invocation) -> Path | None:
        """The file the agent reads on stdin: its prompt (codex, claude), or None for /dev/null."""
        return None if self.kind == "command" else inv.prompt_file

    def parser(self, phase: str) -> AgentParser:
        """The kernel's parser for this kind; a Codex review decodes its final message (--output-schema)."""
        return agents.parser_for(self.kind, structured=phase == REVIEW)

    @property
    def verdict_channel(self) -> str:
        return VERDICT_CHANNEL[self.kind]

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
            "ORCHESTRATOR_VERDICT_SCHEMA": str(inv.verdict_schema) if inv.verdict_schema else "",
        }


def make_runner(config: RunnerConfig) -> Runner:
    return Runner(config)
