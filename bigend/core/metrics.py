"""The dashboard's headline numbers, computed from the unified status model only.

Each project's contribution (`ProjectTally`) is counted while the project's read builds its runs
(reader.build_project_state), so combining a thousand projects after one of them changed is a sum of
small tuples, not a walk over every run.

Definitions (what "exact" is checked against):
- active_runs: runs the kernel reports `active` (the count of `ic run list --active`), Blocked included;
- active_dispatches: dispatches not yet terminal (Active, Waiting or Blocked: `ic dispatch list --active`);
- blocked_agents: runs that are Blocked, plus Blocked dispatches that belong to no listed run;
- total_tokens_in/out: the sum over every dispatch of every project;
- kernel_errors: project path -> why its last read failed; projects_ok = projects_total - errors.
A portfolio database's copies of child runs are not counted there: each child counts in its project.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bigend.core.snapshot import Metrics


@dataclass(frozen=True, slots=True)
class ProjectTally:
    active_runs: int = 0
    active_dispatches: int = 0
    blocked_agents: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


EMPTY_TALLY = ProjectTally()


def combine(tallies: Iterable[ProjectTally], errors: dict[str, str], projects_total: int) -> Metrics:
    active_runs = active_dispatches = blocked = tokens_in = tokens_out = 0
    for t in tallies:
        active_runs += t.active_runs
        active_dispatches += t.active_dispatches
        blocked += t.blocked_agents
        tokens_in += t.tokens_in
        tokens_out += t.tokens_out
    return Metrics(
        active_runs=active_runs,
        active_dispatches=active_dispatches,
        blocked_agents=blocked,
        total_tokens_in=tokens_in,
        total_tokens_out=tokens_out,
        kernel_errors=dict(errors),
        projects_ok=projects_total - len(errors),
        projects_total=projects_total,
    )
