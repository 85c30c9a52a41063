"""A portfolio's token use: the sum of its children's dispatch tokens, read from each project.

A parent runs no dispatches itself; its `token_budget` caps the whole portfolio, so the used figure is
the sum over the children's scopes (`dispatches.scope_id` = child run id) in their own databases.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from kernel import queries as q
from kernel.errors import KernelError, Refused
from kernel.model import Run, TokenTotals
from kernel.portfolio.childdb import open_child_db
from kernel.portfolio.lookup import children


@dataclass(frozen=True, slots=True)
class PortfolioTokens:
    """Totals over the readable children; `unreadable` maps a project to why it was not counted."""

    totals: TokenTotals
    per_project: dict[str, TokenTotals]
    unreadable: dict[str, str] = field(default_factory=dict)


def portfolio_tokens(conn: sqlite3.Connection, parent: Run) -> PortfolioTokens:
    """Sum the children's tokens; `conn` is the portfolio database holding `parent`."""
    per_project: dict[str, TokenTotals] = {}
    unreadable: dict[str, str] = {}
    for child in children(conn, parent.id):
        try:
            with open_child_db(child.project_dir) as child_conn:
                totals = q.fetch_one(child_conn, q.TOKENS_OF_SCOPE, child.id)
        except KernelError as exc:
            unreadable[child.project_dir] = exc.message
            continue
        assert totals is not None  # an aggregate always returns one row
        per_project[child.project_dir] = totals
    values = list(per_project.values())
    inp = sum(t.input_tokens for t in values)
    out = sum(t.output_tokens for t in values)
    cache = sum(t.cache_hits for t in values)
    total = TokenTotals(input_tokens=inp, output_tokens=out, cache_hits=cache, total_tokens=inp + out)
    return PortfolioTokens(totals=total, per_project=per_project, unreadable=unreadable)


def refuse_if_over_budget(conn: sqlite3.Connection, parent: Run) -> None:
    """Refuse new work for an enforcing portfolio whose children together used its whole budget."""
    if parent.token_budget is None or not parent.budget_enforce:
        return
    used = portfolio_tokens(conn, parent).totals.total_tokens
    if used >= parent.token_budget:
        raise Refused(
            f"portfolio {parent.id} has used {used} of its {parent.token_budget} token budget; "
            "raise it with `ic run set` or cancel work"
        )
