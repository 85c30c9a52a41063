"""The activity feed: the events of every project merged into one stream, each shown once.

The aggregator hands over each project's latest events on every refresh, so the same event arrives
many times; the feed reports it once. Identity is `synthetic_id = "kernel:<project>:<event id>"`. The
seen-set is an LRU capped at `limit * 10`: ids still present in the state are touched on every ingest
and stay, ids that dropped out of every project's window age out, so memory stays bounded over a long
session. As a second guard, an event id at or below the highest already reported for its project is
never new (event ids grow monotonically per database), so an id evicted from the LRU cannot come back.

The first ingest is history (the bootstrap of the event viewport); everything after it is new.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass

from bigend.core.snapshot import EventInfo, KernelState, ProjectState

SOURCE_PREFIX = "K"  # kernel events; the app shows it as [K]


@dataclass(frozen=True, slots=True)
class FeedItem:
    event: EventInfo
    project_name: str
    history: bool

    @property
    def synthetic_id(self) -> str:
        return self.event.synthetic_id

    @property
    def timestamp(self) -> int:
        return self.event.timestamp

    @property
    def project(self) -> str:
        return self.event.project

    @property
    def kind(self) -> str:
        return self.event.kind

    @property
    def source_prefix(self) -> str:
        return SOURCE_PREFIX

    def sort_key(self) -> tuple[int, str, int]:
        return (self.event.timestamp, self.event.project, self.event.id)


class ActivityFeed:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("feed limit must be at least 1")
        self.limit = limit
        self.seen_capacity = limit * 10
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._high_water: dict[str, int] = {}
        self._items: deque[FeedItem] = deque()
        self._keys: deque[tuple[int, str, int]] = deque()
        self._last_events: dict[str, list[EventInfo]] = {}
        self._bootstrapped = False

    @property
    def items(self) -> list[FeedItem]:
        """At most `limit` items, oldest first."""
        return list(self._items)

    def __iter__(self) -> Iterator[FeedItem]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def seen_count(self) -> int:
        return len(self._seen)

    def has_seen(self, synthetic_id: str) -> bool:
        return synthetic_id in self._seen

    def ingest(self, state: KernelState) -> list[FeedItem]:
        """The events of `state` not reported before, oldest first; they are also added to `items`."""
        if state.generated_at == 0:
            return []  # the aggregator's placeholder before its first refresh: not a bootstrap
        history = not self._bootstrapped
        self._bootstrapped = True
        fresh: list[FeedItem] = []
        for project in state.projects:
            fresh.extend(self._ingest_project(project, history))
        fresh.sort(key=FeedItem.sort_key)
        for item in fresh:
            self._add(item)
        self._evict_seen()
        return fresh

    def _ingest_project(self, project: ProjectState, history: bool) -> list[FeedItem]:
        events = project.events
        if self._last_events.get(project.path) is events:
            return []  # the aggregator reuses unchanged project states: nothing to look at
        self._last_events[project.path] = events
        seen = self._seen
        high = self._high_water.get(project.path, 0)
        out: list[FeedItem] = []
        top = high
        for event in events:
            sid = event.synthetic_id
            if sid in seen:
                seen.move_to_end(sid)
                continue
            seen[sid] = None
            if event.id <= high:
                continue
            top = max(top, event.id)
            out.append(FeedItem(event=event, project_name=project.name, history=history))
        self._high_water[project.path] = top
        return out

    def _add(self, item: FeedItem) -> None:
        key = item.sort_key()
        if not self._keys or key >= self._keys[-1]:
            self._items.append(item)
            self._keys.append(key)
        else:  # a late event (a slow project caught up): keep time order
            index = bisect.bisect_right(self._keys, key)
            self._items.insert(index, item)
            self._keys.insert(index, key)
        while len(self._items) > self.limit:
            self._items.popleft()
            self._keys.popleft()

    def _evict_seen(self) -> None:
        seen = self._seen
        while len(seen) > self.seen_capacity:
            seen.popitem(last=False)
