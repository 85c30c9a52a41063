"""A shared corpus of hostile text, and the check every terminal output must pass with it.

Each sample is something a goal, a reason, a project name or an agent's output may carry that a
terminal would obey if printed raw (DESIGN 4.2, issue 10): the outputs of `ic`, `bigend --once`, the
TUI and the orchestrator are all run over the same samples (tests/kernel/test_terminal.py,
tests/bigend/test_once.py, tests/bigend/test_hostile_tui.py, tests/orchestrator/test_status.py).

`assert_inert(text)` fails when a raw ESC, C1 control, other C0 control or direction override reaches
the output; `MARKERS` are words inside the samples that must still be readable there.
"""

from __future__ import annotations

SAMPLES: dict[str, str] = {
    "csi-clear-screen": "\x1b[2J\x1b[Hcleared",
    "csi-colours": "\x1b[31;1mred\x1b[0m",
    "osc0-title": "\x1b]0;title-zero\x07",
    "osc2-title": "\x1b]2;title-two\x1b\\",
    "osc8-hyperlink": "\x1b]8;;https://evil.example/\x1b\\click-here\x1b]8;;\x1b\\",
    "osc52-clipboard": "\x1b]52;c;cm0gLXJmIH4K\x07clip",
    "c1-csi": "\x9b2Jeight-bit",
    "c1-osc": "\x9d0;c1-title\x9c",
    "bidi-override": "invoice\u202efdp.exe\u202c \u2066isolated\u2069 \u200fmarked",
    "nul": "nul\x00byte",
    "bell-backspace": "bell\x07back\x08space\rreturn",
    "rich-markup": "[bold red]styled[/] [link=https://evil.example]linked[/link]",
}
# Words of the samples that must still be readable wherever the sample is shown.
MARKERS = (
    "cleared",
    "red",
    "title-zero",
    "title-two",
    "click-here",
    "clip",
    "eight-bit",
    "c1-title",
    "isolated",
    "byte",
    "return",
    "[bold red]styled[/]",
)
# A line far wider than any terminal: shown whole by `ic` (scripts cut it), cut with an ellipsis by
# the TUI, never wrapped into a second table row.
LONG = "long-" + "x" * 5000 + "-end"

# Everything but newline and tab in C0, DEL, all of C1, and the direction controls.
RAW = frozenset(
    chr(c)
    for c in (
        *range(0x09),
        *range(0x0B, 0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
)


def everything() -> str:
    """All samples in one text (a goal or reason carrying every attack at once)."""
    return " | ".join(SAMPLES.values())


def dir_name(sample: str) -> str:
    """The sample as a directory name: without `/` and NUL, the two bytes a file name cannot hold."""
    return sample.replace("/", "_").replace("\x00", "_")[:200]


def raw_controls(text: str) -> list[str]:
    """The characters of `text` a terminal would obey (as `repr`s, for a readable failure)."""
    return sorted({repr(ch) for ch in text if ch in RAW})


def assert_inert(text: str) -> None:
    """No ESC, C1, other control or direction override reaches the output raw."""
    found = raw_controls(text)
    assert not found, f"raw control characters reached the output: {found}"


def assert_recognisable(text: str, markers: tuple[str, ...] = MARKERS) -> None:
    """The hostile text is still there to read, not silently dropped."""
    missing = [m for m in markers if m not in text]
    assert not missing, f"markers missing from the output: {missing}"
