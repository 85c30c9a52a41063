"""A fixed KernelState for pilot and snapshot tests: four projects, one whose read failed.

Built by hand (not by the core's aggregator) so the screenshots stay the same whatever the core's demo
generator does; every timestamp is relative to NOW, which tests also use as the app's frozen clock.
"""

from __future__ import annotations

from dataclasses import replace

from bigend.core.snapshot import (
    DispatchInfo,
    EventInfo,
    KernelState,
    Metrics,
    ProjectState,
    RunInfo,
    TokenSummary,
)
from bigend.core.status import UnifiedStatus, unify_status

NOW = 1_767_225_600  # 2026-01-01 00:00:00 UTC
CHAIN = [
    "brainstorm",
    "brainstorm-reviewed",
    "strategized",
    "planned",
    "executing",
    "review",
    "polish",
    "reflect",
    "done",
]
ROOT = "/srv/work"


def run(
    project: str,
    run_id: str,
    goal: str,
    phase: str,
    *,
    status: str = "active",
    unified: UnifiedStatus | None = None,
    in_phase: int = 600,
    age: int = 7200,
    complexity: int = 3,
    finished_ago: int | None = None,
    blocked_reason: str | None = None,
    tokens: tuple[int, int] = (0, 0),
) -> RunInfo:
    return RunInfo(
        id=run_id,
        project=f"{ROOT}/{project}",
        goal=goal,
        status=status,
        unified=unified or unify_status(status),
        phase=phase,
        phases=CHAIN,
        complexity=complexity,
        created_at=NOW - age,
        updated_at=NOW - (finished_ago or in_phase),
        completed_at=None if finished_ago is None else NOW - finished_ago,
        phase_entered_at=NOW - in_phase,
        blocked_reason=blocked_reason,
        tokens=TokenSummary(
            input_tokens=tokens[0], output_tokens=tokens[1], total_tokens=tokens[0] + tokens[1]
        ),
    )


def dispatch(
    project: str,
    dispatch_id: str,
    run_id: str | None,
    status: str,
    *,
    agent: str = "codex",
    name: str | None = None,
    model: str | None = "gpt-5-codex",
    started_ago: int = 900,
    ended_ago: int | None = None,
    tokens: tuple[int, int] = (0, 0),
) -> DispatchInfo:
    return DispatchInfo(
        id=dispatch_id,
        project=f"{ROOT}/{project}",
        run_id=run_id,
        agent_type=agent,
        name=name,
        model=model,
        status=status,
        unified=unify_status(status),
        created_at=NOW - started_ago,
        started_at=NOW - started_ago,
        ended_at=None if ended_ago is None else NOW - ended_ago,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
    )


def event(
    project: str,
    event_id: int,
    run_id: str | None,
    source: str,
    type_: str,
    ago: int,
    *,
    kind: str = "PhaseAdvance",
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
) -> EventInfo:
    path = f"{ROOT}/{project}"
    return EventInfo(
        synthetic_id=f"kernel:{path}:{event_id}",
        id=event_id,
        project=path,
        run_id=run_id,
        source=source,
        type=type_,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        timestamp=NOW - ago,
    )


def project(
    name: str,
    runs: list[RunInfo],
    dispatches: list[DispatchInfo],
    events: list[EventInfo],
    *,
    error: str | None = None,
) -> ProjectState:
    tin = sum(d.input_tokens for d in dispatches)
    tout = sum(d.output_tokens for d in dispatches)
    return ProjectState(
        path=f"{ROOT}/{name}",
        name=name,
        has_intercore=True,
        runs=runs,
        dispatches=dispatches,
        events=events,
        tokens=TokenSummary(input_tokens=tin, output_tokens=tout, total_tokens=tin + tout),
        error=error,
        refreshed_at=float(NOW),
    )


def build_state(now: int = NOW, *, extra_goal: str | None = None) -> KernelState:
    """The fixture; `extra_goal` adds one more active run to Interverse (markup-injection tests)."""
    interverse_runs = [
        run(
            "interverse",
            "k3v9qa1m",
            "Migrate the billing service to the new ledger API",
            "review",
            status="active",
            unified=UnifiedStatus.BLOCKED,
            in_phase=5 * 3600,
            age=9 * 3600,
            blocked_reason="gate: review needs a passing verdict",
            tokens=(8200, 2100),
        ),
        run(
            "interverse",
            "p0x7c2de",
            "Add rate limiting to the public gateway",
            "executing",
            in_phase=90 * 60,
            age=4 * 3600,
            tokens=(4250, 1100),
        ),
        run(
            "interverse",
            "z8m1r5tt",
            "Document the on-call runbook",
            "done",
            status="completed",
            in_phase=2 * 3600,
            age=30 * 3600,
            finished_ago=2 * 3600,
        ),
        run(
            "interverse",
            "old00001",
            "Spike: evaluate a message queue",
            "done",
            status="completed",
            in_phase=3 * 86400,
            age=5 * 86400,
            finished_ago=3 * 86400,
        ),
    ]
    if extra_goal is not None:
        interverse_runs.append(run("interverse", "inject01", extra_goal, "planned", in_phase=60, age=120))
    interverse = project(
        "interverse",
        interverse_runs,
        [
            dispatch("interverse", "d1a2b3c4", "k3v9qa1m", "completed", name="reviewer",
                     model="claude-sonnet", agent="claude", started_ago=6 * 3600, ended_ago=5 * 3600,
                     tokens=(8200, 2100)),
            dispatch("interverse", "d5e6f7g8", "p0x7c2de", "running", started_ago=20 * 60,
                     tokens=(4250, 1100)),
        ],
        [
            event("interverse", 101, "k3v9qa1m", "phase", "advance", 5 * 3600, from_state="executing",
                  to_state="review"),
            event("interverse", 102, "k3v9qa1m", "dispatch", "completed", 5 * 3600 - 30,
                  kind="DispatchCompleted", from_state="running", to_state="completed"),
            event("interverse", 103, "p0x7c2de", "phase", "advance", 90 * 60, from_state="planned",
                  to_state="executing"),
            event("interverse", 104, "k3v9qa1m", "phase", "block", 40 * 60, kind="PhaseBlock",
                  from_state="review", to_state="polish", reason="review needs a passing verdict"),
            event("interverse", 105, "p0x7c2de", "dispatch", "running", 20 * 60, kind="Unknown",
                  from_state="spawned", to_state="running"),
        ],
    )  # fmt: skip
    atlas = project(
        "atlas",
        [
            run("atlas", "a1tl4s00", "Rewrite the search indexer in Rust", "planned", in_phase=20 * 60,
                age=3 * 3600, complexity=2, tokens=(0, 0)),
            run("atlas", "f4il3d00", "Upgrade the ORM to v3", "executing", status="failed", in_phase=3600,
                age=6 * 3600, finished_ago=30 * 60),
        ],
        [dispatch("atlas", "e9f8g7h6", "f4il3d00", "failed", started_ago=3600, ended_ago=30 * 60,
                  tokens=(0, 0))],
        [
            event("atlas", 7, "a1tl4s00", "phase", "skip", 21 * 60, kind="PhaseSkip",
                  from_state="brainstorm", to_state="planned", reason="complexity 2"),
            event("atlas", 8, "f4il3d00", "phase", "fail", 30 * 60, kind="Unknown",
                  from_state="executing", to_state="failed", reason="dispatch e9f8g7h6 exited 1"),
            event("atlas", 9, None, "tmux", "session.attached", 10 * 60, kind="Unknown", reason="pane %3"),
            event("atlas", 10, None, "messaging", "mention", 5 * 60, kind="Unknown", reason="@ops ping"),
        ],
    )  # fmt: skip
    harbor = project(
        "harbor",
        [run("harbor", "h4rb0r01", "Ship the container image signing pipeline", "brainstorm",
             status="active", unified=UnifiedStatus.WAITING, in_phase=70, age=70, complexity=1)],
        [],
        [event("harbor", 1, "h4rb0r01", "phase", "created", 70, kind="Unknown", to_state="brainstorm")],
    )  # fmt: skip
    legacy = project("legacy-tools", [], [], [], error="database is locked (timed out after 2.5 s)")
    projects = [atlas, harbor, interverse, legacy]
    tokens_in = sum(p.tokens.input_tokens for p in projects)
    tokens_out = sum(p.tokens.output_tokens for p in projects)
    return KernelState(
        generated_at=float(now),
        roots=[ROOT],
        projects=projects,
        metrics=Metrics(
            active_runs=4,
            active_dispatches=1,
            blocked_agents=1,
            total_tokens_in=tokens_in,
            total_tokens_out=tokens_out,
            kernel_errors={f"{ROOT}/legacy-tools": "database is locked (timed out after 2.5 s)"},
            projects_ok=3,
            projects_total=4,
        ),
    )


def frozen_clock() -> float:
    return float(NOW)


def with_extra_events(
    state: KernelState, count: int, *, project_name: str = "atlas", start_id: int = 1000
) -> KernelState:
    """`state` with `count` more dispatch events appended to one project (one per second, newest last)."""
    extra = [
        event(project_name, start_id + n, "a1tl4s00", "dispatch", "tokens", count - n, kind="TokensRecorded",
              reason=f"tokens update {n}")
        for n in range(count)
    ]  # fmt: skip
    projects = [
        replace(p, events=[*p.events, *extra]) if p.name == project_name else p for p in state.projects
    ]
    return replace(state, projects=projects)


def with_portfolio(state: KernelState) -> KernelState:
    """`state` plus a portfolio workspace: parent `p0rtf0l1` coordinating child runs in atlas and harbor.

    The workspace's database holds the parent and a copy of each child (one relay tick behind: the atlas
    copy still says `planned`, the atlas project already `executing`); each child also lives in its
    own project, where it is the truth.
    """
    goal = "Ship SSO across atlas and harbor"
    parent = run("workspace", "p0rtf0l1", goal, "planned", in_phase=3 * 3600, age=26 * 3600)
    real = {
        "atlas": run("atlas", "c1atlas0", goal, "executing", in_phase=30 * 60, age=26 * 3600),
        "harbor": run("harbor", "c2harbr0", goal, "strategized", unified=UnifiedStatus.BLOCKED,
                      in_phase=2 * 3600, age=26 * 3600, blocked_reason="upstream atlas is not at planned"),
    }  # fmt: skip
    real = {name: replace(r, parent_run_id=parent.id) for name, r in real.items()}
    copies = [
        replace(real["atlas"], project=f"{ROOT}/workspace", phase="planned"),
        replace(real["harbor"], project=f"{ROOT}/workspace"),
    ]
    workspace = replace(project("workspace", [parent, *copies], [], []), portfolio=True)
    projects = [replace(p, runs=[*p.runs, real[p.name]]) if p.name in real else p for p in state.projects]
    return replace(state, projects=[*projects, workspace])
