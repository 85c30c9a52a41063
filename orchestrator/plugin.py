"""The PRD's second entrypoint: `/dev-auto-orchestrate` inside Claude Code or Codex, the same engine.

`orchestrator plugin install --claude` writes a Claude Code plugin inside a local marketplace:

    DEST/.claude-plugin/marketplace.json                 lists the plugin (source ./dev-auto-orchestrate)
    DEST/dev-auto-orchestrate/.claude-plugin/plugin.json the manifest (name, version, description, author)
    DEST/dev-auto-orchestrate/commands/dev-auto-orchestrate.md   the command: YAML front matter
                                                         (description, argument-hint, allowed-tools)
    DEST/dev-auto-orchestrate/scripts/dev-auto-orchestrate       the script the command runs

(formats: code.claude.com/docs/en/plugins-reference, .../plugin-marketplaces, .../slash-commands).
`orchestrator plugin install --codex` writes a Codex custom prompt, `DEST/dev-auto-orchestrate.md`
(front matter `description` and `argument-hint`; `$ARGUMENTS` is what follows the command; Codex
loads `$CODEX_HOME/prompts/*.md`, github.com/openai/codex docs/prompts.md), and the same script
beside it (not a `.md` file, so Codex does not take it for a prompt).

Both commands run the script with the operator's arguments (`<milestone> [orchestrator run flags]`)
in the current workspace; the script runs this installation's `orchestrator run` (its absolute path
is written in), whose output is plain lines when it is not a terminal, so the agent relays it as it
arrives. The command text tells the agent to stream it and to change nothing itself.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from kernel import __version__
from kernel.errors import Refused, UsageError

NAME = "dev-auto-orchestrate"
MARKETPLACE = "clavain"
DESCRIPTION = "Run the orchestrator (dev → review → fix over a milestone's issues) in this workspace"
ARGUMENT_HINT = "<milestone> [--issue ID] [--jobs N] [--retry] [--dry-run]"


class PluginExists(Refused):
    """A file to write exists with other content: kept unless --force (exit 1)."""


@dataclass(frozen=True)
class Written:
    files: list[Path]
    script: Path
    next_step: str  # what the operator does to use it


def orchestrator_program() -> str:
    """This installation's `orchestrator` executable, absolute (the script must not depend on PATH)."""
    found = shutil.which("orchestrator")
    if found:
        return str(Path(found).resolve())
    beside = Path(sys.executable).with_name("orchestrator")
    if beside.is_file():
        return str(beside)
    raise UsageError(
        "cannot find the `orchestrator` executable; install the package (pip install -e .) first"
    )


def script_text(program: str) -> str:
    return f"""#!/bin/sh
# {NAME}: written by `orchestrator plugin install`. Runs the orchestrator (the same engine as
# `orchestrator run`) in the current workspace; its output, plain lines, streams as it is printed.
# usage: {NAME} <milestone> [orchestrator run flags...]   (or the flags alone, --milestone included)
set -u
ORCHESTRATOR={shlex.quote(program)}
if [ "$#" -eq 0 ]; then
  echo "usage: {NAME} <milestone> [--issue ID] [--jobs N] [--retry] [--dry-run]" >&2
  exit 3
fi
case "$1" in
  -*) exec "$ORCHESTRATOR" run "$@" ;;
esac
milestone=$1
shift
exec "$ORCHESTRATOR" run --milestone "$milestone" "$@"
"""


def claude_command(script: Path) -> str:
    quoted = shlex.quote(str(script))
    return f"""---
description: {DESCRIPTION}
argument-hint: {ARGUMENT_HINT}
allowed-tools: Bash({script}:*), BashOutput, KillShell, Read
---

Run the Clavain orchestrator in this workspace and stream its progress to me. It works through the
milestone's issues itself (one git worktree and branch per issue, its own coding agents for dev,
review and fix), so do not edit files or run anything else while it runs.

1. Start it with the Bash tool, in the background (`run_in_background: true`), from the workspace root:

   {quoted} $ARGUMENTS

2. Until it exits, read its new output with BashOutput every few seconds and show me each new line
   as it arrives, unchanged.
3. When it exits, tell me its exit code (0 every issue passed; 1 an issue capped, blocked or held, or
   a refusal it explains; 2 infrastructure trouble; 3 a usage error; 130 interrupted) and summarise
   `.orchestrator/logs/summary.json`: each issue's outcome and reason, and the worktrees kept for me.

If I ask you to stop it, use KillShell: the orchestrator records every attempt in flight as cancelled,
and the next run resumes where it stopped.
"""


def codex_prompt(script: Path) -> str:
    quoted = shlex.quote(str(script))
    return f"""---
description: {DESCRIPTION}
argument-hint: {ARGUMENT_HINT}
---
Run the Clavain orchestrator in this workspace and show me its progress. It works through the
milestone's issues itself (one git worktree and branch per issue, its own coding agents for dev,
review and fix), so do not edit files or run anything else while it runs.

Run exactly this command from the workspace root, and show me its output as it arrives, unchanged:

    {quoted} $ARGUMENTS

It needs the network and writes under .orchestrator/ and .git/: if the sandbox refuses it, ask me to
approve running it outside the sandbox. When it exits, tell me its exit code (0 every issue passed;
1 an issue capped, blocked or held, or a refusal it explains; 2 infrastructure trouble; 3 a usage
error; 130 interrupted) and summarise .orchestrator/logs/summary.json: each issue's outcome and
reason, and the worktrees kept for me.
"""


def default_dest(claude: bool) -> Path:
    if claude:
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(data) / "clavain" / "claude-plugins"
    return Path(os.environ.get("CODEX_HOME") or str(Path.home() / ".codex")) / "prompts"


def _write(path: Path, text: str, *, force: bool, executable: bool = False) -> Path:
    if path.exists() and path.read_text(encoding="utf-8") != text and not force:
        raise PluginExists(f"{path} exists with other content; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if executable:
        path.chmod(0o755)
    return path


def install_claude(dest: Path, *, force: bool, program: str) -> Written:
    plugin = dest / NAME
    script = plugin / "scripts" / NAME
    marketplace = {
        "name": MARKETPLACE,
        "owner": {"name": "Clavain"},
        "plugins": [{"name": NAME, "source": f"./{NAME}", "description": DESCRIPTION}],
    }
    manifest = {
        "name": NAME,
        "version": __version__,
        "description": DESCRIPTION,
        "author": {"name": "Clavain"},
    }
    files = [
        _write(
            dest / ".claude-plugin" / "marketplace.json",
            json.dumps(marketplace, indent=2) + "\n",
            force=force,
        ),
        _write(plugin / ".claude-plugin" / "plugin.json", json.dumps(manifest, indent=2) + "\n", force=force),
        _write(script, script_text(program), force=force, executable=True),
        _write(plugin / "commands" / f"{NAME}.md", claude_command(script), force=force),
    ]
    step = (
        f"in Claude Code: /plugin marketplace add {dest}, then /plugin install {NAME}@{MARKETPLACE} "
        f"(or start claude --plugin-dir {plugin}); then /{NAME} <milestone>"
    )
    return Written(files, script, step)


def install_codex(dest: Path, *, force: bool, program: str) -> Written:
    script = dest / NAME
    files = [
        _write(script, script_text(program), force=force, executable=True),
        _write(dest / f"{NAME}.md", codex_prompt(script), force=force),
    ]
    step = f"start a new Codex session, then /prompts:{NAME} <milestone> (older Codex: /{NAME} <milestone>)"
    return Written(files, script, step)
