"""`ic dispatch` bad input and bookkeeping: exit codes, one-line errors, list, tokens, prune."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from kernel.dispatch import api
from tests.conftest import IcResult, Project
from tests.fixtures.dispatching import agent


@pytest.fixture
def proj(project: Project) -> Iterator[Project]:
    (project.dir / "prompt.md").write_text("Review the change.\n")
    yield project


def assert_one_line_error(result: IcResult, code: int, *needles: str) -> None:
    assert result.code == code, result.err
    err = result.err
    assert err.startswith("ic: ") and err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err


def rows(proj: Project) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = proj.ic("--json", "dispatch", "list").json_lines()
    return listed


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("--prompt-file=missing.md",), 3, "does not exist"),
        (("--prompt-file=adir",), 2, "cannot be read"),  # a directory: the read itself fails
        (("--prompt-file=prompt.md", "--timeout=abc"), 3, "--timeout"),
        (("--prompt-file=prompt.md", "--timeout=0s"), 3, "positive"),
        (("--prompt-file=prompt.md", "--project=no/such/dir"), 3, "not a directory"),
        (("--prompt-file=prompt.md", "--output=no/such/dir/out.log"), 3, "does not exist"),
        (("--prompt-file=prompt.md", "--type=aider"), 3, "no command for agent type 'aider'"),
        (("--prompt-file=prompt.md", "--command=[1, 2]"), 3, "list of strings"),
        (("--prompt-file=prompt.md", '--command="unclosed'), 3, "--command"),
        ((), 3, "--prompt-file"),
        (("--prompt-file=prompt.md", "--name=x", "--command=true", "--", "true"), 3, "not both"),
    ],
)
def test_spawn_bad_input_writes_nothing(proj: Project, args: tuple[str, ...], code: int, needle: str) -> None:
    (proj.dir / "adir").mkdir()
    own_command = any(a.startswith(("--type", "--command")) for a in args)
    result = proj.ic("dispatch", "spawn", *args, *(() if own_command else ("--", *agent())))
    assert_one_line_error(result, code, needle)
    assert rows(proj) == []


def test_bad_dispatch_toml_is_a_usage_error(proj: Project) -> None:
    (proj.dir / ".clavain" / "dispatch.toml").write_text("[codex\ncommand = 3\n")
    assert_one_line_error(proj.ic("dispatch", "spawn", "--prompt-file=prompt.md"), 3, "dispatch.toml")
    (proj.dir / ".clavain" / "dispatch.toml").write_text("[codex]\ncommand = []\n")
    assert_one_line_error(proj.ic("dispatch", "spawn", "--prompt-file=prompt.md"), 3, "non-empty")


@pytest.mark.parametrize("sub", ["status", "poll", "wait", "kill", "tokens"])
def test_unknown_dispatch_id_is_exit_1(proj: Project, sub: str) -> None:
    extra = ("--in=1", "--out=1") if sub == "tokens" else ()
    assert_one_line_error(proj.ic("dispatch", sub, "nosuchid", *extra), 1, "no dispatch 'nosuchid'")


def test_token_figures_must_be_whole_non_negative_numbers(proj: Project) -> None:
    conn = proj.connect()
    try:
        row = api.begin_external(conn, project_dir=proj.dir, agent_type="claude")
    finally:
        conn.close()
    assert_one_line_error(proj.ic("dispatch", "tokens", row.id, "--in=-5", "--out=1"), 3, "--in")
    assert_one_line_error(proj.ic("dispatch", "tokens", row.id, "--in=1", "--out=x"), 3, "--out")
    assert_one_line_error(proj.ic("dispatch", "tokens", row.id, "--in=1"), 3, "--out")
    done = proj.ic("--json", "dispatch", "tokens", row.id, "--in=7", "--out=3", "--cache=2")
    assert done.code == 0
    assert (done.json()["input_tokens"], done.json()["output_tokens"], done.json()["cache_tokens"]) == (
        7,
        3,
        2,
    )


def test_own_timeout_flags_leave_the_global_busy_timeout_alone(proj: Project) -> None:
    # `--timeout` after `dispatch wait` is the wait's; before `dispatch` it is the database's.
    assert_one_line_error(proj.ic("--timeout=2s", "dispatch", "wait", "nosuchid", "--timeout=abc"), 3, "abc")
    assert_one_line_error(proj.ic("--timeout=abc", "dispatch", "list"), 3, "abc")


def test_list_status_active_scope_and_text_output(proj: Project) -> None:
    conn = proj.connect()
    try:
        running = api.begin_external(
            conn, project_dir=proj.dir, agent_type="codex", scope_id="r1", name="dev"
        )
        done = api.begin_external(conn, project_dir=proj.dir, agent_type="claude", scope_id="r2")
        api.finish(conn, done.id, status="failed", exit_code=4, error="exited with code 4")
    finally:
        conn.close()
    assert {r["id"] for r in rows(proj)} == {running.id, done.id}
    active = proj.ic("--json", "dispatch", "list", "--active").json_lines()
    assert [r["id"] for r in active] == [running.id]
    scoped = proj.ic("--json", "dispatch", "list", "--scope=r2").json_lines()
    assert [(r["id"], r["exit_code"]) for r in scoped] == [(done.id, 4)]
    table = proj.ic("dispatch", "list").out.splitlines()
    assert table[0].split("\t")[:3] == ["id", "status", "type"]
    assert any(line.startswith(f"{running.id}\trunning\tcodex\tdev\t") for line in table)
    status = proj.ic("dispatch", "status", done.id)
    assert "status\tfailed" in status.out.splitlines()


def test_prune_deletes_old_terminal_dispatches_and_their_directories(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    spawned = proj.ic("--json", "dispatch", "spawn", "--prompt-file=prompt.md", "--", *agent())
    assert spawned.code == 0, spawned.err
    dispatch_id = spawned.json()["id"]
    assert proj.ic("dispatch", "wait", dispatch_id).code == 0
    directory = proj.dir / ".clavain" / "dispatches" / dispatch_id
    assert (directory / "output.log").exists()
    conn = proj.connect()
    try:
        live = api.begin_external(conn, project_dir=proj.dir, agent_type="codex")
    finally:
        conn.close()
    assert proj.ic("--json", "dispatch", "prune", "--older-than=1h").json() == {"pruned": 0}
    monkeypatch.setenv("IC_NOW", str(2**31))  # a clock far in the future: it ended long ago
    assert proj.ic("--json", "dispatch", "prune", "--older-than=1h").json() == {"pruned": 1}
    assert [r["id"] for r in rows(proj)] == [live.id]  # running ones are never pruned
    assert not directory.exists()
    assert_one_line_error(proj.ic("dispatch", "prune", "--older-than=soon"), 3, "--older-than")


# Runs CLI calls through the real entry point in one fresh interpreter, then lists heavy modules loaded.
LIGHTNESS_PROBE = """
import json, sys
from kernel.cli.main import run
run_id = sys.argv[1]
codes = [
    run(["--json", "dispatch", "spawn", "--prompt-file=prompt.md", "--scope-id=" + run_id, "--", "true"]),
    run(["dispatch", "list"]),
    run(["run", "tokens", run_id]),
    run(["run", "budget", run_id]),
]
heavy = ("asyncio", "pydantic", "pydantic_core", "textual", "rich", "watchfiles")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
sys.stderr.write(json.dumps({"codes": codes, "heavy": loaded}) + "\\n")
"""


def test_dispatch_and_budget_commands_stay_off_asyncio_pydantic_and_textual(proj: Project) -> None:
    run_id = proj.ic("--json", "run", "create", "--goal=light", "--token-budget=10").json()["id"]
    done = subprocess.run(
        [sys.executable, "-c", LIGHTNESS_PROBE, run_id], cwd=proj.dir, capture_output=True, text=True
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report == {"codes": [0, 0, 0, 0], "heavy": []}


def ended_dispatch(proj: Project, status: str, exit_code: int) -> str:
    conn = proj.connect()
    try:
        row = api.begin_external(conn, project_dir=proj.dir, agent_type="codex")
        api.finish(conn, row.id, status=status, exit_code=exit_code)
    finally:
        conn.close()
    return row.id


def event_count(proj: Project, dispatch_id: str) -> int:
    conn = proj.connect()
    try:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE dispatch_id = ?", (dispatch_id,)).fetchone()[0]
        )
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("status", "code"), [("completed", 0), ("failed", 1), ("timeout", 1), ("cancelled", 1)]
)
def test_wait_on_an_ended_dispatch_answers_at_once_and_changes_nothing(
    proj: Project, status: str, code: int
) -> None:
    dispatch_id = ended_dispatch(proj, status, 0 if status == "completed" else 9)
    before = event_count(proj, dispatch_id)
    waited = proj.ic("--json", "dispatch", "wait", dispatch_id, "--timeout=0s")
    assert waited.code == code, waited.err
    assert waited.json()["status"] == status and waited.err == ""
    assert event_count(proj, dispatch_id) == before


def test_kill_on_an_ended_dispatch_is_exit_1_and_changes_nothing(proj: Project) -> None:
    dispatch_id = ended_dispatch(proj, "completed", 0)
    before = event_count(proj, dispatch_id)
    for flags in ((), ("--json",)):
        killed = proj.ic(*flags, "dispatch", "kill", dispatch_id)
        assert_one_line_error(killed, 1, f"dispatch {dispatch_id} already ended (completed); nothing to kill")
        assert killed.out == ""
    row = proj.ic("--json", "dispatch", "status", dispatch_id).json()
    assert (row["status"], row["exit_code"], row["error"]) == ("completed", 0, None)
    assert event_count(proj, dispatch_id) == before


def test_prune_keeps_ended_dispatches_whose_processes_still_run(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recorded as cancelled, but its agent is still in its grace period (it ignores TERM, say).
    lingering = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        conn = proj.connect()
        try:
            row = api.begin_external(conn, project_dir=proj.dir, agent_type="codex", pid=lingering.pid)
            api.finish(conn, row.id, status="cancelled", error="cancelled by request")
        finally:
            conn.close()
        monkeypatch.setenv("IC_NOW", str(2**31))
        kept = proj.ic("dispatch", "prune", "--older-than=0s")
        assert kept.code == 0, kept.err
        assert kept.out == "pruned 0 dispatches; kept 1 that ended but still have running processes\n"
        assert [r["id"] for r in rows(proj)] == [row.id]
    finally:
        lingering.kill()
        lingering.wait()
    assert proj.ic("--json", "dispatch", "prune", "--older-than=0s").json() == {"pruned": 1}
    assert rows(proj) == []
