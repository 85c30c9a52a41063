"""Helpers shared by the pilot tests, the snapshot tests and the screenshot script."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual.app import App
from textual.pilot import Pilot


def screen_text(app: App[Any]) -> str:
    """The characters currently on the (virtual) terminal, one line per row.

    Uses the compositor's strips: what the terminal would receive, without colours. It is how the tests
    check that hostile text shows literally on screen, not only in a widget's data.
    """
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `predicate()` holds; fail with the predicate's name after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        await pilot.pause(0.05)
    await pilot.pause()


async def settle(pilot: Pilot[Any], rounds: int = 3) -> None:
    for _ in range(rounds):
        await pilot.pause()
    await asyncio.sleep(0)
