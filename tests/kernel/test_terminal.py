"""One policy for untrusted text on a terminal (kernel.terminal), and `ic`'s text outputs over the
shared hostile corpus (tests/hostile.py): nothing a terminal would obey gets through, and the text is
still there to read."""

from __future__ import annotations

import json

import pytest

from kernel import events, runs, terminal
from tests.conftest import Project
from tests.hostile import LONG, MARKERS, SAMPLES, assert_inert, assert_recognisable, everything


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_becomes_inert_and_stays_readable(name: str) -> None:
    sample = SAMPLES[name]
    for shown in (terminal.visible(sample), terminal.one_line(sample)):
        assert_inert(shown)
        assert shown.isprintable(), repr(shown)
    assert "\n" not in terminal.one_line(sample)


def test_escapes_are_visible_and_name_the_character() -> None:
    assert terminal.one_line("a\x1b[31mb") == "a\\x1b[31mb"
    assert terminal.one_line("\x9b2J") == "\\x9b2J"
    assert terminal.one_line("x\u202ey\u2066z\u200f") == "x\\u202ey\\u2066z\\u200f"
    assert terminal.one_line("nul\x00 del\x7f") == "nul\\x00 del\\x7f"


def test_lines_and_tabs_are_kept_by_visible_and_folded_by_one_line() -> None:
    text = "a\tb\nc\rd"
    assert terminal.visible(text) == "a\tb\nc\\x0dd"
    assert terminal.one_line(text) == "a b c d"


def test_printable_text_comes_back_as_is() -> None:
    for text in ("plain", "évé ✓ 漢字 🚀", "[bold]markup is not ours[/bold]", ""):
        assert terminal.visible(text) is text and terminal.one_line(text) is text


def test_a_lone_surrogate_is_escaped_so_output_can_be_encoded() -> None:
    text = "bad\udcffbyte\x1b"
    shown = terminal.one_line(text)
    assert shown == "bad\\udcffbyte\\x1b"
    shown.encode("utf-8")


def test_visible_json_is_the_same_value_and_inert() -> None:
    value = {"k": "csi\x9b2J del\x7f rtl\u202e esc\x1b", "n": [1, "✓"]}
    document = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    shown = terminal.visible_json(document)
    assert json.loads(shown) == value
    assert_inert(shown)
    assert "✓" in shown


# -- ic text output over the corpus -------------------------------------------------------------------


def test_ic_text_outputs_show_hostile_goals_reasons_and_names_inert(project: Project) -> None:
    # Written through the kernel API: argv cannot carry a NUL byte, a database row can.
    goal = everything()
    conn = project.connect()
    run = runs.create_run(conn, goal=goal, project_dir=project.dir, scope_id=SAMPLES["csi-colours"])
    long_run = runs.create_run(conn, goal=LONG, project_dir=project.dir)
    for reason in SAMPLES.values():
        events.record_external(conn, source="hook", type="note", run_id=run.id, reason=reason)
    runs.cancel_run(conn, long_run.id, reason=goal)
    conn.close()

    status = project.ic("run", "status", run.id)
    listing = project.ic("run", "list")
    tail = project.ic("events", "tail", "--all")
    run_events = project.ic("run", "events", long_run.id)
    for result in (status, listing, tail, run_events):
        assert result.code == 0, result.err
        assert_inert(result.out + result.err)
        assert_recognisable(result.out)
    # One table row per record whatever the text holds, every column in place; long text printed whole.
    assert len(listing.out.splitlines()) == 1 + 2
    assert LONG in listing.out
    assert all(len(line.split("\t")) == 8 for line in tail.out.splitlines())
    assert sum(1 for line in tail.out.splitlines() if "\tnote\t" in line) == len(SAMPLES)
    # --json stays exact.
    assert project.ic("run", "status", run.id, "--json").json()["goal"] == goal


def test_ic_error_lines_are_inert(project: Project) -> None:
    hostile = everything().replace("\x00", "")  # argv cannot carry NUL
    result = project.ic("run", "current", f"--project={hostile}")
    assert result.code == 1
    assert_inert(result.err)
    assert result.err.count("\n") == 1
    assert_recognisable(result.err, tuple(m for m in MARKERS if m != "[bold red]styled[/]"))


def test_ic_state_text_shows_payload_json_inert(project: Project) -> None:
    value = {"note": everything()}
    stored = project.ic("state", "set", "k", stdin=json.dumps(value))
    assert stored.code == 0, stored.err
    shown = project.ic("state", "get", "k")
    assert shown.code == 0, shown.err
    assert_inert(shown.out)
    assert json.loads(shown.out) == value  # still the JSON of the same value
