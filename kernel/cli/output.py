"""How `ic` writes results: compact sorted-key JSON, or tab-separated text tables.

Text output is for a terminal and for `cut`/`awk`, and it carries text from anyone (goals, reasons,
names, paths): it goes through `kernel.terminal` (control characters as visible escapes, a table cell
always one line), so it can neither break a table row nor drive the terminal; `--json` is the exact,
lossless form.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from kernel.terminal import one_line, visible, visible_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def dumps(obj: Any) -> str:
    """The one JSON encoding of every `--json` output (DESIGN 3.2)."""
    import json  # here, not at the top: text output never needs it

    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj) + "\n")


def json_text(value: Any) -> str:
    """A JSON value shown as text: the `--json` encoding, with what could drive a terminal escaped."""
    return visible_json(dumps(value))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json_text(value)
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
    sys.stdout.write(visible(text) + "\n")
