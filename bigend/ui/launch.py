"""`bigend` (TUI mode): build the core's Aggregator and run the app until the operator quits.

`bigend --demo` keeps its demo workspace changing itself (bigend/cli.py runs `live_changes` in a
thread); the app only notes that it is looking at a demo.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bigend.core.config import BigendConfig


def launch(config: BigendConfig, *, demo_dir: Path | None = None) -> int:
    from bigend.core.aggregator import Aggregator
    from bigend.ui.app import BigendApp

    app = BigendApp(
        aggregator=Aggregator(config),
        event_lines=max(500, config.events_per_project * 20),
        title="Bigend · demo" if demo_dir is not None else "Bigend",
    )
    result = app.run()
    return int(result or 0)
