"""The `--json` documents of the portfolio commands, as dataclasses (one per output shape).

Each portfolio command builds its JSON as `asdict()` of one of these (`to_json()` of the two that
hold `ChildStatus` rows, row types themselves), so the JSON Schemas in docs/contracts/ can be generated
from them (register them in `kernel.contracts.CONTRACTS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kernel.model import RowType, Run
from kernel.portfolio.rows import ChildStatus


@dataclass(frozen=True, slots=True)
class CreatedChild:
    id: str
    project: str
    phase: str


@dataclass(frozen=True, slots=True)
class PortfolioCreated:
    """`ic run create --projects=... --json`."""

    id: str
    phase: str
    portfolio_db: str
    children: list[CreatedChild]


class PortfolioStatus(RowType):
    """`ic portfolio status <pid> --json`."""

    id: str
    phase: str
    status: str
    children: list[ChildStatus]


@dataclass(frozen=True, slots=True)
class PortfolioOrder:
    """`ic portfolio order <pid> --json`."""

    id: str
    order: list[str]


@dataclass(frozen=True, slots=True)
class RelayChild:
    project: str
    run_id: str
    relayed: int
    cursor: int
    error: str | None


@dataclass(frozen=True, slots=True)
class RelayTick:
    """`ic portfolio relay <pid> --json`: one document per tick (per tick that relayed, in the loop)."""

    portfolio_id: str
    relayed: int
    errors: int
    children: list[RelayChild]


@dataclass(frozen=True, slots=True)
class CancelledProject:
    project: str
    run_id: str
    cancelled: bool
    killed: list[str]
    error: str | None


@dataclass(frozen=True, slots=True)
class PortfolioCancelled:
    """`ic run cancel <portfolio> --json`."""

    id: str
    status: str
    phase: str
    projects: list[CancelledProject]


class PortfolioRunStatus(Run):
    """`ic run status <portfolio> --json`: the parent run's fields plus its children as in status."""

    children: list[ChildStatus]

    @classmethod
    def of(cls, parent: Run, children: list[ChildStatus]) -> PortfolioRunStatus:
        return cls(**{field: getattr(parent, field) for field in Run.FIELDS}, children=children)
