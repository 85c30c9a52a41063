"""Messages widgets post upward; the app decides what they mean (widgets never reach for data)."""

from __future__ import annotations

from typing import Literal

from textual.message import Message

Origin = Literal["dashboard", "sidebar", "run-list"]


class OpenRun(Message):
    """The operator asked to open a run (Enter on the dashboard or on a narrow run list)."""

    def __init__(self, project: str, run_id: str | None, origin: Origin) -> None:
        super().__init__()
        self.project = project
        self.run_id = run_id
        self.origin = origin


class RunHighlighted(Message):
    """The run-list cursor moved to a run (or to nothing when the list is empty)."""

    def __init__(self, project: str | None, run_id: str | None) -> None:
        super().__init__()
        self.project = project
        self.run_id = run_id


class ProjectHighlighted(Message):
    """The sidebar cursor moved to a project."""

    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project


class FilterChanged(Message):
    """The filter text changed (live while typing)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class FilterClosed(Message):
    """The filter bar was closed (Enter keeps the filter, Escape clears it)."""

    def __init__(self, keep: bool) -> None:
        super().__init__()
        self.keep = keep
