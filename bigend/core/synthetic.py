"""Synthetic kernel databases at benchmark scale, for benchmarks/aggregator.py and the aggregator tests.

The demo (bigend/demo.py) goes through the kernel's API to look real; this module writes rows directly
(one transaction per project, `executemany`) because a 50 x (200 runs, 500 dispatches, 5 000 events)
workspace must build in seconds. The rows follow the schema and the event vocabulary of
`kernel.eventtypes`, and the returned `SyntheticCounts` are what tests compare the aggregator against.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from kernel import db as kdb
from kernel import eventtypes as et

DEFAULT_CHAIN = [
    "brainstorm", "brainstorm-reviewed", "strategized", "planned", "executing", "review", "polish",
    "reflect", "done",
]  # fmt: skip
# A realistic mix for a project with history: 1 run in 20 active (a third of those blocked at a gate),
# 1 dispatch in 50 still live; the finished ones mostly completed.
FINISHED_RUN_STATUSES = ("completed", "completed", "completed", "cancelled", "failed")
FINISHED_DISPATCH_STATUSES = (
    "completed", "completed", "completed", "completed", "failed", "timeout", "cancelled",
)  # fmt: skip


@dataclass(frozen=True)
class SyntheticCounts:
    """What was written, in the aggregator's terms (see bigend/core/metrics.py)."""

    runs: int
    active_runs: int
    blocked_runs: int
    dispatches: int
    active_dispatches: int
    tokens_in: int
    tokens_out: int
    events: int


def make_project(
    directory: Path, *, runs: int, dispatches: int, events: int, seed: int = 0, now: int = 1_700_000_000
) -> SyntheticCounts:
    """Create `directory/.clavain/intercore.db` filled with the given numbers of rows."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / kdb.DB_DIR / kdb.DB_NAME
    kdb.init_db(path)
    conn = kdb.open_db(path)
    run_rows = []
    event_rows: list[tuple[object, ...]] = []
    active = blocked = 0
    run_ids = [f"r{seed:03d}{i:04d}"[-8:] for i in range(runs)]
    for i, rid in enumerate(run_ids):
        status = "active" if i % 20 == 0 else FINISHED_RUN_STATUSES[i % len(FINISHED_RUN_STATUSES)]
        phase_index = rng.randrange(len(DEFAULT_CHAIN) - 1) if status == "active" else len(DEFAULT_CHAIN) - 1
        created = now - rng.randrange(1, 30 * 86400)
        completed = None if status == "active" else created + rng.randrange(60, 86400)
        run_rows.append(
            (
                rid,
                str(directory),
                f"synthetic goal {i} of project {seed}",
                status,
                DEFAULT_CHAIN[phase_index],
                3,
                json.dumps(DEFAULT_CHAIN),
                created,
                completed or created,
                completed,
            )
        )
        event_rows.append((rid, et.PHASE, et.RUN_CREATED, None, DEFAULT_CHAIN[0], None, None, created))
        for step in range(phase_index):
            event_rows.append(
                (
                    rid,
                    et.PHASE,
                    et.ADVANCE,
                    DEFAULT_CHAIN[step],
                    DEFAULT_CHAIN[step + 1],
                    None,
                    None,
                    created + 60 * (step + 1),
                )
            )
        if status == "active":
            active += 1
            if i % 60 == 0:
                event_rows.append(
                    (
                        rid,
                        et.PHASE,
                        et.BLOCK,
                        DEFAULT_CHAIN[phase_index],
                        DEFAULT_CHAIN[phase_index + 1],
                        "gate: artifact_exists failed",
                        None,
                        created + 3600,
                    )
                )
                blocked += 1
        else:
            kind = {"completed": et.COMPLETE, "cancelled": et.CANCEL, "failed": et.FAIL}[status]
            event_rows.append((rid, et.PHASE, kind, None, None, None, None, completed))
    dispatch_rows = []
    live = tokens_in = tokens_out = 0
    for i in range(dispatches):
        did = f"d{seed:03d}{i:04d}"[-8:]
        if i % 50 == 0:
            status = "running" if i % 100 == 0 else "spawned"
        else:
            status = FINISHED_DISPATCH_STATUSES[i % len(FINISHED_DISPATCH_STATUSES)]
        scope = run_ids[rng.randrange(runs)] if runs else None
        tin, tout = rng.randrange(100, 50_000), rng.randrange(10, 8_000)
        tokens_in += tin
        tokens_out += tout
        if status in ("running", "spawned"):
            live += 1
        created = now - rng.randrange(1, 30 * 86400)
        ended = None if status in ("running", "spawned") else created + rng.randrange(5, 3600)
        dispatch_rows.append(
            (
                did,
                scope,
                str(directory),
                "codex",
                f"agent-{i}",
                "gpt-5",
                status,
                1000 + i,
                0 if status == "completed" else None,
                None,
                tin,
                tout,
                tin // 4,
                created,
                created,
                ended,
                ended or created,
            )
        )
        event_rows.append((scope, et.DISPATCH, status, "running", status, None, did, created))
    # Pad with run-tracking events up to the requested count; they carry no phase, so the blocking
    # event of a blocked run stays its last phase event.
    while len(event_rows) < events:
        pad_run = run_ids[rng.randrange(runs)] if runs else None
        event_rows.append(
            (pad_run, et.RUN, et.AGENT_UPDATED, None, None, None, None, now - rng.randrange(86400))
        )
    with kdb.write_tx(conn):
        conn.executemany(
            "INSERT INTO runs (id, project_dir, goal, status, phase, complexity, phases, created_at, "
            "updated_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        conn.executemany(
            "INSERT INTO dispatches (id, scope_id, project_dir, agent_type, name, model, status, pid, "
            "exit_code, error, input_tokens, output_tokens, cache_tokens, created_at, started_at, ended_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            dispatch_rows,
        )
        conn.executemany(
            "INSERT INTO events (run_id, source, type, from_state, to_state, reason, dispatch_id, timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            event_rows,
        )
    conn.close()
    return SyntheticCounts(
        runs=runs,
        active_runs=active,
        blocked_runs=blocked,
        dispatches=dispatches,
        active_dispatches=live,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        events=len(event_rows),
    )


def make_workspace(
    root: Path, *, projects: int, runs: int, dispatches: int, events: int
) -> dict[Path, SyntheticCounts]:
    """`projects` synthetic projects under `root` (p000, p001, ...)."""
    return {
        root / f"p{index:03d}": make_project(
            root / f"p{index:03d}", runs=runs, dispatches=dispatches, events=events, seed=index
        )
        for index in range(projects)
    }
