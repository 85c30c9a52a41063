"""Every (source, type) the kernel itself writes to the event stream.

This is the contract Bigend's `KernelEvent` parser is tested against: any new event type must be
added here (the coverage test fails otherwise). `ic events record` may write other types; readers
treat those as Unknown.
"""

from __future__ import annotations

# sources
PHASE = "phase"
GATE = "gate"
DISPATCH = "dispatch"
RUN = "run"
BUDGET = "budget"
RELAY = "relay"
STATE = "state"

# phase machine (source "phase")
RUN_CREATED = "created"
ADVANCE = "advance"
SKIP = "skip"
BLOCK = "block"
PAUSE = "pause"
ROLLBACK = "rollback"
CANCEL = "cancel"
COMPLETE = "complete"
FAIL = "fail"

# gates (source "gate")
GATE_OVERRIDE = "override"

# run tracking and settings (source "run")
AGENT_ADDED = "agent.added"
AGENT_UPDATED = "agent.updated"
ARTIFACT_ADDED = "artifact.added"
RUN_SET = "set"
# portfolio dependencies (source "run", on the portfolio parent)
DEP_ADDED = "dep.added"
DEP_REMOVED = "dep.removed"

# dispatches (source "dispatch"): the type is the status entered, plus token updates
DISPATCH_SPAWNED = "spawned"
DISPATCH_RUNNING = "running"
DISPATCH_COMPLETED = "completed"
DISPATCH_FAILED = "failed"
DISPATCH_TIMEOUT = "timeout"
DISPATCH_CANCELLED = "cancelled"
DISPATCH_TOKENS = "tokens"

# budgets (source "budget")
BUDGET_WARNING = "budget.warning"
BUDGET_EXCEEDED = "budget.exceeded"

# state and sentinels (source "state"); the reason is the key or sentinel name, the payload its scope
STATE_SET = "state.set"
STATE_DELETED = "state.deleted"
STATE_PRUNED = "state.pruned"
SENTINEL_FIRED = "sentinel.fired"
SENTINEL_RESET = "sentinel.reset"
SENTINEL_PRUNED = "sentinel.pruned"

# portfolio relay (source "relay")
CHILD_ADVANCED = "child_advanced"
CHILD_BLOCKED = "child_blocked"
CHILD_CANCELLED = "child_cancelled"
CHILD_COMPLETED = "child_completed"
CHILD_ROLLEDBACK = "child_rolledback"
UPSTREAM_CHANGED = "upstream_changed"

KERNEL_EVENTS: frozenset[tuple[str, str]] = frozenset(
    {
        *((PHASE, t) for t in (RUN_CREATED, ADVANCE, SKIP, BLOCK, PAUSE, ROLLBACK, CANCEL, COMPLETE, FAIL)),
        (GATE, GATE_OVERRIDE),
        *((RUN, t) for t in (AGENT_ADDED, AGENT_UPDATED, ARTIFACT_ADDED, RUN_SET)),
        *((RUN, t) for t in (DEP_ADDED, DEP_REMOVED)),
        *(
            (DISPATCH, t)
            for t in (
                DISPATCH_SPAWNED,
                DISPATCH_RUNNING,
                DISPATCH_COMPLETED,
                DISPATCH_FAILED,
                DISPATCH_TIMEOUT,
                DISPATCH_CANCELLED,
                DISPATCH_TOKENS,
            )
        ),
        *(
            (STATE, t)
            for t in (STATE_SET, STATE_DELETED, STATE_PRUNED, SENTINEL_FIRED, SENTINEL_RESET, SENTINEL_PRUNED)
        ),
        (BUDGET, BUDGET_WARNING),
        (BUDGET, BUDGET_EXCEEDED),
        *(
            (RELAY, t)
            for t in (
                CHILD_ADVANCED,
                CHILD_BLOCKED,
                CHILD_CANCELLED,
                CHILD_COMPLETED,
                CHILD_ROLLEDBACK,
                UPSTREAM_CHANGED,
            )
        ),
    }
)
