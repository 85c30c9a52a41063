"""What each phase asks the agent, as `string.Template`s (`$issue_id`): JSON braces need no escaping.

Templates can be replaced per phase with `[prompts] dev = "path"` (relative to the repository root).
Variables: $issue_id, $title, $body, $issue_path, $branch, $base, $cycle, $max_cycles, $findings,
$summary.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from kernel.errors import UsageError
from orchestrator.config import PromptsConfig

DEV = """\
You are implementing issue $issue_id: $title

You are in a git worktree of the repository, on branch $branch. Implement the issue completely:
code, tests and documentation, following the conventions of the repository. Do not commit and do
not switch branches; the orchestrator commits your changes when you finish.

The issue ($issue_path):

$body
"""

REVIEW = """\
You are reviewing the work done for issue $issue_id: $title

You are in a git worktree on branch $branch. The changes to review are `git diff $base HEAD`
(run it). Check them against the issue below: correctness, tests, missing pieces, regressions.
Do not modify any file.

Answer with ONLY one JSON object, no other text:
{"status": "pass" or "fail", "summary": "one sentence",
 "findings": [{"severity": "high|medium|low", "file": "path", "line": 1, "message": "what is wrong"}]}
Use "fail" only for problems that must be fixed before this can be merged; "pass" may list minor notes.

The issue ($issue_path):

$body
"""

FIX = """\
You are fixing issue $issue_id: $title (fix cycle $cycle of at most $max_cycles)

You are in a git worktree on branch $branch. A review of the changes (`git diff $base HEAD`)
failed. Fix every finding below, keep the tests passing, and do not commit; the orchestrator commits.

Review summary: $summary
Findings:
$findings

The issue ($issue_path):

$body
"""

DEFAULTS = {"dev": DEV, "review": REVIEW, "fix": FIX}


def load_templates(repo: Path, config: PromptsConfig) -> dict[str, Template]:
    """The three phase templates; a configured file that cannot be read is a usage error naming it."""
    templates: dict[str, Template] = {}
    for phase, default in DEFAULTS.items():
        custom = getattr(config, phase)
        text = default
        if custom:
            path = repo / custom
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"prompts.{phase}: cannot read {path}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise UsageError(f"prompts.{phase}: {path} is not UTF-8 text") from None
        templates[phase] = Template(text)
    return templates


def render(template: Template, **values: object) -> str:
    """Fill a template; unknown `$names` stay as written, so a prompt can mention shell variables."""
    return template.safe_substitute({k: str(v) for k, v in values.items()})
