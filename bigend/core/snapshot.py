"""KernelState: the whole picture Bigend shows, as pydantic models.

The aggregator builds it, the TUI renders it, and `bigend --once --json` prints it, so all three agree
by construction. docs/contracts/bigend-state.schema.json is generated from `KernelState`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bigend.core.status import UnifiedStatus


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenSummary(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    total_tokens: int = 0


class RunInfo(_Model):
    id: str
    project: str = Field(description="canonical path of the project the run belongs to")
    goal: str
    status: str = Field(description="the kernel's raw run status")
    unified: UnifiedStatus
    phase: str
    phases: list[str]
    complexity: int
    parent_run_id: str | None = None
    scope_id: str | None = None
    created_at: int
    updated_at: int
    completed_at: int | None = None
    phase_entered_at: int = Field(description="timestamp of the last phase event (time in phase)")
    blocked_reason: str | None = None
    tokens: TokenSummary = TokenSummary()


class DispatchInfo(_Model):
    id: str
    project: str
    run_id: str | None = None
    agent_type: str
    name: str | None = None
    model: str | None = None
    status: str
    unified: UnifiedStatus
    pid: int | None = None
    exit_code: int | None = None
    error: str | None = None
    created_at: int
    started_at: int | None = None
    ended_at: int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    cost_usd: float | None = None


class EventInfo(_Model):
    synthetic_id: str = Field(description="kernel:<project>:<event id>, unique across projects")
    id: int
    project: str
    run_id: str | None = None
    source: str
    type: str
    kind: str = Field(description="the KernelEvent member name, or Unknown")
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    timestamp: int


class ProjectState(_Model):
    path: str
    name: str
    has_intercore: bool
    markers: list[str] = []
    runs: list[RunInfo] = []
    dispatches: list[DispatchInfo] = []
    events: list[EventInfo] = []
    tokens: TokenSummary = TokenSummary()
    error: str | None = Field(default=None, description="why the last read failed; data is the last good")
    refreshed_at: float | None = None
    portfolio: bool = Field(
        default=False, description="a workspace whose .clavain holds portfolio.db (portfolio parent runs)"
    )
    runs_total: int = Field(
        default=0, description="runs in the database; `runs` holds every active one and the newest finished"
    )
    dispatches_total: int = Field(
        default=0, description="dispatches in the database; `dispatches` holds every live one and the newest"
    )


class Metrics(_Model):
    active_runs: int = 0
    active_dispatches: int = 0
    blocked_agents: int = 0
    total_tokens_in: int = 0
    total_tokens_out: int = 0
    kernel_errors: dict[str, str] = {}
    projects_ok: int = 0
    projects_total: int = 0


class KernelState(_Model):
    generated_at: float
    roots: list[str]
    projects: list[ProjectState]
    metrics: Metrics
    root_errors: dict[str, str] = Field(
        default={}, description="roots that could not be scanned: root -> why (missing, not readable)"
    )
