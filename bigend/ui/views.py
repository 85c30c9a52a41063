"""What each view shows, computed from a KernelState: selection and ordering, no widgets involved.

Kept apart from the widgets so the same rules serve the dashboard, the project view, the benchmark and
the tests, and so they can be checked without running an app.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bigend.core.snapshot import EventInfo, KernelState, ProjectState, RunInfo
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


def project_runs(project: ProjectState, now: float, show_all: bool) -> list[RunInfo]:
    """The run list: live runs and runs finished in the last 24 h, or everything with `show_all`."""
    runs = [r for r in project.runs if show_all or is_live(r) or now - finished_at(r) <= DAY]
    runs.sort(key=run_order)
    return runs


def blocked_count(project: ProjectState) -> int:
    return sum(1 for r in project.runs if r.unified is UnifiedStatus.BLOCKED)


def find_project(state: KernelState, path: str | None) -> ProjectState | None:
    if path is None:
        return None
    return next((p for p in state.projects if p.path == path), None)


def find_run(project: ProjectState | None, run_id: str | None) -> RunInfo | None:
    if project is None or run_id is None:
        return None
    return next((r for r in project.runs if r.id == run_id), None)


def all_events(projects: Iterable[ProjectState]) -> list[EventInfo]:
    """Events of every project merged in time order (ties by project, then id)."""
    merged = [e for p in projects for e in p.events]
    merged.sort(key=lambda e: (e.timestamp, e.project, e.id))
    return merged


def project_names(state: KernelState) -> dict[str, str]:
    return {p.path: p.name for p in state.projects}


def iter_runs(state: KernelState) -> Iterator[tuple[ProjectState, RunInfo]]:
    for project in state.projects:
        for run in project.runs:
            yield project, run
