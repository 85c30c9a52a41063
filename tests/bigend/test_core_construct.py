"""`construct.trusted`: unvalidated snapshot objects must be indistinguishable from validated ones."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bigend.core.construct import trusted
from bigend.core.snapshot import DispatchInfo, KernelState, Metrics, ProjectState, RunInfo, TokenSummary
from bigend.core.status import UnifiedStatus

RUN: dict[str, Any] = {
    "id": "r1", "project": "/p", "goal": "g", "status": "active", "unified": UnifiedStatus.BLOCKED,
    "phase": "planned", "phases": ["brainstorm", "planned", "done"], "complexity": 3, "parent_run_id": None,
    "scope_id": None, "created_at": 1, "updated_at": 2, "completed_at": None, "phase_entered_at": 2,
    "blocked_reason": "gate blocked", "tokens": TokenSummary(input_tokens=3, total_tokens=3),
}  # fmt: skip


def test_trusted_equals_validated_and_serializes_the_same() -> None:
    fast = trusted(RunInfo, dict(RUN))
    slow = RunInfo.model_validate(RUN)
    assert fast == slow
    assert fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.unified.glyph == "■"


def test_trusted_objects_stay_frozen_and_copyable() -> None:
    fast = trusted(RunInfo, dict(RUN))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(fast, "goal", "changed")  # noqa: B010 (frozen: must raise)
    assert fast.goal == "g"
    copy = fast.model_copy(update={"goal": "other"})
    assert (copy.goal, fast.goal) == ("other", "g")


def test_a_whole_state_built_fast_round_trips_through_json() -> None:
    dispatch = trusted(
        DispatchInfo,
        {"id": "d1", "project": "/p", "run_id": "r1", "agent_type": "codex", "name": None, "model": "m",
         "status": "running", "unified": UnifiedStatus.ACTIVE, "pid": 7, "exit_code": None, "error": None,
         "created_at": 1, "started_at": 1, "ended_at": None, "input_tokens": 5, "output_tokens": 1,
         "cache_tokens": 0, "cost_usd": None},
    )  # fmt: skip
    project = ProjectState(path="/p", name="p", has_intercore=True, runs=[trusted(RunInfo, dict(RUN))],
                           dispatches=[dispatch])  # fmt: skip
    state = trusted(
        KernelState,
        {"generated_at": 1.0, "roots": ["/"], "projects": [project], "metrics": Metrics(), "root_errors": {}},
    )
    assert KernelState.model_validate_json(state.model_dump_json()) == state
