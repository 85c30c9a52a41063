"""What a run checks before it starts anything, and what `--dry-run` reports the same way.

- A branch named like an issue branch (`issue/7`) that the orchestrator did not create (no run of
  that issue in the kernel) is somebody's work: it is not adopted silently. The run refuses, naming
  it, unless `--adopt` says to work on it.
- `--issue X` narrows the run to X, so X's dependencies are not run first: it refuses while one of
  them has not passed, unless `--ignore-deps` says to start without their work.
- Which passed dependency branches a new issue branch starts from (merged in dependency order).
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel.model import Run
from orchestrator.dag import PlanEntry
from orchestrator.errors import BranchNotOurs, DependencyNotPassed
from orchestrator.issues import Issue
from orchestrator.kernel_bridge import run_meta


def passed(run: Run | None) -> bool:
    return run is not None and run.status == "completed"


def describe_state(run: Run | None) -> str:
    """A dependency's standing, for refusals: `no run yet`, `failed`, `at review`..."""
    if run is None:
        return "no run yet"
    return f"at {run.phase}" if run.status == "active" else run.status


@dataclass(frozen=True)
class Preflight:
    foreign: tuple[str, ...]  # issues whose branch exists but was not made by the orchestrator
    unpassed: dict[str, list[tuple[str, str]]]  # --issue X -> [(dependency, its state)] not passed
    merges: dict[str, list[str]]  # issue -> the passed dependencies a new branch starts from, in order

    def refuse(self, *, adopt: bool, ignore_deps: bool, prefix: str) -> None:
        """Raise when the run must not start as asked (see the module docstring)."""
        if self.foreign and not adopt:
            names = ", ".join(f"{prefix}{issue}" for issue in self.foreign)
            raise BranchNotOurs(
                f"branch {names} exists but was not created by the orchestrator (no run of the issue in "
                "the kernel); pass --adopt to work on it as it is, or rename it"
            )
        if self.unpassed and not ignore_deps:
            issue, deps = next(iter(self.unpassed.items()))
            named = ", ".join(f"{dep} ({state})" for dep, state in deps)
            first = ",".join([*(dep for dep, _ in deps), issue])
            raise DependencyNotPassed(
                f"--issue {issue}: its dependency {named} has not passed; run it first (--issue {first}) "
                "or pass --ignore-deps to start without its work"
            )


def check(
    plan: list[PlanEntry],
    *,
    known: dict[str, Run],
    existing_branches: set[str],
    narrowed: bool,
    rank: dict[str, int],
) -> Preflight:
    """The preflight of `plan`, from the kernel's runs (`known`) and the issue branches that exist."""
    foreign = tuple(
        entry.issue.id
        for entry in plan
        if entry.issue.id in existing_branches and entry.issue.id not in known
    )
    unpassed: dict[str, list[tuple[str, str]]] = {}
    if narrowed:
        selected = {entry.issue.id for entry in plan}
        for entry in plan:
            missing = [
                (dep, describe_state(known.get(dep)))
                for dep in entry.issue.depends_on
                if dep not in selected and not passed(known.get(dep))
            ]
            if missing:
                unpassed[entry.issue.id] = missing
    merges = {entry.issue.id: dependencies_to_merge(entry.issue, known, rank) for entry in plan}
    return Preflight(foreign, unpassed, merges)


def dependencies_to_merge(issue: Issue, known: dict[str, Run], rank: dict[str, int]) -> list[str]:
    """The issue's dependencies that have passed, in dependency order."""
    deps = sorted(issue.depends_on, key=lambda d: rank.get(d, len(rank)))
    return [dep for dep in deps if passed(known.get(dep))]


def branch_of(issue_id: str, known: dict[str, Run], prefix: str) -> str:
    """The branch an issue's passed work is on: as its run recorded it, else by the prefix."""
    run = known.get(issue_id)
    recorded = run_meta(run).get("branch") if run is not None else None
    return str(recorded) if recorded else f"{prefix}{issue_id}"
