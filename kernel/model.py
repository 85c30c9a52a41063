"""Row types: one frozen, slotted record per table, the single mapping between SQL rows and JSON.

The kernel's reads (`kernel.queries`) build these from rows with `from_row`, and every `--json` output
is `to_json()` of one of them, so the JSON Schemas in docs/contracts/ are generated from exactly these
definitions. (Bigend reads through its own read model, `kernel.readmodel`, with named rows of the
columns it shows.)

Why not `@dataclass(frozen=True, slots=True)`: every `ic` call imports this module, and `ic` start-up
is benchmarked (DESIGN 6, benchmarks/cli_latency.py). Importing `dataclasses` (which imports `inspect`,
`ast`, `dis`, `tokenize`...) and decorating the row classes cost more than all of the rest of `ic run
phase` together, so `RowType` gives the row types what the decorator gave them, written once: fields
from the class annotations (in order, a subclass's after its base's), an `__init__` taking them
positionally or by keyword, `__slots__`, frozen instances (`FrozenRowError`, an AttributeError, on
assignment or deletion), dataclass equality, hashing and repr, `__match_args__`, pickling and copying,
and `to_json` (like `dataclasses.asdict`). Type checkers see them as frozen dataclasses
(`dataclass_transform`), and pydantic reads them through an equivalent stdlib dataclass built on
demand (`__get_pydantic_core_schema__`), so the contracts are the same. tests/kernel/test_model.py
compares every row type with a stock frozen, slotted dataclass of the same fields.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, ClassVar, Self, dataclass_transform

    Row = Sequence[Any] | Mapping[str, Any]
else:  # typing is not imported at run time (see above); the decorator only informs type checkers

    def dataclass_transform(**_: object) -> object:
        return lambda cls: cls


# A JSON object as decoded from a column (the value type is only a name at run time).
JsonObject = dict[str, "Any"]


def _json_or_none(value: str | None) -> Any:
    import json

    return None if value is None else json.loads(value)


def _json_list(value: str) -> Any:
    import json

    return json.loads(value)


def _row_values(row: Any) -> tuple[Any, ...]:
    return tuple(row)


class FrozenRowError(AttributeError):
    """A row is read-only: raised on assigning or deleting one of its fields (as a frozen dataclass)."""


class _RowMeta(type):
    """Makes the annotated fields of a row class its `FIELDS`, `__slots__` and `__match_args__`."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _RowMeta:
        own = tuple(
            field
            for field, kind in namespace.get("__annotations__", {}).items()
            if not str(kind).startswith(("ClassVar", "typing.ClassVar"))
        )
        inherited = tuple(field for base in bases for field in getattr(base, "FIELDS", ()))
        namespace["__slots__"] = own
        namespace["FIELDS"] = inherited + own
        namespace["__match_args__"] = inherited + own
        return super().__new__(mcls, name, bases, namespace)


@dataclass_transform(frozen_default=True)
class RowType(metaclass=_RowMeta):
    """What every row type shares; a row type is a subclass with annotated fields (no defaults)."""

    FIELDS: ClassVar[tuple[str, ...]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self.FIELDS
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} fields, got {len(args)} positional")
        put = object.__setattr__
        for field, value in zip(fields, args, strict=False):
            put(self, field, value)
        for field in fields[len(args) :]:
            if field not in kwargs:
                raise TypeError(f"{type(self).__name__}() missing field {field!r}")
            put(self, field, kwargs.pop(field))
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unknown or repeated fields: {', '.join(kwargs)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenRowError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenRowError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field) for field in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, RowType)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{field}={getattr(self, field)!r}" for field in self.FIELDS)
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._values())

    @classmethod
    def from_row(cls, row: Any) -> Self:
        """The row's columns in field order (types whose columns need decoding override this)."""
        obj = object.__new__(cls)
        put = object.__setattr__
        for field, value in zip(cls.FIELDS, row, strict=True):
            put(obj, field, value)
        return obj

    def to_json(self) -> JsonObject:
        """The fields as a dict of copies (nested rows as dicts), like `dataclasses.asdict`."""
        return {field: _as_json(getattr(self, field)) for field in self.FIELDS}

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Pydantic (the contracts generator, never the CLI) reads the row as the stdlib dataclass with
        the same name, docstring and fields."""
        return handler(_dataclass_twin(cls))


def _as_json(value: Any) -> Any:
    if isinstance(value, RowType):
        return value.to_json()
    if isinstance(value, dict):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_as_json(item) for item in value)
    return value


_TWINS: dict[type, type] = {}


def _dataclass_twin(cls: type[RowType]) -> type:
    twin = _TWINS.get(cls)
    if twin is None:
        import dataclasses
        import typing

        # Each class's own module resolves its annotations; typing's names (Any, ...), imported there
        # for type checkers only, are supplied.
        hints = typing.get_type_hints(cls, localns=vars(typing))
        twin = dataclasses.make_dataclass(
            cls.__name__,
            [(field, hints[field]) for field in cls.FIELDS],
            frozen=True,
            namespace={
                "__doc__": cls.__doc__,
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
            },
        )
        _TWINS[cls] = twin
    return twin


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
            phases=_json_list(v[10]), token_budget=v[11], budget_warn_pct=v[12], budget_enforce=bool(v[13]),
            max_agents=v[14], parent_run_id=v[15], max_dispatches=v[16], gate_rules=_json_or_none(v[17]),
            created_at=v[18], updated_at=v[19], completed_at=v[20],
        )  # fmt: skip

    @property
    def is_terminal(self) -> bool:
        return self.status != "active"

    @property
    def is_portfolio_parent(self) -> bool:
        return self.project_dir == "" and self.parent_run_id is None


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
    metadata: JsonObject | None  # e.g. the orchestrator's {"orchestrator": {"phase", "cycle", ...}}

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


class ProjectDep(RowType):
    portfolio_id: str
    upstream: str
    downstream: str
    created_at: int

    COLUMNS: ClassVar[str] = "portfolio_id, upstream, downstream, created_at"


class EventCursor(RowType):
    consumer: str
    last_event_id: int
    created_at: int
    updated_at: int

    COLUMNS: ClassVar[str] = "consumer, last_event_id, created_at, updated_at"


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
        return cls(key=v[0], scope=v[1], payload=_json_list(v[2]), expires_at=v[3], created_at=v[4],
                   updated_at=v[5])  # fmt: skip


class Sentinel(RowType):
    name: str
    scope: str
    last_fired: int

    COLUMNS: ClassVar[str] = "name, scope, last_fired"


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
