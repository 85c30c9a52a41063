"""`ic run ...` through the real executable on a real database: success paths, JSON shapes, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kernel import runs
from kernel.errors import Refused, UsageError
from kernel.model import Run
from kernel.phase import DEFAULT_CHAIN
from tests.conftest import Project, default_sigint, hold_lock, ic_executable, release
from tests.kernel.test_db import waiting_on_a_lock

RUN_KEYS = set(Run.FIELDS)


def create(project: Project, *args: str) -> str:
    result = project.ic("run", "create", "--goal=test goal", *args, "--json")
    assert result.code == 0, result.err
    return str(result.json()["id"])


def status(project: Project, run_id: str) -> dict[str, Any]:
    result = project.ic("run", "status", run_id, "--json")
    assert result.code == 0, result.err
    body: dict[str, Any] = result.json()
    return body


def events_of(project: Project, run_id: str) -> list[dict[str, Any]]:
    result = project.ic("run", "events", run_id, "--json")
    assert result.code == 0, result.err
    return [e for e in result.json_lines()]


def count_rows(project: Project, table: str) -> int:
    conn = project.connect()
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def one_line_error(result: Any, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.out, result.err)
    assert result.err.startswith("ic: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    for needle in needles:
        assert needle in result.err, result.err


# -- create, status, phase ----------------------------------------------------------------------------


def test_create_defaults_and_status_shape(project: Project) -> None:
    result = project.ic("run", "create", "--goal=ship it", "--json")
    assert result.code == 0, result.err
    body = result.json()
    assert set(body) == {"id", "phase"} and body["phase"] == "brainstorm"
    assert result.out == json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"
    run = status(project, body["id"])
    assert set(run) == RUN_KEYS
    assert run["project_dir"] == str(project.dir)
    assert run["phases"] == list(DEFAULT_CHAIN)
    assert (run["status"], run["complexity"], run["auto_advance"], run["budget_warn_pct"]) == (
        "active", 3, True, 80,
    )  # fmt: skip
    created = events_of(project, body["id"])
    assert [(e["source"], e["type"], e["to_state"]) for e in created] == [("phase", "created", "brainstorm")]


def test_create_text_output_is_the_id_and_phase_prints_the_phase(project: Project) -> None:
    result = project.ic("run", "create", "--goal", "text mode")
    assert result.code == 0
    run_id = result.out.strip()
    assert len(run_id) == 8 and run_id.isalnum()
    phase = project.ic("run", "phase", run_id)
    assert (phase.code, phase.out) == (0, "brainstorm\n")
    as_json = project.ic("run", "phase", run_id, "--json")
    assert as_json.json() == {"id": run_id, "phase": "brainstorm", "status": "active"}


def test_create_with_every_option(project: Project, tmp_path: Path) -> None:
    gates = tmp_path / "gates.json"
    gates.write_text('{"build": [{"check": "artifact_exists", "phase": "build"}]}')
    result = project.ic(
        "run", "create", "--goal=full", "--project=sub/dir", '--phases=["plan","build","ship"]',
        "--complexity=5", "--scope-id=sprint-1", "--token-budget=1000", "--budget-warn-pct=50",
        "--budget-enforce", "--max-agents=3", f"--gates-file={gates}", '--metadata={"k":"v","n":1}',
        "--force-full", "--auto-advance=false", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.json()["phase"] == "plan"
    run = status(project, result.json()["id"])
    assert run["project_dir"] == str(project.dir / "sub" / "dir")
    assert run["phases"] == ["plan", "build", "ship"]
    assert run["scope_id"] == "sprint-1"
    assert (run["token_budget"], run["budget_warn_pct"], run["budget_enforce"]) == (1000, 50, True)
    assert (run["max_agents"], run["force_full"], run["auto_advance"]) == (3, True, False)
    assert run["gate_rules"] == {"build": [{"check": "artifact_exists", "phase": "build"}]}
    assert run["metadata"] == {"k": "v", "n": 1}


def test_hostile_goal_is_stored_literally(project: Project) -> None:
    goal = "[bold red]x[/] \x1b[31m évé\ttab"
    run_id = create(project, f"--goal={goal}")
    assert status(project, run_id)["goal"] == goal


def test_hostile_text_cannot_drive_the_terminal_or_break_rows(project: Project) -> None:
    """Text output shows control characters as visible escapes; --json keeps them exactly."""
    goal = "a\x1b]0;pwned\x07b\x1b[2J\rline\nnext\x9bc\ttab"
    run_id = create(project, f"--goal={goal}")
    listing = project.ic("run", "list").out
    fields = project.ic("run", "status", run_id).out
    for text in (listing, fields):
        assert not {"\x1b", "\x07", "\r", "\x9b"} & set(text), repr(text)
    assert "a\\x1b]0;pwned\\x07b\\x1b[2J line next\\x9bc tab" in listing
    assert listing.count("\n") == 2 and all(len(row.split("\t")) == 6 for row in listing.splitlines())
    assert status(project, run_id)["goal"] == goal


def test_error_lines_stay_one_line_whatever_the_input(project: Project) -> None:
    result = project.ic("run", "current", "--project=a\nb\x1b[31m")
    one_line_error(result, 1, "a b\\x1b[31m")
    assert "\x1b" not in result.err


def test_leftover_arguments_name_the_subcommand(project: Project) -> None:
    one_line_error(
        project.ic("run", "status", "abc", "extra"), 3,
        "run status: unrecognized arguments: extra", "`ic run status --help`",
    )  # fmt: skip
    one_line_error(project.ic("run", "agent", "list", "abc", "more"), 3, "run agent list: unrecognized")


def test_help_names_the_global_options_and_the_values_expected(project: Project) -> None:
    helped = project.ic("run", "advance", "--help")
    assert helped.code == 0
    assert "--priority N" in helped.out and "RUN" in helped.out
    assert "--db=PATH" in helped.out and "--timeout=DUR" in helped.out
    current = project.ic("run", "current", "--help").out
    assert "no walking up" in " ".join(current.split())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "--goal"),
        (("--goal=x", "--complexity=0"), "complexity"),
        (("--goal=x", "--complexity=6"), "complexity"),
        (("--goal=x", "--complexity=high"), "complexity"),
        (("--goal=x", "--phases=[not json"), "--phases is not valid JSON"),
        (("--goal=x", '--phases=["only"]'), "at least 2"),
        (("--goal=x", '--phases=["a","a"]'), "unique"),
        (("--goal=x", '--phases={"a":1}'), "JSON array"),
        (("--goal=x", '--phases=["a","b\\nc"]'), "printable"),
        (("--goal=x", '--phases=["a","\\u001b[31mb"]'), "printable"),
        (("--goal=x", '--metadata={"a":NaN}'), "NaN is not a JSON number"),
        (("--goal=x", '--metadata={"a":1e999}'), "too large"),
        (("--goal=x", '--gates={"brainstorm":[],"x":Infinity}'), "Infinity"),
        (("--goal=x", '--gates={"brainstorm":["no_such_check"]}'), "unknown check"),
        (("--goal=x", "--gates={oops"), "--gates is not valid JSON"),
        (("--goal=x", '--gates=["artifact_exists"]'), "JSON object"),
        (("--goal=x", '--gates={"nowhere":["artifact_exists"]}'), "not in the run's chain"),
        (("--goal=x", '--gates={"brainstorm":[{"check":"artifact_exists","color":"red"}]}'), "unknown key"),
        (("--goal=x", "--gates-file=/nonexistent/gates.json"), "cannot read"),
        (("--goal=x", "--gates={}", "--gates-file=f"), "not allowed with"),
        (("--goal=x", "--metadata=[1,2]"), "JSON object"),
        (("--goal=x", "--metadata={bad"), "--metadata is not valid JSON"),
        (("--goal=x", "--token-budget=-5"), "token-budget"),
        (("--goal=x", "--budget-warn-pct=101"), "budget-warn-pct"),
        (("--goal=x", "--max-agents=0"), "max-agents"),
        (("--goal=  ",), "goal"),
        (("--goal=x", "--bogus"), "unrecognized"),
    ],
)
def test_create_bad_input_is_usage_error(project: Project, args: tuple[str, ...], needle: str) -> None:
    one_line_error(project.ic("run", "create", *args), 3, needle)
    assert count_rows(project, "runs") == count_rows(project, "events") == 0, "no half-written run"


@pytest.mark.parametrize("cmd", ["status", "phase", "events", "cancel", "advance"])
def test_unknown_run_is_exit_1(project: Project, cmd: str) -> None:
    one_line_error(project.ic("run", cmd, "nosuchid"), 1, "nosuchid")


@pytest.mark.parametrize("cmd", ["status", "phase", "events", "cancel", "advance", "skip", "rollback", "set"])
def test_missing_run_argument_is_exit_3(project: Project, cmd: str) -> None:
    one_line_error(project.ic("run", cmd), 3)


def test_run_without_subcommand_is_usage_error_and_help_works(project: Project) -> None:
    one_line_error(project.ic("run"), 3)
    one_line_error(project.ic("run", "list", "--active=yes"), 3, "--active")
    one_line_error(project.ic("run", "frobnicate"), 3, "frobnicate")
    helped = project.ic("run", "--help")
    assert helped.code == 0 and "advance" in helped.out and "artifact" in helped.out


# -- list, events -------------------------------------------------------------------------------------


def test_list_filters_active_and_scope(project: Project) -> None:
    a = create(project, "--scope-id=s1")
    b = create(project, "--scope-id=s2")
    c = create(project, "--scope-id=s1")
    assert project.ic("run", "cancel", c).code == 0
    every = project.ic("run", "list", "--json").json_lines()
    assert {r["id"] for r in every} == {a, b, c} and all(set(r) == RUN_KEYS for r in every)
    active = project.ic("run", "list", "--active", "--json").json_lines()
    assert {r["id"] for r in active} == {a, b}
    scoped = project.ic("run", "list", "--scope=s1", "--json").json_lines()
    assert {r["id"] for r in scoped} == {a, c}
    both = project.ic("run", "list", "--scope", "s1", "--active", "--json").json_lines()
    assert [r["id"] for r in both] == [a]
    text = project.ic("run", "list").out.splitlines()
    assert text[0].split("\t") == ["id", "status", "phase", "complexity", "project_dir", "goal"]
    assert len(text) == 4 and all(len(line.split("\t")) == 6 for line in text)


def test_events_since_and_limit(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c"]')
    assert project.ic("run", "advance", run_id, "--disable-gates").code == 0
    every = events_of(project, run_id)
    assert [e["type"] for e in every] == ["created", "advance"]
    assert set(every[0]) == {
        "id", "run_id", "source", "type", "from_state", "to_state", "reason", "dispatch_id", "payload",
        "timestamp",
    }  # fmt: skip
    later = project.ic("run", "events", run_id, f"--since={every[0]['id']}", "--json").json_lines()
    assert [e["type"] for e in later] == ["advance"]
    first = project.ic("run", "events", run_id, "--limit=1", "--json").json_lines()
    assert [e["type"] for e in first] == ["created"]
    one_line_error(project.ic("run", "events", run_id, "--limit=-1"), 3, "--limit")
    text = project.ic("run", "events", run_id).out.splitlines()
    assert len(text) == 2 and text[1].split("\t")[4] == "advance"


# -- advance, pause, terminal ---------------------------------------------------------------------------


def test_complexity_one_walk_through_the_cli(project: Project) -> None:
    run_id = create(project, "--complexity=1")
    entered = []
    for _ in range(3):
        result = project.ic("run", "advance", run_id, "--disable-gates", "--json")
        assert result.code == 0, result.err
        entered.append(result.json()["to_phase"])
    assert entered == ["planned", "executing", "done"]
    body = result.json()
    assert body["status"] == "completed"
    assert set(body) == {"run_id", "from_phase", "to_phase", "skipped", "status", "gate", "overridden"}
    assert body["gate"] == {"result": "none", "tier": "none", "evidence": {"conditions": []}}
    final = status(project, run_id)
    assert final["status"] == "completed" and final["completed_at"] is not None
    kinds = [e["type"] for e in events_of(project, run_id)]
    assert kinds.count("skip") == 5 and kinds[-1] == "complete"
    again = project.ic("run", "advance", run_id, "--disable-gates")
    one_line_error(again, 1, "completed")


def test_advance_text_output_mentions_skips(project: Project) -> None:
    run_id = create(project, "--complexity=1")
    result = project.ic("run", "advance", run_id, "--disable-gates")
    assert result.out == "brainstorm -> planned (skipped brainstorm-reviewed, strategized)\n"


def test_pause_when_auto_advance_is_off(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c"]', "--auto-advance=false")
    paused = project.ic("run", "advance", run_id, "--disable-gates")
    one_line_error(paused, 1, "paused", "--skip-reason")
    assert status(project, run_id)["phase"] == "a"
    result = project.ic(
        "run", "advance", run_id, "--disable-gates", "--skip-reason=operator says go", "--json"
    )
    assert result.code == 0 and result.json()["to_phase"] == "b"
    history = events_of(project, run_id)
    assert [e["type"] for e in history] == ["created", "pause", "advance"]
    assert history[1]["from_state"] == "a" and history[1]["to_state"] == "b"
    assert history[2]["reason"] == "operator says go"


def test_expect_phase_refuses_a_stale_advance(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c"]')
    assert project.ic("run", "advance", run_id, "--disable-gates", "--expect-phase=a").code == 0
    stale = project.ic("run", "advance", run_id, "--disable-gates", "--expect-phase=a")
    one_line_error(stale, 1, "phase changed")
    assert status(project, run_id)["phase"] == "b"


def test_ctrl_c_while_waiting_for_the_lock_writes_nothing(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c"]')
    before = events_of(project, run_id)
    holder = hold_lock(project.db, exclusive=False)
    advancing = subprocess.Popen(
        [*ic_executable(), "--timeout=60s", "run", "advance", run_id, "--disable-gates"],
        cwd=project.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )  # fmt: skip
    waiting_on_a_lock(advancing, project.db.resolve())
    advancing.send_signal(signal.SIGINT)
    release(holder)  # the interrupted advance now gets the lock: it must not use it
    out, err = advancing.communicate(timeout=60)
    assert (advancing.returncode, out, err) == (130, "", "ic: interrupted\n")
    assert status(project, run_id)["phase"] == "a"
    assert events_of(project, run_id) == before


def test_bad_priority_is_usage_error(project: Project) -> None:
    run_id = create(project)
    one_line_error(project.ic("run", "advance", run_id, "--priority=-1"), 3, "priority")
    one_line_error(project.ic("run", "advance", run_id, "--priority=x"), 3, "priority")


# -- skip -------------------------------------------------------------------------------------------------


def test_skip_pre_skips_a_phase(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c","d"]')
    result = project.ic("run", "skip", run_id, "b", "--reason=not needed", "--json")
    assert result.code == 0, result.err
    assert result.json() == {"run_id": run_id, "phase": "b", "skipped": True, "already": False}
    again = project.ic("run", "skip", run_id, "b", "--reason=still not needed", "--json")
    assert again.code == 0 and again.json()["already"] is True
    advanced = project.ic("run", "advance", run_id, "--disable-gates", "--json").json()
    assert (advanced["to_phase"], advanced["skipped"]) == ("c", ["b"])
    skips = [e for e in events_of(project, run_id) if e["type"] == "skip"]
    assert [(e["from_state"], e["to_state"], e["payload"]["cause"]) for e in skips] == [
        (None, "b", "pre-skip"),
        ("a", "b", "pre-skip"),
    ]


def test_skip_bad_inputs(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c"]')
    one_line_error(project.ic("run", "skip", run_id, "zzz", "--reason=r"), 3, "not in run")
    one_line_error(project.ic("run", "skip", run_id, "c", "--reason=r"), 3, "terminal")
    one_line_error(project.ic("run", "skip", run_id, "a", "--reason=r"), 1, "already at or past")
    one_line_error(project.ic("run", "skip", run_id, "b"), 3, "--reason")
    one_line_error(project.ic("run", "skip", run_id, "b", "--reason="), 3, "reason")
    one_line_error(project.ic("run", "skip", "nosuchid", "b", "--reason=r"), 1)


# -- rollback -------------------------------------------------------------------------------------------


def test_rollback_dry_run_then_real(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c","d"]')
    for _ in range(2):
        assert project.ic("run", "advance", run_id, "--disable-gates").code == 0
    dry = project.ic("run", "rollback", run_id, "--to-phase=a", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json() == {
        "run_id": run_id, "from_phase": "c", "to_phase": "a", "rolled_back": ["b", "c"], "status": "active",
        "dry_run": True,
    }  # fmt: skip
    assert status(project, run_id)["phase"] == "c"
    assert "rollback" not in [e["type"] for e in events_of(project, run_id)]
    real = project.ic("run", "rollback", run_id, "--to-phase", "b", "--reason=redo", "--json")
    assert real.code == 0 and real.json()["dry_run"] is False
    assert status(project, run_id)["phase"] == "b"
    last = events_of(project, run_id)[-1]
    assert (last["type"], last["from_state"], last["to_state"], last["reason"]) == (
        "rollback",
        "c",
        "b",
        "redo",
    )


def test_rollback_reopens_a_completed_run(project: Project) -> None:
    run_id = create(project, '--phases=["a","b"]')
    assert project.ic("run", "advance", run_id, "--disable-gates").code == 0
    assert status(project, run_id)["status"] == "completed"
    assert project.ic("run", "rollback", run_id, "--to-phase=a").code == 0
    run = status(project, run_id)
    assert (run["phase"], run["status"], run["completed_at"]) == ("a", "active", None)
    assert events_of(project, run_id)[-1]["payload"]["reopened"] is True


def test_rollback_bad_inputs(project: Project) -> None:
    run_id = create(project, '--phases=["a","b","c"]')
    assert project.ic("run", "advance", run_id, "--disable-gates").code == 0
    one_line_error(project.ic("run", "rollback", run_id), 3, "--to-phase")
    one_line_error(project.ic("run", "rollback", run_id, "--to-phase=zzz"), 3, "not in run")
    one_line_error(project.ic("run", "rollback", run_id, "--to-phase=c"), 1, "not an earlier phase")
    one_line_error(project.ic("run", "rollback", run_id, "--to-phase=b"), 1, "not an earlier phase")
    assert project.ic("run", "cancel", run_id).code == 0
    one_line_error(project.ic("run", "rollback", run_id, "--to-phase=a"), 1, "cancelled")


# -- cancel ---------------------------------------------------------------------------------------------


def test_cancel_is_final(project: Project) -> None:
    run_id = create(project)
    result = project.ic("run", "cancel", run_id, "--reason=changed my mind", "--json")
    assert result.code == 0
    assert result.json()["status"] == "cancelled" and result.json()["completed_at"] is not None
    last = events_of(project, run_id)[-1]
    assert (last["type"], last["reason"], last["payload"]) == (
        "cancel",
        "changed my mind",
        {"status": "cancelled"},
    )
    one_line_error(project.ic("run", "cancel", run_id), 1, "cancelled")
    one_line_error(project.ic("run", "advance", run_id, "--disable-gates"), 1, "cancelled")


def test_fail_run_is_final_and_recorded(project: Project) -> None:
    run_id = create(project)
    conn = project.connect()
    run = runs.fail_run(conn, run_id, reason="review capped")
    conn.close()
    assert run.status == "failed"
    last = events_of(project, run_id)[-1]
    assert (last["type"], last["reason"]) == ("fail", "review capped")
    one_line_error(project.ic("run", "cancel", run_id), 1, "failed")


def test_block_records_why_a_run_waits_and_the_next_move_supersedes_it(project: Project) -> None:
    run_id = create(project, '--phases=["queued","dev","done"]')
    conn = project.connect()
    try:
        with pytest.raises(UsageError, match="a block needs a reason"):
            runs.block(conn, run_id, reason=" ")
        run = runs.block(conn, run_id, reason="dependency 3 did not pass", payload={"waits_for": ["3"]})
        assert (run.status, run.phase) == ("active", "queued")  # it stays where it is
        last = events_of(project, run_id)[-1]
        assert (last["source"], last["type"], last["from_state"], last["to_state"], last["reason"]) == (
            "phase", "block", "queued", "dev", "dependency 3 did not pass",
        )  # fmt: skip
        assert last["payload"] == {"waits_for": ["3"]}
        runs.advance(conn, run_id, disable_gates=True)  # the dependency passed: the run moves on
        assert events_of(project, run_id)[-1]["type"] == "advance"
        runs.fail_run(conn, run_id, reason="broken")
        with pytest.raises(Refused, match="is failed; cannot block it"):
            runs.block(conn, run_id, reason="too late")
    finally:
        conn.close()


# -- current -------------------------------------------------------------------------------------------


def test_current_matches_the_absolute_project_path(project: Project) -> None:
    other = project.dir / "other"
    other.mkdir()
    older = create(project)
    newer = create(project)
    elsewhere = create(project, f"--project={other}")
    found = project.ic("run", "current", "--json")
    assert found.code == 0 and found.json()["id"] == newer
    assert project.ic("run", "current").out == f"{newer}\n"
    assert project.ic("run", "current", "--project=.", "--json").json()["id"] == newer
    assert project.ic("run", "current", "--project=other/../other", "--json").json()["id"] == elsewhere
    assert project.ic("run", "current", "--json", cwd=other).json()["id"] == elsewhere
    assert project.ic("run", "cancel", newer).code == 0
    assert project.ic("run", "current", "--json").json()["id"] == older
    deeper = project.dir / "deeper"
    deeper.mkdir()
    none = project.ic("run", "current", cwd=deeper)
    one_line_error(none, 1, str(deeper))


def test_current_from_a_subdirectory_finds_nothing_but_names_the_run_above(project: Project) -> None:
    run_id = create(project)
    sub = project.dir / "src" / "pkg"
    sub.mkdir(parents=True)
    none = project.ic("run", "current", cwd=sub)
    one_line_error(none, 1, f"no active run for project {sub}", run_id, f"--project={project.dir}")
    assert project.ic("run", "current", f"--project={project.dir}", cwd=sub).out == f"{run_id}\n"


def test_a_project_directory_with_a_newline_and_a_tab_is_matched_exactly(project: Project) -> None:
    odd = project.dir / "we\nird\tdir"
    odd.mkdir()
    run_id = create(project, f"--project={odd}")
    assert status(project, run_id)["project_dir"] == str(odd)
    assert project.ic("run", "current", cwd=odd).out == f"{run_id}\n"
    rows = project.ic("run", "list").out.splitlines()
    assert len(rows) == 2 and rows[1].split("\t")[4] == f"{project.dir}/we ird dir"
    one_line_error(project.ic("run", "current", cwd=project.dir), 1, "no active run")


def test_current_never_matches_a_portfolio_parent(project: Project) -> None:
    conn = project.connect()
    parent = runs.create_run(conn, goal="portfolio", project_dir="")
    assert parent.project_dir == "" and parent.is_portfolio_parent
    assert runs.current_run(conn, "") is None
    assert runs.current_run(conn, "/") is None
    conn.close()
    one_line_error(project.ic("run", "current", "--project=/"), 1)
    one_line_error(project.ic("run", "current"), 1)


# -- set -------------------------------------------------------------------------------------------------


def test_set_changes_settings_with_one_event(project: Project) -> None:
    run_id = create(project, "--token-budget=100", "--max-agents=2")
    result = project.ic(
        "run", "set", run_id, "--auto-advance=false", "--complexity=2", "--token-budget=none",
        "--budget-warn-pct=90", "--budget-enforce", "--max-agents=none", "--scope-id=new-scope",
        '--metadata={"owner":"me"}', '--gates={"brainstorm":["agents_complete"]}', "--goal=renamed", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    run = result.json()
    assert set(run) == RUN_KEYS
    assert (run["auto_advance"], run["complexity"], run["token_budget"]) == (False, 2, None)
    assert (run["budget_warn_pct"], run["budget_enforce"], run["max_agents"]) == (90, True, None)
    assert (run["scope_id"], run["metadata"], run["goal"]) == ("new-scope", {"owner": "me"}, "renamed")
    assert run["gate_rules"] == {"brainstorm": [{"check": "agents_complete"}]}
    sets = [e for e in events_of(project, run_id) if e["type"] == "set"]
    assert len(sets) == 1 and sets[0]["source"] == "run"
    assert sets[0]["payload"]["changes"]["token_budget"] is None
    assert sets[0]["payload"]["previous"]["token_budget"] == 100
    cleared = project.ic("run", "set", run_id, "--gates=null", "--metadata=null", "--scope-id=", "--json")
    assert cleared.code == 0, cleared.err
    assert (cleared.json()["gate_rules"], cleared.json()["metadata"], cleared.json()["scope_id"]) == (
        None, None, None,
    )  # fmt: skip
    flag_only = project.ic("run", "set", run_id, "--auto-advance", "--json")
    assert flag_only.json()["auto_advance"] is True


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "nothing to set"),
        (("--complexity=9",), "complexity"),
        (("--auto-advance=maybe",), "auto-advance"),
        (("--max-agents=0",), "max-agents"),
        (("--metadata=[]",), "JSON object"),
        (("--metadata={",), "not valid JSON"),
        (('--gates={"brainstorm":["nope"]}',), "unknown check"),
        (("--goal=",), "goal"),
    ],
)
def test_set_bad_input_is_usage_error(project: Project, args: tuple[str, ...], needle: str) -> None:
    conn = project.connect()
    run = runs.create_run(conn, goal="g", project_dir=project.dir)
    one_line_error(project.ic("run", "set", run.id, *args), 3, needle)
    assert runs.get_run(conn, run.id) == run
    conn.close()


def test_set_unknown_run_is_exit_1(project: Project) -> None:
    one_line_error(project.ic("run", "set", "nosuchid", "--complexity=2"), 1, "nosuchid")


# -- import discipline and the extension point ------------------------------------------------------------


@pytest.mark.parametrize("commands", [("phase", "status"), ("advance --disable-gates",)])
def test_hot_commands_do_not_import_the_gate_engine(project: Project, commands: tuple[str, ...]) -> None:
    run_id = create(project)
    calls = [["--db", str(project.db), "run", *c.split()[:1], run_id, *c.split()[1:]] for c in commands]
    probe = (
        "import sys\n"
        "from kernel.cli.main import run\n"
        f"codes = [run(argv) for argv in {calls!r}]\n"
        "heavy = [m for m in ('kernel.gates', 'kernel.runtrack', 'asyncio', 'pydantic', 'textual') "
        "if m in sys.modules]\n"
        "print(codes, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stderr.strip().splitlines()[-1] == f"{[0] * len(commands)} []", result.stderr
