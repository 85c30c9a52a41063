#!/usr/bin/env python3
"""Generate screenshots/*.svg: every Bigend screen at 120x40 and the narrow layout at 90x30.

The data is the deterministic demo (`bigend.demo.build_demo` with a fixed `now` and `seed`), read by the
real Aggregator once, then shown by a BigendApp with a frozen clock and no animation, so the SVGs only
change when the app or the demo does. Run from the repository root:

    python3 scripts/screenshots.py [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NOW = 1_767_225_600  # 2026-01-01 00:00:00 UTC
SEED = "bigend-screenshots"
WIDE = (120, 40)
NARROW = (90, 30)

# name -> (size, keys pressed after the first paint, what to open first: "portfolio" or nothing)
SHOTS: dict[str, tuple[tuple[int, int], Sequence[str], str | None]] = {
    "dashboard": (WIDE, (), None),
    "projects": (WIDE, ("2",), None),
    "run-detail": (WIDE, ("2", "tab"), None),
    "events": (WIDE, ("3",), None),
    "filter": (WIDE, ("slash", *"status=blocked"), None),
    "help": (WIDE, ("question_mark",), None),
    "portfolio": (WIDE, (), "portfolio"),
    "narrow-dashboard": (NARROW, (), None),
    "narrow": (NARROW, ("2",), None),
    "narrow-detail": (NARROW, ("2", "enter"), None),
}


async def demo_state(root: Path) -> object:
    from bigend.core.aggregator import Aggregator
    from bigend.core.config import BigendConfig
    from bigend.demo import build_demo

    build_demo(root, now=NOW, seed=SEED)
    aggregator = Aggregator(BigendConfig(roots=[root]))
    try:
        return await aggregator.refresh(force=True)
    finally:
        await aggregator.close()


async def shoot(state: object, out: Path) -> list[Path]:
    from bigend.core.snapshot import KernelState
    from bigend.ui.app import BigendApp

    assert isinstance(state, KernelState)
    written = []
    for name, (size, keys, opened) in SHOTS.items():
        app = BigendApp(state=state, clock=lambda: float(NOW))
        app.animation_level = "none"
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            if opened == "portfolio":  # the workspace's portfolio project, wherever the sidebar sorts it
                app.main_screen.open_project(next(p.path for p in state.projects if p.portfolio))
                await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            await pilot.pause(0.2)
            target = out / f"{name}.svg"
            target.write_text(app.export_screenshot(title=f"bigend — {name}"))
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "screenshots", help="directory for the SVGs")
    args = parser.parse_args(argv)
    os.environ["TZ"] = "UTC"
    time.tzset()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bigend-shots-") as tmp:
        state = asyncio.run(demo_state(Path(tmp) / "demo"))
        for path in asyncio.run(shoot(state, args.out)):
            print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
