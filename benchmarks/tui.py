#!/usr/bin/env python3
"""Bigend TUI: time to first paint, memory while live, and the cost of one update to a huge run list.

    python3 benchmarks/tui.py [--projects=50] [--duration=300] [--interval=0.2] [--rows=10000]
                              [--skip-live] [--skip-paint] [--skip-update]

1. First paint (target <= 1.5 s): a fresh process opens the app on a synthetic workspace of
   `--projects` projects x (200 runs, 500 dispatches, 5 000 events) (bigend.core.synthetic, the
   aggregator benchmark's scale) and reports the wall time from the process being spawned to the first
   frame that shows the aggregator's data (headless driver: the same compose, layout and render as in
   a terminal, minus the terminal's own drawing), read on the system-wide monotonic clock in both
   processes so the child's shutdown after that frame is not counted. Median of 3.
2. RSS while live (target <= 250 MB): the app runs headless on the same workspace with its live
   Aggregator for `--duration` seconds while a separate writer process creates runs, advances them and
   records events through the kernel API every `--interval` seconds in random projects; RSS is read
   from /proc at the end (and the peak from getrusage).
3. Update of a `--rows`-run list: one project with that many runs, all shown (`a`); a new state in
   which one run changed phase is applied, then one with a new run (which sorts to the top). Median and
   p95 of `MainScreen.apply_state` (feed, row diff + cell updates) and of apply + the next repaint, over
   30 updates each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the imports of the app are part of what first paint measures
    from bigend.core.config import BigendConfig
    from bigend.ui.app import BigendApp
    from bigend.ui.screens.main import MainScreen

STARTED = time.perf_counter()
STARTED_MONOTONIC = time.monotonic()
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- workspace and writer ---------------------------------------------------------------------------
def build_workspace(root: Path, projects: int) -> None:
    from bigend.core.synthetic import make_workspace

    make_workspace(root, projects=projects, runs=200, dispatches=500, events=5000)


def writer(root: Path, interval: float, duration: float) -> None:
    """Kernel writes in random projects: new runs, advances, recorded events (all through the API)."""
    from kernel import db as kdb
    from kernel import events, runs
    from kernel.errors import KernelError

    rng = random.Random(7)
    projects = sorted(p.parent.parent for p in root.glob("*/.clavain/intercore.db"))
    mine: dict[Path, list[str]] = {p: [] for p in projects}
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        project = rng.choice(projects)
        conn = kdb.open_db(project / kdb.DB_DIR / kdb.DB_NAME)
        try:
            action = rng.random()
            if action < 0.3 or not mine[project]:
                run = runs.create_run(conn, goal=f"benchmark run {rng.randrange(10**6)}", project_dir=project)
                mine[project].append(run.id)
            elif action < 0.7:
                runs.advance(conn, rng.choice(mine[project]), disable_gates=True)
            else:
                with kdb.write_tx(conn):
                    events.record(conn, source="hook", type="note", reason="benchmark tick")
        except KernelError:
            pass  # a terminal run refuses to advance: part of life
        finally:
            conn.close()
        time.sleep(interval)


# -- the app, measured from the outside -------------------------------------------------------------
def measured_app(config: BigendConfig, on_apply: Callable[[MainScreen, bool], None]) -> BigendApp:
    """A live BigendApp whose main screen calls `on_apply(screen, first)` after each state it applies.

    The hook lives here, in the benchmark, not in the app: a subclass of the real screen, made with
    the same arguments the app gives its own.
    """
    from bigend.core.aggregator import Aggregator
    from bigend.core.snapshot import KernelState
    from bigend.ui.app import BigendApp
    from bigend.ui.screens.main import MainScreen

    class MeasuredScreen(MainScreen):
        def apply_state(self, state: KernelState) -> None:
            first = self.state is None
            super().apply_state(state)
            on_apply(self, first)

    class MeasuredApp(BigendApp):
        def get_default_screen(self) -> MainScreen:
            self._main = MeasuredScreen(
                clock=self.clock, live=True, event_lines=self.event_lines, tick_seconds=self.tick_seconds
            )
            return self._main

    return MeasuredApp(aggregator=Aggregator(config))


# -- 1. first paint ---------------------------------------------------------------------------------
def first_paint_child(root: Path) -> None:
    """In a fresh process: open the app and print the time of the first frame with data."""
    from bigend.core.config import BigendConfig

    painted: list[float] = []

    def on_apply(screen: MainScreen, first: bool) -> None:
        if first:  # the first frame with data is drawn once this refresh cycle ends
            screen.call_after_refresh(lambda: painted.append(time.monotonic()))

    async def run() -> None:
        app = measured_app(BigendConfig(roots=[root]), on_apply)
        async with app.run_test(size=(120, 40)) as pilot:
            while not painted:
                await pilot.pause(0.01)
            state = app.main_screen.state
        assert state is not None
        inner = painted[0] - STARTED_MONOTONIC
        print(f"PAINTED {inner:.4f} at={painted[0]:.4f} projects={len(state.projects)} rss={rss_mb():.1f}",
              flush=True)  # fmt: skip

    asyncio.run(run())


def measure_first_paint(root: Path, repeats: int = 3) -> None:
    """Spawn -> first frame with data, from the child's CLOCK_MONOTONIC reading of that frame (the
    clock is system-wide), so the child's shutdown after the frame is not counted; the time until the
    child exited is printed beside it."""
    walls, inner, exits = [], [], []
    for _ in range(repeats):
        spawned = time.monotonic()
        out = subprocess.run(
            [sys.executable, __file__, "_paint", str(root)], capture_output=True, text=True, check=True
        ).stdout
        exits.append(time.monotonic() - spawned)
        line = next(ln for ln in out.splitlines() if ln.startswith("PAINTED"))
        inner.append(float(line.split()[1]))
        walls.append(float(line.split()[2].removeprefix("at=")) - spawned)
        detail = line
    print(f"first paint: median {statistics.median(walls):.2f} s from spawn "
          f"({statistics.median(inner):.2f} s after the interpreter started; runs: "
          f"{', '.join(f'{w:.2f}' for w in walls)} s; the process exited after a median "
          f"{statistics.median(exits):.2f} s)  target <= 1.5 s")  # fmt: skip
    print(f"  last run: {detail}")


# -- 2. RSS while live ------------------------------------------------------------------------------
def live_child(root: Path, duration: float, interval: float) -> None:
    """In a fresh process (so nothing else measured here inflates its RSS): the live app + a writer."""
    from bigend.core.config import BigendConfig

    writer_proc = subprocess.Popen(
        [sys.executable, __file__, "_writer", str(root), str(interval), str(duration)]
    )
    samples: list[float] = []
    applied: list[int] = [0]

    def on_apply(screen: MainScreen, first: bool) -> None:
        applied[0] += 1

    async def run() -> int:
        app = measured_app(BigendConfig(roots=[root]), on_apply)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline:
                await pilot.pause(1.0)
                samples.append(rss_mb())
            return applied[0]

    try:
        updates = asyncio.run(run())
    finally:
        writer_proc.wait(timeout=duration + 60)
    print(f"LIVE {rss_mb():.0f} {max(samples):.0f} {peak_rss_mb():.0f} {updates}", flush=True)


def measure_live_rss(root: Path, duration: float, interval: float) -> None:
    out = subprocess.run(
        [sys.executable, __file__, "_live", str(root), str(duration), str(interval)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    end, sampled, peak, updates = next(ln for ln in out.splitlines() if ln.startswith("LIVE")).split()[1:]
    print(f"RSS while live: {end} MB at the end of {duration:.0f} s (max sampled {sampled} MB, "
          f"peak {peak} MB; {updates} live updates applied; a kernel write every {interval:g} s)  "
          "target <= 250 MB")  # fmt: skip


# -- 3. one update to a huge run list ---------------------------------------------------------------
def big_state(rows: int, now: int) -> object:
    from bigend.core.snapshot import KernelState, Metrics, ProjectState, RunInfo
    from bigend.core.status import UnifiedStatus

    chain = ["brainstorm", "planned", "executing", "review", "done"]

    # Like a project with history: 1 run in 20 live (a third of those blocked), the rest finished.
    def status(i: int) -> tuple[str, UnifiedStatus]:
        if i % 20 == 0:
            return "active", UnifiedStatus.BLOCKED if i % 60 == 0 else UnifiedStatus.ACTIVE
        return ("completed", UnifiedStatus.DONE) if i % 5 else ("failed", UnifiedStatus.ERROR)

    runs = [
        RunInfo(
            id=f"r{i:07d}", project="/bench/big", goal=f"synthetic goal number {i} with some words",
            status=status(i)[0], unified=status(i)[1], phase=chain[i % 4], phases=chain, complexity=3,
            created_at=now - i, updated_at=now - i, phase_entered_at=now - i * 7,
            completed_at=None if i % 20 == 0 else now - i,
        )
        for i in range(rows)
    ]  # fmt: skip
    project = ProjectState(path="/bench/big", name="big", has_intercore=True, runs=runs)
    return KernelState(generated_at=now, roots=["/bench"], projects=[project], metrics=Metrics())


def measure_update(rows: int, updates: int = 30) -> None:
    from bigend.core.snapshot import KernelState
    from bigend.ui.app import BigendApp

    now = 1_767_225_600
    state = big_state(rows, now)
    assert isinstance(state, KernelState)
    results: dict[str, list[float]] = {}

    async def run() -> float:
        app = BigendApp(state=state, clock=lambda: float(now))
        async with app.run_test(size=(120, 40)) as pilot:
            main = app.main_screen
            t0 = time.perf_counter()
            main.show_all = True
            main.open_project("/bench/big")
            await pilot.pause()
            load = time.perf_counter() - t0
            run_list = main.run_list
            assert run_list.row_count == rows, run_list.row_count
            run_list.move_cursor(row=rows // 2)
            await pilot.pause()
            selected = run_list.selected_key
            current = state
            for label in ("phase change", "new run"):
                applied, painted = [], []
                for n in range(updates):
                    project = current.projects[0]
                    if label == "phase change":
                        target = project.runs[(n * 997) % rows]
                        changed = replace(target, phase="review" if target.phase != "review" else "executing")
                        new_runs = [changed if r.id == target.id else r for r in project.runs]
                    else:
                        fresh = replace(project.runs[0], id=f"n{n:07d}", created_at=now + n)
                        new_runs = [fresh, *project.runs]
                    current = replace(current, projects=[replace(project, runs=new_runs)])
                    t = time.perf_counter()
                    main.apply_state(current)
                    applied.append(time.perf_counter() - t)
                    await pilot.pause()
                    painted.append(time.perf_counter() - t)
                results[f"{label}: apply"] = applied
                results[f"{label}: apply + repaint"] = painted
            assert run_list.selected_key == selected, "the cursor moved"
            return load

    load = asyncio.run(run())
    print(f"run list of {rows:,} runs: first load {load * 1000:.0f} ms")
    for label, values in results.items():
        values.sort()
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"  {label}: median {statistics.median(values) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_paint":
        first_paint_child(Path(sys.argv[2]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_live":
        live_child(Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_writer":
        writer(Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of live running (default 300)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between kernel writes")
    parser.add_argument("--rows", type=int, default=10_000, help="runs in the big run list")
    parser.add_argument("--skip-paint", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-update", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bigend-tui-bench-") as tmp:
        root = Path(tmp) / "ws"
        if not (args.skip_paint and args.skip_live):
            t = time.perf_counter()
            build_workspace(root, args.projects)
            print(f"workspace: {args.projects} projects x (200 runs, 500 dispatches, 5,000 events) "
                  f"built in {time.perf_counter() - t:.1f} s")  # fmt: skip
        if not args.skip_paint:
            measure_first_paint(root)
        if not args.skip_update:
            measure_update(args.rows)
        if not args.skip_live:
            measure_live_rss(root, args.duration, args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
