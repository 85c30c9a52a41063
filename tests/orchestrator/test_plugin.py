"""Issue 13, item 9: `/dev-auto-orchestrate`, the PRD's second entrypoint, and `orchestrator.config.json`.

The written files are checked against the documented formats (Claude Code: plugins reference,
plugin marketplaces, slash commands; Codex: docs/prompts.md), and the command's script is run, as the
agent would run it, on a real repository with the fake runner.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.orchestrator.conftest import Repo, orchestrator_executable, runner_config

KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")  # plugin and marketplace names
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
CLAUDE_COMMAND_KEYS = {"description", "argument-hint", "allowed-tools", "model", "disable-model-invocation"}
CODEX_PROMPT_KEYS = {"description", "argument-hint"}


def front_matter(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text()
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    parsed = yaml.safe_load(head)
    assert isinstance(parsed, dict)
    return parsed, body


def install(repo: Repo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*orchestrator_executable(), "plugin", "install", *args],
        capture_output=True, text=True, env=repo.env(), timeout=60,
    )  # fmt: skip


def test_claude_plugin_matches_the_documented_format(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "marketplace"
    done = install(repo, "--claude", "--dest", str(dest))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"next: in Claude Code: /plugin marketplace add {dest}")
    market = json.loads((dest / ".claude-plugin/marketplace.json").read_text())
    assert KEBAB.match(market["name"]) and market["owner"]["name"]
    (entry,) = market["plugins"]
    assert entry["source"] == "./dev-auto-orchestrate"  # relative to the marketplace root
    plugin = dest / entry["source"]
    manifest = json.loads((plugin / ".claude-plugin/plugin.json").read_text())
    assert manifest["name"] == entry["name"] == "dev-auto-orchestrate" and KEBAB.match(manifest["name"])
    assert SEMVER.match(manifest["version"]) and manifest["description"] and manifest["author"]["name"]
    command = (
        plugin / "commands/dev-auto-orchestrate.md"
    )  # the file name is the command: /dev-auto-orchestrate
    meta, body = front_matter(command)
    assert set(meta) <= CLAUDE_COMMAND_KEYS and meta["description"] and meta["argument-hint"]
    script = plugin / "scripts/dev-auto-orchestrate"
    assert f"Bash({script}:*)" in [t.strip() for t in meta["allowed-tools"].split(",")]
    assert f"{shlex.quote(str(script))} $ARGUMENTS" in body  # the arguments go to the script
    assert "run_in_background" in body and "BashOutput" in body  # streamed as it runs
    assert script.stat().st_mode & stat.S_IXUSR


def test_the_command_script_runs_the_engine_in_the_current_workspace(repo: Repo, tmp_path: Path) -> None:
    repo.config(runner_config("claude"))
    repo.issue("1")
    repo.commit()
    assert install(repo, "--claude", "--dest", str(tmp_path / "m")).returncode == 0
    script = tmp_path / "m/dev-auto-orchestrate/scripts/dev-auto-orchestrate"
    env = {**repo.env(), "PATH": "/usr/bin:/bin"}  # the script names its orchestrator itself
    ran = subprocess.run(
        [str(script), "M1", "--jobs", "1"], cwd=repo.dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "[1] dev cycle 0 started" and "[1] passed: review passed after 0 fix cycle(s)" in lines
    assert repo.outcomes() == {"1": "passed"}
    usage = subprocess.run([str(script)], cwd=repo.dir, env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 3 and usage.stderr.startswith("usage: dev-auto-orchestrate <milestone>")


def test_codex_prompt_matches_the_documented_format_and_its_command_runs(repo: Repo, tmp_path: Path) -> None:
    repo.issue("1")
    repo.commit()
    dest = tmp_path / "codex-home/prompts"
    done = install(repo, "--codex", "--dest", str(dest))
    assert done.returncode == 0, done.stderr
    prompt = dest / "dev-auto-orchestrate.md"
    meta, body = front_matter(prompt)
    assert set(meta) <= CODEX_PROMPT_KEYS and meta["description"] and meta["argument-hint"]
    # Codex expands $1..$9 and $ARGUMENTS; any other $NAME would be a named argument it asks for
    assert set(re.findall(r"\$[A-Z][A-Z0-9_]*", body)) == {"$ARGUMENTS"}
    (command,) = [line.strip() for line in body.splitlines() if line.strip().endswith("$ARGUMENTS")]
    expanded = command.replace(
        "$ARGUMENTS", "M1"
    )  # what Codex sends after `/prompts:dev-auto-orchestrate M1`
    ran = subprocess.run(
        ["sh", "-c", expanded], cwd=repo.dir, env=repo.env(), capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert repo.outcomes() == {"1": "passed"}
    assert not [p for p in dest.iterdir() if p.suffix == ".md" and p != prompt]  # one prompt, nothing else


def test_install_keeps_changed_files_unless_forced_and_needs_a_target(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "prompts"
    assert install(repo, "--codex", "--dest", str(dest)).returncode == 0
    assert install(repo, "--codex", "--dest", str(dest)).returncode == 0  # the same content: fine
    (dest / "dev-auto-orchestrate.md").write_text("my own prompt\n")
    kept = install(repo, "--codex", "--dest", str(dest))
    assert kept.returncode == 1 and "exists with other content; pass --force" in kept.stderr
    assert (dest / "dev-auto-orchestrate.md").read_text() == "my own prompt\n"
    assert install(repo, "--codex", "--dest", str(dest), "--force").returncode == 0
    neither = install(repo)
    assert neither.returncode == 3 and neither.stderr.count("\n") == 1
    assert "one of the arguments --claude --codex is required" in neither.stderr


def test_default_destinations_follow_codex_home_and_xdg(repo: Repo, tmp_path: Path) -> None:
    env = {**repo.env(), "CODEX_HOME": str(tmp_path / "ch"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    expected_files = {
        "--codex": "ch/prompts/dev-auto-orchestrate.md",
        "--claude": "xdg/clavain/claude-plugins/.claude-plugin/marketplace.json",
    }
    for flag, expected in expected_files.items():
        done = subprocess.run(
            [*orchestrator_executable(), "plugin", "install", flag], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / expected).is_file()


@pytest.mark.parametrize("name", ["orchestrator.config.json", "orchestrator.json"])
def test_the_prds_config_name_is_accepted(repo: Repo, name: str) -> None:
    (repo.dir / "orchestrator.toml").unlink()
    runner = {"kind": "command", "command": json.loads(runner_config().split("command = ")[1].split("\n")[0]),
              "retries": 0}  # fmt: skip
    repo.write(name, json.dumps({"runner": runner}))
    repo.issue("1")
    repo.commit()
    result = repo.orch("run", "--milestone", "M1", "--json")
    assert result.code == 0, result.err
    assert result.json()["config"] == str(repo.dir / name)
    repo.write("orchestrator.toml", "")
    both = repo.cli("run", "--repo", str(repo.dir), "--milestone", "M1")
    assert both.code == 3
    assert f"several config files (orchestrator.toml, {name}); keep one" in both.err
    os.remove(repo.dir / "orchestrator.toml")
