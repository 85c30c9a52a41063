"""Coding-agent runners: one async subprocess wrapper (base) and one output adapter per agent."""

from __future__ import annotations

from orchestrator.config import RunnerConfig
from orchestrator.runners.base import Runner


def make_runner(config: RunnerConfig) -> Runner:
    """The runner for `runner.kind`; imports only the adapter in use."""
    if config.kind == "codex":
        from orchestrator.runners.codex import CodexRunner

        return CodexRunner(config)
    if config.kind == "claude":
        from orchestrator.runners.claude import ClaudeRunner

        return ClaudeRunner(config)
    from orchestrator.runners.command import CommandRunner

    return CommandRunner(config)
