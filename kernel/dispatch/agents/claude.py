"""Claude Code (`claude -p`): its argv, its JSON output, and how its token usage reads.

argv: `claude -p --output-format json|stream-json [--verbose] [--model M] [extra...]
[--json-schema SCHEMA]`. The prompt travels on stdin: in print mode "input must be provided either
through stdin or as a prompt argument", and stdin has no 128 KiB argument limit. `stream-json`
requires `--verbose` in print mode; `json` prints one result object at the end (with `--verbose`:
one JSON array of every message, the result last).

Output (code.claude.com/docs/en/headless; Agent SDK reference, `SDKMessage`): `system` (subtype
`init`), `assistant` and `user` messages, then one `result` message: `subtype` (`success`, or
`error_max_turns`, `error_during_execution`, `error_max_budget_usd`,
`error_max_structured_output_retries`), `is_error`, `result` (the final text; for a failed API call
the subtype can still be `success` with `is_error: true` and the message in `result`), `errors`
(error subtypes), `usage`, `total_cost_usd`, `permission_denials` ([{tool_name, tool_use_id,
tool_input}]) and, with `--json-schema`, `structured_output`.

Usage. The result message's `usage` is the whole session's ("The final result message contains the
total cumulative usage from all steps", code.claude.com/docs/en/agent-sdk/cost-tracking); the
per-message usage of `assistant` lines is per step and ignored. Anthropic's fields are disjoint
parts of the prompt: "total_input_tokens = cache_read_input_tokens + cache_creation_input_tokens +
input_tokens", where `input_tokens` "only represents tokens that appear after your last cache
breakpoint" (platform.claude.com/docs/en/build-with-claude/prompt-caching, and the rate-limits page).
Recorded: input = input_tokens + cache_creation_input_tokens (both processed fresh; a cache write
is billed above the plain input rate, 1.25x for the 5-minute cache), cache = cache_read_input_tokens,
output = output_tokens, cost = total_cost_usd.

Outcome: a `result` with `is_error` or a subtype other than `success` is a failure; a success
result completes the run. `permission_denials` are reported as problems (the run still counts). A
failure that is a refused login (`AUTH_MARKERS`, or an assistant message flagged
`authentication_failed`) is `auth_failed`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from kernel.dispatch.agents.output import AgentParser, mentions_any
from kernel.dispatch.agents.usage import TokenUsage, cost, count

PROGRAM = "claude"
# What a refused login looks like: an assistant message flagged `"error": "authentication_failed"`
# (Agent SDK, SDKAssistantMessage.error), and the result texts Claude Code prints for it ("Invalid API
# key · Please run /login", "Invalid API key · Fix external API key", "OAuth token has expired").
AUTH_ERROR = "authentication_failed"
AUTH_MARKERS = (
    "Invalid API key",
    "Please run /login",
    "Run /login",
    "OAuth token has expired",
    "authentication_error",
)
OutputFormat = Literal["json", "stream-json"]


def argv(
    *,
    program: Sequence[str] = (PROGRAM,),
    output_format: OutputFormat = "json",
    model: str | None = None,
    extra_args: Sequence[str] = (),
    json_schema: str | None = None,
) -> list[str]:
    """The command line; the prompt goes to the process's stdin."""
    args = [*program, "-p", "--output-format", output_format]
    if output_format == "stream-json":
        args.append("--verbose")
    if model:
        args += ["--model", model]
    args += extra_args
    if json_schema:
        args += ["--json-schema", json_schema]
    return args


def read_usage(result: dict[str, Any]) -> TokenUsage | None:
    """A result message's `usage` and `total_cost_usd` in the kernel's meaning (module docstring)."""
    usage = result.get("usage")
    if not isinstance(usage, dict):
        return None
    fresh, written, read, out = (
        count(usage.get(key))
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    )
    if fresh is None or written is None or read is None or out is None:
        return None
    return TokenUsage(
        input_tokens=fresh + written, output_tokens=out, cache_tokens=read,
        cost_usd=cost(result.get("total_cost_usd")),
    )  # fmt: skip


def describe_denial(denial: Any) -> str:
    if not isinstance(denial, dict):
        return f"permission denied: {denial!r}"
    tool = str(denial.get("tool_name") or "a tool")
    given = denial.get("tool_input")
    detail = json.dumps(given, ensure_ascii=False, sort_keys=True) if given else ""
    if len(detail) > 200:
        detail = detail[:199] + "…"
    return f"permission denied: {tool}" + (f" {detail}" if detail else "")


class ClaudeParser(AgentParser):
    def __init__(self) -> None:
        super().__init__()
        self._auth_flagged = False  # an assistant message said authentication failed

    def on_event(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "assistant":
            if event.get("error") == AUTH_ERROR:
                self._auth_flagged = True
            message = event.get("message")
            return self._assistant(message) if isinstance(message, dict) else None
        if kind == "result":
            self._on_result(event)
        return None

    def _assistant(self, message: dict[str, Any]) -> str | None:
        shown: list[str] = []
        for part in message.get("content") or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and part.get("text"):
                shown.append(str(part["text"]))
            elif part.get("type") == "tool_use":
                shown.append(f"tool: {part.get('name', '?')}")
        return "\n".join(shown) or None

    def _on_result(self, event: dict[str, Any]) -> None:
        text = event.get("result")
        self.final_message = text if isinstance(text, str) else None
        usage = read_usage(event)
        if usage is not None:
            self.usage = usage
        if event.get("structured_output") is not None:
            self.structured = event["structured_output"]
        denials = event.get("permission_denials")
        if isinstance(denials, list):
            self.problems.extend(describe_denial(d) for d in denials)
        subtype = str(event.get("subtype") or "success")
        if event.get("is_error") or subtype != "success":
            errors = event.get("errors")
            listed = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
            detail = (self.final_message or listed).strip()
            if not detail:
                self.failure = subtype
            else:
                self.failure = detail if subtype == "success" else f"{subtype}: {detail}"
            self.completed = False
            self.auth_failed = self._auth_flagged or mentions_any(self.failure, AUTH_MARKERS)
        else:
            self.failure = None
            self.completed = True
            self.auth_failed = False
