"""Token usage: the one meaning every agent kind's figures are read into, stored in `dispatches`.

- `input_tokens`: prompt tokens the model processed fresh, i.e. not read from a prompt cache. Tokens
  written to a cache are fresh work (Anthropic bills them above the plain input rate) and count here.
- `cache_tokens`: prompt tokens read from a prompt cache (billed at a fraction of the input rate).
- `output_tokens`: tokens the model generated, reasoning included.
- `cost_usd`: the agent's own estimate of the whole session's cost, when it prints one.

Budgets (`kernel.budget`) count input + output: the work done for a dispatch. Cache reads are recorded
and shown (`ic run tokens` `cache_hits`) but never counted, so a long session re-reading its cached
context does not look a hundred times more expensive than it was. The same split is what both vendors
treat as the "real" figure: Anthropic counts `input_tokens + cache_creation_input_tokens` (not cache
reads) towards its input rate limit (platform.claude.com/docs/en/api/rate-limits, "cache-aware ITPM"),
and Codex's own one-number total is `blended_total = non_cached_input + output_tokens`
(codex-rs/protocol/src/protocol.rs, `impl TokenUsage`).

How each agent's own fields map onto these is written, with its sources, next to its parser
(`kernel/dispatch/agents/codex.py`, `claude.py`, `command.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    cost_usd: float | None = None

    def plus(self, other: TokenUsage) -> TokenUsage:
        """Both together; the cost is known when either side knows it."""
        cost = None
        if self.cost_usd is not None or other.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return TokenUsage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_tokens + other.cache_tokens,
            cost,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_tokens": self.cache_tokens,
            "cost_usd": self.cost_usd,
        }


def count(value: Any) -> int | None:
    """A token count as an agent printed it: absent or null is 0; a negative, fractional, boolean or
    non-number value is None (the whole usage object is then distrusted rather than half-read)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def cost(value: Any) -> float | None:
    """A cost in USD as printed, or None when absent or not a non-negative number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)
