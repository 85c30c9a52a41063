"""The portfolio hook: a child run's dispatch holds one of its portfolio's `max_dispatches` slots.

`kernel.portfolio.slots` owns the slot table; it is imported lazily so plain projects never pay for
it, and only its own absence is tolerated (a bug inside it must surface, not silently lift limits).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from kernel.model import Run

SLOTS_MODULE = "kernel.portfolio.slots"


def _module() -> ModuleType | None:
    try:
        return importlib.import_module(SLOTS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name == SLOTS_MODULE:
            return None
        raise


def acquire(run: Run, dispatch_id: str, project_dir: str, pid: int | None) -> None:
    """Take a slot before the agent starts; raises Refused when the portfolio is at its limit."""
    if run.parent_run_id is None:
        return
    module = _module()
    if module is not None:
        module.acquire_slot(run, dispatch_id, project_dir, pid)


def release(run: Run, dispatch_id: str) -> None:
    """Give the slot back once the dispatch is terminal."""
    if run.parent_run_id is None:
        return
    module = _module()
    if module is not None:
        module.release_slot(run, dispatch_id)
