"""The review verdict: the one piece of agent output the loop trusts, so it comes from a structured channel.

Each runner kind has one channel for it, asked for explicitly on every review:

- Codex: `codex exec --output-schema FILE`; the final agent message is JSON conforming to the schema;
- Claude Code: `claude -p --json-schema SCHEMA`; the result message's `structured_output`;
- a command runner: its `{"type": "result", "result": {...}}` line (the schema is offered to it as
  `{verdict_schema}` and ORCHESTRATOR_VERDICT_SCHEMA).

Nothing else is read. JSON found in prose is not a verdict: a reviewer that writes its fail verdict
and then an example containing `"status": "pass"` must not pass the issue.

Harmless variants are accepted, and every normalisation is recorded with the verdict: a status in
another case or padded (`"PASS"`), a line given as text or as a range (`"12-15"`: line 12, end_line
15), `description` instead of `message`, a finding given as a plain string. A missing, invalid or
contradictory verdict (the channel gave two different answers; `fail` with no finding to fix) is an
infrastructure failure of the review, never a `fail`: no fixer is sent after problems nobody found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The schema every review is asked to answer in. Strict in OpenAI's sense (every property required,
# optional ones nullable, no additional properties), which `codex exec --output-schema` needs.
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "summary", "findings"],
    "properties": {
        "status": {"type": "string", "enum": ["pass", "fail"]},
        "summary": {"type": "string", "description": "one sentence"},
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["severity", "file", "line", "message"],
                "properties": {
                    "severity": {"type": ["string", "null"], "description": "high, medium or low"},
                    "file": {"type": ["string", "null"]},
                    "line": {"type": ["integer", "null"]},
                    "message": {"type": "string", "description": "what is wrong"},
                },
            },
        },
    },
}

_LINE_RANGE = re.compile(r"\s*(\d+)\s*(?:[-–:]\s*(\d+)\s*)?")


class Finding(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    message: str = Field(min_length=1)
    severity: str | None = None
    file: str | None = None
    line: int | None = None
    end_line: int | None = None

    def describe(self) -> str:
        where = self.file or ""
        if where and self.line is not None:
            where += f":{self.line}" + (f"-{self.end_line}" if self.end_line is not None else "")
        prefix = f"[{self.severity}] " if self.severity else ""
        return f"{prefix}{where + ': ' if where else ''}{self.message}"


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["pass", "fail"]
    findings: list[Finding] = []
    summary: str | None = None


class VerdictError(Exception):
    """No usable verdict: the review phase failed as infrastructure."""


@dataclass(frozen=True)
class ReadVerdict:
    verdict: Verdict
    normalised: tuple[str, ...]  # what was read leniently, e.g. `status "PASS" read as "pass"`


def _finding(raw: Any, index: int, notes: list[str]) -> Any:
    if isinstance(raw, str):
        notes.append(f"finding {index} given as text, read as its message")
        return {"message": raw}
    if not isinstance(raw, dict):
        return raw  # validation names it
    finding = dict(raw)
    if "message" not in finding and isinstance(finding.get("description"), str):
        finding["message"] = finding.pop("description")
        notes.append(f"finding {index}: `description` read as `message`")
    line = finding.get("line")
    if isinstance(line, str):
        matched = _LINE_RANGE.fullmatch(line)
        if matched:
            finding["line"] = int(matched.group(1))
            if matched.group(2) is not None:
                finding["end_line"] = int(matched.group(2))
            read_as = f"line {finding['line']}" + (
                f", end_line {finding['end_line']}" if matched.group(2) else ""
            )
            notes.append(f"finding {index}: line {line!r} read as {read_as}")
    return finding


def _normalise(value: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    verdict = dict(value)
    status = verdict.get("status")
    if (
        isinstance(status, str)
        and status.strip().lower() in ("pass", "fail")
        and status not in ("pass", "fail")
    ):
        verdict["status"] = status.strip().lower()
        notes.append(f"status {status!r} read as {verdict['status']!r}")
    findings = verdict.get("findings")
    if isinstance(findings, list):
        verdict["findings"] = [_finding(f, i, notes) for i, f in enumerate(findings)]
    elif findings is None:
        verdict["findings"] = []
    return verdict


def read_verdict(structured: Any, *, conflict: bool = False, channel: str) -> ReadVerdict:
    """The verdict the runner gave on its structured channel (`channel` names it for the message).

    VerdictError when it is missing, invalid or contradictory.
    """
    if structured is None:
        raise VerdictError(f"the review gave no structured verdict ({channel})")
    if conflict:
        raise VerdictError(
            f"the review gave contradictory verdicts ({channel} answered more than once, differently)"
        )
    if not isinstance(structured, dict):
        raise VerdictError(f"the review's structured verdict is not a JSON object ({channel})")
    notes: list[str] = []
    try:
        verdict = Verdict.model_validate(_normalise(structured, notes))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(verdict)"
        raise VerdictError(f"the review's verdict is invalid: {key}: {first['msg']}") from None
    if verdict.status == "fail" and not verdict.findings:
        raise VerdictError("the review's verdict is contradictory: status fail with no finding to fix")
    return ReadVerdict(verdict, tuple(notes))
