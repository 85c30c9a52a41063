"""`bigend --once [--json]`: the headless picture, through the real console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bigend.core.statejson import state_from_json
from bigend.demo import DemoInfo, build_demo
from kernel import db as kdb
from kernel import runs, terminal
from tests.conftest import REPO_ROOT
from tests.hostile import SAMPLES, assert_inert, dir_name, everything
from tests.kernel.test_contracts import load_schema, validate

SCHEMA = REPO_ROOT / "docs" / "contracts" / "bigend-state.schema.json"


def bigend(*args: str, cwd: Path | None = None, columns: int = 160) -> subprocess.CompletedProcess[str]:
    found = shutil.which("bigend")
    command = [found] if found else [sys.executable, "-m", "bigend"]
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "COLUMNS": str(columns),
        "HOME": str(cwd or REPO_ROOT),
    }
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoInfo:
    return build_demo(tmp_path_factory.mktemp("once") / "workspace", now=1_750_000_000, seed="once")


def test_once_json_matches_the_schema_and_what_the_demo_wrote(demo: DemoInfo) -> None:
    done = bigend("--once", "--json", "--root", str(demo.root))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.count("\n") == 1  # one document, one line
    document: dict[str, Any] = json.loads(done.stdout)
    assert validate(document, load_schema("bigend-state")) == []
    state = state_from_json(done.stdout)

    m, counts = state.metrics, demo.counts
    assert m.active_runs == counts.active_runs
    assert m.blocked_agents == counts.blocked_runs == 2
    assert m.active_dispatches == counts.active_dispatches
    assert (m.total_tokens_in, m.total_tokens_out) == (counts.tokens_in, counts.tokens_out)
    assert set(m.kernel_errors) == {str(demo.corrupt_project)}
    assert m.projects_total == len(demo.projects) and m.projects_ok == len(demo.projects) - 1
    assert {p.path for p in state.projects} == {str(p) for p in demo.projects}
    for project in state.projects:
        assert project.runs_total == counts.runs_per_project.get(project.path, 0)
        assert project.dispatches_total == counts.dispatches_per_project.get(project.path, 0)
    blocked = {r.id for p in state.projects for r in p.runs if r.unified == "blocked"}
    assert blocked == set(demo.blocked_run_ids)
    assert state.roots == [str(demo.root)] and state.root_errors == {}


def test_once_summary_is_a_short_table(demo: DemoInfo) -> None:
    done = bigend("--once", "--root", str(demo.root))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Projects {len(demo.projects) - 1}/{len(demo.projects)} | Active runs ")
    assert any(line.startswith("!") and "ml-ranker" in line for line in lines)
    assert any("interverse" in line for line in lines) and len(lines) == len(demo.projects) + 2


def test_untrusted_names_are_printed_literally(tmp_path: Path) -> None:
    hostile = tmp_path / "[bold red]evil"  # a directory name cannot hold the closing "[/...]"
    kdb.init_db(hostile / kdb.DB_DIR / kdb.DB_NAME)
    conn = kdb.open_db(hostile / kdb.DB_DIR / kdb.DB_NAME)
    runs.create_run(conn, goal="[blink]x[/blink] \x1b[31mred\x1b[0m", project_dir=hostile)
    conn.close()
    done = bigend("--once", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "[bold red]evil" in done.stdout and "\x1b[" not in done.stdout
    as_json = json.loads(bigend("--once", "--json", "--root", str(tmp_path)).stdout)
    assert as_json["projects"][0]["runs"][0]["goal"] == "[blink]x[/blink] \x1b[31mred\x1b[0m"


def test_the_summary_over_the_hostile_corpus(tmp_path: Path) -> None:
    """Real project directories named after each hostile sample, goals from the corpus, and a
    hostile-named project whose database is unreadable (shown with `!` and its error)."""
    names = []
    for name, sample in SAMPLES.items():
        project = tmp_path / dir_name(f"{name}{sample}")
        kdb.init_db(project / kdb.DB_DIR / kdb.DB_NAME)
        conn = kdb.open_db(project / kdb.DB_DIR / kdb.DB_NAME)
        runs.create_run(conn, goal=everything(), project_dir=project)
        conn.close()
        names.append(project.name)
    broken = tmp_path / dir_name(f"broken{SAMPLES['osc0-title']}")
    (broken / kdb.DB_DIR).mkdir(parents=True)
    (broken / kdb.DB_DIR / kdb.DB_NAME).write_bytes(b"not a database " * 100)
    done = bigend("--once", "--root", str(tmp_path), columns=1000)
    assert done.returncode == 0, done.stderr
    assert_inert(done.stdout + done.stderr)
    for name in [*names, broken.name]:
        assert terminal.one_line(name) in done.stdout
    (broken_line,) = [line for line in done.stdout.splitlines() if terminal.one_line(broken.name) in line]
    assert broken_line.startswith("!") and "not a SQLite database" in broken_line


def test_no_readable_root_is_exit_2_with_one_line(tmp_path: Path) -> None:
    done = bigend("--once", "--json", "--root", str(tmp_path / "nope"), "--root", str(tmp_path / "gone"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("bigend: no readable root:")
    assert "does not exist" in done.stderr


def test_one_readable_root_is_enough(tmp_path: Path) -> None:
    kdb.init_db(tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME)
    done = bigend("--once", "--json", "--root", str(tmp_path / "nope"), "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["root_errors"] == {str(tmp_path / "nope"): "does not exist"}


def test_default_root_is_the_current_directory_and_config_roots_apply(tmp_path: Path) -> None:
    kdb.init_db(tmp_path / "here" / kdb.DB_DIR / kdb.DB_NAME)
    kdb.init_db(tmp_path / "there" / "p" / kdb.DB_DIR / kdb.DB_NAME)
    here = json.loads(bigend("--once", "--json", cwd=tmp_path / "here").stdout)
    assert [p["path"] for p in here["projects"]] == [str(tmp_path / "here")]
    cfg = tmp_path / "bigend.toml"
    cfg.write_text('roots = ["there"]\ndepth = 1\n')
    there = json.loads(bigend("--once", "--json", "--config", str(cfg), cwd=tmp_path / "here").stdout)
    assert [p["path"] for p in there["projects"]] == [str(tmp_path / "there" / "p")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--json",), "--json goes with --once"),
        (("--once", "--frobnicate"), "unrecognized arguments: --frobnicate"),
        (("--once", "--config", "/nonexistent/bigend.toml"), "does not exist"),
        (("demo", "--interval=0"), "--interval must be > 0"),
    ],
)
def test_usage_errors_are_exit_3_with_one_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    done = bigend(*args, cwd=tmp_path)
    assert done.returncode == 3, done
    assert done.stderr.count("\n") == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_the_core_and_the_headless_path_never_load_textual(tmp_path: Path) -> None:
    kdb.init_db(tmp_path / "p" / kdb.DB_DIR / kdb.DB_NAME)
    script = (
        "import sys\n"
        "from bigend.cli import run\n"
        "import bigend.core.aggregator, bigend.core.feed, bigend.core.kernelevents, bigend.demo\n"
        f"code = run(['--once', '--json', '--root', {str(tmp_path)!r}])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "print(code, loaded, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stderr.strip() == "0 []", done.stderr
    assert json.loads(done.stdout)["metrics"]["projects_total"] == 1
