"""The `/` filter: free text plus `key=value` terms, ANDed together.

`status=blocked phase=review project=api fix login` keeps what is blocked, in review, in a project whose
name contains "api", and mentions "fix" and "login". Runs understand status/phase/project; the event
viewport understands type/source/project (and kind); a term a view does not understand is ignored by
that view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bigend.core.snapshot import EventInfo, RunInfo
from bigend.core.status import UnifiedStatus
from bigend.ui.render import source_family

RUN_KEYS = frozenset({"status", "phase", "project"})
EVENT_KEYS = frozenset({"type", "source", "project", "kind"})
KNOWN_KEYS = RUN_KEYS | EVENT_KEYS


@dataclass(frozen=True)
class FilterQuery:
    text: str = ""
    terms: dict[str, str] = field(default_factory=dict)
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms and not self.words

    def matches_run(self, run: RunInfo, project_name: str) -> bool:
        for key, value in self.terms.items():
            if key == "status" and not status_matches(value, run.unified, run.status):
                return False
            if key == "phase" and value not in run.phase.lower():
                return False
            if key == "project" and value not in project_name.lower():
                return False
        haystack = f"{run.id} {run.goal} {run.phase} {project_name} {run.blocked_reason or ''}".lower()
        return all(word in haystack for word in self.words)

    def matches_project(self, project_name: str) -> bool:
        wanted = self.terms.get("project")
        return wanted is None or wanted in project_name.lower()

    def matches_event(self, event: EventInfo, project_name: str) -> bool:
        for key, value in self.terms.items():
            if key == "type" and value not in event.type.lower():
                return False
            if key == "kind" and value not in event.kind.lower():
                return False
            if key == "source" and not source_matches(value, event.source):
                return False
            if key == "project" and value not in project_name.lower():
                return False
        haystack = (
            f"{event.type} {event.source} {event.run_id or ''} {project_name} {event.reason or ''} "
            f"{event.from_state or ''} {event.to_state or ''}"
        ).lower()
        return all(word in haystack for word in self.words)


_UNIFIED_NAMES = tuple(s.value for s in UnifiedStatus)


def source_matches(value: str, source: str) -> bool:
    """`source=` names the raw source (`source=dispatch`, a part will do) or the family its line prefix
    stands for (`source=kernel` for [K], `source=tmux` for [T], `source=messaging` for [M])."""
    return value in source.lower() or source_family(source).startswith(value)


def status_matches(value: str, unified: UnifiedStatus, raw: str) -> bool:
    """`status=` names a unified state (a prefix will do: `status=block`); any other word is compared
    with the kernel's raw status (`status=cancelled`), so `status=active` never lists blocked runs."""
    if any(name.startswith(value) for name in _UNIFIED_NAMES):
        return unified.value.startswith(value)
    return raw.lower() == value


def parse_filter(text: str) -> FilterQuery:
    """Split the operator's input into known `key=value` terms and free words (case-insensitive).

    An unknown key (`foo=bar`) is kept as a free word so a typo narrows the view instead of being
    silently dropped; a known key with no value yet (`type=`, being typed) filters nothing.
    """
    terms: dict[str, str] = {}
    words: list[str] = []
    for token in text.lower().split():
        key, sep, value = token.partition("=")
        if sep and key in KNOWN_KEYS:
            if value:
                terms[key] = value
        elif token:
            words.append(token)
    return FilterQuery(text=text.strip(), terms=terms, words=tuple(words))
