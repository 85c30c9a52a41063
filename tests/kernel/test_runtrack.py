"""`ic run agent ...` and `ic run artifact ...`: records, hashes, events and bad input."""

from __future__ import annotations

import hashlib

import pytest

from kernel.model import RunAgent, RunArtifact
from tests.conftest import Project
from tests.kernel.test_runs_cli import create, events_of, one_line_error

AGENT_KEYS = set(RunAgent.FIELDS)
ARTIFACT_KEYS = set(RunArtifact.FIELDS)


# -- agents -------------------------------------------------------------------------------------------------


def test_agent_add_list_update(project: Project) -> None:
    run_id = create(project)
    added = project.ic(
        "run", "agent", "add", run_id, "--name=coder", "--type=codex", "--dispatch=d1", "--json"
    )
    assert added.code == 0, added.err
    agent = added.json()
    assert set(agent) == AGENT_KEYS
    assert (agent["run_id"], agent["name"], agent["agent_type"], agent["status"], agent["dispatch_id"]) == (
        run_id, "coder", "codex", "active", "d1",
    )  # fmt: skip
    text = project.ic("run", "agent", "add", run_id, "--name", "reviewer")
    assert text.code == 0 and len(text.out.strip()) == 8
    listed = project.ic("run", "agent", "list", run_id, "--json").json_lines()
    assert sorted(a["name"] for a in listed) == ["coder", "reviewer"]  # same second: order is by id
    table = project.ic("run", "agent", "list", run_id).out.splitlines()
    assert table[0].split("\t") == ["id", "name", "type", "status", "dispatch_id"] and len(table) == 3
    updated = project.ic("run", "agent", "update", agent["id"], "--status=completed", "--json")
    assert updated.code == 0 and updated.json()["status"] == "completed"
    assert updated.json()["dispatch_id"] == "d1", "untouched fields are kept"
    history = [e for e in events_of(project, run_id) if e["source"] == "run"]
    assert [(e["type"], e["from_state"], e["to_state"]) for e in history] == [
        ("agent.added", None, "active"),
        ("agent.added", None, "active"),
        ("agent.updated", "active", "completed"),
    ]
    assert history[0]["payload"]["agent_id"] == agent["id"] and history[0]["dispatch_id"] == "d1"


def test_agent_bad_inputs(project: Project) -> None:
    run_id = create(project)
    one_line_error(project.ic("run", "agent", "add", run_id, "--name=x", "--status=sleeping"), 3, "sleeping")
    one_line_error(project.ic("run", "agent", "add", run_id), 3, "--name")
    one_line_error(project.ic("run", "agent", "add", "nosuchid", "--name=x"), 1, "nosuchid")
    one_line_error(project.ic("run", "agent", "list", "nosuchid"), 1, "nosuchid")
    one_line_error(project.ic("run", "agent", "update", "nosuchid", "--status=failed"), 1, "nosuchid")
    agent_id = project.ic("run", "agent", "add", run_id, "--name=x").out.strip()
    one_line_error(project.ic("run", "agent", "update", agent_id, "--status=done"), 3, "done")
    one_line_error(project.ic("run", "agent", "update", agent_id), 3, "nothing to update")
    one_line_error(project.ic("run", "agent"), 3)
    assert [e["type"] for e in events_of(project, run_id)] == ["created", "agent.added"]


def test_max_agents_limits_active_agents(project: Project) -> None:
    run_id = create(project, "--max-agents=1")
    first = project.ic("run", "agent", "add", run_id, "--name=a").out.strip()
    one_line_error(project.ic("run", "agent", "add", run_id, "--name=b"), 1, "max_agents=1")
    assert project.ic("run", "agent", "add", run_id, "--name=c", "--status=completed").code == 0
    assert project.ic("run", "agent", "update", first, "--status=completed").code == 0
    assert project.ic("run", "agent", "add", run_id, "--name=b").code == 0


# -- artifacts ----------------------------------------------------------------------------------------------


def test_artifact_add_hashes_a_readable_file(project: Project) -> None:
    run_id = create(project)
    doc = project.dir / "brainstorm.md"
    doc.write_bytes(b"# ideas\n\xe2\x9c\x93\n")
    result = project.ic(
        "run", "artifact", "add", run_id, "--path=brainstorm.md", '--metadata={"words":2}', "--json"
    )
    assert result.code == 0, result.err
    artifact = result.json()
    assert set(artifact) == ARTIFACT_KEYS
    assert artifact["content_hash"] == "sha256:" + hashlib.sha256(doc.read_bytes()).hexdigest()
    assert (artifact["path"], artifact["phase"], artifact["kind"]) == (str(doc), "brainstorm", "file")
    assert artifact["metadata"] == {"words": 2}
    event = events_of(project, run_id)[-1]
    assert (event["source"], event["type"], event["to_state"]) == ("run", "artifact.added", "brainstorm")
    assert event["payload"]["content_hash"] == artifact["content_hash"]


def test_artifact_that_is_not_a_file_is_recorded_without_hash(project: Project) -> None:
    run_id = create(project)
    result = project.ic("run", "artifact", "add", run_id, "--path=https://example.com/pr/1", "--json")
    assert result.code == 0
    assert (result.json()["path"], result.json()["content_hash"]) == ("https://example.com/pr/1", None)
    assert result.err == (
        "ic: note: https://example.com/pr/1 is not a file here; recorded as a reference, "
        "without a content hash\n"
    )
    typo = project.ic("run", "artifact", "add", run_id, "--path=brainstrom.md")
    assert typo.code == 0 and "brainstrom.md is not a file here" in typo.err
    (project.dir / "plan.md").write_text("plan")
    assert project.ic("run", "artifact", "add", run_id, "--path=plan.md").err == ""


def test_verdicts_and_phase_filter(project: Project) -> None:
    run_id = create(project, '--phases=["build","review","done"]')
    assert project.ic("run", "artifact", "add", run_id, "--path=a.txt").code == 0
    verdict = project.ic(
        "run", "artifact", "add", run_id, "--phase=review", "--verdict=fail", "--path=r.json", "--json"
    )
    assert verdict.code == 0, verdict.err
    assert (verdict.json()["kind"], verdict.json()["metadata"]) == ("verdict", {"status": "fail"})
    assert events_of(project, run_id)[-1]["payload"]["verdict"] == "fail"
    every = project.ic("run", "artifact", "list", run_id, "--json").json_lines()
    assert len(every) == 2 and all(set(a) == ARTIFACT_KEYS for a in every)
    review = project.ic("run", "artifact", "list", run_id, "--phase=review", "--json").json_lines()
    assert [a["path"] for a in review] == ["r.json"]
    assert project.ic("run", "artifact", "list", run_id, "--phase=done", "--json").json_lines() == []
    table = project.ic("run", "artifact", "list", run_id).out.splitlines()
    assert (
        table[0].split("\t") == ["id", "phase", "kind", "path", "content_hash", "metadata"]
        and len(table) == 3
    )


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("--path=x", "--phase=nowhere"), 3, "not in run"),
        (("--path=x", "--verdict=maybe"), 3, "pass or fail"),
        (("--path=x", "--kind=verdict"), 3, "--verdict"),
        (("--path=x", "--kind=file", "--verdict=pass"), 3, "--kind=verdict"),
        (("--path=x", "--metadata={oops"), 3, "--metadata is not valid JSON"),
        (("--path=x", "--metadata=[1]"), 3, "JSON object"),
        (("--path=.",), 3, "directory"),
        (("--path=",), 3, "path"),
        ((), 3, "--path"),
    ],
)
def test_artifact_bad_inputs(project: Project, args: tuple[str, ...], code: int, needle: str) -> None:
    run_id = create(project)
    one_line_error(project.ic("run", "artifact", "add", run_id, *args), code, needle)
    assert project.ic("run", "artifact", "list", run_id, "--json").json_lines() == []


def test_artifact_unknown_run(project: Project) -> None:
    one_line_error(project.ic("run", "artifact", "add", "nosuchid", "--path=x"), 1, "nosuchid")
    one_line_error(project.ic("run", "artifact", "list", "nosuchid"), 1, "nosuchid")
