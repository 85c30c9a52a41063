"""Token usage as the agents themselves report it, read from a dispatch's output file.

Formats (the agents' documented machine output):
- Codex `codex exec --json`: a JSONL event stream; each `{"type":"turn.completed","usage":{...}}`
  carries `input_tokens`, `cached_input_tokens`, `output_tokens` (the session's running totals, so
  the last one wins).
- Claude Code `claude -p --output-format json`: one result object (`"type":"result"`) with `usage`
  (`input_tokens`, `output_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`) and
  `total_cost_usd`; with `--verbose` (or `"verbose": true` in its settings) the same output is a JSON
  array of every session message, the result object last. `--output-format stream-json` (which
  requires `--verbose`) ends with the result object as its own line.

One meaning for both: `input_tokens` is every prompt token the model processed (Codex already
counts cached input in it; for Claude the cache reads and writes are added), `cache_tokens` is the
part served from a prompt cache. Output files mix in logs, garbage and, after a kill, a cut-off last
line: lines that do not parse are skipped, a field that is absent or null counts 0, and no usage at
all means None (callers then keep what `ic dispatch tokens` recorded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int
    output_tokens: int
    cache_tokens: int = 0
    cost_usd: float | None = None


def _count(value: Any) -> int | None:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _codex_usage(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    inp, out = _count(usage.get("input_tokens", 0)), _count(usage.get("output_tokens", 0))
    cached = _count(usage.get("cached_input_tokens", 0))
    if inp is None or out is None or cached is None:
        return None
    return TokenUsage(input_tokens=inp, output_tokens=out, cache_tokens=cached)


def _claude_usage(obj: dict[str, Any]) -> TokenUsage | None:
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return None
    parts = [
        _count(usage.get(key, 0))
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    ]
    if any(p is None for p in parts):
        return None
    inp, out, cache_read, cache_write = (int(p or 0) for p in parts)
    cost = obj.get("total_cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
        cost = None
    return TokenUsage(
        input_tokens=inp + cache_read + cache_write,
        output_tokens=out,
        cache_tokens=cache_read,
        cost_usd=None if cost is None else float(cost),
    )


def usage_of_object(obj: Any) -> TokenUsage | None:
    """Usage carried by one parsed JSON value, if it is one of the recognised shapes.

    A list (Claude's `--verbose` json output) carries the usage of its last element that has one.
    """
    if isinstance(obj, list):
        return next((u for u in map(usage_of_object, reversed(obj)) if u is not None), None)
    if not isinstance(obj, dict):
        return None
    kind = obj.get("type")
    if kind == "turn.completed":
        return _codex_usage(obj.get("usage"))
    if kind == "result" or (kind is None and "total_cost_usd" in obj):
        return _claude_usage(obj)
    return None


def parse_lines(lines: Iterable[str]) -> TokenUsage | None:
    """The last usage found in a stream of lines; non-JSON and truncated lines are skipped."""
    found: TokenUsage | None = None
    for line in lines:
        text = line.strip()
        if not text.startswith(("{", "[")):
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        usage = usage_of_object(obj)
        if usage is not None:
            found = usage
    return found


def parse_text(text: str) -> TokenUsage | None:
    found = parse_lines(text.splitlines())
    if found is not None:
        return found
    # Pretty-printed JSON: a value opened by a line that is just "{" or "[" (after any log lines).
    decoder = json.JSONDecoder()
    for start in [0] + [m for m in _opener_offsets(text) if m > 0]:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        found = usage_of_object(value) or found
    return found


def _opener_offsets(text: str) -> list[int]:
    offsets, at = [], 0
    for line in text.splitlines(keepends=True):
        if line.strip() in ("{", "["):
            offsets.append(at + line.index(line.strip()))
        at += len(line)
    return offsets


# Output files can be large; only the tail can hold the final usage of a well-behaved agent, but a
# pretty-printed object needs the whole text, so files up to this size are read whole.
WHOLE_FILE_LIMIT = 8 * 1024 * 1024


def parse_file(path: str | Path) -> TokenUsage | None:
    """Usage reported in an agent's output file; None if unreadable or nothing recognisable."""
    try:
        size = Path(path).stat().st_size
        if size <= WHOLE_FILE_LIMIT:
            return parse_text(Path(path).read_bytes().decode("utf-8", "replace"))
        with open(path, "rb") as fh:
            return parse_lines(raw.decode("utf-8", "replace") for raw in fh)
    except OSError:
        return None
