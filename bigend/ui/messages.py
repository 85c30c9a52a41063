"""The app's messages: dataclasses that carry their data, so a handler never reads it from elsewhere.

Widgets post the operator's intents upward (the screen that owns them decides what they mean); the app
posts each new KernelState to the screens that show it. Messages whose newest copy makes the older ones
pointless (`StateArrived`, `FilterChanged`) are replaceable: Textual drops a queued one when a newer one
is behind it, so a burst of states or keystrokes costs one render.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from bigend.core.snapshot import KernelState


@dataclass
class StateArrived(Message, bubble=False):
    """A new picture from the core, posted to every screen on the stack (those that show state handle
    it; it goes no further)."""

    state: KernelState

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StateArrived)


@dataclass
class OpenRun(Message):
    """Enter on the dashboard: show that run (or project, with no run) in the Projects tab."""

    project: str
    run_id: str | None


@dataclass
class ProjectChosen(Message):
    """Enter on a sidebar project: the operator moves on to its run list."""

    project: str


@dataclass
class RunChosen(Message):
    """Enter on a run-list row: the operator wants that run's detail."""

    project: str
    run_id: str | None


@dataclass
class RunHighlighted(Message):
    """The run-list cursor moved to a run (or to nothing when the list is empty)."""

    project: str | None
    run_id: str | None


@dataclass
class ProjectHighlighted(Message):
    """The sidebar cursor moved to a project."""

    project: str


@dataclass
class FilterChanged(Message):
    """The filter text changed (live while typing); only the newest text matters."""

    text: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FilterChanged)


@dataclass
class FilterClosed(Message):
    """The filter bar was closed (Enter keeps the filter, Escape clears it)."""

    keep: bool
