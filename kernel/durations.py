"""Durations as operators type them: `30s`, `5m`, `2h`, `1d`, `250ms`, or plain seconds."""

from __future__ import annotations

from kernel.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, *, flag: str = "duration") -> float:
    """Seconds as a float; a malformed or negative value is a usage error naming the flag."""
    raw = text.strip().lower()
    unit = "s"
    for suffix in ("ms", "s", "m", "h", "d"):
        if raw.endswith(suffix):
            unit, raw = suffix, raw[: -len(suffix)]
            break
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"--{flag}={text!r} is not a duration; use e.g. 30s, 5m, 2h, 1d") from None
    if value < 0 or value != value or value == float("inf"):
        raise UsageError(f"--{flag}={text!r} must be a finite, non-negative duration")
    return value * _UNITS[unit]
