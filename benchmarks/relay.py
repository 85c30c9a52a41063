"""Relay tick: 20 child projects, each with 100 new phase events since the last tick (target <= 50 ms).

Builds a throw-away workspace (a portfolio of 20 real project databases), then for several rounds
appends 100 phase events to every child and times one `relay_tick` in process (imports and set-up
excluded: the figure is the tick itself, as the long-running relay pays it, with its read-only child
connections kept open; a second figure is the same tick opening them first). Prints the median, the
best and the worst round and the relay's own CPU time (the wall time minus waiting for a loaded
machine), the load average while it ran, and checks that every event was relayed exactly once.

    python3 benchmarks/relay.py [--children=20] [--events=100] [--rounds=7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel import db as kdb
from kernel import events
from kernel import eventtypes as et
from kernel.portfolio.create import PortfolioSpec, create_portfolio
from kernel.portfolio.relay import ChildReaders, relay_events, relay_tick, tune_for_relay

TARGET_MS = 50.0


# What a real advance carries: the gate's result and evidence (the relay must not pay for parsing it).
GATE_PAYLOAD = {
    "gate": {
        "result": "pass",
        "tier": "hard",
        "evidence": {
            "conditions": [
                {"check": "artifact_exists", "phase": "brainstorm", "result": "pass", "count": 2,
                 "detail": "2 artifacts recorded"},
                {"check": "upstreams_at_phase", "phase": "planned", "result": "pass", "count": 0,
                 "detail": "all 2 upstream projects at or past planned"},
            ]
        },
    },
    "skipped": ["brainstorm-reviewed", "strategized"],
    "override": False,
}  # fmt: skip


def add_events(project: Path, run_id: str, count: int) -> None:
    """`count` alternating advance/rollback events on the child, in its project database."""
    conn = kdb.open_db(project / ".clavain" / "intercore.db")
    try:
        with kdb.write_tx(conn):
            for i in range(count):
                kind, (src, dst) = (et.ADVANCE, ("brainstorm", "planned")) if i % 2 == 0 else (
                    et.ROLLBACK, ("planned", "brainstorm"))  # fmt: skip
                events.record(
                    conn, source=et.PHASE, type=kind, run_id=run_id, from_state=src, to_state=dst,
                    payload=GATE_PAYLOAD if kind == et.ADVANCE else {"rolled_back": ["planned"]},
                )  # fmt: skip
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=20)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        root = Path(tmp)
        projects = []
        for i in range(args.children):
            project = root / f"project-{i:02d}"
            project.mkdir()
            projects.append(project)
        portfolio_db = root / ".clavain" / "portfolio.db"
        created = create_portfolio(
            portfolio_db, PortfolioSpec(goal="relay benchmark", projects=[str(p) for p in projects])
        )
        child_of = {c.project_dir: c.id for c in created.children}
        conn = kdb.open_db(portfolio_db)
        tune_for_relay(conn)  # as `ic portfolio relay` does
        readers = ChildReaders()  # kept open across ticks, as the long-running relay does
        relay_tick(conn, created.parent.id, readers=readers)  # creation events: not measured
        warm: list[float] = []
        warm_cpu: list[float] = []
        cold: list[float] = []
        expected = args.children * args.events
        for round_no in range(2 * args.rounds):
            for project in projects:
                add_events(project, child_of[str(project)], args.events)
            fresh = round_no % 2 == 1  # every other tick opens its 20 connections anew
            started, cpu_started = time.perf_counter(), time.process_time()
            report = relay_tick(conn, created.parent.id, readers=None if fresh else readers)
            (cold if fresh else warm).append((time.perf_counter() - started) * 1000)
            if not fresh:
                warm_cpu.append((time.process_time() - cpu_started) * 1000)
            if report.relayed != expected or report.errors:
                print(f"FAIL: relayed {report.relayed} of {expected}, errors {report.errors}")
                return 1
        idle: list[float] = []
        for _ in range(args.rounds):  # nothing new anywhere: what the loop costs between changes
            started = time.perf_counter()
            relay_tick(conn, created.parent.id, readers=readers)
            idle.append((time.perf_counter() - started) * 1000)
        relayed = relay_events(conn, created.parent.id, 0, 10**9)
        ids = [(e.payload or {}).get("child_event_id") for e in relayed if e.type != et.UPSTREAM_CHANGED]
        keys = [(e.run_id, i) for e, i in zip(relayed, ids, strict=True)]
        if len(keys) != len(set(keys)):
            print("FAIL: duplicate relayed events")
            return 1
        readers.close()
        conn.close()
    median = statistics.median(warm)
    print(
        f"relay tick, {args.children} children x {args.events} new events: median {median:.1f} ms "
        f"(best {min(warm):.1f}, worst {max(warm):.1f}; {args.rounds} ticks); "
        f"target <= {TARGET_MS:.0f} ms: {'PASS' if median <= TARGET_MS else 'MISS'}"
    )
    print(f"  of which CPU time of the relay process: median {statistics.median(warm_cpu):.1f} ms")
    print(
        f"same tick opening all {args.children} child databases first (relay start-up or --once): "
        f"median {statistics.median(cold):.1f} ms (best {min(cold):.1f}, worst {max(cold):.1f})"
    )
    print(f"idle tick (no new events in {args.children} children): median {statistics.median(idle):.1f} ms")
    cores = os.cpu_count() or 1
    print(
        f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {cores} cores: "
        "above the core count, the wall figures include waiting for a CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
