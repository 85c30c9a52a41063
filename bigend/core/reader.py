"""Read one project into a ProjectState: the aggregator's unit of work, run on a worker thread.

`read_project` runs the kernel's read model (`kernel.readmodel`: one read transaction, named rows) on
the project's read-only connection and turns the rows into snapshot objects. The choices are about
speed, because a refresh reads whole projects (DESIGN 6):
- SQL does the aggregation (token sums and dispatch counts per run, whose total is the project's; each
  active run's last phase event) and returns only the columns the snapshot shows;
- nothing is built twice: a section (runs, dispatches, token sums, events) whose rows equal the
  previous read's keeps its previous objects as a whole (one list comparison, in C), and within a
  changed section a row identical to one of the previous read gets its previous, immutable object
  back (`Reuse`). A forced re-read of an unchanged project therefore builds one ProjectState;
- Python's cycle collector is paused for the length of a read (see `_cycle_collector_paused`).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from sqlite3 import Connection

from bigend.core.discovery import Project
from bigend.core.kernelevents import parse_kernel_event
from bigend.core.metrics import ProjectTally
from bigend.core.snapshot import (
    ZERO_TOKENS,
    DispatchInfo,
    EventInfo,
    Freshness,
    ProjectState,
    RunInfo,
    TokenSummary,
)
from bigend.core.status import UnifiedStatus, unify_status
from kernel.readmodel import (
    DispatchRow,
    EventRow,
    Limits,
    ProjectRows,
    RunRow,
    RunTokensRow,
    read_project_rows,
)

_LIVE_DISPATCH = frozenset({UnifiedStatus.ACTIVE, UnifiedStatus.WAITING, UnifiedStatus.BLOCKED})


@dataclass(frozen=True, slots=True)
class ProjectRead:
    state: ProjectState
    tally: ProjectTally


def read_project(conn: Connection, project: Project, limits: Limits, reuse: Reuse) -> ProjectRead:
    """Read and build one project. `reuse` must not be shared with another read running at the same time."""
    refreshed_at = time.time()  # the data is as of the start of the read (its read transaction)
    with _cycle_collector_paused():
        rows = read_project_rows(conn, limits)
        state, tally = build_project_state(project, rows, reuse=reuse, refreshed_at=refreshed_at)
    return ProjectRead(state, tally)


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector (process-wide) for the length of one read.

    A read allocates thousands of row tuples and snapshot objects, which makes the collector run every
    700 allocations and now and then walk every object the state holds, only to find nothing: these
    objects form no cycles and are freed by reference counting. Pausing it cut a cold refresh's CPU by
    about a sixth (benchmarks/aggregator.py). Collection resumes (if it was on) as soon as the read
    ends, whatever happened.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Memo:
    """Caches of repeated values: status strings, phase chains (JSON text -> list), event kinds."""

    LIMIT = 1024  # distinct values kept per cache; hook events may use any type, so bound them

    def __init__(self) -> None:
        self.status: dict[str, UnifiedStatus] = {}
        self.phases: dict[str, list[str]] = {}
        self.kinds: dict[tuple[str, str], str] = {}

    def kind(self, source: str, event_type: str) -> str:
        """The KernelEvent member name (Enum's `.name` is a slow descriptor; events repeat a few types)."""
        pair = (source, event_type)
        found = self.kinds.get(pair)
        if found is None:
            if len(self.kinds) >= self.LIMIT:
                self.kinds.clear()
            found = self.kinds[pair] = parse_kernel_event(source, event_type).name
        return found

    def unified(self, raw: str) -> UnifiedStatus:
        found = self.status.get(raw)
        if found is None:
            if len(self.status) >= self.LIMIT:
                self.status.clear()
            found = self.status[raw] = unify_status(raw)
        return found

    def chain(self, text: str | None) -> list[str]:
        if not text:
            return []
        found = self.phases.get(text)
        if found is None:
            try:
                loaded = json.loads(text)
            except ValueError:
                loaded = []
            if len(self.phases) >= self.LIMIT:
                self.phases.clear()
            found = self.phases[text] = [str(p) for p in loaded] if isinstance(loaded, list) else []
        return found


@dataclass(frozen=True, slots=True)
class _Dispatches:
    """The dispatch section of a read: objects, and what runs and metrics need from them."""

    rows: list[DispatchRow]
    infos: list[DispatchInfo]
    blocked_by_run: dict[str, str]  # run id -> the id of one Blocked dispatch of that run
    live: int  # dispatches not yet terminal
    blocked: list[DispatchInfo]  # the Blocked dispatches


@dataclass(frozen=True, slots=True)
class _Tokens:
    """The token sums of a read: per run (None: dispatches of no run) and the project's totals."""

    rows: list[RunTokensRow]
    per_run: dict[str | None, RunTokensRow]
    total: TokenSummary
    dispatches: int


@dataclass(frozen=True, slots=True)
class _Runs:
    rows: list[RunRow]
    tokens: list[RunTokensRow]  # the token rows the objects were built with
    blocked_by_run: dict[str, str]  # and the blocking dispatches
    infos: list[RunInfo]
    active: int
    blocked: int


@dataclass(frozen=True, slots=True)
class _Events:
    rows: list[EventRow]
    infos: list[EventInfo]


# A run's object with what it was built from besides its row: token sums, blocking dispatch.
_RunEntry = tuple[RunInfo, "RunTokensRow | None", "str | None"]


@dataclass
class Reuse:
    """The snapshot objects of a project's previous read, by section and by the exact row they came from.

    Only the latest read is kept, so memory follows the state. The aggregator gives each project its
    own and starts a new one whenever a read fails (a read given up on may still be filling the old).
    """

    memo: _Memo = field(default_factory=_Memo)
    dispatches: _Dispatches | None = None
    tokens: _Tokens | None = None
    runs: _Runs | None = None
    events: _Events | None = None
    run_entries: dict[RunRow, _RunEntry] = field(default_factory=dict)
    dispatch_infos: dict[DispatchRow, DispatchInfo] = field(default_factory=dict)
    event_infos: dict[EventRow, EventInfo] = field(default_factory=dict)


def _build_dispatches(key: str, rows: list[DispatchRow], reuse: Reuse) -> _Dispatches:
    previous_section = reuse.dispatches
    if previous_section is not None and previous_section.rows == rows:
        return previous_section
    infos: list[DispatchInfo] = []
    append = infos.append
    blocked_by_run: dict[str, str] = {}
    blocked: list[DispatchInfo] = []
    live = 0
    unified_of = reuse.memo.unified
    previous = reuse.dispatch_infos
    kept: dict[DispatchRow, DispatchInfo] = {}
    for row in rows:
        info = previous.get(row)
        if info is None:
            info = DispatchInfo(
                id=row.id, project=key, run_id=row.scope_id, agent_type=row.agent_type, name=row.name,
                model=row.model, status=row.status, unified=unified_of(row.status), pid=row.pid,
                exit_code=row.exit_code, error=row.error, created_at=row.created_at,
                started_at=row.started_at, ended_at=row.ended_at, input_tokens=row.input_tokens or 0,
                output_tokens=row.output_tokens or 0, cache_tokens=row.cache_tokens or 0,
                cost_usd=row.cost_usd,
            )  # fmt: skip
        kept[row] = info
        append(info)
        unified = info.unified
        if unified in _LIVE_DISPATCH:
            live += 1
            if unified is UnifiedStatus.BLOCKED:
                blocked.append(info)
                if info.run_id is not None:
                    blocked_by_run.setdefault(info.run_id, info.id)
    reuse.dispatch_infos = kept
    section = reuse.dispatches = _Dispatches(rows, infos, blocked_by_run, live, blocked)
    return section


def _token_summary(tin: int, tout: int, tcache: int) -> TokenSummary:
    return TokenSummary(input_tokens=tin, output_tokens=tout, cache_hits=tcache, total_tokens=tin + tout)


def _sum_tokens(rows: list[RunTokensRow], reuse: Reuse) -> _Tokens:
    previous = reuse.tokens
    if previous is not None and previous.rows == rows:
        return previous
    per_run: dict[str | None, RunTokensRow] = {}
    tokens_in = tokens_out = tokens_cache = dispatches = 0
    for row in rows:
        per_run[row.scope_id] = row
        tokens_in += row.input_tokens
        tokens_out += row.output_tokens
        tokens_cache += row.cache_tokens
        dispatches += row.dispatches
    section = reuse.tokens = _Tokens(
        rows, per_run, _token_summary(tokens_in, tokens_out, tokens_cache), dispatches
    )
    return section


def _build_runs(
    key: str,
    rows: list[RunRow],
    tokens: _Tokens,
    dispatches: _Dispatches,
    reuse: Reuse,
    portfolio: bool,
) -> _Runs:
    """RunInfos, and how many active and Blocked runs count in the metrics (see metrics.py).

    A run's object is reused when its row, token sums and blocking dispatch are unchanged. (The row
    alone is the key and the rest is compared on a hit: a compound key costs twice as much to hash.)
    """
    blocked_by_run = dispatches.blocked_by_run
    previous_section = reuse.runs
    if (
        previous_section is not None
        and previous_section.rows == rows
        and previous_section.tokens is tokens.rows
        and previous_section.blocked_by_run == blocked_by_run
    ):
        return previous_section
    infos: list[RunInfo] = []
    active = blocked_runs = 0
    append = infos.append
    unified_of = reuse.memo.unified
    chain = reuse.memo.chain
    per_run = tokens.per_run
    previous = reuse.run_entries
    kept: dict[RunRow, _RunEntry] = {}
    for row in rows:
        rid = row.id
        sums = per_run.get(rid)
        blocker = blocked_by_run.get(rid) if blocked_by_run else None
        entry = previous.get(row)
        if entry is not None and entry[1] == sums and entry[2] == blocker:
            info = entry[0]
        else:
            status = row.status
            unified = unified_of(status)
            reason: str | None = None
            if status == "active":
                last_type = row.last_type
                if last_type is not None and parse_kernel_event(row.last_source or "", last_type).blocks_run:
                    unified = UnifiedStatus.BLOCKED
                    reason = row.last_reason or last_type
                elif blocker is not None:
                    unified = UnifiedStatus.BLOCKED
                    reason = f"dispatch {blocker} is blocked"
            entered = row.phase_entered_at
            info = RunInfo(
                id=rid, project=key, goal=row.goal, status=status, unified=unified, phase=row.phase,
                phases=chain(row.phases), complexity=row.complexity, parent_run_id=row.parent_run_id,
                scope_id=row.scope_id, created_at=row.created_at, updated_at=row.updated_at,
                completed_at=row.completed_at,
                phase_entered_at=row.created_at if entered is None else entered, blocked_reason=reason,
                tokens=ZERO_TOKENS if sums is None else _token_summary(
                    sums.input_tokens, sums.output_tokens, sums.cache_tokens
                ),
            )  # fmt: skip
            entry = (info, sums, blocker)
        kept[row] = entry
        append(info)
        if not portfolio or row.parent_run_id is None:  # a portfolio's copy of a child counts in its project
            if row.status == "active":
                active += 1
            if info.unified is UnifiedStatus.BLOCKED:
                blocked_runs += 1
    reuse.run_entries = kept
    section = reuse.runs = _Runs(rows, tokens.rows, blocked_by_run, infos, active, blocked_runs)
    return section


def _build_events(key: str, rows: list[EventRow], reuse: Reuse) -> list[EventInfo]:
    previous_section = reuse.events
    if previous_section is not None and previous_section.rows == rows:
        return previous_section.infos
    infos: list[EventInfo] = []
    append = infos.append
    prefix = f"kernel:{key}:"
    kind = reuse.memo.kind
    previous = reuse.event_infos
    kept: dict[EventRow, EventInfo] = {}
    for row in reversed(rows):  # newest-first from SQL; the state keeps time order
        info = previous.get(row)
        if info is None:
            source, etype = row.source, row.type
            info = EventInfo(
                synthetic_id=f"{prefix}{row.id}", id=row.id, project=key, run_id=row.run_id, source=source,
                type=etype, kind=kind(source, etype), from_state=row.from_state, to_state=row.to_state,
                reason=row.reason, timestamp=row.timestamp,
            )  # fmt: skip
        kept[row] = info
        append(info)
    reuse.event_infos = kept
    reuse.events = _Events(rows, infos)
    return infos


def build_project_state(
    project: Project, rows: ProjectRows, *, reuse: Reuse | None = None, refreshed_at: float | None = None
) -> tuple[ProjectState, ProjectTally]:
    """The ProjectState of one read, and its contribution to the metrics (see metrics.py).

    Pass the project's `Reuse` from its previous read to build only what changed (it is updated).
    """
    key = project.key
    reuse = Reuse() if reuse is None else reuse
    dispatches = _build_dispatches(key, rows.dispatches, reuse)
    tokens = _sum_tokens(rows.run_tokens, reuse)
    runs = _build_runs(key, rows.runs, tokens, dispatches, reuse, project.is_portfolio)
    state = ProjectState(
        path=key,
        name=project.name,
        has_intercore=project.has_intercore,
        markers=list(project.markers),
        runs=runs.infos,
        dispatches=dispatches.infos,
        events=_build_events(key, rows.events, reuse),
        tokens=tokens.total,
        error=None,
        refreshed_at=time.time() if refreshed_at is None else refreshed_at,
        freshness=Freshness.FRESH,
        portfolio=project.is_portfolio,
        runs_total=rows.run_count,
        dispatches_total=tokens.dispatches,
    )
    blocked = runs.blocked
    if dispatches.blocked:  # Blocked dispatches of no listed run count on their own
        listed = {run.id for run in runs.infos}
        blocked += sum(1 for d in dispatches.blocked if d.run_id not in listed)
    total = tokens.total
    return state, ProjectTally(runs.active, dispatches.live, blocked, total.input_tokens, total.output_tokens)


def empty_project_state(project: Project) -> ProjectState:
    """A project not read yet (or without a kernel database): its identity and nothing else."""
    return ProjectState(
        path=project.key,
        name=project.name,
        has_intercore=project.has_intercore,
        markers=list(project.markers),
        freshness=Freshness.UNREAD if project.db_path is not None else Freshness.FRESH,
        portfolio=project.is_portfolio,
    )
