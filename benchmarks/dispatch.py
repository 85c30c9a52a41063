"""Dispatch start-up latency and supervisor memory.

Figures:
- spawn -> agent running: from just before `ic dispatch spawn` is started to the first instruction
  of the agent (a `/bin/sh -c 'date +%s%N > F'` one-liner, so the agent adds ~1 ms, not a Python
  start-up), median and p90 over N spawns;
- spawn -> `ic` returned: until the spawning command exits, which is after the row says `running`
  and the supervisor has reported the agent's pid;
- the supervisor's resident memory (VmRSS) while it watches an agent, next to a bare
  `python3 -c "import time; time.sleep(60)"` for scale;
- for reference, the wall time of `python3 -c "import sqlite3"` (the CLI latency yardstick).

Python byte-code is cached in a throw-away PYTHONPYCACHEPREFIX (as an installed package has its
.pyc files) after two warm-up spawns; `--no-bytecode-cache` measures with PYTHONDONTWRITEBYTECODE=1
instead, where every `ic` and every supervisor compiles the kernel from source.

    python3 benchmarks/dispatch.py [--spawns=20] [--no-bytecode-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def ic_command() -> list[str]:
    found = shutil.which("ic")
    return [found] if found else [sys.executable, "-m", "kernel.cli.main"]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def supervisor_pid(db: Path, dispatch_id: str) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT payload FROM events WHERE dispatch_id = ? AND type = 'running'", (dispatch_id,)
        ).fetchone()
    finally:
        conn.close()
    return int(json.loads(row[0])["supervisor_pid"])


def measure_spawns(project: Path, count: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    ic = ic_command()
    to_agent: list[float] = []
    to_return: list[float] = []
    for i in range(count):
        stamp = project / f"started-{i}"
        argv = [*ic, "dispatch", "spawn", "--prompt-file=prompt.md", "--", "/bin/sh", "-c",
                'date +%s%N > "$0"', str(stamp)]  # fmt: skip
        t0 = time.time_ns()
        done = subprocess.run(argv, cwd=project, capture_output=True, text=True, env=env)
        t1 = time.time_ns()
        if done.returncode != 0:
            raise SystemExit(f"spawn failed: {done.stderr.strip()}")
        dispatch_id = done.stdout.strip()
        deadline = time.monotonic() + 30
        while not (stamp.exists() and stamp.read_text().strip()):
            if time.monotonic() > deadline:
                raise SystemExit("the agent never started")
            time.sleep(0.005)
        to_agent.append((int(stamp.read_text()) - t0) / 1e6)
        to_return.append((t1 - t0) / 1e6)
        subprocess.run(
            [*ic, "dispatch", "wait", dispatch_id], cwd=project, capture_output=True, check=True, env=env
        )
    return to_agent, to_return


def measure_rss(project: Path, env: dict[str, str]) -> tuple[int, int]:
    ic = ic_command()
    release = project / "release"
    spawned = subprocess.run(
        [*ic, "dispatch", "spawn", "--prompt-file=prompt.md", "--", "/bin/sh", "-c",
         'while [ ! -e "$0" ]; do sleep 0.05; done', str(release)],
        cwd=project, capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    dispatch_id = spawned.stdout.strip()
    time.sleep(0.5)  # let the supervisor settle into its wait
    supervisor = rss_kib(supervisor_pid(project / ".clavain" / "intercore.db", dispatch_id))
    release.touch()
    subprocess.run(
        [*ic, "dispatch", "wait", dispatch_id], cwd=project, capture_output=True, check=True, env=env
    )
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        baseline = rss_kib(bare.pid)
    finally:
        bare.kill()
        bare.wait()
    return supervisor, baseline


def import_sqlite_ms(env: dict[str, str], rounds: int = 15) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sqlite3"], check=True, env=env)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spawns", type=int, default=20)
    parser.add_argument("--no-bytecode-cache", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.no_bytecode_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        project = Path(tmp) / "proj"
        project.mkdir()
        subprocess.run([*ic_command(), "init"], cwd=project, capture_output=True, check=True, env=env)
        (project / "prompt.md").write_text("benchmark\n")
        measure_spawns(project, 2, env)  # warm-up: byte-code cache, page cache
        to_agent, to_return = measure_spawns(project, args.spawns, env)
        supervisor, baseline = measure_rss(project, env)
        yardstick = import_sqlite_ms(env)
    mode = "no byte-code cache" if args.no_bytecode_cache else "byte-code cached"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; {mode}")
    for label, values in (("spawn -> agent running", to_agent), ("spawn -> ic returned  ", to_return)):
        print(
            f"{label}: median {statistics.median(values):.1f} ms, p90 {percentile(values, 90):.1f} ms, "
            f"best {min(values):.1f} ms ({len(values)} spawns)"
        )
    print(f"supervisor RSS: {supervisor / 1024:.1f} MiB (bare python3 sleeping: {baseline / 1024:.1f} MiB)")
    print(f'reference: python3 -c "import sqlite3" median {yardstick:.1f} ms')


if __name__ == "__main__":
    main()
