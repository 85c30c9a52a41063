"""What an operator runs into: odd flags, an unfinished checkout, hostile text, the summary files."""

from __future__ import annotations

import json
import sys

from tests.orchestrator.conftest import FAKE_AGENT, Repo, runner_config


def test_empty_milestone_and_issue_are_usage_errors(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    where = ("--repo", str(repo.dir))
    empty = repo.cli("run", *where, "--milestone", " ")
    assert (empty.code, empty.err.count("\n")) == (3, 1)
    assert "--milestone: empty; give the milestone value" in empty.err
    blank = repo.cli("run", *where, "--milestone", "M1", "--issue", "1,", "--dry-run")
    assert blank.code == 3 and "--issue: empty issue id" in blank.err
    a_file = repo.cli("run", "--repo", str(repo.dir / "README.md"), "--milestone", "M1")
    assert a_file.code == 3 and "README.md is not a directory" in a_file.err


def test_uncommitted_changes_are_pointed_out(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    (repo.dir / "README.md").write_text("# edited but not committed\n")
    repo.write("notes.txt", "untracked files do not count")
    plan = repo.cli("run", "--repo", str(repo.dir), "--milestone", "M1", "--dry-run")
    assert plan.code == 0
    assert plan.err == (
        f"orchestrator: note: 1 tracked file(s) in {repo.dir} have uncommitted changes; the issue "
        "worktrees start from HEAD without them (commit them first if the agents need them)\n"
    )
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    head = repo.git("rev-parse", "HEAD")[:10]
    assert f"worktrees start from HEAD {head} without them" in result.err
    assert repo.git("show", "issue/1:README.md") == "# demo"  # the agent worked from the commit
    assert repo.dir.joinpath("README.md").read_text() == "# edited but not committed\n"  # untouched


def test_hostile_text_is_shown_literally_and_cleanly(repo: Repo) -> None:
    repo.write(
        "issues/1.md",
        "---\nid: 1\nmilestone: M1\n"
        'title: "tab\\there\\nnewline [bold]x[/bold] \\e[31mred\\e]0;pwned\\a"\n---\n',
    )
    repo.commit()
    plan = repo.cli("run", "--repo", str(repo.dir), "--milestone", "M1", "--dry-run")
    row = plan.out.splitlines()[1].split("\t")
    assert row[2] == "tab here newline [bold]x[/bold] \\x1b[31mred\\x1b]0;pwned\\x07"  # inert, readable
    hostile = "\x1b[2J\x1b]0;pwned\x07boom [red]markup[/red]\ttab"
    repo.scenario({"1": {"dev": [{"exit": 3, "crash_line": hostile}]}})
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 2
    assert "\x1b" not in result.out and "\x07" not in result.out
    (report,) = repo.summary()["issues"]
    shown = "runner exit code 3: \\x1b[2J\\x1b]0;pwned\\x07boom [red]markup[/red] tab"
    assert report["reason"].endswith(shown)
    assert "[red]markup[/red]" in result.out  # shown as text, not taken as style
    (run,) = repo.runs()
    (dispatch,) = repo.dispatches(run.id)
    assert dispatch.error == shown


def test_summaries_are_kept_and_skipped_issues_keep_their_tokens(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2")
    repo.commit()
    first = repo.orch("run", "--milestone", "M1", "--json")
    assert first.code == 0, first.err
    again = repo.orch("run", "--milestone", "M1", "--issue", "2", "--json")
    assert again.code == 0, again.err
    (report,) = again.json()["issues"]
    assert report["outcome"] == "skipped"
    assert report["tokens"] == {"input": 200, "output": 40, "cache": 20}  # what its passing run spent
    kept = sorted((repo.dir / ".orchestrator/logs/summaries").iterdir())
    assert [json.loads(p.read_text()) for p in kept] == [first.json(), again.json()]
    assert repo.summary() == again.json()  # summary.json is the latest run's


def test_a_file_where_the_worktrees_should_go_is_a_usage_error(repo: Repo) -> None:
    repo.config(runner_config() + '[worktrees]\nroot = "README.md"\n')
    repo.issue("1")
    repo.commit()
    result = repo.cli("run", "--repo", str(repo.dir), "--milestone", "M1")
    assert result.code == 3
    assert result.err == (
        f"orchestrator: worktrees.root: {repo.dir / 'README.md'} is not a directory; "
        "point it at a directory\n"
    )
    assert not (repo.dir / ".clavain").exists() and repo.calls() == []  # refused before anything began


def test_a_relative_program_is_the_repositorys_file(repo: Repo) -> None:
    repo.config('[runner]\nkind = "command"\ncommand = ["tools/agent.sh"]\nretries = 0\n')
    repo.issue("1")
    repo.commit()
    # written after the commit: the issue worktree has no tools/agent.sh, only the repository does
    agent = repo.write("tools/agent.sh", f"#!/bin/sh\nexec {sys.executable} {FAKE_AGENT} --shape command\n")
    agent.chmod(0o644)
    where = ("--repo", str(repo.dir), "--milestone", "M1")
    stuck = repo.cli("run", *where)
    assert stuck.code == 2
    assert "runner program 'tools/agent.sh' is not executable; chmod +x it" in stuck.err
    agent.chmod(0o755)
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert [c["cwd"] for c in repo.calls()] == [str(repo.dir / ".orchestrator/worktrees/1")] * 2
