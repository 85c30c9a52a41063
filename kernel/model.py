"""Row types: one frozen dataclass per table, the single mapping between SQL rows and JSON.

Both the sync reads (CLI) and `kernel.aio` (Bigend) build these from rows with `from_row`, and every
`--json` output is `to_json()` of one of them, so the JSON Schemas in docs/contracts/ are generated
from exactly these definitions.

Every `ic` call imports this module, and `ic` start-up is benchmarked (DESIGN 6). The dataclass
decorator compiles each method it writes separately, which for a dozen classes was most of the
module's import time, so `RowType` supplies `__eq__`, `__hash__` and `__repr__` once for all of them
(with the semantics dataclasses give, field by field) and the decorator writes only `__init__` and
the frozen `__setattr__`/`__delattr__` (`eq=False, repr=False`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any, ClassVar, Self

JsonObject = dict[str, Any]
Row = Sequence[Any] | Mapping[str, Any]

_FIELD_GETTERS: dict[type, Any] = {}


def _json_or_none(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _row_values(row: Any) -> tuple[Any, ...]:
    return tuple(row)


def _field_values(obj: Any) -> Any:
    """What dataclass equality compares: the instance's field values in declaration order."""
    getter = _FIELD_GETTERS.get(type(obj))
    if getter is None:
        getter = _FIELD_GETTERS[type(obj)] = attrgetter(*(f.name for f in fields(obj)))
    return getter(obj)


class RowType:
    """What every row type shares: dataclass equality, hashing and repr, `to_json`, `from_row`.

    A row type derives from it and is declared `@dataclass(frozen=True, slots=True, eq=False,
    repr=False)`; row types of other modules may do the same.
    """

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(_field_values(self) == _field_values(other))

    def __hash__(self) -> int:
        return hash(_field_values(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({shown})"

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """The row's columns in field order (types whose columns need decoding override this)."""
        return cls(*_row_values(row))

    def to_json(self) -> JsonObject:
        return asdict(self)  # type: ignore[call-overload, no-any-return]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Run(RowType):
    id: str
    project_dir: str
    goal: str
    status: str
    phase: str
    complexity: int
    force_full: bool
    auto_advance: bool
    scope_id: str | None
    metadata: JsonObject | None
    phases: list[str]
    token_budget: int | None
    budget_warn_pct: int
    budget_enforce: bool
    max_agents: int | None
    parent_run_id: str | None
    max_dispatches: int | None
    gate_rules: JsonObject | None
    created_at: int
    updated_at: int
    completed_at: int | None

    COLUMNS: ClassVar[str] = (
        "id, project_dir, goal, status, phase, complexity, force_full, auto_advance, scope_id, metadata, "
        "phases, token_budget, budget_warn_pct, budget_enforce, max_agents, parent_run_id, max_dispatches, "
        "gate_rules, created_at, updated_at, completed_at"
    )

    @classmethod
    def from_row(cls, row: Any) -> Run:
        v = _row_values(row)
        return cls(
            id=v[0], project_dir=v[1], goal=v[2], status=v[3], phase=v[4], complexity=v[5],
            force_full=bool(v[6]), auto_advance=bool(v[7]), scope_id=v[8], metadata=_json_or_none(v[9]),
            phases=json.loads(v[10]), token_budget=v[11], budget_warn_pct=v[12], budget_enforce=bool(v[13]),
            max_agents=v[14], parent_run_id=v[15], max_dispatches=v[16], gate_rules=_json_or_none(v[17]),
            created_at=v[18], updated_at=v[19], completed_at=v[20],
        )  # fmt: skip

    @property
    def is_terminal(self) -> bool:
        return self.status != "active"

    @property
    def is_portfolio_parent(self) -> bool:
        return self.project_dir == "" and self.parent_run_id is None


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Event(RowType):
    """One entry of the unified stream (DESIGN 3.7); `payload` carries gate evidence, tokens, etc."""

    id: int
    run_id: str | None
    source: str
    type: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    dispatch_id: str | None
    payload: JsonObject | None
    timestamp: int

    COLUMNS: ClassVar[str] = (
        "id, run_id, source, type, from_state, to_state, reason, dispatch_id, payload, timestamp"
    )

    @classmethod
    def from_row(cls, row: Any) -> Event:
        v = _row_values(row)
        return cls(
            id=v[0], run_id=v[1], source=v[2], type=v[3], from_state=v[4], to_state=v[5], reason=v[6],
            dispatch_id=v[7], payload=_json_or_none(v[8]), timestamp=v[9],
        )  # fmt: skip


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Dispatch(RowType):
    id: str
    scope_id: str | None
    project_dir: str
    agent_type: str
    name: str | None
    model: str | None
    prompt_file: str | None
    output_file: str | None
    command: list[str] | None
    pid: int | None
    status: str
    exit_code: int | None
    error: str | None
    timeout_s: float | None
    input_tokens: int
    output_tokens: int
    cache_tokens: int
    cost_usd: float | None
    created_at: int
    started_at: int | None
    ended_at: int | None
    updated_at: int
    metadata: JsonObject | None = None  # e.g. the orchestrator's {"orchestrator": {"phase", "cycle", ...}}

    COLUMNS: ClassVar[str] = (
        "id, scope_id, project_dir, agent_type, name, model, prompt_file, output_file, command, pid, status, "
        "exit_code, error, timeout_s, input_tokens, output_tokens, cache_tokens, cost_usd, created_at, "
        "started_at, ended_at, updated_at, metadata"
    )
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"completed", "failed", "timeout", "cancelled"})

    @classmethod
    def from_row(cls, row: Any) -> Dispatch:
        v = _row_values(row)
        return cls(
            id=v[0], scope_id=v[1], project_dir=v[2], agent_type=v[3], name=v[4], model=v[5],
            prompt_file=v[6], output_file=v[7], command=_json_or_none(v[8]), pid=v[9], status=v[10],
            exit_code=v[11], error=v[12], timeout_s=v[13], input_tokens=v[14], output_tokens=v[15],
            cache_tokens=v[16], cost_usd=v[17], created_at=v[18], started_at=v[19], ended_at=v[20],
            updated_at=v[21], metadata=_json_or_none(v[22]),
        )  # fmt: skip

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class RunAgent(RowType):
    id: str
    run_id: str
    name: str
    agent_type: str | None
    status: str
    dispatch_id: str | None
    created_at: int
    updated_at: int

    COLUMNS: ClassVar[str] = "id, run_id, name, agent_type, status, dispatch_id, created_at, updated_at"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class RunArtifact(RowType):
    id: str
    run_id: str
    phase: str
    path: str
    kind: str
    content_hash: str | None
    metadata: JsonObject | None
    created_at: int

    COLUMNS: ClassVar[str] = "id, run_id, phase, path, kind, content_hash, metadata, created_at"

    @classmethod
    def from_row(cls, row: Any) -> RunArtifact:
        v = _row_values(row)
        return cls(
            id=v[0], run_id=v[1], phase=v[2], path=v[3], kind=v[4], content_hash=v[5],
            metadata=_json_or_none(v[6]), created_at=v[7],
        )  # fmt: skip


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ProjectDep(RowType):
    portfolio_id: str
    upstream: str
    downstream: str
    created_at: int

    COLUMNS: ClassVar[str] = "portfolio_id, upstream, downstream, created_at"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class EventCursor(RowType):
    consumer: str
    last_event_id: int
    created_at: int
    updated_at: int

    COLUMNS: ClassVar[str] = "consumer, last_event_id, created_at, updated_at"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class StateEntry(RowType):
    key: str
    scope: str
    payload: Any
    expires_at: int | None
    created_at: int
    updated_at: int

    COLUMNS: ClassVar[str] = "key, scope, payload, expires_at, created_at, updated_at"

    @classmethod
    def from_row(cls, row: Any) -> StateEntry:
        v = _row_values(row)
        return cls(key=v[0], scope=v[1], payload=json.loads(v[2]), expires_at=v[3], created_at=v[4],
                   updated_at=v[5])  # fmt: skip


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Sentinel(RowType):
    name: str
    scope: str
    last_fired: int

    COLUMNS: ClassVar[str] = "name, scope, last_fired"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class TokenTotals(RowType):
    """Sum of a run's (or project's) dispatch tokens: the `ic run tokens` JSON."""

    input_tokens: int
    output_tokens: int
    cache_hits: int
    total_tokens: int

    @classmethod
    def from_row(cls, row: Any) -> TokenTotals:
        i, o, c = (int(x or 0) for x in _row_values(row))
        return cls(input_tokens=i, output_tokens=o, cache_hits=c, total_tokens=i + o)
