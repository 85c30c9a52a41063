"""Pure selectors over a KernelState: which runs each view lists, in which order, and lookups by id.

No widget and no Rich here: the same rules serve the dashboard, the project view, the benchmark and the
tests, and they can be checked without running an app. How the selected things look is `render`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping

from bigend.core.snapshot import KernelState, ProjectState, RunInfo
from bigend.core.status import UnifiedStatus

DAY = 24 * 3600
RECENT_ERROR_WINDOW = 3600

# Blocked and Error first: the question the app answers is "what needs me now".
STATUS_RANK: dict[UnifiedStatus, int] = {
    UnifiedStatus.BLOCKED: 0,
    UnifiedStatus.ERROR: 1,
    UnifiedStatus.ACTIVE: 2,
    UnifiedStatus.WAITING: 3,
    UnifiedStatus.UNKNOWN: 4,
    UnifiedStatus.DONE: 5,
}
_LIVE = frozenset({UnifiedStatus.ACTIVE, UnifiedStatus.BLOCKED, UnifiedStatus.WAITING})


def run_order(run: RunInfo) -> tuple[int, int, str]:
    """Status rank, then newest first; stable while a run only changes phase."""
    return (STATUS_RANK[run.unified], -run.created_at, run.id)


def is_live(run: RunInfo) -> bool:
    return run.status == "active" or run.unified in _LIVE


def finished_at(run: RunInfo) -> int:
    return run.completed_at or run.updated_at


def is_portfolio_copy(project: ProjectState, run: RunInfo) -> bool:
    """A child run as the portfolio database mirrors it; the child's own project shows the real one."""
    return project.portfolio and run.parent_run_id is not None


def attention_reason(project: ProjectState, run: RunInfo) -> str | None:
    """Why a run needs the operator, in one line: its blocked reason, or for a failed or cancelled run
    its raw status and the reason of its newest event that gives one. None for everything else."""
    if run.unified is UnifiedStatus.BLOCKED:
        return run.blocked_reason or "blocked"
    if run.unified is not UnifiedStatus.ERROR:
        return None
    reason = next((e.reason for e in reversed(project.events) if e.run_id == run.id and e.reason), None)
    return f"{run.status}: {reason}" if reason else run.status


def portfolio_children(project: ProjectState) -> dict[str, int]:
    """Parent run id -> how many child runs it coordinates (empty for an ordinary project)."""
    if not project.portfolio:
        return {}
    counts: dict[str, int] = {}
    for run in project.runs:
        if run.parent_run_id is not None:
            counts[run.parent_run_id] = counts.get(run.parent_run_id, 0) + 1
    return counts


def child_runs(state: KernelState, project: ProjectState) -> dict[str, tuple[str, RunInfo]]:
    """For a portfolio project: copy run id -> (child project name, the run as that project has it).

    The copy carries the parent's goal, so the run list labels it by its project; the child project's
    own row is the truth (the copy follows it one relay tick later).
    """
    if not project.portfolio:
        return {}
    copies = {r.id for r in project.runs if r.parent_run_id is not None}
    found: dict[str, tuple[str, RunInfo]] = {}
    for other in state.projects:
        if other.portfolio:
            continue
        for run in other.runs:
            if run.parent_run_id is not None and run.id in copies:
                found[run.id] = (other.name, run)
    return found


def child_projects(state: KernelState, project: ProjectState) -> dict[str, str]:
    """For a portfolio project: copy run id -> name of the child project (labels of the run list)."""
    return {run_id: name for run_id, (name, _) in child_runs(state, project).items()}


def portfolio_members(
    state: KernelState, project: ProjectState | None, run: RunInfo | None
) -> list[tuple[str, RunInfo]]:
    """(child project name, child run) of each child of a portfolio parent; empty for any other run."""
    if project is None or run is None or not project.portfolio or run.parent_run_id is not None:
        return []
    found = child_runs(state, project)
    members = [found.get(r.id, (r.id, r)) for r in project.runs if r.parent_run_id == run.id]
    members.sort(key=lambda member: member[0])
    return members


def dashboard_runs(state: KernelState, now: float) -> list[tuple[ProjectState, RunInfo]]:
    """Live runs of every project plus runs that failed in the last hour, Blocked and Error first.

    Portfolio copies of child runs are left out: each child already appears once, in its project.
    """
    rows = [
        (project, run)
        for project in state.projects
        for run in project.runs
        if not is_portfolio_copy(project, run)
        and (
            is_live(run)
            or (run.unified is UnifiedStatus.ERROR and now - finished_at(run) <= RECENT_ERROR_WINDOW)
        )
    ]
    rows.sort(key=lambda pr: (*run_order(pr[1])[:2], pr[0].name, pr[1].id))
    return rows


def project_runs(
    project: ProjectState, now: float, show_all: bool, child_names: Mapping[str, str] | None = None
) -> list[RunInfo]:
    """The run list: live runs and runs finished in the last 24 h, or everything with `show_all`.

    In a portfolio project each parent comes first and its child runs right under it, by child
    project name (`child_names`, from child_projects) as the parent's detail lists them.
    """
    runs = [r for r in project.runs if show_all or is_live(r) or now - finished_at(r) <= DAY]
    if not project.portfolio:
        runs.sort(key=run_order)
        return runs
    parents = {r.id: r for r in project.runs if r.parent_run_id is None}
    names = child_names or {}

    def grouped(run: RunInfo) -> tuple[object, ...]:
        parent = parents.get(run.parent_run_id or "", run)
        return (*run_order(parent), parent is not run, names.get(run.id, ""), run.id)

    runs.sort(key=grouped)
    return runs


def blocked_count(project: ProjectState) -> int:
    """Blocked runs of the project itself (a portfolio's copies are counted in their own projects)."""
    return sum(
        1 for r in project.runs if r.unified is UnifiedStatus.BLOCKED and not is_portfolio_copy(project, r)
    )


def find_project(state: KernelState, path: str | None) -> ProjectState | None:
    if path is None:
        return None
    return next((p for p in state.projects if p.path == path), None)


def find_run(project: ProjectState | None, run_id: str | None) -> RunInfo | None:
    if project is None or run_id is None:
        return None
    return next((r for r in project.runs if r.id == run_id), None)
