"""The opt-in file: `orchestrator.toml` (or `orchestrator.json`, or the PRD's `orchestrator.config.json`)
at the repository root.

Validated with pydantic and unknown keys refused, so a typo (`modle = ...`) is an error naming the key
rather than a silently ignored setting. Every error is one line: `<file>: <dotted.key>: <problem>`.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from kernel.durations import parse_duration
from kernel.errors import UsageError
from orchestrator.errors import ConfigMissing

CONFIG_NAMES = ("orchestrator.toml", "orchestrator.json", "orchestrator.config.json")

# Arguments the orchestrator sets itself per phase (what an agent may do, how it answers); one given
# in `runner.args` would contradict them, so the config refuses it.
RESERVED_ARGS: dict[str, tuple[str, ...]] = {
    "codex": (
        "--full-auto", "--sandbox", "-s", "--dangerously-bypass-approvals-and-sandbox", "--yolo",
        "--output-schema", "--output-last-message", "--json",
    ),
    "claude": (
        "--permission-mode", "--dangerously-skip-permissions", "--allowedTools", "--allowed-tools",
        "--disallowedTools", "--disallowed-tools", "--json-schema", "--output-format", "-p", "--print",
    ),
    "command": (),
}  # fmt: skip


def _duration(value: Any) -> Any:
    """Seconds as a number, or an operator's duration string (`90s`, `30m`, `2h`)."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except UsageError:
            raise ValueError(f"{value!r} is not a duration; use e.g. 90, 30s, 5m, 2h") from None
    return value


Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IssuesConfig(_Strict):
    globs: list[str] = Field(default=["issues/*.md"], min_length=1)
    id_field: str = "id"
    title_field: str = "title"
    milestone_field: str = "milestone"
    depends_fields: list[str] = ["depends_on"]
    order: Literal["dag", "linear"] = "dag"


class RunnerConfig(_Strict):
    kind: Literal["codex", "claude", "command"] = "codex"
    command: list[str] | None = Field(default=None, min_length=1)
    executable: list[str] | None = Field(default=None, min_length=1)
    args: list[str] = []
    model: str | None = None
    timeout: Duration = 1800.0
    stall: Duration = 600.0
    kill_grace: Duration = 3.0
    retries: int = Field(default=1, ge=0, le=5)
    retry_backoff: Duration = 15.0
    token_budget: int | None = Field(default=None, gt=0)
    env: dict[str, str] = {}

    @model_validator(mode="after")
    def _command_matches_kind(self) -> RunnerConfig:
        if self.kind == "command" and not self.command:
            raise ValueError('kind = \'command\' needs command = ["program", "arg", ...]')
        if self.kind != "command" and self.command:
            raise ValueError(f"command is only used with kind = 'command' (kind is {self.kind!r})")
        reserved = RESERVED_ARGS[self.kind]
        for arg in self.args:
            flag = arg.split("=", 1)[0]
            if flag in reserved:
                raise ValueError(
                    f"args: {flag} is set by the orchestrator for each phase (what the agent may do in dev, "
                    "fix and review, and how it answers); remove it"
                )
        return self


class LoopConfig(_Strict):
    max_cycles: int = Field(default=2, ge=0, le=10)
    jobs: int = Field(default=1, ge=1, le=16)


class LogsConfig(_Strict):
    root: str = ".orchestrator/logs"


class WorktreesConfig(_Strict):
    root: str = ".orchestrator/worktrees"
    branch_prefix: str = "issue/"


class PromptsConfig(_Strict):
    dev: str | None = None
    review: str | None = None
    fix: str | None = None


class Config(_Strict):
    issues: IssuesConfig = IssuesConfig()
    runner: RunnerConfig = RunnerConfig()
    loop: LoopConfig = LoopConfig()
    logs: LogsConfig = LogsConfig()
    worktrees: WorktreesConfig = WorktreesConfig()
    prompts: PromptsConfig = PromptsConfig()


def _section(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model a dotted location points into (`("runner", "modle")` -> RunnerConfig)."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(exc: ValidationError) -> str:
    """`key: problem; what to do` for the first error, and how many more there are."""
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    section = _section(loc)
    if first["type"] == "extra_forbidden":
        known = ", ".join(section.model_fields) if section is not None else ""
        problem = "unknown key (typo?)" + (f"; known keys here: {known}" if known else "")
    elif first["type"] in ("model_type", "model_attributes_type"):
        problem = f"must be a table: write [{key}] and its keys below it"
    elif first["type"] == "list_type":
        problem = 'must be a list, e.g. ["a", "b"]'
    else:
        problem = first["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    more = len(exc.errors()) - 1
    return f"{key}: {problem}" + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def find_config(repo: Path) -> Path | None:
    present = [repo / name for name in CONFIG_NAMES if (repo / name).is_file()]
    if len(present) > 1:
        names = ", ".join(p.name for p in present)
        raise UsageError(f"{repo}: several config files ({names}); keep one")
    return present[0] if present else None


def parse_config(path: Path) -> Config:
    """Read and validate one config file; every failure is a one-line UsageError naming file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read config: {exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path.name}: not valid {path.suffix.lstrip('.').upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path.name}: the top level must be a table/object")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{path.name}: {_describe(exc)}") from None


def load_config(repo: Path, explicit: Path | None = None) -> tuple[Config, Path]:
    """The repository's config: `--config PATH`, else orchestrator.toml/.json at the root."""
    path = explicit if explicit is not None else find_config(repo)
    if path is None:
        raise ConfigMissing(
            f"{repo} has not opted in: create {repo / CONFIG_NAMES[0]} "
            "(`orchestrator init` writes an example)"
        )
    return parse_config(path), path


EXAMPLE = """\
# orchestrator.toml: opts this repository in to `orchestrator run --milestone M`.
# Every key is optional; the values shown are the defaults unless marked "example".
# Unknown keys are refused, so a typo is reported instead of ignored.

[issues]
# Markdown files with YAML front matter, relative to the repository root.
globs = ["issues/*.md"]
# Front-matter fields. Values are read as strings: `milestone: 1.10` stays "1.10", `id: 007` stays "007".
id_field = "id"                  # without it, the file name (minus .md) is the issue id
title_field = "title"            # without it, the first "# heading" of the body
milestone_field = "milestone"
depends_fields = ["depends_on"]  # lists (`[a, b]`) or comma-separated strings of issue ids
order = "dag"                    # "dag": dependencies first, smallest ready id next; "linear": by id

[runner]
kind = "codex"                   # "codex", "claude" or "command"
# command = ["my-agent", "--prompt-file", "{prompt_file}"]   # example, for kind = "command"
# executable = ["/opt/bin/codex"]                             # example: another codex/claude binary
# args = ["-c", "model_reasoning_effort=high"]  # example: extra arguments for every phase. What
#                                # the agent may do is set per phase: codex --sandbox workspace-write
#                                # (dev, fix) / read-only (review); claude edits and Bash allowed (dev,
#                                # fix) / edit tools denied (review). Those flags are refused here.
# model = "gpt-5-codex"          # example
timeout = "30m"                  # wall clock per phase attempt; the process group is killed after it
stall = "10m"                    # no output for this long counts as a hang
kill_grace = "3s"                # after TERM, how long before the agent's process group gets KILL
retries = 1                      # extra attempts of a phase after an infrastructure failure
retry_backoff = "15s"            # wait before the first retry, doubled for each next one (at most 5m)
# token_budget = 2000000         # example: per issue; the issue stops when its runs use more
# env = { RUST_LOG = "warn" }    # example: extra environment for the runner

[loop]
max_cycles = 2                   # review/fix cycles after the first review before an issue is capped
jobs = 1                         # issues worked on at the same time (dependencies still respected)

[logs]
root = ".orchestrator/logs"      # raw runner output + parsed JSON per issue/cycle/phase/attempt

[worktrees]
root = ".orchestrator/worktrees" # one git worktree per issue
branch_prefix = "issue/"         # issue 007 works on branch issue/007

# [prompts]                      # example: your own templates ($issue_id, $title, $body, $findings, ...)
# dev = "tools/prompts/dev.md"
"""
