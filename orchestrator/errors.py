"""The orchestrator's own kinds of error, in the kernel's one hierarchy (`kernel.errors`).

Every error carries its exit code (0 every selected issue passed, 1 expected negative, 2 unexpected
trouble, 3 usage) and `kernel.clikit` turns it into the one-line message and exit status, as for
`ic` and `bigend`. Usage errors of the orchestrator are plain `kernel.errors.UsageError`s; what is
here adds data or a name the loop and the tests tell apart.
"""

from __future__ import annotations

from kernel.errors import KernelError, Refused, UsageError


class ConfigMissing(UsageError):
    """No orchestrator.toml/.json at the repository root: the repository has not opted in (exit 3)."""


class CycleError(UsageError):
    """The dependency graph of the selected issues has a cycle; `members` names every issue on it."""

    def __init__(self, members: list[str]) -> None:
        super().__init__(f"dependency cycle between issues: {', '.join(members)}")
        self.members = members


class GitError(KernelError):
    """A git command failed; the message carries git's own first line of complaint (exit 2)."""


class RunnerMissing(KernelError):
    """The configured runner program is not there or not executable (exit 2)."""


class MergeConflict(Refused):
    """A dependency's branch does not merge cleanly into a new issue branch: the issue is blocked (exit 1)."""

    def __init__(self, issue_id: str, branch: str, other: str, order: list[str], files: list[str]) -> None:
        shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
        super().__init__(
            f"merging {other} into {branch} conflicts in {shown} (dependencies merged in order: "
            f"{', '.join(order)}); settle the conflict on {other} and rerun"
        )
        self.issue_id = issue_id
        self.other = other
        self.files = files


class BranchNotOurs(Refused):
    """An issue branch exists that the orchestrator did not create: refused unless --adopt (exit 1)."""


class DependencyNotPassed(Refused):
    """`--issue X` while a dependency of X has not passed: refused unless --ignore-deps (exit 1)."""
