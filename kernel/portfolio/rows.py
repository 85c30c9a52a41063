"""Row types of the portfolio tables and of `ic portfolio status`.

They live here rather than in kernel.model because only portfolio code and its readers use them;
each is a `kernel.model.RowType` (frozen, slotted, `from_row`, `to_json`). `kernel.queries` imports
this module, so it is on `ic`'s start-up path: no dataclasses, no typing at run time.
"""

from __future__ import annotations

from kernel.model import RowType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar


class RelayCursor(RowType):
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

    @property
    def stalled(self) -> bool:
        return self.last_event_id < 0

    @property
    def position(self) -> int:
        """The last child event id relayed (for a stalled cursor: where it was when it stopped)."""
        return abs(self.last_event_id)


class ChildEvent(RowType):
    """The columns of a child's phase event that the relay copies."""

    id: int
    type: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    timestamp: int


class DispatchSlot(RowType):
    """A dispatch counted against its portfolio's `max_dispatches`."""

    portfolio_id: str
    dispatch_id: str
    project_dir: str
    pid: int | None
    acquired_at: int

    COLUMNS: ClassVar[str] = "portfolio_id, dispatch_id, project_dir, pid, acquired_at"


class ChildStatus(RowType):
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
