"""Any other agent: a command of the operator's choosing, and the small JSON-lines protocol it may speak.

argv: the operator's own template (`ic dispatch spawn --command`, `.clavain/dispatch.toml`, the
orchestrator's `runner.command`) with placeholders filled in by `fill`, one pass, each argument on
its own and never through a shell. Where the prompt goes is the template's choice (`{prompt}`: its
text as an argument, limited to 128 KiB by the kernel; `{prompt_file}`: its path); stdin is
`/dev/null`.

Protocol: every stdout line that is a JSON object with a `type` counts; everything else is shown.

    {"type": "message", "text": "..."}                       the last one is the final message
    {"type": "usage", "input_tokens": 1, "output_tokens": 2, "cache_tokens": 0, "cost_usd": 0.01}
    {"type": "result", "result": {...}}                       the structured result (the last one;
                                                              differing ones: `structured_conflict`)
    {"type": "error", "message": "...", "auth": true}         the agent failed (`auth`, optional: its
                                                              credentials were refused; no retry helps)

Usage lines are increments in the kernel's meaning (`input_tokens` fresh prompt tokens,
`cache_tokens` read from a cache; see `kernel.dispatch.agents.usage`) and add up; a line with a
negative or non-integer count is ignored. A `result` line means the agent reached its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kernel.dispatch.agents.output import AgentParser
from kernel.dispatch.agents.usage import TokenUsage, cost, count


def fill(template: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Replace each `{name}` of `values` inside each argument, in one pass; other text stays as is.

    One pass matters: a prompt that itself contains `{output}` must reach the agent unchanged. Longer
    names are tried first (`{prompt_file}` before `{prompt}`). A scan rather than a regex: compiling
    one costs more than the rest of `ic dispatch spawn`'s work.
    """
    names = sorted(values, key=len, reverse=True)
    return [_fill_one(arg, names, values) for arg in template]


def _fill_one(arg: str, names: list[str], values: Mapping[str, str]) -> str:
    parts: list[str] = []
    done = 0
    at = arg.find("{")
    while at != -1:
        name = next((n for n in names if arg.startswith(n, at)), None)
        if name is None:
            at = arg.find("{", at + 1)
            continue
        parts += (arg[done:at], values[name])
        done = at + len(name)
        at = arg.find("{", done)
    parts.append(arg[done:])
    return "".join(parts)


def read_usage(event: Mapping[str, Any]) -> TokenUsage | None:
    """One `usage` line's increment, or None when a count in it is not a whole number >= 0."""
    inp, out, cached = (count(event.get(k)) for k in ("input_tokens", "output_tokens", "cache_tokens"))
    if inp is None or out is None or cached is None:
        return None
    return TokenUsage(inp, out, cached, cost(event.get("cost_usd")))


class CommandParser(AgentParser):
    def on_event(self, event: dict[str, Any]) -> str | None:
        kind = event.get("type")
        if kind == "message":
            self.final_message = str(event.get("text") or "")
            return self.final_message
        if kind == "usage":
            usage = read_usage(event)
            if usage is not None:
                self.usage = usage if self.usage is None else self.usage.plus(usage)
            return None
        if kind == "result":
            answer = event.get("result")
            if self.structured is not None and answer != self.structured:
                self.structured_conflict = True
            self.structured = answer
            self.completed = True
            return None
        if kind == "error":
            self.failure = str(event.get("message") or "error")
            self.auth_failed = event.get("auth") is True
            return f"error: {self.failure}"
        return None
