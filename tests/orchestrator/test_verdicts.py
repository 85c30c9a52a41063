"""Issue 13, item 1: the verdict comes from the runner's structured channel, never from scanning prose.

The real `orchestrator` on a real repository, with fake runners printing what codex, claude and a
command runner print (tests/orchestrator/fake_agent.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.orchestrator.conftest import Repo, runner_config

FINDING = {"severity": "high", "file": "a.py", "line": 3, "message": "the empty input still raises"}
FAIL = {"status": "fail", "summary": "one edge case left", "findings": [FINDING]}
PASS = {"status": "pass", "summary": "fine", "findings": []}
# The reproduction: the reviewer writes its fail verdict, then an example holding "status": "pass".
PROSE = (
    'Verdict: {"status": "fail", "findings": ["the empty input still raises"]}\n'
    'For reference, a passing review would look like {"status": "pass", "findings": []}.'
)


@pytest.mark.parametrize("shape", ["codex", "claude", "command"])
def test_a_fail_verdict_followed_by_a_pass_example_in_prose_is_a_fail(repo: Repo, shape: str) -> None:
    repo.config(runner_config(shape) + "[loop]\nmax_cycles = 0\n")
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"review": [{"verdict": FAIL, "message": PROSE}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 1, result.err  # capped: the review failed and no fix cycle is allowed
    (report,) = repo.summary()["issues"]
    assert report["outcome"] == "capped"
    assert report["findings"] == ["[high] a.py:3: the empty input still raises"]
    (run,) = repo.runs()
    assert run.status == "failed"  # not passed, and its worktree is kept
    assert (repo.dir / ".orchestrator/worktrees/1").is_dir()
    (review,) = [d for d in repo.dispatches(run.id) if d.name == "1/review/0/1"]
    assert review.metadata is not None and review.metadata["orchestrator"]["verdict"]["status"] == "fail"


@pytest.mark.parametrize("shape", ["codex", "claude", "command"])
def test_prose_without_a_structured_answer_is_an_infrastructure_failure(repo: Repo, shape: str) -> None:
    repo.config(runner_config(shape))
    repo.issue("1")
    repo.commit()
    repo.scenario({"1": {"review": [{"verdict": "none", "message": PROSE}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2, result.err
    (report,) = repo.summary()["issues"]
    assert report["outcome"] == "failed" and report["fix_cycles"] == 0
    assert "review (cycle 0) failed as infrastructure: no valid review verdict" in report["reason"]
    assert "gave no structured verdict" in report["reason"]
    assert not [c for c in repo.calls() if c["phase"] == "fix"]  # no fixer sent after nobody's findings


def test_harmless_variants_are_normalised_and_the_normalisation_recorded(repo: Repo) -> None:
    repo.config(runner_config("claude"))
    repo.issue("1")
    repo.commit()
    lenient = {
        "status": "FAIL",
        "findings": [{"description": "off by one", "file": "a.py", "line": "12-15", "severity": None}],
    }
    repo.scenario({"1": {"review": [{"verdict": lenient}, {"verdict": {"status": "PASS", "findings": []}}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "passed"}
    fix_prompt = next(c for c in repo.calls() if c["phase"] == "fix")["prompt_file"]
    assert "- a.py:12-15: off by one" in Path(fix_prompt).read_text()
    (run,) = repo.runs()
    reviews = sorted(
        (d for d in repo.dispatches(run.id) if d.name and "/review/" in d.name), key=lambda d: d.name or ""
    )
    first = reviews[0].metadata["orchestrator"] if reviews[0].metadata else {}
    assert first["normalised"] == [
        "status 'FAIL' read as 'fail'",
        "finding 0: `description` read as `message`",
        "finding 0: line '12-15' read as line 12, end_line 15",
    ]
    assert first["verdict"]["findings"][0] == {
        "message": "off by one", "file": "a.py", "line": 12, "end_line": 15, "severity": None,
    }  # fmt: skip
    conn = repo.db()
    try:
        payloads = [json.loads(r[0]) for r in conn.execute(
            "SELECT payload FROM events WHERE source = 'orchestrator' AND type = 'review.verdict' ORDER BY id"
        )]  # fmt: skip
    finally:
        conn.close()
    assert [(p["status"], p["normalised"][:1]) for p in payloads] == [
        ("fail", ["status 'FAIL' read as 'fail'"]),
        ("pass", ["status 'PASS' read as 'pass'"]),
    ]


def test_contradictory_verdicts_are_an_infrastructure_failure(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2")
    repo.commit()
    repo.scenario(
        {
            "1": {"review": [{"verdict": [PASS, FAIL]}]},  # two result lines that disagree
            "2": {"review": [{"verdict": {"status": "fail", "findings": []}}]},  # fail, nothing to fix
        }
    )
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2, result.err
    reasons = {i["issue"]: i["reason"] for i in repo.summary()["issues"]}
    assert repo.outcomes() == {"1": "failed", "2": "failed"}
    assert "contradictory verdicts" in reasons["1"]
    assert "contradictory: status fail with no finding to fix" in reasons["2"]
