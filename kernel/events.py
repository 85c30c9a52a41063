"""The unified event stream: every state change is one row of `events` with a monotonic id.

Writers call `record` inside their own `write_tx`, so the event and the change it describes land
in the same transaction; readers see a change only together with its event.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from kernel import clock


def record(
    conn: sqlite3.Connection,
    *,
    source: str,
    type: str,
    run_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    dispatch_id: str | None = None,
    payload: dict[str, Any] | None = None,
    timestamp: int | None = None,
) -> int:
    """Append one event; must run inside the caller's write transaction. Returns its id."""
    cur = conn.execute(
        "INSERT INTO events (run_id, source, type, from_state, to_state, reason, dispatch_id, payload, "
        "timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            source,
            type,
            from_state,
            to_state,
            reason,
            dispatch_id,
            None if payload is None else json.dumps(payload, separators=(",", ":"), sort_keys=True),
            clock.now() if timestamp is None else timestamp,
        ),
    )
    return int(cur.lastrowid or 0)
