"""Which argument vector a dispatch runs, and where its prompt goes.

Order: `--command` (taken literally), then the project's `.clavain/dispatch.toml`
(`[<type>] command = ["prog", "arg", ...]`), then the built-in default of the agent kind
(`kernel.dispatch.agents.default_argv`: `codex exec --json -`, `claude -p --output-format json`).
A built-in default reads the prompt on its stdin, which has no size limit; an operator's command
gets the prompt through its placeholders and reads /dev/null. The argv is stored as a template and
filled in by the spawner right before the launch, so the stored command stays short and never holds
the prompt text. It is never handed to a shell: placeholders are plain substring replacements in
individual arguments (`kernel.dispatch.agents.command.fill`).

Placeholders: `{prompt}` (the prompt file's content), `{prompt_file}`, `{output}`, `{model}`, `{id}`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import UsageError

CONFIG_NAME = "dispatch.toml"
PLACEHOLDERS = ("{prompt_file}", "{prompt}", "{output}", "{model}", "{id}")


@dataclass(frozen=True, slots=True)
class Resolved:
    """The argv template of a dispatch, and whether the agent reads its prompt on stdin."""

    argv: list[str]
    prompt_on_stdin: bool


def parse_command_flag(text: str) -> list[str]:
    """`--command` as a JSON array of strings, or else split like a shell would (but never run by one)."""
    import shlex

    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--command is not a valid JSON array: {exc.msg}") from None
        return _argv(value, "--command")
    try:
        argv = shlex.split(stripped)
    except ValueError as exc:
        raise UsageError(f"--command cannot be split into words: {exc}") from None
    return _argv(argv, "--command")


def _argv(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: the command must be a non-empty list of strings")
    if not value[0]:
        raise UsageError(f"{where}: the program name is empty")
    return list(value)


def _config_files(project_dir: Path, db_path: Path | None) -> list[Path]:
    files = [project_dir / ".clavain" / CONFIG_NAME]
    if db_path is not None:
        beside_db = db_path.parent / CONFIG_NAME
        if beside_db != files[0]:
            files.append(beside_db)
    return files


def _from_config(path: Path, agent_type: str) -> list[str] | None:
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc}); fix the file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    section = data.get(agent_type)
    if section is None:
        return None
    if not isinstance(section, dict) or "command" not in section:
        raise UsageError(f'{path}: [{agent_type}] needs command = ["program", "arg", ...]')
    return _argv(section["command"], f"{path} [{agent_type}]")


def resolve(
    agent_type: str,
    project_dir: Path,
    *,
    command: list[str] | None = None,
    model: str | None = None,
    db_path: Path | None = None,
) -> Resolved:
    """The argv template for a dispatch; UsageError when no source names a command for the type."""
    if command is not None:
        return Resolved(_argv(command, "--command"), prompt_on_stdin=False)
    for path in _config_files(project_dir, db_path):
        found = _from_config(path, agent_type)
        if found is not None:
            return Resolved(found, prompt_on_stdin=False)
    from kernel.dispatch import agents

    default = agents.default_argv(agent_type, model=model)
    if default is None:
        raise UsageError(
            f"no command for agent type {agent_type!r}: pass --command or add "
            f"[{agent_type}] command = [...] to .clavain/{CONFIG_NAME}"
        )
    return Resolved(default, prompt_on_stdin=True)


def find_program(program: str, cwd: Path, env_path: str | None = None) -> str | None:
    """Where exec would find `program` (relative to `cwd` when it contains a slash), or None."""
    import shutil

    if "/" in program:
        candidate = cwd / program
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=env_path if env_path is not None else os.environ.get("PATH"))
