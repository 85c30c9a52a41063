"""The agent kinds the kernel and the orchestrator run: argv, output parsing and token usage, one home each.

- `codex`: `codex exec --json`, prompt on stdin (`codex.py`);
- `claude`: `claude -p --output-format json|stream-json`, prompt on stdin (`claude.py`);
- `command`: any other program, given as an argv template, speaking a small JSON-lines protocol
  (`command.py`).

Both users go through the functions below: the dispatch supervisor reads a finished dispatch's output
file with `read_output(agent_type, path)`, `ic dispatch spawn` takes its default command lines from
`default_argv`, and the orchestrator's runners build their argv with `codex.argv` / `claude.argv` /
`command.fill` and parse their live output with `parser_for`. Shared types: `usage.TokenUsage` (the
one meaning of the token columns) and `output.AgentResult`.

A dispatch type other than codex and claude (`ic dispatch spawn --type=aider`) is read as `command`.
Standard library only: the dispatch supervisor imports this.
"""

from __future__ import annotations

from pathlib import Path

from kernel.dispatch.agents.output import AgentParser, AgentResult, read_file


def parser_for(kind: str, *, structured: bool = False) -> AgentParser:
    """A fresh parser for an agent kind; `structured`: the run asked for schema-constrained output."""
    if kind == "codex":
        from kernel.dispatch.agents.codex import CodexParser

        return CodexParser(structured=structured)
    if kind == "claude":
        from kernel.dispatch.agents.claude import ClaudeParser

        return ClaudeParser()
    from kernel.dispatch.agents.command import CommandParser

    return CommandParser()


def read_output(kind: str, path: str | Path) -> AgentResult | None:
    """Everything an agent of this kind said in its output file; None when the file cannot be read."""
    return read_file(parser_for(kind), path)


def default_argv(kind: str, *, model: str | None = None) -> list[str] | None:
    """The built-in command line of `ic dispatch spawn --type=KIND` (prompt on stdin); None if none."""
    if kind == "codex":
        from kernel.dispatch.agents import codex

        return codex.argv(model=model)
    if kind == "claude":
        from kernel.dispatch.agents import claude

        return claude.argv(model=model)
    return None
