"""Bigend's settings: where to look for projects and how hard to work at keeping the picture fresh.

Read from `~/.config/bigend/config.toml` (`roots`, `depth`, `exclude`, and the tuning knobs below), with
`--root` on the command line replacing the configured roots; with neither, the current directory is the
one root. Unknown keys are refused so a typo in the file is reported instead of silently ignored.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kernel.errors import UsageError

DEFAULT_CONFIG_PATH = Path("~/.config/bigend/config.toml")


class BigendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roots: list[Path] = Field(default_factory=list, description="directories scanned for projects")
    depth: int = Field(default=3, ge=0, le=32, description="how many directory levels below a root")
    exclude: list[str] = Field(
        default_factory=list,
        description="extra names or glob patterns to skip (node_modules, .git, .venv... are always skipped)",
    )
    pool_size: int = Field(default=5, ge=1, le=64, description="projects read concurrently")
    project_timeout: float = Field(default=2.5, gt=0, description="seconds before a project read gives up")
    rediscover_interval: float = Field(default=30.0, gt=0, description="seconds between project scans")
    events_per_project: int = Field(default=100, ge=0, description="recent events kept per project")
    runs_per_project: int = Field(
        default=500, ge=0, description="finished runs kept per project, newest first (active runs: all)"
    )
    dispatches_per_project: int = Field(
        default=100, ge=0, description="finished dispatches kept per project, newest first (live ones: all)"
    )
    debounce_ms: int = Field(default=80, ge=1, description="file-change grouping window of the live watcher")
    poll_interval: float = Field(
        default=2.0, gt=0, description="seconds between cheap stat checks (safety net for missed file events)"
    )
    max_open_connections: int = Field(
        default=128,
        ge=1,
        description="read connections kept open across refreshes; the least recently used are closed",
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist; create it or drop --config") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "config"
    return f"{where}: {err['msg']}"


def load_config(path: Path | None = None, roots: list[str] | None = None) -> BigendConfig:
    """The effective configuration: file (explicit `path`, else the default if it exists) plus overrides.

    Relative roots in the file are relative to the file's directory; `~` is expanded everywhere.
    `roots` (from `--root`) replaces the file's roots; with no roots at all the current directory is used.
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    source = path
    if source is None:
        default = DEFAULT_CONFIG_PATH.expanduser()
        source = default if default.is_file() else None
    if source is not None:
        source = source.expanduser()
        data = _read_toml(source)
        base = source.absolute().parent
    if "roots" in data and not isinstance(data["roots"], list):
        raise UsageError(f"config file {source}: roots must be a list of directories")
    try:
        config = BigendConfig.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"config file {source}: {_first_error(exc)}") from None
    if roots:
        resolved = [Path(os.path.expanduser(r)).absolute() for r in roots]
    elif config.roots:
        resolved = [(base / Path(os.path.expanduser(str(r)))).absolute() for r in config.roots]
    else:
        resolved = [Path.cwd()]
    return config.model_copy(update={"roots": resolved})
