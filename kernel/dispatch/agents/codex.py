"""Codex (`codex exec --json`): its argv, its JSONL events, and how its token usage reads.

argv: `codex exec --json [--model M] [extra...] [--output-schema F] [--output-last-message F] -`.
The prompt travels on stdin: `codex exec` reads it from stdin when the prompt argument is `-`
(codex-rs/exec/src/cli.rs, `prompt`: "If not provided as an argument (or if `-` is used),
instructions are read from stdin"), so a prompt of any size works (an argument is limited to
128 KiB by the kernel).

Events (codex-rs/exec/src/exec_events.rs, `ThreadEvent`): `thread.started`, `turn.started`,
`turn.completed {usage}`, `turn.failed {error: {message}}`, `item.started|updated|completed {item}`
(items: `agent_message`, `reasoning`, `command_execution`, `file_change`, `mcp_tool_call`,
`web_search`, `todo_list`, `error`), and `error {message}`.

Usage. `turn.completed.usage` is the session's running total, not the turn's: the JSONL processor
(codex-rs/exec/src/event_processor_with_jsonl_output.rs) keeps the last `ThreadTokenUsageUpdated`
and emits `usage_from_last_total()`, built from `ThreadTokenUsage.total` (earlier builds:
`TokenUsageInfo.total_token_usage`, to which `append_last_usage` adds every request). So the last
`turn.completed` wins and they are never summed; the official TypeScript SDK does the same
(sdk/typescript/src/thread.ts: `usage = event.usage`). `cached_input_tokens` is the part of
`input_tokens` served from the prompt cache (OpenAI's `input_tokens_details.cached_tokens`; Codex's
own `TokenUsage::non_cached_input()` is `input_tokens - cached_input_tokens`), and `output_tokens`
includes reasoning tokens (`blended_total` adds no reasoning on top). Recorded:
input = input_tokens - cached_input_tokens, cache = cached_input_tokens, output = output_tokens.
Fields other builds add (`reasoning_output_tokens`, a cache-write count) are parts of those two
totals and change nothing here.

Outcome. A top-level `error` event is not final by itself: a stream retry prints
`{"type":"error","message":"Reconnecting... 1/5"}` and carries on (the processor maps
`StreamError` to `ThreadEvent::Error` and keeps running). It is a failure only when nothing follows
it; `turn.failed` always is. A terminal error naming HTTP 401/403 or the login is `auth_failed`.
Structured output: with `--output-schema FILE` the final
`agent_message` is JSON conforming to the schema ("a JSON string when structured output is
requested", exec_events.rs `AgentMessageItem`); the parser decodes exactly that message, only when
told a schema was given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kernel.dispatch.agents.output import AgentParser, mentions_any
from kernel.dispatch.agents.usage import TokenUsage, count

PROGRAM = "codex"
# A terminal error naming one of these is a refused login (codex-rs reports the HTTP status of the
# failed request: "unexpected status 401 Unauthorized: ...", "exceeded retry limit, last status: 401
# Unauthorized"); a `Reconnecting...` line naming it is still only a retry.
AUTH_MARKERS = ("401 Unauthorized", "403 Forbidden", "Not logged in", "codex login")


def argv(
    *,
    program: Sequence[str] = (PROGRAM,),
    model: str | None = None,
    extra_args: Sequence[str] = (),
    output_schema: str | None = None,
    last_message_file: str | None = None,
) -> list[str]:
    """The command line; the prompt goes to the process's stdin."""
    args = [*program, "exec", "--json"]
    if model:
        args += ["--model", model]
    args += extra_args
    if output_schema:
        args += ["--output-schema", output_schema]
    if last_message_file:
        args += ["--output-last-message", last_message_file]
    return [*args, "-"]


def read_usage(usage: Any) -> TokenUsage | None:
    """A `turn.completed.usage` object in the kernel's meaning (see the module docstring)."""
    if not isinstance(usage, dict):
        return None
    total, cached, out = (
        count(usage.get(key)) for key in ("input_tokens", "cached_input_tokens", "output_tokens")
    )
    if total is None or cached is None or out is None:
        return None
    # Clamped like codex's own non_cached_input(): a build reporting more cached than input is wrong.
    return TokenUsage(input_tokens=max(total - cached, 0), output_tokens=out, cache_tokens=cached)


class CodexParser(AgentParser):
    def __init__(self, *, structured: bool = False) -> None:
        super().__init__()
        self.expects_structured = structured
        self._last_error: str | None = None  # an `error` event nothing has followed yet

    def on_event(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "error":
            if self._last_error is not None:
                self.problems.append(f"transient error: {self._last_error}")
            self._last_error = str(event.get("message") or "error")
            return f"error: {self._last_error}"
        if self._last_error is not None and kind != "turn.failed":
            self.problems.append(f"transient error: {self._last_error}")
        self._last_error = None
        if kind == "turn.completed":
            usage = read_usage(event.get("usage"))
            if usage is not None:
                self.usage = usage
            self.completed = True
            return None
        if kind == "turn.failed":
            error = event.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self.failure = str(message or "turn failed")
            return f"turn failed: {self.failure}"
        if kind == "item.completed":
            item = event.get("item")
            return self._item(item) if isinstance(item, dict) else None
        return None

    def _item(self, item: dict[str, Any]) -> str | None:
        kind = item.get("type")
        if kind == "agent_message":
            self.final_message = str(item.get("text") or "")
            return self.final_message
        if kind == "command_execution":
            return f"$ {item.get('command', '')} (exit {item.get('exit_code')})"
        if kind == "file_change":
            changes = item.get("changes") or []
            paths = [str(c.get("path")) for c in changes if isinstance(c, dict)]
            return "edited " + ", ".join(paths) if paths else None
        if kind == "error":  # a non-fatal warning item (config warning, model rerouted, ...)
            return f"warning: {item.get('message', '')}"
        return None

    def at_end(self) -> None:
        if self._last_error is not None and self.failure is None:
            self.failure = self._last_error  # an error with nothing after it: the run ended on it
        self.auth_failed = mentions_any(self.failure, AUTH_MARKERS)
        if self.expects_structured and self.final_message is not None:
            value: Any
            try:
                value = json.loads(self.final_message)
            except ValueError:
                value = None
            if value is None:
                self.problems.append("the final message is not the JSON that --output-schema asked for")
            self.structured = value
