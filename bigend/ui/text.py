"""Untrusted text (goals, reasons, names) made safe to show.

Data written by agents must never style the screen: Rich markup in a goal stays literal because it is
wrapped in `Text` (never parsed as markup), and control characters are removed so an escape sequence
can neither move the cursor nor recolour the terminal when the app draws it.
"""

from __future__ import annotations

import re

from rich.style import Style
from rich.text import Text

# C0 controls (tab and newline included: a cell is one line), DEL, C1 controls, and the bidi
# overrides that can visually reorder text.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# A whole CSI / OSC escape sequence goes, not only its ESC byte, so no "[31m" residue is left.
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def clean(value: str | None) -> str:
    """The printable form of untrusted text: escape sequences and control characters removed."""
    if not value:
        return ""
    without_sequences = _ESCAPE_SEQUENCE.sub("", value)
    return _CONTROL.sub(" ", without_sequences.replace("\r\n", " ").replace("\n", " ")).replace("  ", " ")


def literal(value: str | None, style: str | Style = "") -> Text:
    """A `Text` that shows `value` exactly (after `clean`), whatever brackets it contains."""
    return Text(clean(value), style=style, no_wrap=True, overflow="ellipsis", end="")
