"""The phase machine: which phases a run walks, and the next hop an advance takes.

Pure functions over a run's chain, so the CLI, the gate engine (which must evaluate exactly the hop
an advance would take) and the property tests all agree on one definition of "next".
"""

from __future__ import annotations

from kernel.errors import Refused, UsageError
from kernel.model import RowType, Run

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from typing import Any

DEFAULT_CHAIN: tuple[str, ...] = (
    "brainstorm",
    "brainstorm-reviewed",
    "strategized",
    "planned",
    "executing",
    "review",
    "polish",
    "reflect",
    "done",
)

# Phases of the default chain walked at low complexity; 3 and above (or force_full) walk all nine.
_WALKED_AT: dict[int, frozenset[str]] = {
    1: frozenset({"brainstorm", "planned", "executing", "done"}),
    2: frozenset({"brainstorm", "brainstorm-reviewed", "planned", "executing", "review", "done"}),
}
MIN_COMPLEXITY = 1
MAX_COMPLEXITY = 5


class Hop(RowType):
    """One advance: leave `from_phase`, enter `to_phase`, passing over `skipped` (in chain order)."""

    from_phase: str
    to_phase: str
    skipped: list[str]


def validate_chain(phases: Any) -> list[str]:
    """A custom chain: a list of >= 2 unique, non-empty phase names (the last is terminal)."""
    if not isinstance(phases, list) or not all(isinstance(p, str) for p in phases):
        raise UsageError('--phases must be a JSON array of phase names, e.g. ["plan","build","done"]')
    names = [p.strip() for p in phases]
    if len(names) < 2:
        raise UsageError("--phases needs at least 2 phases (the last one is terminal)")
    if any(not name for name in names):
        raise UsageError("--phases contains an empty phase name")
    unprintable = [name for name in names if not name.isprintable()]
    if unprintable:
        # Phase names are printed in tables, messages and event columns: a newline, tab or terminal
        # escape in one would break every one of them.
        raise UsageError(
            f"--phases names must be printable (no tabs, newlines or control characters): {unprintable[0]!r}"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"--phases names must be unique; repeated: {', '.join(duplicates)}")
    return names


def validate_complexity(complexity: Any) -> int:
    if isinstance(complexity, bool) or not isinstance(complexity, int):
        raise UsageError(f"complexity must be a whole number {MIN_COMPLEXITY}..{MAX_COMPLEXITY}")
    if not MIN_COMPLEXITY <= complexity <= MAX_COMPLEXITY:
        raise UsageError(f"complexity must be {MIN_COMPLEXITY}..{MAX_COMPLEXITY}, got {complexity}")
    return complexity


def is_default_chain(chain: Sequence[str]) -> bool:
    return tuple(chain) == DEFAULT_CHAIN


def walked_in(chain: Sequence[str], complexity: int, force_full: bool) -> list[str]:
    """The phases of `chain` a run with this complexity enters, in chain order.

    Complexity only thins out the default chain: a custom chain was chosen phase by phase, so all of
    it is walked.
    """
    if force_full or not is_default_chain(chain) or complexity not in _WALKED_AT:
        return list(chain)
    keep = _WALKED_AT[complexity]
    return [p for p in chain if p in keep]


def walked_phases(run: Run) -> list[str]:
    return walked_in(run.phases, run.complexity, run.force_full)


def terminal_phase(run: Run) -> str:
    return run.phases[-1]


def next_hop(run: Run, pre_skipped: Collection[str]) -> Hop:
    """The hop `advance` takes from the run's current phase.

    Phases not walked at the run's complexity and phases pre-skipped with `ic run skip` are passed
    over; the terminal phase is always entered, so every run can finish.
    """
    chain = run.phases
    if run.phase not in chain:
        raise Refused(f"run {run.id} is at {run.phase!r}, which is not in its chain; roll it back first")
    position = chain.index(run.phase)
    if position == len(chain) - 1:
        raise Refused(f"run {run.id} is at its terminal phase {run.phase!r}; nothing to advance")
    walked = set(walked_phases(run))
    skipped: list[str] = []
    for phase in chain[position + 1 : -1]:
        if phase in walked and phase not in pre_skipped:
            return Hop(run.phase, phase, skipped)
        skipped.append(phase)
    return Hop(run.phase, chain[-1], skipped)


def at_or_past(chain: Sequence[str], current: str, target: str) -> bool:
    """Whether a run at `current` has reached `target` in `chain` (False if either is not in it)."""
    if current not in chain or target not in chain:
        return False
    return list(chain).index(current) >= list(chain).index(target)
