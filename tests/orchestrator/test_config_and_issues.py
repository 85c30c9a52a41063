"""Config validation and issue parsing: in-process, on real files in temp dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.errors import UsageError
from orchestrator import dag
from orchestrator.config import EXAMPLE, Config, IssuesConfig, load_config, parse_config
from orchestrator.errors import ConfigMissing, CycleError
from orchestrator.issues import Issue, load_issues, natural_key, parse_issue, resolve_dependencies, select


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- config -----------------------------------------------------------------------------------------


def test_example_config_is_valid_and_equals_the_defaults(tmp_path: Path) -> None:
    parsed = parse_config(write(tmp_path / "orchestrator.toml", EXAMPLE))
    assert parsed == Config()
    assert parsed.loop.max_cycles == 2
    assert parsed.logs.root == ".orchestrator/logs"
    assert parsed.runner.timeout == 1800.0


def test_json_config_and_durations(tmp_path: Path) -> None:
    body = {"runner": {"kind": "claude", "timeout": "90s", "stall": 45, "model": "opus"}, "loop": {"jobs": 3}}
    parsed = parse_config(write(tmp_path / "orchestrator.json", json.dumps(body)))
    assert (parsed.runner.kind, parsed.runner.timeout, parsed.runner.stall) == ("claude", 90.0, 45.0)
    assert parsed.loop.jobs == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[runner]\nmodle = "x"\n', "runner.modle: unknown key (typo?); known keys here: kind, command, "),
        ('runner = "codex"\n', "runner: must be a table: write [runner] and its keys below it"),
        ('[runner]\nkind = "command"\ncommand = "a"\n', 'runner.command: must be a list, e.g. ["a", "b"]'),
        ("[runner]\nretries = 9\n", "runner.retries: must be less than or equal to 5"),
        ('[runner]\ntimeout = "soon"\n', "runner.timeout: 'soon' is not a duration"),
        ('[runner]\nkind = "command"\n', "runner: kind = 'command' needs command"),
        ('[runner]\nkind = "gpt"\n', "runner.kind:"),
        ("[loop]\nmax_cycles = -1\n", "loop.max_cycles:"),
        ('[issues]\nglobs = "issues/*.md"\n', "issues.globs:"),
        ("surprise = 1\n", "surprise: unknown key (typo?); known keys here: issues, runner, loop, logs"),
        ("[runner\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_config(write(tmp_path / "orchestrator.toml", text))
    assert expected in caught.value.message
    assert caught.value.message.startswith("orchestrator.toml: ")
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == 3


def test_missing_config_names_the_file_to_create(tmp_path: Path) -> None:
    with pytest.raises(ConfigMissing) as caught:
        load_config(tmp_path)
    assert str(tmp_path / "orchestrator.toml") in caught.value.message
    assert "orchestrator init" in caught.value.message


def test_both_config_files_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path / "orchestrator.toml", "")
    write(tmp_path / "orchestrator.json", "{}")
    with pytest.raises(UsageError, match="keep one"):
        load_config(tmp_path)


# -- issues: front-matter quirks ----------------------------------------------------------------------

CONFIG = IssuesConfig()


def test_values_stay_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "issues/a.md", "---\nid: 007\nmilestone: 1.10\ndepends_on: [1, 2.0]\n---\nbody\n")
    issue = parse_issue(path, tmp_path, CONFIG)
    assert issue.id == "007"
    assert issue.milestones == ("1.10",)
    assert issue.depends_on == ("1", "2.0")
    assert select([issue], milestone="1.10") == [issue]
    assert select([issue], milestone="1.1") == []


def test_bom_crlf_leading_blank_lines_and_dots_closer(tmp_path: Path) -> None:
    raw = (
        "\ufeff\r\n---\r\nid: x-1\r\nmilestone: Beta 2\r\ntitle: Crlf title  \r\n...\r\n# Heading\r\ntext\r\n"
    )
    issue = parse_issue(write(tmp_path / "issues/x.md", raw.encode("utf-8")), tmp_path, CONFIG)
    assert (issue.id, issue.milestones, issue.title) == ("x-1", ("Beta 2",), "Crlf title")
    assert "\r" not in issue.body and issue.body.startswith("# Heading")


def test_dependency_spellings(tmp_path: Path) -> None:
    text = "---\nmilestone: M\ndepends_on: '#3, 4 5'\nblocked_by:\n  - 6\n  - '#3'\n---\n"
    config = IssuesConfig(depends_fields=["depends_on", "blocked_by"])
    issue = parse_issue(write(tmp_path / "issues/9.md", text), tmp_path, config)
    assert issue.depends_on == ("3", "4", "5", "6")


def test_no_front_matter_uses_file_stem_and_heading(tmp_path: Path) -> None:
    issue = parse_issue(
        write(tmp_path / "issues/fix-login.md", "# Fix the login\n\nplease\n"), tmp_path, CONFIG
    )
    assert (issue.id, issue.title, issue.milestones) == ("fix-login", "Fix the login", ())


def test_unterminated_front_matter_is_body(tmp_path: Path) -> None:
    issue = parse_issue(write(tmp_path / "issues/u.md", "---\nmilestone: M\nno closer\n"), tmp_path, CONFIG)
    assert issue.milestones == ()
    assert "no closer" in issue.body


def test_empty_front_matter_and_empty_values(tmp_path: Path) -> None:
    issue = parse_issue(
        write(tmp_path / "issues/e.md", "---\nmilestone:\ndepends_on:\n---\n"), tmp_path, CONFIG
    )
    assert (issue.milestones, issue.depends_on) == ((), ())
    empty = parse_issue(write(tmp_path / "issues/f.md", "---\n---\nbody\n"), tmp_path, CONFIG)
    assert empty.id == "f"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\nmilestone: [unclosed\n---\n", "issues/bad.md: front matter is not valid YAML (line"),
        ("---\n- a\n- b\n---\n", "issues/bad.md: front matter must be a mapping"),
        ("---\nid: ../escape\n---\n", "issue id '../escape' cannot name a git branch"),
        ("---\nid: a b\n---\n", "issues/bad.md: issue id 'a b' cannot name a git branch: use ASCII letters"),
        ("---\nid: feat/x\n---\n", "issue id 'feat/x' cannot name a git branch"),
        ("---\nid: café\n---\n", "issue id 'café' cannot name a git branch"),
        ("---\nid: x.lock\n---\n", "without '..' or a '.'/'.lock' ending; change it"),
        ("---\nmilestone: {a: b}\n---\n", "issues/bad.md: milestone: expected a value or a list"),
    ],
)
def test_bad_issue_files_are_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_issue(write(tmp_path / "issues/bad.md", text), tmp_path, CONFIG)
    assert expected in caught.value.message
    assert caught.value.exit_code == 3


def test_an_id_from_the_file_name_says_where_to_set_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        parse_issue(write(tmp_path / "issues/fix login.md", "---\nmilestone: M\n---\n"), tmp_path, CONFIG)
    assert caught.value.message.startswith("issues/fix login.md: issue id 'fix login' cannot name")
    assert caught.value.message.endswith("; set `id:` in its front matter")


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    write(tmp_path / "issues/a.md", "---\nid: 5\n---\n")
    write(tmp_path / "issues/b.md", "---\nid: 5\n---\n")
    with pytest.raises(UsageError, match=r"issue id '5' is used by both issues/a.md and issues/b.md"):
        load_issues(tmp_path, CONFIG)


def test_globs_must_stay_inside_the_repository(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"issues\.globs"):
        load_issues(tmp_path, IssuesConfig(globs=["../other/*.md"]))


def test_select_rejects_unknown_and_foreign_issue(tmp_path: Path) -> None:
    write(tmp_path / "issues/1.md", "---\nmilestone: A\n---\n")
    write(tmp_path / "issues/2.md", "---\nmilestone: B\n---\n")
    found = load_issues(tmp_path, CONFIG)
    assert [i.id for i in select(found, milestone="A", only=["1"])] == ["1"]
    with pytest.raises(UsageError, match="--issue 3: no such issue"):
        select(found, milestone="A", only=["3"])
    with pytest.raises(UsageError, match=r"--issue 2: not in milestone 'A' \(its milestone: B\)"):
        select(found, milestone="A", only=["2"])


# -- ordering -----------------------------------------------------------------------------------------


def make(tmp_path: Path, spec: dict[str, str]) -> list[Issue]:
    for issue_id, deps in spec.items():
        write(tmp_path / f"issues/{issue_id}.md", f"---\nmilestone: M\ndepends_on: '{deps}'\n---\n")
    return list(load_issues(tmp_path, CONFIG))


def test_natural_id_order() -> None:
    ids = ["10", "9", "a-10", "a-2", "007", "7", "b"]
    assert sorted(ids, key=natural_key) == ["007", "7", "9", "10", "a-2", "a-10", "b"]


def test_dag_order_is_dependencies_first_then_smallest_ready_id(tmp_path: Path) -> None:
    issues = make(tmp_path, {"1": "3", "2": "", "3": "10", "10": "", "11": "2"})
    planned = dag.plan(issues)
    assert [e.issue.id for e in planned] == ["2", "10", "3", "1", "11"]
    assert planned[3].waits_for == ("3",)
    assert dag.plan(list(reversed(issues))) == planned


def test_dependency_outside_the_selection_is_external(tmp_path: Path) -> None:
    issues = make(tmp_path, {"1": "99", "2": "1"})
    planned = dag.plan(issues)
    assert [(e.issue.id, e.waits_for, e.external) for e in planned] == [("1", (), ("99",)), ("2", ("1",), ())]


def test_dependencies_resolve_numerically_when_unambiguous_and_are_noted(tmp_path: Path) -> None:
    issues = make(tmp_path, {"007": "", "07": "", "9": "", "10": "009", "11": "7, 9, x-1, 9"})
    resolved, notes = resolve_dependencies(issues)
    by_id = {i.id: i.depends_on for i in resolved}
    assert by_id["10"] == ("9",) and by_id["11"] == ("9",)  # duplicates folded, the rest dropped
    assert notes == [
        "issue 10: depends on 009, read as issue 9",
        "issue 11: depends on 7, which names no issue (several issues: 007, 07); not waited for (fix the "
        "id in its front matter)",
        "issue 11: depends on x-1, which names no issue; not waited for (fix the id in its front matter)",
    ]
    assert resolve_dependencies(resolved) == (resolved, [])  # resolved once, nothing left to note


def test_cycle_is_reported_with_its_members_only(tmp_path: Path) -> None:
    issues = make(tmp_path, {"a": "c", "b": "a", "c": "b", "d": "", "e": "a"})
    with pytest.raises(CycleError) as caught:
        dag.plan(issues)
    assert caught.value.members == ["a", "b", "c"]
    assert caught.value.exit_code == 3
    assert caught.value.message == "dependency cycle between issues: a, b, c"


def test_self_dependency_is_a_cycle(tmp_path: Path) -> None:
    with pytest.raises(CycleError) as caught:
        dag.plan(make(tmp_path, {"x": "x", "y": ""}))
    assert caught.value.members == ["x"]


def test_linear_order_ignores_dependencies(tmp_path: Path) -> None:
    issues = make(tmp_path, {"1": "2", "2": "1"})
    planned = dag.plan(issues, order="linear")
    assert [e.issue.id for e in planned] == ["1", "2"]
    assert all(e.waits_for == () for e in planned)
