"""Issue 13, items 3 and 8: dependencies carry code, and branches the orchestrator did not create are not
adopted silently. The real `orchestrator` on a real git repository with a fake runner."""

from __future__ import annotations

import json
from pathlib import Path

from tests.orchestrator.conftest import Repo


def files_at_start(repo: Repo, issue: str, phase: str = "dev") -> list[str]:
    found: list[str] = json.loads((repo.state / f"files-{issue}-{phase}.json").read_text())
    return found


# -- item 3: dependencies carry code ---------------------------------------------------------------------


def test_a_dependent_issue_starts_from_its_dependencies_passed_branches_in_order(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2", depends="1")
    repo.issue("3", depends="2, 1")
    repo.commit()
    repo.scenario(
        {
            "1": {"dev": [{"write": {"one.txt": "the fix of issue 1\n"}}]},
            "2": {"dev": [{"write": {"two.txt": "built on one\n"}, "record_files": True}]},
            "3": {"dev": [{"write": {"three.txt": "built on both\n"}, "record_files": True}]},
        }
    )
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 0, result.err
    assert repo.outcomes() == {"1": "passed", "2": "passed", "3": "passed"}
    assert "one.txt" in files_at_start(repo, "2")  # issue 2 did not have to redo issue 1's fix
    assert {"one.txt", "two.txt"} <= set(files_at_start(repo, "3"))
    merges = repo.git("log", "--merges", "--format=%s", "--reverse", "main..issue/3").splitlines()
    assert [m for m in merges if m.startswith("3:")] == ["3: start from issue/1", "3: start from issue/2"]
    assert "2: start from issue/1" in merges  # issue 2's own start came along with its branch
    assert "[3] started from issue/1, issue/2 (merged in dependency order)" in result.out
    # the review diffs against the merged start: it sees issue 3's own work only
    (run3,) = repo.runs_of("3")
    assert run3.metadata is not None
    meta = run3.metadata["orchestrator"]
    assert meta["merged"] == ["issue/1", "issue/2"]
    assert repo.git("diff", "--name-only", meta["base"], "issue/3") == "three.txt"
    review_prompt = next(c for c in repo.calls() if c["issue"] == "3" and c["phase"] == "review")[
        "prompt_file"
    ]
    assert f"git diff {meta['base']} HEAD" in Path(review_prompt).read_text()


def test_a_merge_conflict_blocks_the_issue_with_a_clear_report(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2")
    repo.issue("3", depends="1, 2")
    repo.commit()
    repo.scenario(
        {
            "1": {"dev": [{"write": {"shared.txt": "one way\n"}}]},
            "2": {"dev": [{"write": {"shared.txt": "another way\n"}}]},
        }
    )
    result = repo.orch("run", "--milestone", "M1")
    assert result.code == 1, result.err
    assert repo.outcomes() == {"1": "passed", "2": "passed", "3": "blocked"}
    (report,) = [i for i in repo.summary()["issues"] if i["issue"] == "3"]
    assert report["reason"] == (
        "merging issue/2 into issue/3 conflicts in shared.txt (dependencies merged in order: issue/1, "
        "issue/2); settle the conflict on issue/2 and rerun"
    )
    assert [c for c in repo.calls() if c["issue"] == "3"] == []  # no agent worked on a half-merged tree
    assert "issue/3" not in repo.git("branch", "--list", "issue/3")  # nothing half-made is left
    assert not (repo.dir / ".orchestrator/worktrees/3").exists()
    (run3,) = repo.runs_of("3")  # the run waits, blocked, with the reason (Bigend shows it)
    assert (run3.status, run3.phase) == ("active", "queued")
    assert repo.phase_events(run3.id)[-1] == ("block", "queued", "dev")


def test_depends_on_7_means_issue_007_and_an_unknown_id_is_warned_about(repo: Repo) -> None:
    repo.issue("007")
    repo.issue("8", depends="7, 99")
    repo.commit()
    where = ("--repo", str(repo.dir), "--milestone", "M1")
    plan = repo.cli("run", *where, "--dry-run", "--json")
    assert plan.code == 0, plan.err
    assert [(p["issue"], p["waits_for"]) for p in plan.json()["plan"]] == [("007", []), ("8", ["007"])]
    assert plan.err == (
        "orchestrator: note: issue 8: depends on 7, read as issue 007\n"
        "orchestrator: note: issue 8: depends on 99, which names no issue; not waited for (fix the id in "
        "its front matter)\n"
    )


def test_issue_flag_refuses_while_a_dependency_has_not_passed(repo: Repo) -> None:
    repo.issue("1")
    repo.issue("2", depends="1")
    repo.commit()
    where = ("--repo", str(repo.dir), "--milestone", "M1")
    refused = repo.cli("run", *where, "--issue", "2")
    assert refused.code == 1
    assert refused.err == (
        "orchestrator: --issue 2: its dependency 1 (no run yet) has not passed; run it first (--issue 1,2) "
        "or pass --ignore-deps to start without its work\n"
    )
    assert not (repo.dir / ".clavain").exists() and repo.calls() == []  # refused before anything began
    plan = repo.cli("run", *where, "--issue", "2", "--dry-run").out.splitlines()[1].split("\t")
    assert plan[4] == "new; refused: dependency 1 (no run yet) has not passed (--ignore-deps)"
    anyway = repo.orch("run", "--milestone", "M1", "--issue", "2", "--ignore-deps")
    assert anyway.code == 0, anyway.err
    assert "[2] dependency 1 has not passed; its work is not merged in" in anyway.out
    assert repo.orch("run", "--milestone", "M1", "--issue", "1").code == 0  # now it has passed ...
    assert repo.cli("run", *where, "--issue", "2", "--dry-run").code == 0  # ... and 2 is not refused


# -- item 8: branch safety -------------------------------------------------------------------------------


def test_a_branch_the_orchestrator_did_not_create_is_refused_unless_adopted(repo: Repo) -> None:
    repo.issue("1")
    repo.commit()
    repo.git("checkout", "-q", "-b", "issue/1")
    repo.write("mine.txt", "somebody's work in progress\n")
    repo.commit("somebody's own branch")
    repo.git("checkout", "-q", "main")
    theirs = repo.git("rev-parse", "issue/1")
    where = ("--repo", str(repo.dir), "--milestone", "M1")
    refused = repo.cli("run", *where)
    assert refused.code == 1
    assert refused.err == (
        "orchestrator: branch issue/1 exists but was not created by the orchestrator (no run of the issue "
        "in the kernel); pass --adopt to work on it as it is, or rename it\n"
    )
    assert repo.calls() == [] and not (repo.dir / ".clavain").exists()
    said = repo.cli("run", *where, "--dry-run").out.splitlines()[1].split("\t")[4]
    assert said == "new; refused: branch issue/1 exists, not made by the orchestrator (--adopt)"
    adopting = repo.cli("run", *where, "--dry-run", "--adopt").out.splitlines()[1].split("\t")[4]
    assert adopting == "new; adopts existing branch issue/1 (--adopt)"
    adopted = repo.orch("run", "--milestone", "M1", "--adopt")
    assert adopted.code == 0, adopted.err
    assert "[1] adopted existing branch" in adopted.out
    assert repo.git("merge-base", "--is-ancestor", theirs, "issue/1") == ""  # their commit kept
    assert repo.git("show", "issue/1:mine.txt") == "somebody's work in progress"
    again = repo.cli("run", *where, "--dry-run")  # from now on the branch is the orchestrator's
    assert again.code == 0 and "refused" not in again.out
