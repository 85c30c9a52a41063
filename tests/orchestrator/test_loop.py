"""The whole loop, end to end: the real `orchestrator` CLI, real git, the real kernel database, and a
scripted fake agent (a real subprocess printing codex/claude/command-shaped JSON)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kernel.dispatch import procs
from orchestrator.review import VERDICT_SCHEMA
from tests.orchestrator.conftest import Repo, runner_config

FAIL = {
    "verdict": {
        "status": "fail",
        "summary": "not yet",
        "findings": [{"message": "missing test", "file": "a.py"}],
    }
}


def test_pass_first_time_codex(repo: Repo) -> None:
    repo.config(runner_config("codex"))
    repo.issue("1", title="Add the widget")
    repo.commit()
    result = repo.orch("run", "--milestone", "M1", "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary == repo.summary()
    (report,) = summary["issues"]
    assert (report["issue"], report["outcome"], report["fix_cycles"], report["worktree"]) == (
        "1",
        "passed",
        0,
        None,
    )
    assert report["tokens"] == {"input": 200, "output": 40, "cache": 20}
    # the kernel: one completed run with the orchestrator's chain and metadata, one dispatch per phase
    (run,) = repo.runs()
    assert (run.status, run.phase, run.phases) == (
        "completed", "done", ["queued", "dev", "review", "fix", "done"],
    )  # fmt: skip
    head = repo.git("rev-parse", "main")
    assert run.metadata == {
        "orchestrator": {"issue": "1", "milestone": "M1", "branch": "issue/1", "base": head, "merged": []}
    }
    assert run.goal == "1: Add the widget"
    dispatches = sorted(repo.dispatches(run.id), key=lambda d: d.name or "")
    assert [(d.name, d.status, d.agent_type, d.input_tokens, d.output_tokens) for d in dispatches] == [
        ("1/dev/0/1", "completed", "codex", 100, 20),
        ("1/review/0/1", "completed", "codex", 100, 20),
    ]
    # where each attempt stood, and the review's verdict, are the dispatch's structured metadata
    dev, review = (d.metadata["orchestrator"] for d in dispatches if d.metadata)
    assert {k: dev[k] for k in ("issue", "phase", "cycle", "attempt")} == {
        "issue": "1", "phase": "dev", "cycle": 0, "attempt": 1,
    }  # fmt: skip
    assert review["verdict"] == {"status": "pass", "findings": [], "summary": None}
    assert repo.phase_events(run.id) == [
        ("created", None, "queued"),
        ("advance", "queued", "dev"),
        ("advance", "dev", "review"),
        ("skip", None, "fix"),
        ("skip", "review", "fix"),
        ("advance", "review", "done"),
        ("complete", "done", "done"),
    ]
    # git: the work is committed on the issue's branch, the worktree is gone, main is untouched
    assert repo.git("show", "issue/1:work-1.txt") == "dev call 0"
    assert repo.git("log", "--format=%s", "main..issue/1") == "1: dev (cycle 0)"
    assert repo.worktrees() == [str(repo.dir)]
    # neither the kernel database nor the orchestrator's own files show up for a `git add -A`
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""
    assert "/.clavain/" in (repo.dir / ".git/info/exclude").read_text().splitlines()
    # the agent ran in the worktree, in its own process group, reading its prompt on stdin, with
    # codex's argv (the prompt is not an argument: `-` tells codex to read stdin)
    calls = repo.calls()
    assert [(c["phase"], c["pgid_is_pid"]) for c in calls] == [("dev", True), ("review", True)]
    for call, phase in zip(calls, ("dev", "review"), strict=True):
        prompt = (repo.dir / f".orchestrator/logs/1/cycle-0/{phase}/attempt-1/prompt.md").read_bytes()
        assert (call["stdin_size"], call["stdin_sha256"]) == (len(prompt), hashlib.sha256(prompt).hexdigest())
    assert calls[0]["cwd"] == str(repo.dir / ".orchestrator/worktrees/1")
    assert calls[0]["argv"][3:] == ["exec", "--json", "--sandbox", "workspace-write", "-"]
    schema = str(repo.dir / ".orchestrator/logs/1/cycle-0/review/attempt-1/verdict.schema.json")
    assert calls[1]["argv"][3:] == [
        "exec",
        "--json",
        "--sandbox",
        "read-only",
        "--output-schema",
        schema,
        "-",
    ]
    assert calls[0]["run_id"] == run.id
    # logs: raw output byte for byte and the parsed result, per issue/cycle/phase/attempt
    attempt = repo.dir / ".orchestrator/logs/1/cycle-0/review/attempt-1"
    assert '"type": "turn.completed"' in (attempt / "raw.log").read_text()
    parsed = json.loads((attempt / "result.json").read_text())
    assert parsed["verdict"] == {"status": "pass", "findings": [], "summary": None}
    assert json.loads((attempt / "verdict.schema.json").read_text()) == VERDICT_SCHEMA
    assert "Add the widget" in (attempt / "prompt.md").read_text()


def test_fail_then_fix_then_pass_claude(repo: Repo) -> None:
    repo.config(runner_config("claude"))
    repo.issue("7")
    repo.commit()
    repo.scenario({"7": {"review": [FAIL, {}], "fix": [{"write": {"a_test.py": "def test(): pass\n"}}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"7": "passed"}
    assert repo.summary()["issues"][0]["fix_cycles"] == 1
    (run,) = repo.runs()
    names = sorted(d.name or "" for d in repo.dispatches(run.id))
    assert names == ["7/dev/0/1", "7/fix/1/1", "7/review/0/1", "7/review/1/1"]
    assert all(d.cost_usd == 0.001 for d in repo.dispatches(run.id))
    moves = [e for e in repo.phase_events(run.id) if e[0] in ("advance", "rollback")]
    assert moves == [
        ("advance", "queued", "dev"),
        ("advance", "dev", "review"),
        ("advance", "review", "fix"),
        ("rollback", "fix", "review"),
        ("advance", "review", "done"),
    ]
    fix_prompt = Path(next(c for c in repo.calls() if c["phase"] == "fix")["prompt_file"]).read_text()
    assert "- a.py: missing test" in fix_prompt and "not yet" in fix_prompt
    assert repo.git("show", "issue/7:a_test.py") == "def test(): pass"
    assert repo.git("log", "--format=%s", "main..issue/7").splitlines() == [
        "7: fix (cycle 1)",
        "7: dev (cycle 0)",
    ]


def test_a_200_kib_issue_prompt_reaches_claude_on_stdin(repo: Repo) -> None:
    # As an argument the prompt would fail the exec: Linux limits one argument to 128 KiB.
    repo.config(runner_config("claude"))
    body = ("Keep the parser's behaviour on every input below. " * 5000)[: 200 * 1024]
    repo.write("issues/9.md", f"---\nid: 9\nmilestone: M1\n---\n# Big issue\n\n{body}\n")
    repo.commit()
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"9": "passed"}
    dev = next(c for c in repo.calls() if c["phase"] == "dev")
    prompt = Path(dev["prompt_file"]).read_bytes()
    assert len(prompt) > 200 * 1024 and body.encode() in prompt
    assert (dev["stdin_size"], dev["stdin_sha256"]) == (len(prompt), hashlib.sha256(prompt).hexdigest())
    assert all(len(arg) < 1024 for arg in dev["argv"])


def test_capped_after_two_cycles_then_held_then_retried(repo: Repo) -> None:
    repo.issue("3")
    repo.commit()
    repo.scenario({"3": {"review": [FAIL, FAIL, FAIL, {}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 1, result.err
    (report,) = repo.summary()["issues"]
    assert report["outcome"] == "capped"
    assert report["fix_cycles"] == 2
    assert "review still failing after 2 fix cycle(s)" in report["reason"]
    assert report["findings"] == ["a.py: missing test"]
    worktree = repo.dir / ".orchestrator/worktrees/3"
    assert report["worktree"] == str(worktree) and worktree.is_dir()  # kept for a human
    (run,) = repo.runs()
    assert run.status == "failed"
    assert [c["phase"] for c in repo.calls()] == ["dev", "review", "fix", "review", "fix", "review"]
    # a rerun holds it (no new run, no agent call) ...
    again = repo.orch("run", "--milestone", "M1")
    assert again.code == 1
    assert repo.outcomes() == {"3": "held"}
    assert "--retry" in repo.summary()["issues"][0]["reason"]
    assert len(repo.runs()) == 1 and len(repo.calls()) == 6
    # ... until --retry: a new run that starts at review, because the dev work is on the branch
    retried = repo.orch("run", "--milestone", "M1", "--retry")
    assert retried.code == 0, retried.err
    assert repo.outcomes() == {"3": "passed"}
    assert len(repo.runs_of("3")) == 2
    assert [c["phase"] for c in repo.calls()[6:]] == ["review"]
    assert "adopted existing worktree" in retried.out


def test_runner_crash_is_an_infrastructure_failure(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2")
    repo.commit()
    repo.scenario({"1": {"dev": [{"exit": 3}]}, "2": {"review": [{"exit": 5}, {}]}})
    repo.config(runner_config(retries=1))
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2, result.err
    outcomes = repo.summary()["issues"]
    assert [(i["issue"], i["outcome"]) for i in outcomes] == [("1", "failed"), ("2", "passed")]
    reason = outcomes[0]["reason"]
    assert "dev (cycle 0) failed as infrastructure" in reason
    assert "exit code 3" in reason and "crashing with exit code 3" in reason
    (run1,) = repo.runs_of("1")
    assert run1.status == "failed"
    assert sorted((d.name, d.status, d.exit_code) for d in repo.dispatches(run1.id)) == [
        ("1/dev/0/1", "failed", 3),
        ("1/dev/0/2", "failed", 3),
    ]
    (run2,) = repo.runs_of("2")
    assert sorted((d.name, d.status) for d in repo.dispatches(run2.id)) == [
        ("2/dev/0/1", "completed"),
        ("2/review/0/1", "failed"),
        ("2/review/0/2", "completed"),
    ]
    assert (repo.dir / ".orchestrator/logs/2/cycle-0/review/attempt-2/result.json").exists()
    assert (repo.dir / ".orchestrator/worktrees/1").is_dir()


@pytest.mark.slow
def test_runner_hang_and_stall_are_killed(repo: Repo) -> None:
    repo.issue("h")
    repo.issue("s")
    repo.commit()
    repo.scenario({"h": {"dev": [{"hang": 120}]}, "s": {"dev": [{"stall": 120}]}})
    repo.config(runner_config(timeout="2s", stall="60s"))
    hung = repo.orch("run", "--milestone", "M1", "--issue", "h")
    assert hung.code == 2, hung.err
    assert "timed out after 2s; process group killed" in repo.summary()["issues"][0]["reason"]
    repo.config(runner_config(timeout="60s", stall="1.5s"))
    stalled = repo.orch("run", "--milestone", "M1", "--issue", "s")
    assert stalled.code == 2, stalled.err
    assert "no output for 1.5s (stalled)" in repo.summary()["issues"][0]["reason"]
    for issue in ("h", "s"):
        (run,) = repo.runs_of(issue)
        assert [d.status for d in repo.dispatches(run.id)] == ["timeout"]
    child = int((repo.state / "child-h-dev.pid").read_text())  # the agent's own child died with it
    assert not procs.is_alive(child, None)


def test_garbage_truncated_and_invalid_review_json(repo: Repo) -> None:
    for issue in ("1", "2", "3", "4"):
        repo.issue(issue)
    repo.commit()
    noise = ["\x1b[31mWARNING\x1b[0m not json", "{half a json", "[1, 2]"]
    repo.scenario(
        {
            "1": {"dev": [{"garbage": noise}], "review": [{"garbage": noise}]},
            "2": {"review": [{"truncate": True}]},
            "3": {"review": [{"verdict": "none", "message": "Looks good to me!"}]},
            "4": {"review": [{"verdict": {"status": "maybe", "findings": []}}]},
        }
    )
    result = repo.orch("run", "--milestone", "M1", "--jobs", "2")  # four issues, two at a time
    assert result.code == 2
    reports = {i["issue"]: i for i in repo.summary()["issues"]}
    assert reports["1"]["outcome"] == "passed"
    for issue in ("2", "3", "4"):
        assert reports[issue]["outcome"] == "failed"  # infrastructure, never a "fail" verdict
        assert (
            "review (cycle 0) failed as infrastructure: no valid review verdict" in reports[issue]["reason"]
        )
        assert reports[issue]["fix_cycles"] == 0
    assert 'gave no structured verdict (the {"type": "result"} line)' in reports["3"]["reason"]
    assert "invalid: status" in reports["4"]["reason"]
    assert not [c for c in repo.calls() if c["phase"] == "fix"]
    raw = (repo.dir / ".orchestrator/logs/2/cycle-0/review/attempt-1/raw.log").read_text()
    assert raw.startswith('{"type": "message"') and not raw.endswith("\n")  # kept exactly as printed
    assert "\x1b" not in result.out  # agent escapes never reach the terminal


def test_dependency_order_and_blocking(repo: Repo) -> None:
    repo.issue("1", depends="3")
    repo.issue("2")
    repo.issue("3", depends="10")
    repo.issue("10")
    repo.commit()
    plan = repo.orch("run", "--milestone", "M1", "--dry-run", "--json")
    assert plan.code == 0, plan.err
    assert [p["issue"] for p in plan.json()["plan"]] == ["2", "10", "3", "1"]
    assert not (repo.dir / ".clavain").exists()  # a dry run writes nothing
    repo.scenario({"3": {"dev": [{"exit": 1}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2
    assert [c["issue"] for c in repo.calls() if c["phase"] == "dev"] == ["2", "10", "3"]
    assert repo.outcomes() == {"2": "passed", "10": "passed", "3": "failed", "1": "blocked"}
    assert repo.summary()["issues"][3]["reason"] == "dependency 3 did not pass (3 failed)"
    (blocked,) = repo.runs_of("1")  # Bigend shows the issue, blocked, with the reason
    assert (blocked.status, blocked.phase) == ("active", "queued")
    assert repo.phase_events(blocked.id) == [("created", None, "queued"), ("block", "queued", "dev")]
    assert repo.dispatches(blocked.id) == []


def test_dependency_cycle_exits_3_naming_its_members(repo: Repo) -> None:
    repo.issue("a", depends="c")
    repo.issue("b", depends="a")
    repo.issue("c", depends="b")
    repo.issue("d")
    repo.commit()
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 3
    assert result.err == "orchestrator: dependency cycle between issues: a, b, c\n"
    assert repo.calls() == []


def test_issue_flag_milestone_strings_and_bad_selections(repo: Repo) -> None:
    repo.issue("5", milestone="1.10")
    repo.issue("6", milestone="1.1")
    repo.issue("8", milestone="1.10")
    repo.commit()
    where = ("--repo", str(repo.dir))
    plan = repo.cli("run", *where, "--milestone", "1.10", "--dry-run", "--json").json()["plan"]
    assert [p["issue"] for p in plan] == ["5", "8"]
    result = repo.orch("run", "--milestone", "1.10", "--issue", "8")
    assert result.code == 0, result.err
    assert {c["issue"] for c in repo.calls()} == {"8"}
    unknown = repo.cli("run", *where, "--milestone", "1.10", "--issue", "9")
    assert unknown.code == 3 and "--issue 9: no such issue" in unknown.err
    foreign = repo.cli("run", *where, "--milestone", "1.10", "--issue", "6")
    assert foreign.code == 3 and "not in milestone '1.10'" in foreign.err
    empty = repo.cli("run", *where, "--milestone", "2.0")
    assert empty.code == 1 and "no issue has milestone: 2.0" in empty.err


def test_missing_and_invalid_config(repo: Repo) -> None:
    (repo.dir / "orchestrator.toml").unlink()
    missing = repo.orch("run", "--milestone", "M1")
    assert missing.code == 3
    assert missing.err.count("\n") == 1
    assert f"create {repo.dir / 'orchestrator.toml'}" in missing.err and "orchestrator init" in missing.err
    made = repo.orch("init")
    assert made.code == 0 and (repo.dir / "orchestrator.toml").read_text().startswith("# orchestrator.toml")
    where = ("--repo", str(repo.dir))
    assert repo.cli("init", *where).code == 1  # never overwrites without --force
    repo.issue("1")
    assert repo.cli("run", *where, "--milestone", "M1", "--dry-run").code == 0
    repo.config('[runner]\nkind = "codex"\nmodle = "x"\n')
    bad = repo.orch("run", "--milestone", "M1")
    assert bad.code == 3
    assert bad.err == (
        "orchestrator: orchestrator.toml: runner.modle: unknown key (typo?); known keys here: kind, command, "
        "executable, args, model, timeout, stall, kill_grace, retries, retry_backoff, token_budget, env\n"
    )
    repo.config('[runner]\nexecutable = ["/nonexistent/codex"]\n')
    absent = repo.cli("run", *where, "--milestone", "M1")
    assert absent.code == 2 and "runner program '/nonexistent/codex' not found" in absent.err
    outside = repo.cli("run", "--repo", str(repo.state), "--milestone", "M1")
    assert outside.code == 3 and "not inside a git repository" in outside.err
    assert repo.cli().code == 3
    no_milestone = repo.cli("run")
    assert no_milestone.code == 3 and "--milestone" in no_milestone.err


def test_token_budget_stops_an_issue(repo: Repo) -> None:
    repo.config(runner_config(extra="token_budget = 100\n"))
    repo.issue("1")
    repo.commit()
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 1
    (report,) = repo.summary()["issues"]
    assert report["outcome"] == "over-budget"
    assert report["reason"] == "token budget exceeded: 120 of 100"
    (run,) = repo.runs()
    assert (run.status, run.token_budget) == ("failed", 100)
    assert [c["phase"] for c in repo.calls()] == ["dev"]
