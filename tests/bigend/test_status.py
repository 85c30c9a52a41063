"""The unified status model: exactly the mapping of DESIGN 4.1, one glyph and colour per state."""

from __future__ import annotations

import pytest

from bigend.core.status import COLORS, GLYPHS, UnifiedStatus, unify_status

MAPPING = [
    ("working", UnifiedStatus.ACTIVE), ("running", UnifiedStatus.ACTIVE), ("active", UnifiedStatus.ACTIVE),
    ("blocked", UnifiedStatus.BLOCKED), ("stalled", UnifiedStatus.BLOCKED),
    ("permission-required", UnifiedStatus.BLOCKED),
    ("waiting", UnifiedStatus.WAITING), ("idle", UnifiedStatus.WAITING), ("queued", UnifiedStatus.WAITING),
    ("spawned", UnifiedStatus.WAITING),
    ("completed", UnifiedStatus.DONE), ("done", UnifiedStatus.DONE),
    ("failed", UnifiedStatus.ERROR), ("error", UnifiedStatus.ERROR), ("cancelled", UnifiedStatus.ERROR),
    ("timeout", UnifiedStatus.ERROR),
    ("", UnifiedStatus.UNKNOWN), (None, UnifiedStatus.UNKNOWN), ("paused", UnifiedStatus.UNKNOWN),
    ("activ", UnifiedStatus.UNKNOWN), ("ACTIVE ", UnifiedStatus.ACTIVE), (" Timeout", UnifiedStatus.ERROR),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "expected"), MAPPING)
def test_mapping_table(raw: str | None, expected: UnifiedStatus) -> None:
    assert unify_status(raw) is expected


def test_every_kernel_status_maps_to_a_known_state() -> None:
    for raw in ("active", "completed", "cancelled", "failed", "spawned", "running", "timeout"):
        assert unify_status(raw) is not UnifiedStatus.UNKNOWN


def test_unknown_is_never_active() -> None:
    for raw in ("", "  ", "busy", "in-progress", "ok", "yes", "123"):
        assert unify_status(raw) is UnifiedStatus.UNKNOWN


def test_one_glyph_and_one_colour_per_state() -> None:
    assert set(GLYPHS) == set(COLORS) == set(UnifiedStatus)
    assert len(set(GLYPHS.values())) == len(UnifiedStatus)
    assert len(set(COLORS.values())) == len(UnifiedStatus)
    assert UnifiedStatus.BLOCKED.glyph == GLYPHS[UnifiedStatus.BLOCKED]
    assert UnifiedStatus.ERROR.color == "red"
