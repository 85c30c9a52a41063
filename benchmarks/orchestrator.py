"""Orchestrator overhead per phase, git included, the runner's own time excluded (DESIGN 6: <= 50 ms).

Builds a small git repository with N issues and a trivial `command` runner (a shell one-liner that
edits a file and prints runner-shaped JSON). Every issue walks dev -> review (fail) -> fix -> review
(pass), so all four moves of the loop are exercised: worktree creation, commits, kernel runs,
dispatches, advance/rollback/skip, logs, and the worktree removal at the end.

overhead per phase = (wall time of the whole `orchestrator run`, in process) - (sum of the agents'
own lifetimes, from each attempt's result.json: from the agent's start to its exit, as its reaper
reports them, so starting and ending it under its reaper counts as overhead), divided by the number
of phases. The CPU time of the orchestrator process itself and of its children (git, the reaper
service and its reapers, the agent one-liner) per phase is printed too: unlike wall time it barely
moves when other work loads the machine.

    python3 benchmarks/orchestrator.py [--issues 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0
sys.path.insert(0, str(ROOT))

# The agent: dev/fix edit a file; review fails until the fix left `fixed.txt` behind.
AGENT = r"""
case "$ORCHESTRATOR_PHASE" in
  review)
    if [ -f fixed.txt ]; then v='{"status":"pass","findings":[]}';
    else v='{"status":"fail","findings":[{"message":"add fixed.txt"}]}'; fi
    printf '{"type":"message","text":"reviewed"}\n{"type":"result","result":%s}\n' "$v" ;;
  fix) echo fixed > fixed.txt; printf '{"type":"message","text":"fixed"}\n' ;;
  *) echo "$ORCHESTRATOR_ISSUE" > "work-$ORCHESTRATOR_ISSUE.txt"
     printf '{"type":"message","text":"done"}\n' ;;
esac
printf '{"type":"usage","input_tokens":100,"output_tokens":10}\n'
"""

CONFIG = """\
[runner]
kind = "command"
command = ["/bin/sh", "-c", {agent}]
timeout = "60s"
stall = "60s"
retries = 0
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def build(root: Path, issues: int) -> Path:
    repo = root / "repo"
    (repo / "issues").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "bench")
    for n in range(1, issues + 1):
        (repo / "issues" / f"{n}.md").write_text(
            f"---\nid: {n}\nmilestone: B1\n---\n# Issue {n}\n\nDo {n}.\n"
        )
    (repo / "src").mkdir()
    for n in range(50):  # a small but not empty tree for git to work on
        (repo / "src" / f"mod{n}.py").write_text(f"VALUE = {n}\n" * 20)
    (repo / "orchestrator.toml").write_text(CONFIG.format(agent=json.dumps(AGENT)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench setup")
    return repo


def measure(issues: int) -> dict[str, float]:
    from orchestrator import cli

    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        repo = build(Path(tmp), issues)
        cwd = os.getcwd()
        os.chdir(repo)
        try:
            sink = io.StringIO()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                own_before = resource.getrusage(resource.RUSAGE_SELF)
                kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                code = cli.run(["run", "--milestone", "B1", "--quiet"])
                wall = time.perf_counter() - started
                own_after = resource.getrusage(resource.RUSAGE_SELF)
                kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        finally:
            os.chdir(cwd)
        if code != 0:
            raise SystemExit(f"benchmark run failed with exit code {code}:\n{sink.getvalue()[-2000:]}")
        results = list((repo / ".orchestrator/logs").glob("*/cycle-*/*/attempt-*/result.json"))
        runner = sum(json.loads(p.read_text())["duration_s"] for p in results)
        phases = len(results)

    def cpu(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    return {
        "phases": phases,
        "wall_s": wall,
        "runner_s": runner,
        "overhead_per_phase_ms": (wall - runner) / phases * 1000,
        "own_cpu_per_phase_ms": cpu(own_before, own_after) / phases * 1000,
        "children_cpu_per_phase_ms": cpu(kids_before, kids_after) / phases * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import orchestrator.loop  # noqa: F401 - warm imports so the first repetition is not penalised

    rounds = [measure(args.issues) for _ in range(args.repeat)]
    for n, r in enumerate(rounds, 1):
        print(
            f"round {n}: {int(r['phases'])} phases, wall {r['wall_s']:.2f} s, runner {r['runner_s']:.2f} s, "
            f"overhead {r['overhead_per_phase_ms']:.1f} ms/phase "
            f"(cpu: orchestrator {r['own_cpu_per_phase_ms']:.1f} ms, "
            f"git+agent {r['children_cpu_per_phase_ms']:.1f} ms)"
        )
    median = statistics.median(r["overhead_per_phase_ms"] for r in rounds)
    verdict = "OK" if median <= TARGET_MS else "OVER TARGET"
    print(
        f"orchestrator overhead per phase (median of {args.repeat}): {median:.1f} ms "
        f"(target <= {TARGET_MS:g} ms) {verdict}"
    )


if __name__ == "__main__":
    main()
