"""Dispatch start-up latency and supervisor memory.

Figures:
- spawn -> agent running: from just before `ic dispatch spawn` is started to the first instruction
  of the agent (a `/bin/sh -c 'date +%s%N > F'` one-liner, so the agent adds ~1 ms, not a Python
  start-up), median and p90 over N spawns;
- spawn -> `ic` returned: until the spawning command exits, which is after the row says `running`
  and the supervisor has reported the agent's pid;
- the memory of what stays behind per dispatch while an agent runs: the supervisor and its
  watchdog, as VmRSS and as PSS (shared pages split between the processes that map them: the
  watchdog is a fork of the supervisor's first moments), next to a bare sleeping `python3 -S`;
- for reference, the wall time of `python3 -c "import sqlite3"` (the CLI latency yardstick).

`ic` is the console script installed next to this interpreter (not a version-manager shim, which
would add its own start-up to every figure). `--compare DIR` also measures another checkout (e.g. a
`git archive` of an older commit) through `python3 -m kernel.cli.main` with PYTHONPATH=DIR, and this
one the same way, alternating batches of spawns between the two so that both see the same load.

Python byte-code is cached in a throw-away PYTHONPYCACHEPREFIX (as an installed package has its
.pyc files) after two warm-up spawns; `--no-bytecode-cache` measures with PYTHONDONTWRITEBYTECODE=1
instead, where every `ic` and every supervisor compiles the kernel from source.

    python3 benchmarks/dispatch.py [--spawns=20] [--no-bytecode-cache] [--compare DIR]
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
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 5


@dataclass
class Target:
    """One `ic` to measure: its argv and the environment it runs in."""

    label: str
    argv: list[str]
    env: dict[str, str]
    to_agent: list[float] = field(default_factory=list)
    to_return: list[float] = field(default_factory=list)

    def run(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], cwd=cwd, capture_output=True, text=True, env=self.env)


def installed_ic() -> list[str]:
    beside = Path(sysconfig.get_path("scripts")) / "ic"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("ic")
    return [found] if found else [sys.executable, "-m", "kernel.cli.main"]


def tree_target(label: str, tree: Path, env: dict[str, str]) -> Target:
    return Target(label, [sys.executable, "-m", "kernel.cli.main"], {**env, "PYTHONPATH": str(tree)})


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, Pss) of a process in KiB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


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


def children_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                raw = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(raw[raw.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(name))
    return found


def spawn_once(target: Target, project: Path, i: int) -> None:
    stamp = project / f"started-{target.label}-{i}"
    agent = ["/bin/sh", "-c", 'date +%s%N > "$0"', str(stamp)]
    args = ["dispatch", "spawn", "--prompt-file=prompt.md", "--", *agent]
    t0 = time.time_ns()
    done = target.run(args, project)
    t1 = time.time_ns()
    if done.returncode != 0:
        raise SystemExit(f"spawn failed: {done.stderr.strip()}")
    deadline = time.monotonic() + 30
    while not (stamp.exists() and stamp.read_text().strip()):
        if time.monotonic() > deadline:
            raise SystemExit("the agent never started")
        time.sleep(0.005)
    target.to_agent.append((int(stamp.read_text()) - t0) / 1e6)
    target.to_return.append((t1 - t0) / 1e6)
    if target.run(["dispatch", "wait", done.stdout.strip()], project).returncode != 0:
        raise SystemExit("the agent did not complete")


def measure_memory(target: Target, project: Path) -> dict[str, tuple[int, int]]:
    release = project / "release"
    spawned = target.run(
        ["--json", "dispatch", "spawn", "--prompt-file=prompt.md", "--", "/bin/sh", "-c",
         'while [ ! -e "$0" ]; do sleep 0.05; done', str(release)],
        project,
    )  # fmt: skip
    body = json.loads(spawned.stdout)
    time.sleep(0.5)  # let the supervisor settle into its wait
    supervisor = supervisor_pid(project / ".clavain" / "intercore.db", body["id"])
    found = {"supervisor": memory_kib(supervisor)}
    for child in children_of(supervisor):
        if child != body["pid"]:
            found["watchdog"] = memory_kib(child)
    release.touch()
    target.run(["dispatch", "wait", body["id"]], project)
    bare = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)
        found["bare python3 -S"] = memory_kib(bare.pid)
    finally:
        bare.kill()
        bare.wait()
    return found


def import_sqlite_ms(env: dict[str, str], rounds: int = 15) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sqlite3"], check=True, env=env)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def report(target: Target) -> None:
    figures = (("spawn -> agent running", target.to_agent), ("spawn -> ic returned  ", target.to_return))
    for label, values in figures:
        print(
            f"{target.label}: {label}: median {statistics.median(values):.1f} ms, "
            f"p90 {percentile(values, 90):.1f} ms, best {min(values):.1f} ms ({len(values)} spawns)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spawns", type=int, default=20)
    parser.add_argument("--no-bytecode-cache", action="store_true")
    parser.add_argument("--compare", type=Path, metavar="DIR", help="another checkout to measure alongside")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if args.no_bytecode_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        if args.compare:
            targets = [tree_target("this", ROOT, env), tree_target("other", args.compare.resolve(), env)]
        else:
            targets = [Target("ic", installed_ic(), env)]
        for target in targets:
            project = Path(tmp) / target.label
            project.mkdir()
            if target.run(["init"], project).returncode != 0:
                raise SystemExit(f"{target.label}: ic init failed")
            (project / "prompt.md").write_text("benchmark\n")
            for i in range(2):  # warm-up: byte-code cache, page cache
                spawn_once(target, project, -1 - i)
            target.to_agent.clear()
            target.to_return.clear()
        done = 0
        while done < args.spawns:
            for target in targets:
                for i in range(done, min(done + BATCH, args.spawns)):
                    spawn_once(target, Path(tmp) / target.label, i)
            done += BATCH
        memory = {t.label: measure_memory(t, Path(tmp) / t.label) for t in targets}
        yardstick = import_sqlite_ms(env)
    mode = "no byte-code cache" if args.no_bytecode_cache else "byte-code cached"
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; {mode}")
    for target in targets:
        report(target)
    for label, found in memory.items():
        parts = [f"{what} {rss / 1024:.1f} / {pss / 1024:.1f} MiB" for what, (rss, pss) in found.items()]
        print(f"{label}: memory (VmRSS / PSS): " + ", ".join(parts))
    print(f'reference: python3 -c "import sqlite3" median {yardstick:.1f} ms')


if __name__ == "__main__":
    main()
