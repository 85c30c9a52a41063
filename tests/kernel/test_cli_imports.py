"""The `ic` path never imports asyncio, pydantic or Textual (DESIGN 3.2): start-up time is a feature.

Each case runs one real CLI call in a fresh interpreter through `kernel.cli.main.run` and then prints
`sys.modules`, so anything imported anywhere along the way, even lazily, is caught.

The three benchmarked calls (DESIGN 6, benchmarks/cli_latency.py: `run phase`, `run advance
--disable-gates`, `events tail --all --limit=100`) are held to a stricter list: the stdlib modules whose
import cost was most of their start-up before issue 10 (dataclasses with inspect, typing, pathlib,
shutil, contextlib, ...) stay off their path, each call in an interpreter of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.conftest import REPO_ROOT, Project

FORBIDDEN = (
    "asyncio",
    "pydantic",
    "pydantic_core",
    "textual",
    "rich",
    "watchfiles",
)

# Runs each command (a list of [argv, stdin], as a Python literal) through the real entry point, one
# after the other in one fresh interpreter, and prints which modules each call added: a heavy import is
# blamed on the call that made it, and the suite pays for one interpreter start instead of one per
# command. The probe imports json only once the calls are done, so a call importing it is seen too.
PROBE = """
import io, os, sys
{prelude}
from kernel.cli.main import run
before = set(sys.modules)
report = []
for argv, stdin in {commands!r}:
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode()))
    code = run(argv)
    sys.stdout.flush()
    now = set(sys.modules)
    report.append({{"argv": argv, "code": code, "added": sorted(now - before)}})
    before = now
report.append({{"argv": ["<all>"], "code": 0, "added": sorted(sys.modules)}})
import json
sys.stderr.write("\\n" + json.dumps(report) + "\\n")
"""


def _probe(project: Project, commands: list[tuple[list[str], str | None]], prelude: str = "") -> list[Any]:
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(prelude=prelude, commands=[list(c) for c in commands])],
        cwd=project.dir,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report: list[Any] = json.loads(proc.stderr.strip().splitlines()[-1])
    return report


# Off the path of the three benchmarked calls (besides FORBIDDEN). `run phase` prints text: no json.
HOT_PATH_FORBIDDEN = (
    "dataclasses",
    "inspect",
    "typing",
    "pathlib",
    "shutil",
    "contextlib",
    "urllib",
    "secrets",
    "hashlib",
    "random",
    "kernel.gates",
    "kernel.portfolio.slots",
    "kernel.budget",
)


def _heavy(modules: list[str], forbidden: tuple[str, ...] = FORBIDDEN) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_cli_calls_stay_light(project: Project) -> None:
    created = project.ic("run", "create", "--goal=imports", "--json")
    assert created.code == 0, created.err
    run_id = created.json()["id"]
    commands: list[tuple[list[str], str | None]] = [
        (["version"], None),
        (["events", "tail", "--all", "--limit=5"], None),
        (["state", "set", "k", "--ttl=1h"], '{"x": [1, 2]}'),
        (["state", "get", "k"], None),
        (["state", "list", "--json"], None),
        (["sentinel", "check", "s", "--interval=1m"], None),
        (["sentinel", "list"], None),
        (["events", "record", "--source=hook", "--type=probe", '--payload={"a": 1}'], None),
        (["events", "tail", "--all", "--consumer=probe", "--json"], None),
        (["events", "cursor", "list"], None),
        (["events", "cursor", "reset", "probe", "--to=0"], None),
        (["events", "record", "--source=hook", "--type=piped", "--payload=-"], '{"b": 2}'),
        (["health", "--json"], None),
        (["run", "phase", run_id], None),
        (["run", "status", run_id, "--json"], None),
        (["run", "advance", run_id, "--disable-gates"], None),
    ]
    report = _probe(project, commands)
    assert [entry["argv"] for entry in report[:-1]] == [argv for argv, _ in commands]
    for entry in report:
        assert entry["code"] == 0, entry["argv"]
        assert _heavy(entry["added"]) == [], entry["argv"]
    assert "kernel.cli.events" in report[-1]["added"]
    assert "kernel.cli.run" in report[-1]["added"]


def test_the_probe_does_see_heavy_imports(project: Project) -> None:
    """Control: the same probe reports asyncio when something on the path does import it."""
    report = _probe(project, [(["version"], None)], prelude="import bigend.core.aggregator")
    assert {"asyncio", "pydantic"} <= set(_heavy(report[-1]["added"]))


def test_the_benchmarked_calls_stay_off_the_costly_stdlib(project: Project) -> None:
    created = project.ic("run", "create", "--goal=imports", "--json")
    assert created.code == 0, created.err
    run_id = created.json()["id"]
    calls: list[tuple[list[str], tuple[str, ...]]] = [
        (["run", "phase", run_id], ("json",)),
        (["run", "advance", run_id, "--disable-gates"], ()),
        (["events", "tail", "--all", "--limit=100"], ()),
    ]
    for argv, also in calls:
        (entry, everything) = _probe(project, [(argv, None)])
        assert entry["code"] == 0, argv
        # Everything the interpreter holds, main's own imports included.
        assert _heavy(everything["added"], FORBIDDEN + HOT_PATH_FORBIDDEN + also) == [], argv


def test_the_hot_path_probe_does_see_those_modules(project: Project) -> None:
    """Control: the stricter list does catch a call that imports them (`ic run create --json` with
    gate rules validates them through the gate engine, which uses dataclasses)."""
    (entry, everything) = _probe(
        project, [(["run", "create", "--goal=g", '--gates={"brainstorm":[]}'], None)]
    )
    assert entry["code"] == 0
    assert {"dataclasses", "kernel.gates"} <= set(_heavy(everything["added"], HOT_PATH_FORBIDDEN))
