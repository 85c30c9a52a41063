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


class MergeConflict(OrchestratorError):
    """A dependency's branch does not merge cleanly into a new issue branch: the issue is blocked (exit 1)."""

    exit_code = 1

    def __init__(self, issue_id: str, branch: str, other: str, order: list[str], files: list[str]) -> None:
        shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
        super().__init__(
            f"merging {other} into {branch} conflicts in {shown} (dependencies merged in order: "
            f"{', '.join(order)}); settle the conflict on {other} and rerun"
        )
        self.issue_id = issue_id
        self.other = other
        self.files = files


class BranchNotOurs(OrchestratorError):
    """An issue branch exists that the orchestrator did not create: refused unless --adopt (exit 1)."""

    exit_code = 1


class DependencyNotPassed(OrchestratorError):
    """`--issue X` while a dependency of X has not passed: refused unless --ignore-deps (exit 1)."""

    exit_code = 1
