"""A custom runner: any program, given as `command = [...]`, speaking a small JSON-lines protocol.

Arguments may use `{prompt}`, `{prompt_file}`, `{issue}`, `{phase}`, `{cycle}`, `{attempt}`,
`{worktree}`, `{model}` and `{run_id}`. Every stdout line that is a JSON object with a `type` counts:

    {"type": "message", "text": "..."}                         the last one is the final message
    {"type": "usage", "input_tokens": 1, "output_tokens": 2, "cache_tokens": 0, "cost_usd": 0.01}
    {"type": "result", "result": {...}}                         a structured result (a review verdict)
    {"type": "error", "message": "..."}                         the agent failed

Usage lines add up. Other lines (JSON or not) are shown and logged, never fatal.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.runners.base import Invocation, OutputParser, Runner, Usage, as_int

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class CommandParser(OutputParser):
    def on_event(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "message":
            self.out.final_message = str(event.get("text") or "")
            return self.out.final_message
        if kind == "usage":
            cost = event.get("cost_usd")
            self.out.usage = self.out.usage.add(
                Usage(
                    input_tokens=as_int(event.get("input_tokens")),
                    output_tokens=as_int(event.get("output_tokens")),
                    cache_tokens=as_int(event.get("cache_tokens")),
                    cost_usd=float(cost)
                    if isinstance(cost, int | float) and not isinstance(cost, bool)
                    else None,
                )
            )
            return None
        if kind == "result":
            self.out.structured = event.get("result")
            return None
        if kind == "error":
            self.out.error = str(event.get("message") or "error")
            return f"error: {self.out.error}"
        return None


class CommandRunner(Runner):
    kind = "command"

    def argv(self, inv: Invocation) -> list[str]:
        values = {
            "prompt": inv.prompt,
            "prompt_file": str(inv.prompt_file),
            "issue": inv.issue_id,
            "phase": inv.phase,
            "cycle": str(inv.cycle),
            "attempt": str(inv.attempt),
            "worktree": str(inv.worktree),
            "model": self.config.model or "",
            "run_id": inv.run_id or "",
        }

        def fill(match: re.Match[str]) -> str:
            return values.get(match.group(1), match.group(0))

        # One pass, so a prompt that happens to contain "{issue}" is passed on verbatim.
        return [_PLACEHOLDER.sub(fill, arg) for arg in self.config.command or []] + self.extra_args

    def parser(self) -> OutputParser:
        return CommandParser()
