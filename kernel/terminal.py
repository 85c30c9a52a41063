"""Untrusted text on a terminal: the one policy used by `ic`, `bigend --once`, the TUI and the orchestrator.

Goals, reasons, names, paths and agent output come from anyone. Printed as they are, an escape
sequence in them is obeyed by the terminal: it clears the screen, sets the window title (OSC 0/2),
plants a hyperlink (OSC 8), writes the clipboard (OSC 52) or recolours what follows; a bidi override
makes text read differently from what it is. So every character that can drive a terminal or
reorder text is shown as a visible escape instead:

- every C0 control (U+0000-U+001F) except newline and tab where the caller allows several lines,
  DEL (U+007F) and every C1 control (U+0080-U+009F; some terminals obey the 8-bit CSI `\\x9b` and
  OSC `\\x9d` like ESC [ and ESC ]) become `\\xNN`;
- the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), the invisible
  direction marks (U+200E, U+200F, U+061C) and the line/paragraph separators (U+2028, U+2029)
  become `\\uNNNN`; so does a lone surrogate (undecodable bytes), which could not even be encoded
  for output.

Why escapes rather than removal (what the TUI and the orchestrator used to do): an escape sequence is
then printed inert and still readable (`\\x1b]0;pwned\\x07`), so an operator sees that a name is
hostile instead of seeing a cleaned-up name that looks like an honest one; two different names never
look the same; nothing is lost, so no parser of whole sequences is needed (a removal that misses
half a sequence leaves the other half live); and `ic`, `bigend --once`, the TUI and the orchestrator
show the same text the same way. `--json` output stays exact: JSON escapes C0 itself, and
`visible_json` escapes the rest where JSON is shown on a terminal as text.

Rich markup is not this module's concern: Rich parses markup only in strings handed to a
markup-parsing print; every user of this module puts data in `rich.text.Text` (or writes plain
text), never in markup.

Printable text (nearly all of it) is returned unchanged after one `str.isprintable()` scan. This
module is on `ic`'s start-up path, so it imports nothing.
"""

from __future__ import annotations

# The characters this policy escapes, besides the C0 controls and lone surrogates.
_DIRECTION = (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ESCAPES: dict[int, str] = {code: _escape(code) for code in (*range(0x20), *range(0x7F, 0xA0), *_DIRECTION)}
# Several lines allowed: newline and tab stay.
_MULTI_LINE = {code: shown for code, shown in _ESCAPES.items() if code not in (0x09, 0x0A)}
# One line (a table cell, a status line, an error message): tab and line breaks become one space each,
# so a row never splits; columns stay put because the replacement is never a tab.
_ONE_LINE = {**_ESCAPES, 0x09: " ", 0x0A: " ", 0x0D: " "}
# JSON text: C0 is escaped by the encoder already; the others become JSON escapes of the same value.
_JSON = {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), *_DIRECTION)}


def _without_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def visible(text: str) -> str:
    """Text for a terminal that may span lines: newlines and tabs kept, every other control escaped."""
    if text.isprintable():
        return text
    return _without_surrogates(text.translate(_MULTI_LINE))


def one_line(text: str) -> str:
    """Text that stays on one line: tabs and line breaks become spaces, every other control escaped."""
    if text.isprintable():
        return text
    return _without_surrogates(text.translate(_ONE_LINE))


def visible_json(document: str) -> str:
    """A JSON document shown as text: still valid JSON of the same value, with DEL, the C1 controls,
    the direction controls and lone surrogates as `\\uNNNN` escapes (JSON escapes C0 itself)."""
    if document.isprintable():
        return document
    return _without_surrogates(document.translate(_JSON))
