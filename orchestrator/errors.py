"""Orchestrator errors carry their exit code, like the kernel's, so the CLI never has to guess.

Exit codes: 0 every selected issue passed, 1 an expected negative (an issue capped or blocked,
another orchestrator running in the repository), 2 unexpected trouble (git, database, I/O, a
runner's infrastructure failure), 3 usage (no or bad config, bad issue files, unknown issue,
dependency cycle).
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """A one-line message plus the exit code the CLI reports."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(OrchestratorError):
    """The operator's input is wrong: flags, config, issue files, cycles."""

    exit_code = 3


class ConfigMissing(UsageError):
    """No orchestrator.toml/.json at the repository root: the repository has not opted in."""


class GitError(OrchestratorError):
    """A git command failed; the message carries git's own first line of complaint."""

    exit_code = 2


class CycleError(UsageError):
    """The dependency graph of the selected issues has a cycle; `members` names every issue on it."""

    def __init__(self, members: list[str]) -> None:
        super().__init__(f"dependency cycle between issues: {', '.join(members)}")
        self.members = members
