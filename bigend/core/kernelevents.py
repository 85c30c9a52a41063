"""Typed kernel events: every (source, type) the kernel writes, as one enum.

All event matching in Bigend goes through `parse_kernel_event`, so a renamed or new kernel event type
shows up as `Unknown` in one place (and fails the coverage test against `kernel.eventtypes`) instead of
silently falling through string comparisons scattered over widgets.
"""

from __future__ import annotations

from enum import Enum


class KernelEvent(Enum):
    """Member value: the kernel's `(source, type)` pair; `Unknown` matches nothing."""

    # phase machine
    PhaseCreated = ("phase", "created")
    PhaseAdvance = ("phase", "advance")
    PhaseSkip = ("phase", "skip")
    PhaseBlock = ("phase", "block")
    PhasePause = ("phase", "pause")
    PhaseRollback = ("phase", "rollback")
    PhaseCancel = ("phase", "cancel")
    PhaseComplete = ("phase", "complete")
    PhaseFail = ("phase", "fail")
    # gates (override is what the kernel writes; check/pass/fail are accepted from older writers)
    GateOverride = ("gate", "override")
    GateCheck = ("gate", "check")
    GatePassed = ("gate", "pass")
    GateFailed = ("gate", "fail")
    # run tracking and settings
    AgentAdded = ("run", "agent.added")
    AgentUpdated = ("run", "agent.updated")
    ArtifactAdded = ("run", "artifact.added")
    RunSet = ("run", "set")
    DepAdded = ("run", "dep.added")
    DepRemoved = ("run", "dep.removed")
    # dispatches: the type is the status entered, plus token updates
    DispatchSpawned = ("dispatch", "spawned")
    DispatchRunning = ("dispatch", "running")
    DispatchCompleted = ("dispatch", "completed")
    DispatchFailed = ("dispatch", "failed")
    DispatchTimeout = ("dispatch", "timeout")
    DispatchCancelled = ("dispatch", "cancelled")
    TokensRecorded = ("dispatch", "tokens")
    # budgets
    BudgetWarning = ("budget", "budget.warning")
    BudgetExceeded = ("budget", "budget.exceeded")
    # state and sentinels
    StateSet = ("state", "state.set")
    StateDeleted = ("state", "state.deleted")
    StatePruned = ("state", "state.pruned")
    SentinelFired = ("state", "sentinel.fired")
    SentinelReset = ("state", "sentinel.reset")
    SentinelPruned = ("state", "sentinel.pruned")
    # portfolio relay
    ChildAdvanced = ("relay", "child_advanced")
    ChildBlocked = ("relay", "child_blocked")
    ChildCancelled = ("relay", "child_cancelled")
    ChildCompleted = ("relay", "child_completed")
    ChildRolledback = ("relay", "child_rolledback")
    UpstreamChanged = ("relay", "upstream_changed")

    Unknown = ("", "")

    @property
    def source(self) -> str:
        return self.value[0]

    @property
    def type(self) -> str:
        return self.value[1]

    @property
    def is_phase_change(self) -> bool:
        """Moves that put a run into a (new) phase: what "time in phase" is measured from."""
        return self in _PHASE_ENTRY

    @property
    def blocks_run(self) -> bool:
        """A run whose last phase event is one of these waits for a human (Blocked)."""
        return self in _BLOCKING


_PHASE_ENTRY = frozenset({KernelEvent.PhaseCreated, KernelEvent.PhaseAdvance, KernelEvent.PhaseRollback})
_BLOCKING = frozenset({KernelEvent.PhaseBlock, KernelEvent.PhasePause})


def _norm(text: str) -> str:
    return text.strip().lower()


_BY_PAIR: dict[tuple[str, str], KernelEvent] = {
    member.value: member for member in KernelEvent if member is not KernelEvent.Unknown
}
_BY_DOTTED: dict[str, KernelEvent] = {f"{s}.{t}": member for (s, t), member in _BY_PAIR.items()}
_BY_NAME: dict[str, KernelEvent] = {member.name.lower(): member for member in KernelEvent}


def _bare_types() -> dict[str, KernelEvent]:
    """Type names that identify one member on their own (e.g. "budget.warning", "child_advanced")."""
    counts: dict[str, list[KernelEvent]] = {}
    for (_, event_type), member in _BY_PAIR.items():
        counts.setdefault(event_type, []).append(member)
    return {event_type: members[0] for event_type, members in counts.items() if len(members) == 1}


_BY_BARE_TYPE = _bare_types()


def parse_kernel_event(source: str, type: str | None = None) -> KernelEvent:
    """The member for a kernel event, or `KernelEvent.Unknown`.

    Two forms: `parse_kernel_event("phase", "advance")` (what the events table holds: an exact, case-
    insensitive match of the pair), or one string: `"phase.advance"`, a member name (`"PhaseAdvance"`),
    or a type that is unique across sources (`"budget.warning"`, `"child_blocked"`).
    """
    if type is not None:
        exact = _BY_PAIR.get((source, type))  # the common case: exactly as the kernel wrote it
        if exact is not None:
            return exact
        return _BY_PAIR.get((_norm(source), _norm(type)), KernelEvent.Unknown)
    text = _norm(source)
    return _BY_DOTTED.get(text) or _BY_NAME.get(text) or _BY_BARE_TYPE.get(text) or KernelEvent.Unknown
