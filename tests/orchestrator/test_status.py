"""The operator's view: status lines on a terminal, plain lines elsewhere, agent text never styled."""

from __future__ import annotations

import io

from rich.console import Console

from orchestrator.status import StatusBoard, format_elapsed
from tests.hostile import SAMPLES, assert_inert, assert_recognisable, everything


def test_live_status_line_on_a_terminal() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, width=140, color_system=None)
    with StatusBoard(console, max_cycles=2) as board:
        board.track("007", "Teach the parser tabs")
        board.start("007")
        board.phase("007", "fix", 1, 2)
        board.tokens("007", 12_450, 3_200)
        board.output("007", "[bold]not markup[/bold] \x1b[31mred\x1b[0m")
        board.finish("007", "passed", "review passed after 1 fix cycle(s)")
    text = sink.getvalue()
    assert "[007] fix cycle 1 (attempt 2) started" in text
    assert "12,450 in / 3,200 out" in text and "cycle 1/2" in text
    assert "[bold]not markup[/bold] \\x1b[31mred\\x1b[0m" in text  # shown, inert, not styled
    assert "\x1b[31m" not in text


def test_plain_lines_off_a_terminal_and_quiet_mode() -> None:
    sink = io.StringIO()
    board = StatusBoard(Console(file=sink, force_terminal=False, width=120), max_cycles=2, show_output=False)
    with board:
        board.track("1", "t")
        board.start("1")
        board.output("1", "agent chatter")
        board.note("1", "committed abc after dev")
    assert sink.getvalue() == "[1] committed abc after dev\n"


def test_helpers() -> None:
    assert (format_elapsed(65), format_elapsed(3725)) == ("01:05", "1:02:05")


def test_status_lines_over_the_hostile_corpus() -> None:
    """Issue ids, titles, agent output and notes from the shared corpus: inert and readable."""
    sink = io.StringIO()
    board = StatusBoard(Console(file=sink, force_terminal=False, width=400), max_cycles=2)
    with board:
        for name, sample in SAMPLES.items():
            issue = f"{name}{sample}"
            board.track(issue, sample)
            board.start(issue)
            board.phase(issue, "dev", 0, 1)
            board.output(issue, f"{sample}\n{everything()}")
            board.note(issue, sample)
            board.finish(issue, "failed", f"runner exit code 3: {sample}")
    table = io.StringIO()
    Console(file=table, force_terminal=False, width=400).print(board._render())
    for text in (sink.getvalue(), table.getvalue()):
        assert_inert(text)
    assert_recognisable(sink.getvalue())
    assert_recognisable(table.getvalue(), ("title-zero", "eight-bit", "[bold red]styled[/]"))
