#!/usr/bin/env python3
"""CLI latency: median wall time of `ic` calls against a bare `python3 -c "import sqlite3"` (DESIGN 6).

Target: `ic run phase`, `ic run advance --disable-gates` and `ic events tail --all --limit=100` each
within 2.5x of the bare interpreter start on the same machine.

    python3 benchmarks/cli_latency.py [--runs=30] [--events=3000] [--ic=PATH] [--python=PATH]
                                      [--importtime]

Everything is invoked the way a user does: `ic` and `python3` as found on PATH (or given), in a
project directory (the database is found by walking up). Under pyenv, running this script through
the `python3` shim puts the real bin directory first on PATH, so PATH lookups here find the real
executables; pass `--ic=~/.pyenv/shims/ic --python=~/.pyenv/shims/python3` to time the shims.

The commands are timed round-robin, so a burst of load from other processes hits all of them alike.
Before measuring, the kernel's bytecode is compiled (an installed package ships it; this checkout may
run with PYTHONDONTWRITEBYTECODE), and the measured processes get the environment minus
PYTHONDONTWRITEBYTECODE, PYTHONUNBUFFERED and the IC_* test knobs.

`--importtime` prints the costliest imports of each `ic` command after interpreter start-up
(`python3 -X importtime`, minimum over 5 runs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.5
CHAIN_LENGTH = 200
WARMUP = 3

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "IC_NOW", "IC_ID_SEED"):
        env.pop(name, None)
    return env


def run_ok(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"cli_latency: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


class Workspace:
    """A project with a few thousand events and a run on a long custom chain that keeps advancing."""

    def __init__(self, ic: str, events: int, env: dict[str, str]) -> None:
        self.ic = ic
        self.env = env
        self.dir = Path(tempfile.mkdtemp(prefix="cli-latency-"))
        run_ok([ic, "init"], self.dir, env)
        self._fill(events)
        self.run_id = ""
        self.hops_left = 0
        self.new_run()

    def _fill(self, count: int) -> None:
        from kernel import db as kdb
        from kernel import events

        conn = kdb.open_db(self.dir / kdb.DB_DIR / kdb.DB_NAME)
        try:
            with kdb.write_tx(conn):
                for i in range(count):
                    events.record(
                        conn,
                        source=("hook", "tmux", "messaging")[i % 3],
                        type=f"bench.{i % 7}",
                        reason=f"synthetic event {i}",
                        payload={"i": i, "pane": i % 5} if i % 2 else None,
                    )
        finally:
            conn.close()

    def new_run(self) -> None:
        phases = json.dumps([f"p{i:03d}" for i in range(CHAIN_LENGTH)])
        argv = [self.ic, "run", "create", "--goal=latency bench", f"--phases={phases}", "--json"]
        out = run_ok(argv, self.dir, self.env)
        self.run_id = json.loads(out)["id"]
        self.hops_left = CHAIN_LENGTH - 1

    def before_advance(self) -> None:
        """Recreate the run (outside the timed region) before it could reach its terminal phase."""
        if self.hops_left <= 1:
            self.new_run()
        self.hops_left -= 1


def commands(ic: str, python: str, ws: Workspace) -> dict[str, list[str]]:
    return {
        'python3 -c "import sqlite3"': [python, "-c", "import sqlite3"],
        "ic version": [ic, "version"],
        "ic run phase <id>": [ic, "run", "phase", "{run}"],
        "ic run advance <id> --disable-gates": [ic, "run", "advance", "{run}", "--disable-gates"],
        "ic events tail --all --limit=100": [ic, "events", "tail", "--all", "--limit=100"],
    }


def measure(cmds: dict[str, list[str]], ws: Workspace, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for round_no in range(WARMUP + runs):
        for label, template in cmds.items():
            if "advance" in label:
                ws.before_advance()
            argv = [word.replace("{run}", ws.run_id) for word in template]
            start = time.perf_counter()
            proc = subprocess.run(argv, cwd=ws.dir, env=ws.env, capture_output=True)
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                raise SystemExit(f"cli_latency: {' '.join(argv)} exited {proc.returncode}: {proc.stderr!r}")
            if round_no >= WARMUP:
                times[label].append(elapsed * 1000)
    return times


def report(title: str, times: dict[str, list[float]]) -> bool:
    labels = list(times)
    base = statistics.median(times[labels[0]])
    print(f"\n{title}")
    print(f"{'command':<40} {'median ms':>9} {'min ms':>7} {'p90 ms':>7} {'ratio':>6}  target")
    ok = True
    for label in labels:
        values = sorted(times[label])
        median = statistics.median(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        ratio = median / base
        gated = label.startswith("ic ") and label != "ic version"
        verdict = ("ok" if ratio <= TARGET_RATIO else "OVER") if gated else ""
        ok = ok and (ratio <= TARGET_RATIO or not gated)
        print(f"{label:<40} {median:9.1f} {values[0]:7.1f} {p90:7.1f} {ratio:5.2f}x  {verdict}")
    return ok


def importtime(ic_script: str, python: str, ws: Workspace, top: int = 12) -> None:
    """The costliest imports (cumulative µs, min over 5 runs) of each ic command after startup."""
    for label, template in commands(ic_script, python, ws).items():
        if not label.startswith("ic "):
            continue
        best: dict[str, tuple[int, int]] = {}
        for _ in range(5):
            if "advance" in label:
                ws.before_advance()
            argv = [python, "-X", "importtime", *[w.replace("{run}", ws.run_id) for w in template]]
            proc = subprocess.run(argv, cwd=ws.dir, env=ws.env, capture_output=True, text=True)
            seen_site = False
            for line in proc.stderr.splitlines():
                if not line.startswith("import time:") or "|" not in line:
                    continue
                self_us, cum_us, name = (part.strip() for part in line[len("import time:") :].split("|"))
                if not self_us.isdigit():
                    continue
                if name == "site":
                    seen_site = True  # interpreter start-up (site, .pth hooks) is paid by the baseline too
                    continue
                if not seen_site:
                    continue
                old = best.get(name)
                value = (int(cum_us), int(self_us))
                best[name] = value if old is None else (min(old[0], value[0]), min(old[1], value[1]))
        print(f"\n-X importtime, {label} (after site; cumulative / self ms, min of 5)")
        for name, (cum, own) in sorted(best.items(), key=lambda kv: -kv[1][0])[:top]:
            print(f"  {cum / 1000:6.1f} {own / 1000:6.1f}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--ic", help="the ic executable (default: `ic` on PATH)")
    parser.add_argument("--python", help="the baseline interpreter (default: `python3` on PATH)")
    parser.add_argument("--importtime", action="store_true", help="print the costliest imports per command")
    args = parser.parse_args()

    ic = args.ic or shutil.which("ic")
    python = args.python or shutil.which("python3")
    if not ic or not python:
        print("cli_latency: `ic` and `python3` must be on PATH (pip install -e .)", file=sys.stderr)
        return 2
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "kernel")], check=True)
    env = clean_env()
    ws = Workspace(ic, args.events, env)
    try:
        print(f"cli_latency: {args.runs} runs each (+{WARMUP} warm-up), {args.events} events, round-robin")
        print(f"ic = {ic}\npython3 = {python}\nload average before: {os.getloadavg()[0]:.2f}")
        ok = report("median wall time per call", measure(commands(ic, python, ws), ws, args.runs))
        print(f"\nload average after: {os.getloadavg()[0]:.2f}; target: gated ic calls <= {TARGET_RATIO}x")
        if args.importtime:
            ic_script = str(Path(sys.executable).with_name("ic"))
            importtime(ic_script if Path(ic_script).exists() else ic, sys.executable, ws)
        return 0 if ok else 1
    finally:
        shutil.rmtree(ws.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
