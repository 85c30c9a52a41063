"""Async, read-only portfolio reads for Bigend, on `kernel.aio` connections.

`kernel.aio` already reads parents (`portfolio_parents`), children (`children`) and dependencies
(`deps`); this adds what only the portfolio tables hold: relayed events, relay cursors and dispatch
slots. Same `Query` objects as the sync side, so both read identical rows.
"""

from __future__ import annotations

import aiosqlite

from kernel import aio
from kernel import queries as q
from kernel.model import Event, ProjectDep, Run
from kernel.portfolio.rows import DispatchSlot, RelayCursor


async def parents(conn: aiosqlite.Connection) -> list[Run]:
    return await aio.portfolio_parents(conn)


async def children(conn: aiosqlite.Connection, portfolio_id: str) -> list[Run]:
    return await aio.children(conn, portfolio_id)


async def deps(conn: aiosqlite.Connection, portfolio_id: str) -> list[ProjectDep]:
    return await aio.deps(conn, portfolio_id)


async def relay_events(
    conn: aiosqlite.Connection, portfolio_id: str, after_id: int = 0, limit: int = 1000
) -> list[Event]:
    """The portfolio's relayed events (child_* and upstream_changed) after `after_id`, oldest first."""
    return await aio.fetch_all(conn, q.RELAY_EVENTS_OF_PORTFOLIO, after_id, portfolio_id, limit)


async def relay_cursors(conn: aiosqlite.Connection, portfolio_id: str) -> list[RelayCursor]:
    return await aio.fetch_all(conn, q.RELAY_CURSORS_OF_PORTFOLIO, portfolio_id)


async def slots(conn: aiosqlite.Connection, portfolio_id: str) -> list[DispatchSlot]:
    return await aio.fetch_all(conn, q.SLOTS_OF_PORTFOLIO, portfolio_id)
