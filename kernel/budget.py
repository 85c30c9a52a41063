"""Token budgets of runs: what a run used, where it stands, and the events of crossing a threshold.

Used tokens are input + output over the run's dispatches (for a portfolio parent: over its
children, read from their own project databases). Input means prompt tokens processed fresh; prompt
tokens read from a cache (`cache_tokens`) are recorded but never counted, so re-reading a cached
context does not use the budget up (the one meaning of the columns, with its sources:
`kernel.dispatch.agents.usage`). Two thresholds: the warning at `budget_warn_pct` percent of
`token_budget`, and the budget itself.

- Level-triggered questions (`ic run budget`, the `budget_not_exceeded` gate, spawn refusal under
  `--budget-enforce`) compare the figures every time they are asked.
- Edge-triggered events (`budget.warning`, `budget.exceeded`) fire once per upward crossing: the
  level reached is stored in `runs.budget_level` in the same transaction as the event, so two
  writers racing past a threshold write one event, and a run brought back under (a raised budget)
  fires again when it crosses again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from kernel import clock, events
from kernel import eventtypes as et
from kernel import queries as q
from kernel.db import write_tx
from kernel.errors import NotFound
from kernel.gates import ConditionResult, GateContext
from kernel.model import Run, TokenTotals

LEVEL_OK, LEVEL_WARNING, LEVEL_EXCEEDED = 0, 1, 2
LEVEL_NAMES = {LEVEL_OK: "ok", LEVEL_WARNING: "warning", LEVEL_EXCEEDED: "exceeded"}
_EVENT_OF_LEVEL = {LEVEL_WARNING: et.BUDGET_WARNING, LEVEL_EXCEEDED: et.BUDGET_EXCEEDED}


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """Where a run stands against its budget: the `ic run budget` JSON."""

    run_id: str
    token_budget: int | None
    budget_warn_pct: int
    budget_enforce: bool
    used: int
    remaining: int | None
    level: str  # "none" (no budget) | "ok" | "warning" | "exceeded"

    @property
    def exceeded(self) -> bool:
        return self.level == "exceeded"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tokens_of_run(conn: sqlite3.Connection, run: Run) -> TokenTotals:
    """The `ic run tokens` figures: the sum of the run's dispatches (children's, for a portfolio)."""
    if run.is_portfolio_parent:
        from kernel.portfolio.budget import portfolio_tokens

        return portfolio_tokens(conn, run).totals
    totals = q.fetch_one(conn, q.TOKENS_OF_SCOPE, run.id)
    assert totals is not None  # an aggregate always returns one row
    return totals


def level_of(used: int, budget: int | None, warn_pct: int) -> int:
    if budget is None:
        return LEVEL_OK
    if used >= budget:
        return LEVEL_EXCEEDED
    if used > 0 and used * 100 >= budget * warn_pct:
        return LEVEL_WARNING
    return LEVEL_OK


def _status(run: Run, used: int) -> BudgetStatus:
    budget = run.token_budget
    return BudgetStatus(
        run_id=run.id,
        token_budget=budget,
        budget_warn_pct=run.budget_warn_pct,
        budget_enforce=run.budget_enforce,
        used=used,
        remaining=None if budget is None else max(budget - used, 0),
        level="none" if budget is None else LEVEL_NAMES[level_of(used, budget, run.budget_warn_pct)],
    )


def budget_status(conn: sqlite3.Connection, run: Run) -> BudgetStatus:
    """Read-only: the run's figures now."""
    return _status(run, tokens_of_run(conn, run).total_tokens)


def _levels(conn: sqlite3.Connection, run_id: str) -> tuple[Run, BudgetStatus, int, int]:
    """(run as stored, its status, the level it is at, the level last announced)."""
    fresh = q.fetch_one(conn, q.RUN_BY_ID, run_id)
    if fresh is None:
        raise NotFound(f"no run {run_id!r} in this database")
    status = budget_status(conn, fresh)
    level = level_of(status.used, fresh.token_budget, fresh.budget_warn_pct)
    return fresh, status, level, q.fetch_one(conn, q.RUN_BUDGET_LEVEL, fresh.id) or 0


def _record_crossings(conn: sqlite3.Connection, run: Run) -> BudgetStatus:
    fresh, status, level, stored = _levels(conn, run.id)
    if level == stored:
        return status
    conn.execute("UPDATE runs SET budget_level = ? WHERE id = ?", (level, fresh.id))
    now = clock.now()
    for crossed in range(stored + 1, level + 1):
        events.record(
            conn, source=et.BUDGET, type=_EVENT_OF_LEVEL[crossed], run_id=fresh.id,
            from_state=LEVEL_NAMES[crossed - 1], to_state=LEVEL_NAMES[crossed],
            reason=f"used {status.used} of {fresh.token_budget} tokens",
            payload={"used": status.used, "token_budget": fresh.token_budget,
                     "budget_warn_pct": fresh.budget_warn_pct},
            timestamp=now,
        )  # fmt: skip
    return status


def check_budget(conn: sqlite3.Connection, run: Run) -> BudgetStatus:
    """The run's figures, writing `budget.warning`/`budget.exceeded` for thresholds newly crossed.

    Joins the caller's transaction when there is one (token writes call it right after the update).
    Otherwise it writes only when there is something to announce, re-reading inside its own write
    transaction so that concurrent checkers announce a crossing once.
    """
    if conn.in_transaction:
        return _record_crossings(conn, run)
    _, status, level, stored = _levels(conn, run.id)
    if level == stored:
        return status
    with write_tx(conn):
        return _record_crossings(conn, run)


def check_budget_not_exceeded(ctx: GateContext, params: dict[str, Any]) -> ConditionResult:
    """The `budget_not_exceeded` gate check: passes while the run used less than its budget; `count`
    is the tokens used."""
    status = budget_status(ctx.conn, ctx.run)
    if status.token_budget is None:
        return ConditionResult("budget_not_exceeded", None, "pass", status.used, "no token budget")
    detail = f"used {status.used} of {status.token_budget} tokens"
    return ConditionResult(
        "budget_not_exceeded", None, "fail" if status.exceeded else "pass", status.used, detail
    )
