"""Row types of the portfolio tables and of `ic portfolio status`.

They live here rather than in kernel.model because only portfolio code and its readers use them;
each follows the kernel.model conventions (frozen, slotted, `from_row`, `to_json`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, NamedTuple

from kernel.model import JsonObject


@dataclass(frozen=True, slots=True)
class RelayCursor:
    """How far the relay has read one child project's event stream for one portfolio.

    A negative `last_event_id` means the relay stopped relaying this project because its database was
    replaced (event ids went back below the cursor at -last_event_id): it stays stopped, across relay
    restarts, until an operator resets the cursor (`ic portfolio cursor reset`). The mark lives in the
    cursor itself so it commits with the relay's own bookkeeping and needs no schema change.
    """

    portfolio_id: str
    project_dir: str
    last_event_id: int
    updated_at: int

    COLUMNS: ClassVar[str] = "portfolio_id, project_dir, last_event_id, updated_at"

    @classmethod
    def from_row(cls, row: Any) -> RelayCursor:
        return cls(*tuple(row))

    @property
    def stalled(self) -> bool:
        return self.last_event_id < 0

    @property
    def position(self) -> int:
        """The last child event id relayed (for a stalled cursor: where it was when it stopped)."""
        return abs(self.last_event_id)

    def to_json(self) -> JsonObject:
        return asdict(self)


class ChildEvent(NamedTuple):
    """The columns of a child's phase event that the relay copies (a tuple: thousands per tick)."""

    id: int
    type: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    timestamp: int


@dataclass(frozen=True, slots=True)
class DispatchSlot:
    """A dispatch counted against its portfolio's `max_dispatches`."""

    portfolio_id: str
    dispatch_id: str
    project_dir: str
    pid: int | None
    acquired_at: int

    COLUMNS: ClassVar[str] = "portfolio_id, dispatch_id, project_dir, pid, acquired_at"

    @classmethod
    def from_row(cls, row: Any) -> DispatchSlot:
        return cls(*tuple(row))

    def to_json(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """One line of `ic portfolio status`: a child as its own project database sees it right now.

    `ready` means the child could enter its next phase as far as its upstream projects are concerned;
    `blocked_by` lists the upstream projects that are behind. `error` is set when the project database
    could not be read, in which case phase and status are the portfolio's (relayed) copy.
    """

    project: str
    run_id: str
    phase: str
    status: str
    next_phase: str | None
    ready: bool
    blocked_by: list[str]
    upstreams: list[str]
    error: str | None

    def to_json(self) -> JsonObject:
        return asdict(self)
