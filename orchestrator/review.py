"""The review verdict: the one piece of agent output the loop trusts, so it is validated strictly.

A review answers with JSON `{"status": "pass"|"fail", "findings": [...], "summary": "..."}`. When that
JSON is missing or malformed, nobody has judged the code: that is an infrastructure failure of the
review phase, never a "fail" verdict (which would send a fixer after problems no one found).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Finding(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    message: str = Field(min_length=1)
    severity: str | None = None
    file: str | None = None
    line: int | None = None

    def describe(self) -> str:
        where = self.file or ""
        if where and self.line is not None:
            where += f":{self.line}"
        prefix = f"[{self.severity}] " if self.severity else ""
        return f"{prefix}{where + ': ' if where else ''}{self.message}"


class ReviewResult(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["pass", "fail"]
    findings: list[Finding] = []
    summary: str | None = None


class ReviewMissing(Exception):
    """No usable verdict: the review phase failed as infrastructure."""


_FENCED = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)


def _candidates(text: str) -> list[Any]:
    """JSON values a final message may hold: all of it, fenced blocks (last first), balanced objects."""
    found: list[Any] = []
    stripped = text.strip()
    try:
        found.append(json.loads(stripped))
    except ValueError:
        pass
    for block in reversed(_FENCED.findall(text)):
        try:
            found.append(json.loads(block))
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    objects: list[Any] = []
    start = text.find("{")
    while start >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        objects.append(value)
        start = text.find("{", end)
    found.extend(reversed(objects))
    return found


def _normalize(value: Any) -> Any:
    """Findings given as plain strings are accepted as `{"message": ...}`."""
    if isinstance(value, dict) and isinstance(value.get("findings"), list):
        value = {
            **value,
            "findings": [{"message": f} if isinstance(f, str) else f for f in value["findings"]],
        }
    return value


def parse_review(structured: Any, final_message: str | None) -> ReviewResult:
    """The verdict from a runner's structured result, else from its final message; ReviewMissing if none."""
    candidates: list[Any] = []
    if structured is not None:
        candidates.append(structured if not isinstance(structured, str) else None)
        if isinstance(structured, str):
            candidates.extend(_candidates(structured))
    if final_message:
        candidates.extend(_candidates(final_message))
    verdicts = [c for c in candidates if isinstance(c, dict) and "status" in c]
    if not verdicts:
        if not final_message and structured is None:
            raise ReviewMissing("the review produced no final message")
        raise ReviewMissing("the review's answer holds no JSON verdict with a status")
    try:
        return ReviewResult.model_validate(_normalize(verdicts[0]))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ReviewMissing(f"the review's JSON verdict is invalid: {key}: {first['msg']}") from None
