"""Formatting of figures shared by every widget: durations, token counts, clock times, progress."""

from __future__ import annotations

import time

from bigend.core.snapshot import RunInfo
from kernel.phase import walked_in

HOUR = 3600


def duration(seconds: float) -> str:
    """At most 6 characters: `45s`, `12m`, `3h05m`, `2d04h`; never negative."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < HOUR:
        return f"{s // 60}m"
    if s < 24 * HOUR:
        hours, rest = divmod(s, HOUR)
        return f"{hours}h{rest // 60:02d}m"
    days, rest = divmod(s, 24 * HOUR)
    if days < 100:
        return f"{days}d{rest // HOUR:02d}h"
    return f"{days}d"


def age_style(seconds: float) -> str:
    """Colour of a time in phase: green, yellow past one hour, red past four."""
    if seconds > 4 * HOUR:
        return "red"
    if seconds > HOUR:
        return "yellow"
    return "green"


def tokens(value: int) -> str:
    return f"{value:,}"


def tokens_compact(value: int) -> str:
    """At most 5 characters for narrow screens: `950`, `9.5k`, `729k`, `1.2M`."""
    if value < 1000:
        return str(max(0, value))
    if value < 9_950:
        return f"{value / 1000:.1f}k"
    if value < 999_500:
        return f"{round(value / 1000)}k"
    return f"{value / 1_000_000:.1f}M"


def clock_time(timestamp: float) -> str:
    """HH:MM:SS in local time (tests pin TZ for stable screenshots)."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def walked_chain(run: RunInfo) -> list[str]:
    """The phases this run actually walks, by the kernel's own rule (kernel.phase.walked_in).

    A run sitting on a phase outside its complexity subset (force_full, which the snapshot does not
    carry, or a rollback) walks the full chain.
    """
    subset = walked_in(run.phases, run.complexity, force_full=False)
    return subset if run.phase in subset else list(run.phases)


def progress(run: RunInfo) -> float:
    """Fraction of the walked chain behind the run: 0 at the first phase, 1 at the terminal one."""
    chain = walked_chain(run)
    if run.phase not in chain or len(chain) < 2:
        return 1.0 if run.completed_at else 0.0
    return chain.index(run.phase) / (len(chain) - 1)


_EIGHTHS = " ▏▎▍▌▋▊▉"


def progress_bar(fraction: float, width: int = 8) -> str:
    """A bar of exactly `width` cells with eighth-block resolution."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full
    if full < width and part:
        bar += _EIGHTHS[part]
    return bar.ljust(width, "·")[:width]
