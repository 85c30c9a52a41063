"""Dispatches of a run (or of a project): id, agent, status glyph, duration, model, tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text

from bigend.core.snapshot import DispatchInfo
from bigend.ui import render
from bigend.ui.text import literal
from bigend.ui.widgets.keyed_table import KeyedTable


def dispatch_duration(dispatch: DispatchInfo, now: float) -> str:
    start = dispatch.started_at or dispatch.created_at
    end = dispatch.ended_at if dispatch.ended_at is not None else now
    return render.duration(end - start)


def dispatch_cells(d: DispatchInfo, now: float) -> tuple[Text, ...]:
    tokens = f"{render.tokens(d.input_tokens)}/{render.tokens(d.output_tokens)}"
    return (
        literal(d.id[:8]),
        literal((f"{d.agent_type} {d.name}" if d.name else d.agent_type)[:14]),
        render.status_cell(d.unified),
        Text(dispatch_duration(d, now), justify="right"),
        literal((d.model or "-")[:16]),
        Text(tokens, justify="right"),
    )


class DispatchTable(KeyedTable):
    """Part of the detail pane; it never takes focus itself (the pane scrolls as one)."""

    can_focus = False
    SHOW_CURSOR = False
    COLUMNS: ClassVar[tuple[tuple[str, str, int], ...]] = (
        ("id", "Dispatch", 8),
        ("agent", "Agent", 14),
        ("status", "S", 1),
        ("duration", "Time", 6),
        ("model", "Model", 16),
        ("tokens", "Tokens in/out", 17),
    )

    def update_dispatches(self, dispatches: Sequence[DispatchInfo], now: float) -> None:
        self.sync_rows([(d.id, dispatch_cells(d, now)) for d in dispatches])
