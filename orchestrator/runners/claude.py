"""Claude Code: `claude -p --output-format stream-json --verbose`, one JSON message per line.

The final `{"type": "result"}` line carries the final text (`result`), `usage`, `total_cost_usd` and
`is_error`; `assistant` lines are shown as they arrive. Prompt-cache writes count as input tokens,
cache reads as cache tokens.
"""

from __future__ import annotations

from typing import Any

from orchestrator.runners.base import Invocation, OutputParser, Runner, Usage, as_int


class ClaudeParser(OutputParser):
    def on_event(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "assistant":
            return self._assistant(event.get("message") or {})
        if kind == "result":
            result = event.get("result")
            if isinstance(result, str):
                self.out.final_message = result
            if event.get("structured_output") is not None:
                self.out.structured = event["structured_output"]
            usage = event.get("usage") or {}
            cost = event.get("total_cost_usd")
            self.out.usage = Usage(
                input_tokens=as_int(usage.get("input_tokens"))
                + as_int(usage.get("cache_creation_input_tokens")),
                output_tokens=as_int(usage.get("output_tokens")),
                cache_tokens=as_int(usage.get("cache_read_input_tokens")),
                cost_usd=float(cost)
                if isinstance(cost, int | float) and not isinstance(cost, bool)
                else None,
            )
            if event.get("is_error") or str(event.get("subtype", "success")) != "success":
                self.out.error = str(result or event.get("subtype") or "claude reported an error")
            return None
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


class ClaudeRunner(Runner):
    kind = "claude"
    default_args = ("--permission-mode", "acceptEdits")

    def argv(self, inv: Invocation) -> list[str]:
        program = self.config.executable or ["claude"]
        model = ["--model", self.config.model] if self.config.model else []
        return [
            *program, "-p", "--output-format", "stream-json", "--verbose", *model, *self.extra_args,
            "--", inv.prompt,
        ]  # fmt: skip

    def parser(self) -> OutputParser:
        return ClaudeParser()
