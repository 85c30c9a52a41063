"""Typed kernel events: every event type the kernel writes has a member; anything else is Unknown."""

from __future__ import annotations

import pytest

from bigend.core.kernelevents import KernelEvent, parse_kernel_event
from kernel.eventtypes import KERNEL_EVENTS


@pytest.mark.parametrize(("source", "event_type"), sorted(KERNEL_EVENTS))
def test_every_kernel_event_type_parses_to_a_member(source: str, event_type: str) -> None:
    member = parse_kernel_event(source, event_type)
    assert member is not KernelEvent.Unknown, f"add ({source!r}, {event_type!r}) to KernelEvent"
    assert (member.source, member.type) == (source, event_type)
    assert parse_kernel_event(f"{source}.{event_type}") is member


def test_members_are_distinct_and_named_like_the_design() -> None:
    values = [m.value for m in KernelEvent]
    assert len(values) == len(set(values))
    design = {
        "PhaseAdvance", "PhaseRollback", "PhaseSkip", "PhaseBlock", "PhasePause", "GateOverride",
        "DispatchSpawned", "DispatchCompleted", "DispatchFailed", "DispatchCancelled", "ArtifactAdded",
        "TokensRecorded", "BudgetWarning", "BudgetExceeded", "ChildAdvanced", "UpstreamChanged", "Unknown",
    }  # fmt: skip
    assert design <= set(KernelEvent.__members__)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("phase", "advance"), KernelEvent.PhaseAdvance),
        ((" Phase ", "BLOCK"), KernelEvent.PhaseBlock),
        (("dispatch", "tokens"), KernelEvent.TokensRecorded),
        (("run", "agent.added"), KernelEvent.AgentAdded),
        (("relay", "child_blocked"), KernelEvent.ChildBlocked),
        (("phase.pause",), KernelEvent.PhasePause),
        (("run.artifact.added",), KernelEvent.ArtifactAdded),
        (("PhaseRollback",), KernelEvent.PhaseRollback),
        (("budget.exceeded",), KernelEvent.BudgetExceeded),  # a type unique across sources
        (("upstream_changed",), KernelEvent.UpstreamChanged),
        (("hook", "advance"), KernelEvent.Unknown),  # `ic events record` may write anything
        (("phase", "teleport"), KernelEvent.Unknown),
        (("",), KernelEvent.Unknown),
        (("fail",), KernelEvent.Unknown),  # ambiguous on its own: phase.fail or gate.fail
        (("nonsense",), KernelEvent.Unknown),
    ],
)
def test_parse_forms(args: tuple[str, ...], expected: KernelEvent) -> None:
    assert parse_kernel_event(*args) is expected


def test_blocking_and_phase_entry_kinds() -> None:
    assert {m for m in KernelEvent if m.blocks_run} == {KernelEvent.PhaseBlock, KernelEvent.PhasePause}
    assert KernelEvent.PhaseAdvance.is_phase_change and not KernelEvent.PhaseSkip.is_phase_change
    assert not KernelEvent.Unknown.blocks_run
