"""The phase ribbon: the walked chain with the phases behind, the current one, and those ahead."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from bigend.core.snapshot import RunInfo
from bigend.ui import format as fmt
from bigend.ui.text import clean


def ribbon(run: RunInfo) -> Text:
    chain = fmt.walked_chain(run)
    current = chain.index(run.phase) if run.phase in chain else -1
    text = Text(end="")
    for n, phase in enumerate(chain):
        if n:
            text.append(" › ", style="dim")
        name = clean(phase)
        if n < current:
            text.append(f"✓ {name}", style="dim")
        elif n == current:
            text.append(f" {name} ", style=f"bold reverse {run.unified.color}")
        else:
            text.append(name, style="dim italic")
    if current < 0:
        text.append("  (at ", style="dim")
        text.append(clean(run.phase), style=f"bold {run.unified.color}")
        text.append(")", style="dim")
    return text


class PhaseRibbon(Static):
    def show(self, run: RunInfo) -> None:
        self.update(ribbon(run))
