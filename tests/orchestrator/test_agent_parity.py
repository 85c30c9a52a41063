"""One definition of token usage: every recorded agent output gives the same numbers through both paths.

- the dispatch path: a real `ic dispatch spawn --type=KIND` of the fake agent printing the fixture, the
  supervisor recording the end, read back with `ic dispatch status --json`;
- the orchestrator path: a real `orchestrator run` whose runner (kind KIND) prints the fixture as an
  issue's dev phase, recorded through kernel_bridge into the repository's kernel database.

Both must equal the figures below, computed by hand from each fixture in the kernel's meaning
(kernel.dispatch.agents.usage): input = prompt tokens processed fresh, cache = read from a cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.fixtures.dispatching import FAKE_AGENT, FIXTURES, end_leftovers
from tests.orchestrator.conftest import make_repo, runner_config

Figures = tuple[int, int, int, float | None]  # input, output, cache, cost_usd
NOTHING: Figures = (0, 0, 0, None)  # no usage reported: the dispatch keeps its initial zeros

EXPECTED: dict[tuple[str, str], Figures] = {
    # Codex: the last turn.completed (a running total); input_tokens include cached_input_tokens.
    ("codex_exec.jsonl", "codex"): (24763 - 24448, 122, 24448, None),
    ("codex_exec_multi.jsonl", "codex"): (26549 - 22272, 1590, 22272, None),  # not 1000 + 26549
    ("codex_reconnect.jsonl", "codex"): (18421 - 12160, 907, 12160, None),
    ("codex_structured.jsonl", "codex"): (9210 - 8064, 655, 8064, None),
    ("codex_exec_failed.jsonl", "codex"): NOTHING,
    ("codex_error_last.jsonl", "codex"): NOTHING,
    # Claude: the result's usage; input_tokens exclude cache writes (added) and cache reads (cache).
    ("claude_json.json", "claude"): (4 + 5123, 287, 13456, 0.0421937),
    ("claude_stream.jsonl", "claude"): (10 + 2100, 410, 18000, 0.0187),
    ("claude_json_verbose.json", "claude"): (12 + 1500, 230, 7000, 0.0311),
    ("claude_error_max_turns.json", "claude"): (40 + 0, 1200, 0, 0.12),
    ("claude_cache_denials.jsonl", "claude"): (25 + 3200, 1850, 41000, 0.0932),
    ("claude_structured.json", "claude"): (6 + 812, 342, 20480, 0.0214),
    ("claude_truncated.jsonl", "claude"): NOTHING,
    ("claude_auth_failed.jsonl", "claude"): (0, 0, 0, 0.0),  # a refused login reports zero usage
    # command: usage lines are increments in the kernel's meaning and add up.
    ("command_protocol.jsonl", "command"): (1200 + 300, 300 + 100, 800 + 0, 0.01),
    ("garbage.txt", "codex"): NOTHING,
    ("garbage.txt", "claude"): NOTHING,
    ("garbage.txt", "command"): NOTHING,
}
KINDS = ("codex", "claude", "command")


def recorded_outputs() -> set[str]:
    return {p.name for p in FIXTURES.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl", ".txt")}


def test_every_recorded_output_has_hand_computed_figures() -> None:
    assert {fixture for fixture, _ in EXPECTED} == recorded_outputs()


def through_ic_dispatch(project: Project) -> dict[tuple[str, str], Figures]:
    """Spawn every (fixture, kind) at once, then wait for each and read its row."""
    (project.dir / "prompt.md").write_text("Print the recorded output.\n")
    ids: dict[tuple[str, str], str] = {}
    for fixture, kind in EXPECTED:
        spawned = project.ic(
            "--json", "dispatch", "spawn", "--prompt-file=prompt.md", f"--type={kind}", f"--name={fixture}",
            "--", sys.executable, str(FAKE_AGENT), "--emit", fixture,
        )  # fmt: skip
        assert spawned.code == 0, spawned.err
        ids[(fixture, kind)] = spawned.json()["id"]
    found: dict[tuple[str, str], Figures] = {}
    for key, dispatch_id in ids.items():
        assert project.ic("dispatch", "wait", dispatch_id).code in (0, 1)
        status = project.ic("--json", "dispatch", "status", dispatch_id)
        assert status.code == 0, status.err
        row = status.json()
        assert row["status"] in ("completed", "failed") and row["exit_code"] == 0, row
        found[key] = (row["input_tokens"], row["output_tokens"], row["cache_tokens"], row["cost_usd"])
    return found


def through_the_orchestrator(tmp_path: Path, kind: str) -> dict[tuple[str, str], Figures]:
    """One `orchestrator run` of kind `kind`: issue i's dev phase prints fixture i; its dispatch's row."""
    fixtures = [fixture for fixture, k in EXPECTED if k == kind]
    (tmp_path / kind).mkdir()
    repo = make_repo(tmp_path / kind)
    # every issue at once: a refused login (claude_auth_failed) stops the run from starting more
    repo.config(runner_config(kind, extra=f"[loop]\njobs = {len(fixtures)}\n"))
    for i, fixture in enumerate(fixtures):
        repo.issue(f"f{i}", title=fixture)
    repo.commit()
    repo.scenario({f"f{i}": {"dev": [{"emit": fixture}]} for i, fixture in enumerate(fixtures)})
    result = repo.orch("run", "--milestone", "M1", timeout=240)
    assert result.code in (0, 2), result.err  # 2: the fixtures whose agent reported a failure
    found: dict[tuple[str, str], Figures] = {}
    for i, fixture in enumerate(fixtures):
        (run,) = repo.runs_of(f"f{i}")
        (dev,) = [d for d in repo.dispatches(run.id) if d.name == f"f{i}/dev/0/1"]
        assert dev.exit_code == 0
        found[(fixture, kind)] = (dev.input_tokens, dev.output_tokens, dev.cache_tokens, dev.cost_usd)
    return found


@pytest.mark.slow
def test_every_fixture_gives_identical_numbers_through_ic_dispatch_and_the_orchestrator(
    project: Project, tmp_path: Path
) -> None:
    try:
        dispatched = through_ic_dispatch(project)
    finally:
        end_leftovers(project)
    orchestrated: dict[tuple[str, str], Figures] = {}
    for kind in KINDS:
        orchestrated.update(through_the_orchestrator(tmp_path, kind))
    assert dispatched == EXPECTED
    assert orchestrated == EXPECTED
