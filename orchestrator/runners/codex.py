"""Codex: `codex exec --json`, one JSON event per line.

Events read: `item.completed` with an `agent_message` item (the last one is the final message),
`command_execution`, `file_change` and (non-fatal) `error` items (shown), `turn.completed` (its
`usage` is summed), `turn.failed` and `error` (the agent failed). Older builds'
`{"msg": {"type": "agent_message"}}` lines are understood too. Anything else is tolerated and only
logged.
"""

from __future__ import annotations

from typing import Any

from orchestrator.runners.base import Invocation, OutputParser, Runner, Usage, as_int


class CodexParser(OutputParser):
    def on_event(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "item.completed":
            return self._item(event.get("item") or {})
        if kind == "turn.completed":
            usage = event.get("usage") or {}
            self.out.usage = self.out.usage.add(
                Usage(
                    input_tokens=as_int(usage.get("input_tokens")),
                    output_tokens=as_int(usage.get("output_tokens")),
                    cache_tokens=as_int(usage.get("cached_input_tokens")),
                )
            )
            return None
        if kind == "turn.failed":
            error = event.get("error") or {}
            self.out.error = str(error.get("message") or "turn failed")
            return f"turn failed: {self.out.error}"
        if kind == "error":
            self.out.error = str(event.get("message") or "error")
            return f"error: {self.out.error}"
        legacy = event.get("msg")
        if isinstance(legacy, dict) and legacy.get("type") == "agent_message":
            self.out.final_message = str(legacy.get("message") or "")
            return self.out.final_message
        return None

    def _item(self, item: dict[str, Any]) -> str | None:
        kind = item.get("type") or item.get("item_type")
        if kind in ("agent_message", "assistant_message"):
            self.out.final_message = str(item.get("text") or "")
            return self.out.final_message
        if kind == "command_execution":
            return f"$ {item.get('command', '')} (exit {item.get('exit_code')})"
        if kind == "file_change":
            changes = item.get("changes") or []
            paths = [str(c.get("path")) for c in changes if isinstance(c, dict)]
            return "edited " + ", ".join(paths) if paths else None
        if kind == "error":  # a non-fatal error the agent carried on after: shown, not a failure
            return f"warning: {item.get('message', '')}"
        return None


class CodexRunner(Runner):
    kind = "codex"
    default_args = ("--full-auto",)

    def argv(self, inv: Invocation) -> list[str]:
        program = self.config.executable or ["codex"]
        model = ["--model", self.config.model] if self.config.model else []
        return [*program, "exec", "--json", *model, *self.extra_args, "--", inv.prompt]

    def parser(self) -> OutputParser:
        return CodexParser()
