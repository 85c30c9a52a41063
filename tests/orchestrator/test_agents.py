"""Issue 13, items 2, 4, 5 and 6: runners that survive real agents.

Transient errors are not failures, a dev phase must change something, reviewers do not write, and
every process an agent starts ends with its phase. The real `orchestrator`, a real repository, and
fake runners printing what the real tools print.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kernel.dispatch import procs
from tests.orchestrator.conftest import Repo, orchestrator_executable, runner_config

HTML_502 = [
    "<html>",
    "<head><title>502 Bad Gateway</title></head>",
    "<body><center><h1>502 Bad Gateway</h1></center></body>",
    "</html>",
]


def result_of(repo: Repo, issue: str, phase: str, attempt: int = 1, cycle: int = 0) -> dict[str, object]:
    path = repo.dir / f".orchestrator/logs/{issue}/cycle-{cycle}/{phase}/attempt-{attempt}/result.json"
    data: dict[str, object] = json.loads(path.read_text())
    return data


# -- item 2: transient errors are not failures ---------------------------------------------------------


def test_a_codex_reconnect_line_is_not_a_failure(repo: Repo) -> None:
    repo.config(runner_config("codex"))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"reconnect": True}], "review": [{"reconnect": True}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "passed"}
    assert repo.git("show", "issue/1:work-1.txt") == "dev call 0"  # the work was kept
    problems = result_of(repo, "1", "dev")["problems"]
    assert isinstance(problems, list) and problems[0].startswith("transient error: Reconnecting... 1/5")
    assert "dev: transient error: Reconnecting... 1/5" in result.out  # reported, not fatal


@pytest.mark.parametrize(
    ("shape", "fixture", "expected"),
    [
        (
            "codex",
            "codex_exec_failed.jsonl",
            "runner reported an error: stream disconnected before completion",
        ),
        ("claude", "claude_error_max_turns.json", "runner reported an error: error_max_turns"),
    ],
)
def test_terminal_agent_errors_fail_the_phase(repo: Repo, shape: str, fixture: str, expected: str) -> None:
    repo.config(runner_config(shape))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"emit": fixture}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2, result.err
    (report,) = repo.summary()["issues"]
    assert report["outcome"] == "failed" and expected in report["reason"]


def test_a_non_zero_exit_after_a_completed_turn_is_a_problem_not_a_failure(repo: Repo) -> None:
    repo.config(runner_config("codex"))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"exit_after": 1}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert "the agent exited with code 1 after completing its turn" in result_of(repo, "1", "dev")["problems"]


def test_claude_permission_denials_are_reported_as_a_phase_problem(repo: Repo) -> None:
    repo.config(runner_config("claude"))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"denials": ["WebFetch"]}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    denial = 'permission denied: WebFetch {"command": "make test"}'
    assert f"[1] dev: {denial}" in result.out
    assert denial in result_of(repo, "1", "dev")["problems"]
    (run,) = repo.runs()
    (dev,) = [d for d in repo.dispatches(run.id) if d.name == "1/dev/0/1"]
    assert dev.metadata is not None and denial in dev.metadata["orchestrator"]["problems"]


# -- item 4: a dev phase must change something ---------------------------------------------------------


def test_a_dev_phase_that_changes_nothing_fails_unless_the_issue_expects_no_change(repo: Repo) -> None:
    repo.config(runner_config(retries=1))
    repo.issue("1")
    repo.write("issues/2.md", "---\nid: 2\nmilestone: M1\nexpect_changes: false\n---\n# Check only\n")
    repo.commit()
    # An agent that printed a proxy's error page and exited 0 did nothing.
    html = {"garbage": HTML_502, "nochange": True}
    repo.scenario({"1": {"dev": [html]}, "2": {"dev": [html]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2, result.err
    reports = {i["issue"]: i for i in repo.summary()["issues"]}
    assert reports["1"]["outcome"] == "failed"
    assert reports["1"]["reason"].startswith("dev (cycle 0) failed as infrastructure: made no changes")
    assert [c["phase"] for c in repo.calls() if c["issue"] == "1"] == ["dev", "dev"]  # retried, then failed
    assert reports["2"]["outcome"] == "passed"  # expect_changes: false
    (run1,) = repo.runs_of("1")
    assert [d.status for d in repo.dispatches(run1.id)] == ["failed", "failed"]


def test_a_bad_expect_changes_value_is_named(repo: Repo) -> None:
    repo.write("issues/1.md", "---\nid: 1\nmilestone: M1\nexpect_changes: perhaps\n---\n")
    repo.commit()
    result = repo.cli("run", "--repo", str(repo.dir), "--milestone", "M1")
    assert result.code == 3
    assert result.err == "orchestrator: issues/1.md: expect_changes: must be true or false, got 'perhaps'\n"


# -- item 5: reviewers do not write ---------------------------------------------------------------------


@pytest.mark.parametrize("commits", [False, True])
def test_what_a_reviewer_changes_is_discarded_and_reported(repo: Repo, commits: bool) -> None:
    repo.issue("1")
    repo.commit()
    edits = {"README.md": "# rewritten by the reviewer\n", "notes/review.txt": "scratch"}
    repo.scenario({"1": {"review": [{"write": edits, "git_commit": commits}]}})
    before = repo.git("rev-parse", "main")
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "passed"}
    assert repo.git("show", "issue/1:README.md") == "# demo"  # never committed as reviewed
    assert "notes/review.txt" not in repo.git("ls-tree", "-r", "--name-only", "issue/1")
    assert repo.git("log", "--format=%s", f"{before}..issue/1") == "1: dev (cycle 0)"
    discarded = result_of(repo, "1", "review")["discarded"]
    assert sorted(discarded) == ["README.md", "notes/review.txt"]  # type: ignore[arg-type]
    assert "[1] review: the review changed 2 file(s); discarded: " in result.out


def test_claude_dev_may_run_the_tests_and_its_review_is_read_only(repo: Repo) -> None:
    repo.config(runner_config("claude"))
    repo.issue("1")
    repo.commit()
    assert repo.orch("run", "--milestone", "M1").code == 0
    dev, review = (c["argv"] for c in repo.calls())
    assert dev[dev.index("--permission-mode") + 1] == "acceptEdits"
    assert dev[dev.index("--allowedTools") + 1] == "Bash"  # headless Claude denies what is not allowed
    assert review[review.index("--permission-mode") + 1] == "default"
    assert "Edit" in review[review.index("--disallowedTools") + 1].split(",")
    assert "--json-schema" in review and "--json-schema" not in dev


# -- item 6: processes ----------------------------------------------------------------------------------


def test_an_agent_whose_background_child_holds_its_stdout_is_not_a_timeout(repo: Repo) -> None:
    repo.config(runner_config(timeout="30s", stall="30s"))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"background": 120}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "passed"}
    dev = result_of(repo, "1", "dev")
    assert (dev["timed_out"], dev["exit_code"], dev["leftovers"]) == (False, 0, 1)
    child = int((repo.state / "background-1-dev.pid").read_text())
    assert not procs.is_alive(child, None)  # drained, then ended with the phase


def test_a_setsid_daemon_does_not_outlive_its_phase(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"daemon": True}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    daemon = int((repo.state / "daemon-1-dev.pid").read_text())
    assert not procs.is_alive(daemon, None)
    assert (
        "the agent left 1 process(es) running when it exited; ended"
        in result_of(repo, "1", "dev")["problems"]
    )


def test_retries_back_off(repo: Repo) -> None:
    repo.config(runner_config(retries=2).replace('retry_backoff = "0.1s"', 'retry_backoff = "0.2s"'))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"exit": 3}, {"exit": 3}, {}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert "[1] retrying dev in 0.2s" in result.out and "[1] retrying dev in 0.4s" in result.out


@pytest.mark.parametrize("shape", ["codex", "claude", "command"])
def test_a_refused_login_stops_the_run_once(repo: Repo, shape: str) -> None:
    repo.config(runner_config(shape, retries=2))
    for issue in ("1", "2", "3"):
        repo.issue(issue)
    repo.commit()
    repo.scenario({"1": {"dev": [{"auth": True}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2, result.err
    assert len(repo.calls()) == 1  # not retried, and no other issue tried it again
    reports = {i["issue"]: i for i in repo.summary()["issues"]}
    assert reports["1"]["outcome"] == "failed"
    assert "the agent's login was refused" in reports["1"]["reason"]
    assert {reports["2"]["outcome"], reports["3"]["outcome"]} == {"not-started"}
    assert reports["2"]["reason"].startswith("not started: the agent's login was refused")
    assert repo.runs_of("2") == []


@pytest.mark.slow
def test_quitting_a_pager_leaves_no_dispatch_running(repo: Repo) -> None:
    repo.config(runner_config(stall="60s"))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"dev": [{"stall": 3}, {}]}})
    orchestrator = " ".join(orchestrator_executable())
    shell = f"set -o pipefail; {orchestrator} run --milestone M1 | head -n 1"
    proc = subprocess.run(
        ["bash", "-c", shell], cwd=repo.dir, env=repo.env(), capture_output=True, text=True, timeout=90
    )
    assert proc.stdout == "[1] dev cycle 0 started\n"
    assert proc.returncode == 130, proc.stderr  # it stopped as for Ctrl-C once its reader was gone
    (run,) = repo.runs()
    assert [d.status for d in repo.dispatches(run.id)] == ["cancelled"]
    assert repo.outcomes() == {"1": "interrupted"}  # the summary file was still written
    again = repo.orch("run", "--milestone", "M1")  # and the next run resumes
    assert again.code == 0, again.err
    assert repo.outcomes() == {"1": "passed"}


def test_a_200_kib_prompt_reaches_codex_on_stdin(repo: Repo) -> None:
    repo.config(runner_config("codex"))
    body = ("Keep the parser's behaviour on every input below. " * 5000)[: 200 * 1024]
    repo.write("issues/9.md", f"---\nid: 9\nmilestone: M1\n---\n# Big issue\n\n{body}\n")
    repo.commit()
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    dev = next(c for c in repo.calls() if c["phase"] == "dev")
    assert dev["stdin_size"] == Path(dev["prompt_file"]).stat().st_size > 200 * 1024
    assert all(len(arg) < 1024 for arg in dev["argv"])
