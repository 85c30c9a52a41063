"""Reading an agent's stdout one line at a time: what every agent kind's parser has in common.

An agent's output mixes its JSON events with log lines, progress bars and garbage, and a killed agent
leaves a last line cut off mid-JSON. The parser is therefore fed one line at a time (the orchestrator
feeds lines as they arrive, the dispatch supervisor feeds the output file after the end) and never
fails: a line that is not JSON is a display line, a JSON value of an unexpected shape is skipped.

Besides JSON lines, two whole-document forms are read: Claude Code's `--output-format json
--verbose` prints one JSON array of every message, and a pretty-printed object or array (one opened
by a line starting with `{` or `[` at column 0, closed by a line starting with `}` or `]` at column
0) is collected until it decodes. A new column-0 line that is JSON on its own abandons such a
collection (it was garbage such as "{not json"), so JSON lines after a stray brace are still read.

What a parser gathers (see `AgentResult`): the token usage, the final message, the structured result
from the agent's structured-output channel (never scanned out of free text), display lines for the
operator, problems worth reporting that do not fail the run (a recovered network error, a denied
tool), and `failure`: a terminal failure the agent itself reported. Whether the run failed also
depends on its exit code, which only the caller knows: a non-zero exit is a failure whatever the
output says (the dispatch supervisor and the orchestrator both read it so).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.dispatch.agents.usage import TokenUsage

DISPLAY_KEEP = 200  # display lines kept for the result; the caller streams each one as it is fed
PENDING_LIMIT = 8 * 1024 * 1024  # a pretty-printed document larger than this is given up on
_INVALID = object()


@dataclass(frozen=True, slots=True)
class AgentResult:
    """What an agent's output said, once it has all been read."""

    usage: TokenUsage | None  # None: the agent reported none (the caller keeps what it knew)
    final_message: str | None
    structured: Any  # the structured-output channel's value; None when absent
    structured_conflict: bool  # the channel gave different answers (`structured` is the last one)
    failure: str | None  # a terminal failure the agent reported itself
    completed: bool  # the agent reported reaching its successful end (a completed turn, a result)
    auth_failed: bool  # `failure` is the agent's credentials being refused: retrying cannot help
    problems: tuple[str, ...]
    display: tuple[str, ...]  # the last DISPLAY_KEEP display lines
    json_lines: int
    other_lines: int


def describe_exit(code: int) -> str:
    """`exited with code N`, or `killed by SIGTERM (15)` for a negative (signal) code."""
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name} ({-code})"
    return f"exited with code {code}"


def mentions_any(text: str | None, markers: tuple[str, ...]) -> bool:
    """Whether `text` contains one of `markers` (case-insensitive): how a failure is classified."""
    if not text:
        return False
    lowered = text.lower()
    return any(marker.lower() in lowered for marker in markers)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _INVALID


class AgentParser:
    """Fed one stdout line at a time; each agent kind handles its own events in `on_event`."""

    def __init__(self) -> None:
        self.usage: TokenUsage | None = None
        self.final_message: str | None = None
        self.structured: Any = None
        self.structured_conflict = False
        self.failure: str | None = None
        self.completed = False
        self.auth_failed = False
        self.problems: list[str] = []
        self.display: deque[str] = deque(maxlen=DISPLAY_KEEP)
        self.json_lines = 0
        self.other_lines = 0
        self._pending: list[str] | None = None  # lines of a pretty-printed document being collected
        self._pending_size = 0
        self._result: AgentResult | None = None

    # -- the per-kind part ---------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> str | None:
        """Digest one JSON object the agent printed; return what to show the operator, if anything."""
        raise NotImplementedError

    def at_end(self) -> None:
        """Called once by `result()`: conclusions that need the whole output (e.g. "the last event")."""

    # -- feeding -------------------------------------------------------------------------------------

    def feed(self, line: str) -> str | None:
        """Digest one line (with or without its newline); return its display text, or None."""
        text = line.rstrip("\r\n")
        stripped = text.strip()
        at_column_0 = bool(text) and text[0] in "{[}]"
        if self._pending is not None:
            if not (at_column_0 and text[0] in "{["):
                return self._collect(text, closes=at_column_0)
            self._give_up_pending()
        if not stripped:
            return None
        if stripped[0] in "{[":
            value = _loads(stripped)
            if value is not _INVALID:
                return self._take(value)
            if at_column_0:
                self._pending, self._pending_size = [text], len(text)
                return None
        return self._other(stripped)

    def feed_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.feed(line)

    def result(self) -> AgentResult:
        """Everything read, with end-of-output conclusions drawn; the same object on every call.

        Call it after the last line: lines fed afterwards are not part of it.
        """
        if self._result is not None:
            return self._result
        if self._pending is not None:
            self._give_up_pending()  # cut off: the agent was killed mid-document
        self.at_end()
        self._result = AgentResult(
            usage=self.usage, final_message=self.final_message, structured=self.structured,
            structured_conflict=self.structured_conflict,
            failure=self.failure, completed=self.completed, auth_failed=self.auth_failed,
            problems=tuple(self.problems),
            display=tuple(self.display), json_lines=self.json_lines, other_lines=self.other_lines,
        )  # fmt: skip
        return self._result

    def _collect(self, text: str, *, closes: bool) -> str | None:
        assert self._pending is not None
        self._pending.append(text)
        self._pending_size += len(text) + 1
        if self._pending_size > PENDING_LIMIT:
            self._give_up_pending()
            return None
        if closes and text[0] in "}]":
            value = _loads("\n".join(self._pending))
            if value is not _INVALID:
                self._pending = None
                return self._take(value)
        return None

    def _give_up_pending(self) -> None:
        if self._pending is not None:
            self.other_lines += len(self._pending)
            self._pending = None

    def _other(self, stripped: str) -> str:
        self.other_lines += 1
        self.display.append(stripped)
        return stripped

    def _take(self, value: Any) -> str | None:
        self.json_lines += 1
        events = value if isinstance(value, list) else [value]
        shown: list[str] = []
        for event in events:
            if not isinstance(event, dict):
                continue
            try:
                text = self.on_event(event)
            except (TypeError, ValueError, AttributeError, KeyError):
                continue  # a known event type in an unexpected shape is tolerated like garbage
            if text:
                shown.append(text)
        if not shown:
            return None
        text = "\n".join(shown)
        self.display.append(text)
        return text


def read_file(parser: AgentParser, path: str | Path) -> AgentResult | None:
    """Feed a whole output file to `parser`; None when the file cannot be read."""
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                parser.feed(raw.decode("utf-8", "replace"))
    except OSError:
        return None
    return parser.result()
