"""Issues: Markdown files with YAML front matter, read so that every value stays a string.

`yaml.BaseLoader` never converts scalars: `milestone: 1.10` stays "1.10" (not 1.1) and `id: 007` stays
"007" (not 7), which is what an operator typing `--milestone 1.10` expects to match.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kernel.errors import UsageError
from orchestrator.config import IssuesConfig

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FENCE = re.compile(r"^(---|\.\.\.)[ \t]*$")
_HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_NATURAL = re.compile(r"(\d+)")
EXPECT_CHANGES = "expect_changes"
_BOOLEANS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


@dataclass(frozen=True)
class Issue:
    id: str
    title: str
    path: Path
    milestones: tuple[str, ...]
    depends_on: tuple[str, ...]
    body: str
    fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    expect_changes: bool = True  # `expect_changes: false`: a dev phase that changes nothing is fine


def natural_key(issue_id: str) -> tuple[tuple[int, int | str], ...]:
    """Order ids as people do: 2 before 10, `a-2` before `a-10`; ties (7 vs 007) fall back to the text."""
    parts: list[tuple[int, int | str]] = []
    for chunk in _NATURAL.split(issue_id):
        if chunk.isdigit():
            parts.append((0, int(chunk)))
        elif chunk:
            parts.append((1, chunk))
    parts.append((2, issue_id))
    return tuple(parts)


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(front matter text or None, body). Tolerates a BOM, CRLF, leading blank lines, `...` closers."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start >= len(lines) or lines[start].rstrip() != "---":
        return None, text
    for end in range(start + 1, len(lines)):
        if _FENCE.match(lines[end]):
            return "\n".join(lines[start + 1 : end]), "\n".join(lines[end + 1 :])
    return None, text


def _as_strings(value: Any, *, where: str, split: bool) -> tuple[str, ...]:
    """A scalar or a list of scalars -> tuple of trimmed strings; `split` also splits on commas/spaces.

    Dependencies are split (`depends_on: 3, 4` and `depends_on: "#3 #4"` both work, ids never hold
    spaces); milestones are not (`milestone: Beta 2` is one milestone).
    """
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        raw = [value]
    elif isinstance(value, list):
        raw = []
        for item in value:
            if not isinstance(item, str):
                raise UsageError(f"{where}: expected a list of plain values, got {item!r}")
            raw.append(item)
    else:
        raise UsageError(f"{where}: expected a value or a list, got a mapping")
    items: list[str] = []
    for text in raw:
        items.extend(re.split(r"[,\s]+", text) if split else [text])
    cleaned = (item.strip().lstrip("#") if split else item.strip() for item in items)
    return tuple(item for item in cleaned if item)


def parse_issue(path: Path, repo: Path, config: IssuesConfig) -> Issue:
    rel = path.relative_to(repo) if path.is_relative_to(repo) else path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{rel}: cannot read issue file: {exc}") from None
    front, body = split_front_matter(text)
    fields: dict[str, Any] = {}
    if front is not None and front.strip():
        try:
            loaded = yaml.load(front, Loader=yaml.BaseLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 2})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UsageError(f"{rel}: front matter is not valid YAML{where}: {problem}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{rel}: front matter must be a mapping of `key: value` lines")
        fields = {str(k).strip(): v for k, v in loaded.items()}
    raw_id = fields.get(config.id_field)
    if raw_id is None or raw_id == "":
        issue_id = path.stem
    elif isinstance(raw_id, str):
        issue_id = raw_id.strip()
    else:
        raise UsageError(f"{rel}: {config.id_field} must be a single value")
    if not ID_PATTERN.fullmatch(issue_id) or ".." in issue_id or issue_id.endswith((".", ".lock")):
        from_name = raw_id is None or raw_id == ""
        fix = f"set `{config.id_field}:` in its front matter" if from_name else "change it"
        raise UsageError(
            f"{rel}: issue id {issue_id!r} cannot name a git branch: use ASCII letters, digits, '.', '_' "
            f"and '-', starting with a letter or digit, without '..' or a '.'/'.lock' ending; {fix}"
        )
    title = fields.get(config.title_field)
    if not isinstance(title, str) or not title.strip():
        heading = _HEADING.search(body)
        title = heading.group(1) if heading else issue_id
    milestones = _as_strings(
        fields.get(config.milestone_field), where=f"{rel}: {config.milestone_field}", split=False
    )
    expect = fields.get(EXPECT_CHANGES, "true")
    if not isinstance(expect, str) or expect.strip().lower() not in _BOOLEANS:
        raise UsageError(f"{rel}: {EXPECT_CHANGES}: must be true or false, got {expect!r}")
    depends: list[str] = []
    for name in config.depends_fields:
        for dep in _as_strings(fields.get(name), where=f"{rel}: {name}", split=True):
            if dep not in depends:
                depends.append(dep)
    return Issue(
        id=issue_id,
        title=title.strip(),
        path=path,
        milestones=milestones,
        depends_on=tuple(depends),
        body=body.strip("\n"),
        fields=fields,
        expect_changes=_BOOLEANS[expect.strip().lower()],
    )


def load_issues(repo: Path, config: IssuesConfig) -> list[Issue]:
    """Every issue the globs match, in natural id order; duplicate ids are an error naming both files."""
    paths: set[Path] = set()
    for pattern in config.globs:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise UsageError(f"issues.globs: {pattern!r} must be relative to the repository root")
        paths.update(p for p in repo.glob(pattern) if p.is_file())
    issues: dict[str, Issue] = {}
    for path in sorted(paths):
        issue = parse_issue(path, repo, config)
        if issue.id in issues:
            other = issues[issue.id].path.relative_to(repo)
            raise UsageError(f"issue id {issue.id!r} is used by both {other} and {path.relative_to(repo)}")
        issues[issue.id] = issue
    return sorted(issues.values(), key=lambda i: natural_key(i.id))


def resolve_dependencies(issues: list[Issue]) -> tuple[list[Issue], list[str]]:
    """Each dependency as the issue it means, and a note for every one read leniently or dropped.

    `depends_on: 7` in a repository whose issue is `007`: no issue has the id exactly, one has it as
    a number, so it is that issue (noted). An id no issue has (or several have as a number) cannot be
    waited for; it is dropped with a warning rather than silently.
    """
    ids = {issue.id for issue in issues}
    numeric: dict[int, list[str]] = {}
    for issue_id in ids:
        if issue_id.isdigit():
            numeric.setdefault(int(issue_id), []).append(issue_id)
    notes: list[str] = []
    resolved: list[Issue] = []
    for issue in issues:
        depends: list[str] = []
        for dep in issue.depends_on:
            meant = dep
            if dep not in ids:
                matches = sorted(numeric.get(int(dep), []), key=natural_key) if dep.isdigit() else []
                if len(matches) == 1:
                    meant = matches[0]
                    notes.append(f"issue {issue.id}: depends on {dep}, read as issue {meant}")
                else:
                    which = f" (several issues: {', '.join(matches)})" if matches else ""
                    notes.append(
                        f"issue {issue.id}: depends on {dep}, which names no issue{which}; not waited for "
                        "(fix the id in its front matter)"
                    )
                    continue
            if meant not in depends:
                depends.append(meant)
        changed = tuple(depends) != issue.depends_on
        resolved.append(dataclasses.replace(issue, depends_on=tuple(depends)) if changed else issue)
    return resolved, notes


def select(issues: list[Issue], *, milestone: str, only: list[str] | None = None) -> list[Issue]:
    """The issues of one milestone (exact string match), optionally narrowed to `--issue` ids."""
    chosen = [i for i in issues if milestone.strip() in i.milestones]
    if only:
        by_id = {i.id: i for i in issues}
        for wanted in only:
            if wanted not in by_id:
                raise UsageError(f"--issue {wanted}: no such issue (known: {_sample(list(by_id))})")
            if by_id[wanted] not in chosen:
                shown = ", ".join(by_id[wanted].milestones) or "none"
                raise UsageError(f"--issue {wanted}: not in milestone {milestone!r} (its milestone: {shown})")
        chosen = [i for i in chosen if i.id in only]
    return chosen


def _sample(ids: list[str]) -> str:
    if not ids:
        return "none"
    return ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
