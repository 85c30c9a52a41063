"""How `ic` writes results: compact sorted-key JSON, or tab-separated text tables.

Text output is for a terminal and for `cut`/`awk`, and it carries text from anyone (goals, reasons,
names, paths): a control character in it must neither break a table row nor drive the terminal (an
escape sequence recolouring or rewriting the screen). So text output shows such characters as
visible escapes (`\\x1b`); `--json` is the exact, lossless form.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

# C0 controls, DEL and the C1 controls (which some terminals also obey), as visible `\xNN` escapes.
_VISIBLE = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_LINE = {code: shown for code, shown in _VISIBLE.items() if chr(code) not in "\t\n"}
# In a table cell tab, newline and carriage return would split the row: they become spaces.
_CELL = {**_VISIBLE, ord("\t"): " ", ord("\n"): " ", ord("\r"): " "}


def dumps(obj: Any) -> str:
    """The one JSON encoding of every `--json` output (DESIGN 3.2)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj) + "\n")


def safe_text(text: str) -> str:
    """Text for a terminal: lines and tabs kept, every other control character made visible."""
    return text if text.isprintable() else text.translate(_LINE)


def one_line(text: str) -> str:
    """Text that stays on one line: line breaks and tabs become spaces, other controls visible."""
    return text if text.isprintable() else text.translate(_CELL)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return dumps(value)
    return one_line(str(value))


def emit_table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> None:
    out = sys.stdout
    if header:
        out.write("\t".join(header) + "\n")
    for row in rows:
        out.write("\t".join(_cell(v) for v in row) + "\n")


def emit_fields(obj: dict[str, Any]) -> None:
    """A record as `key<TAB>value` lines, in a stable order."""
    for key in sorted(obj):
        sys.stdout.write(f"{key}\t{_cell(obj[key])}\n")


def emit_line(text: str) -> None:
    sys.stdout.write(safe_text(text) + "\n")
