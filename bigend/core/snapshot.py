"""KernelState: the whole picture Bigend shows, as frozen, slotted dataclasses.

The aggregator builds it, the TUI renders it, and `bigend --once --json` prints it, so all three agree
by construction. These are plain dataclasses because a full refresh builds tens of thousands of them
(DESIGN 6); pydantic stays at the JSON edge (`statejson.py`: the `--once --json` document and
docs/contracts/bigend-state.schema.json come from a TypeAdapter over these classes). A field's
`metadata["description"]` is its description in that schema.

Lists are lists (not tuples) so the JSON shape and the widgets' comparisons stay as they were; nobody
mutates them: a changed project gets new objects (`dataclasses.replace`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bigend.core.status import UnifiedStatus


def _described(text: str) -> dict[str, str]:
    return {"description": text}


class Freshness(StrEnum):
    """How far a project's data can be trusted, decided by the aggregator (widgets only show it).

    Order of precedence: gone, error, unread, stale, fresh.
    """

    UNREAD = "unread"  # not read yet: there is no data to show (never "0 runs")
    FRESH = "fresh"  # read, and confirmed current within the last few refresh intervals
    STALE = "stale"  # read, but not confirmed current for more than STALE_AFTER_INTERVALS intervals
    ERROR = "error"  # the last read failed: `error` says why; the data shown is the last good read
    GONE = "gone"  # the database or the project directory disappeared: kept until it returns or is dismissed


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSummary:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    total_tokens: int = 0


ZERO_TOKENS = TokenSummary()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    id: str
    project: str = field(metadata=_described("canonical path of the project the run belongs to"))
    goal: str
    status: str = field(metadata=_described("the kernel's raw run status"))
    unified: UnifiedStatus
    phase: str
    phases: list[str]
    complexity: int
    parent_run_id: str | None = None
    scope_id: str | None = None
    created_at: int
    updated_at: int
    completed_at: int | None = None
    phase_entered_at: int = field(metadata=_described("timestamp of the last phase event (time in phase)"))
    blocked_reason: str | None = None
    tokens: TokenSummary = ZERO_TOKENS


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchInfo:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class EventInfo:
    synthetic_id: str = field(metadata=_described("kernel:<project>:<event id>, unique across projects"))
    id: int
    project: str
    run_id: str | None = None
    source: str
    type: str
    kind: str = field(metadata=_described("the KernelEvent member name, or Unknown"))
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    timestamp: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectState:
    path: str
    name: str
    has_intercore: bool
    markers: list[str] = field(default_factory=list)
    runs: list[RunInfo] = field(default_factory=list)
    dispatches: list[DispatchInfo] = field(default_factory=list)
    events: list[EventInfo] = field(default_factory=list)
    tokens: TokenSummary = ZERO_TOKENS
    error: str | None = field(
        default=None, metadata=_described("why the last read failed; data is the last good")
    )
    refreshed_at: float | None = field(
        default=None,
        metadata=_described("when the data shown was read (unix seconds, start of the read); null: never"),
    )
    freshness: Freshness = field(
        default=Freshness.UNREAD,
        metadata=_described(
            "unread (no data yet), fresh, stale (not confirmed current for several refresh intervals), "
            "error (see error; data is the last good read) or gone (see gone_since)"
        ),
    )
    gone_since: float | None = field(
        default=None,
        metadata=_described(
            "when the project's database or directory was found missing (unix seconds); it stays listed, "
            "with its last data, until it returns or is dismissed"
        ),
    )
    portfolio: bool = field(
        default=False,
        metadata=_described("a workspace whose .clavain holds portfolio.db (portfolio parent runs)"),
    )
    runs_total: int = field(
        default=0,
        metadata=_described("runs in the database; `runs` holds every active one and the newest finished"),
    )
    dispatches_total: int = field(
        default=0,
        metadata=_described("dispatches in the database; `dispatches` holds every live one and the newest"),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    active_runs: int = 0
    active_dispatches: int = 0
    blocked_agents: int = 0
    total_tokens_in: int = 0
    total_tokens_out: int = 0
    kernel_errors: dict[str, str] = field(default_factory=dict)
    projects_ok: int = 0
    projects_total: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelState:
    generated_at: float = field(metadata=_described("when this picture was put together (unix seconds)"))
    roots: list[str]
    projects: list[ProjectState]
    metrics: Metrics
    root_errors: dict[str, str] = field(
        default_factory=dict,
        metadata=_described("roots that could not be scanned: root -> why (missing, not readable)"),
    )
