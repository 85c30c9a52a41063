"""The registry of `--json` contracts: contract name -> the type every such JSON document is built from.

`scripts/gen_contracts.py` turns each entry into `docs/contracts/<name>.schema.json` (pydantic
`TypeAdapter(type).json_schema()`), and tests/kernel/test_contracts.py fails when a checked-in schema
is stale or a real `ic ... --json` output does not match its schema. Keeping the registry in one
plain dict (no pydantic here) means the CLI path never pays for it and every area adds its entries by
appending a line: a new entry simply shows up as a new schema file on the next generator run.
Use stdlib dataclasses (pydantic cannot read `typing.TypedDict` on Python 3.11).

Names are kebab-case; the row types of `kernel.model` use the table's singular name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.budget import BudgetStatus
from kernel.dispatch.api import SpawnResult
from kernel.model import (
    Dispatch,
    Event,
    EventCursor,
    ProjectDep,
    Run,
    RunAgent,
    RunArtifact,
    Sentinel,
    StateEntry,
    TokenTotals,
)
from kernel.portfolio.contracts import (
    PortfolioCancelled,
    PortfolioCreated,
    PortfolioOrder,
    PortfolioRunStatus,
    PortfolioStatus,
    RelayTick,
)
from kernel.portfolio.rows import DispatchSlot, RelayCursor
from kernel.state import Pruned, SentinelCheck


@dataclass(frozen=True, slots=True)
class VersionResult:
    """`ic version --json`."""

    version: str
    schema_version: int


@dataclass(frozen=True, slots=True)
class InitResult:
    """`ic init --json`: the schema before and after, and the backup taken before migrating (if any)."""

    path: str
    schema_before: int
    schema_version: int
    backup: str | None


@dataclass(frozen=True, slots=True)
class HealthResult:
    """`ic health --json`: integrity, journal mode and row counts of the main tables."""

    path: str
    ok: bool
    integrity: str
    journal_mode: str
    schema_version: int
    writable: bool
    runs: int
    dispatches: int
    events: int


@dataclass(frozen=True, slots=True)
class RunCreated:
    """`ic run create --json` (single project): the id and the run's real first phase."""

    id: str
    phase: str


@dataclass(frozen=True, slots=True)
class RunPhase:
    """`ic run phase --json`."""

    id: str
    phase: str
    status: str


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """The gate part of an advance: result pass|fail|none, tier hard|soft|none, and the evidence."""

    result: str
    tier: str
    evidence: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunAdvanced:
    """`ic run advance --json` and `ic gate override --json`."""

    run_id: str
    from_phase: str
    to_phase: str
    skipped: list[str]
    status: str
    gate: GateOutcome
    overridden: bool


@dataclass(frozen=True, slots=True)
class RunRolledBack:
    """`ic run rollback --json` (also with --dry-run)."""

    run_id: str
    from_phase: str
    to_phase: str
    rolled_back: list[str]
    status: str
    dry_run: bool


@dataclass(frozen=True, slots=True)
class RunSkip:
    """`ic run skip --json`."""

    run_id: str
    phase: str
    skipped: bool
    already: bool


CONTRACTS: dict[str, type] = {
    # -- admin (kernel/cli/admin.py) -----------------------------------------------------------------
    "version": VersionResult,
    "init": InitResult,
    "health": HealthResult,
    # -- row types (kernel/model.py): the JSON of every command that prints rows -----------------------
    "run": Run,
    "event": Event,
    "dispatch": Dispatch,
    "run-agent": RunAgent,
    "run-artifact": RunArtifact,
    "project-dep": ProjectDep,
    "event-cursor": EventCursor,
    "state-entry": StateEntry,
    "sentinel": Sentinel,
    "token-totals": TokenTotals,
    # -- events, state and sentinels (kernel/state.py) -----------------------------------------------
    "sentinel-check": SentinelCheck,
    "pruned": Pruned,
    # -- runs and gates (kernel/runs.py, kernel/cli/run.py, kernel/cli/gate.py) -----------------------
    "run-created": RunCreated,
    "run-phase": RunPhase,
    "run-advanced": RunAdvanced,
    "run-rolled-back": RunRolledBack,
    "run-skip": RunSkip,
    # -- dispatches and budgets (kernel/dispatch, kernel/budget.py) ------------------------------------
    "dispatch-spawn": SpawnResult,
    "budget-status": BudgetStatus,
    # -- portfolio (kernel/portfolio) -----------------------------------------------------------------
    "portfolio-created": PortfolioCreated,
    "portfolio-status": PortfolioStatus,
    "portfolio-order": PortfolioOrder,
    "portfolio-run-status": PortfolioRunStatus,
    "portfolio-cancelled": PortfolioCancelled,
    "relay-tick": RelayTick,
    "relay-cursor": RelayCursor,
    "dispatch-slot": DispatchSlot,
}
