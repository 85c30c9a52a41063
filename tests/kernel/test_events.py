"""`ic events tail|record|cursor` without --follow: shapes, positions, durable cursors, bad input."""

from __future__ import annotations

import json
import subprocess

import pytest

from kernel import events
from kernel.db import write_tx
from tests.conftest import Project, ic_executable

REQUIRED_KEYS = {"id", "run_id", "source", "type", "from_state", "to_state", "reason", "timestamp"}


def _record(project: Project, *args: str) -> dict[str, object]:
    result = project.ic("events", "record", "--source=hook", "--json", *args)
    assert result.code == 0, result.err
    body: dict[str, object] = result.json()
    return body


def _seed(project: Project, count: int, run_id: str | None = None) -> list[int]:
    """Setup only: `count` events written through the library (the CLI's record is tested above)."""
    conn = project.connect()
    try:
        with write_tx(conn):
            return [
                events.record(conn, source="hook", type=f"t{i}", run_id=run_id, reason=str(i))
                for i in range(count)
            ]
    finally:
        conn.close()


def _ids(result_out: str) -> list[int]:
    return [json.loads(line)["id"] for line in result_out.splitlines()]


def _new_run(project: Project) -> str:
    created = project.ic("run", "create", "--goal=tail me", "--json")
    assert created.code == 0, created.err
    run_id: str = created.json()["id"]
    return run_id


def test_record_prints_the_event_and_tail_shows_it(project: Project) -> None:
    event = _record(project, "--type=pane.opened", "--reason=pane 3", '--payload={"pane": 3, "ü": "✓"}')
    assert set(event) >= REQUIRED_KEYS
    assert (event["source"], event["type"], event["reason"], event["payload"]) == (
        "hook",
        "pane.opened",
        "pane 3",
        {"pane": 3, "ü": "✓"},
    )
    tail = project.ic("events", "tail", "--all", "--json")
    assert tail.code == 0
    assert tail.json_lines() == [event]


def test_tail_all_prints_the_newest_events_oldest_first(project: Project) -> None:
    recorded = _seed(project, 5)
    assert _ids(project.ic("events", "tail", "--all", "--json").out) == recorded
    assert _ids(project.ic("events", "tail", "--all", "--json", "--limit=2").out) == recorded[-2:]
    assert project.ic("events", "tail", "--all", "--limit=0").out == ""


def test_text_output_is_one_tab_separated_line_per_event(project: Project) -> None:
    event = _record(project, "--type=ping", "--reason=with\ttab")
    lines = project.ic("events", "tail", "--all").out.splitlines()
    assert lines == [f"{event['id']}\t{event['timestamp']}\t-\thook\tping\t-\t-\twith tab"]


def test_since_prints_the_events_after_an_id(project: Project) -> None:
    recorded = _seed(project, 6)
    since = project.ic("events", "tail", "--all", "--since=2", "--json")
    assert _ids(since.out) == recorded[2:]
    paged = project.ic("events", "tail", "--all", "--since", "2", "--limit", "3", "--json")
    assert _ids(paged.out) == [3, 4, 5]
    assert project.ic("events", "tail", "--all", "--since=99").out == ""


def test_tail_of_one_run_shows_only_its_events(project: Project) -> None:
    run_id = _new_run(project)
    other = _new_run(project)
    _seed(project, 1, run_id)
    _seed(project, 1, other)
    _seed(project, 1)
    lines = project.ic("events", "tail", run_id, "--json").json_lines()
    assert lines, "the run's own creation event and the recorded one"
    assert {line["run_id"] for line in lines} == {run_id}
    assert lines[-1]["source"] == "hook"
    assert [e["type"] for e in project.ic("events", "tail", run_id, "--since=0", "--json").json_lines()] == [
        e["type"] for e in lines
    ]


def test_tail_of_an_unknown_run_is_exit_1(project: Project) -> None:
    result = project.ic("events", "tail", "nope1234")
    assert result.code == 1
    assert "no run 'nope1234'" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "either a run id or --all"),
        (["abc", "--all"], "either a run id or --all"),
        (["--all", "--limit=-1"], "--limit"),
        (["--all", "--limit=many"], "--limit"),
        (["--all", "--since=x"], "--since"),
        (["--all", "--consumer=has space"], "--consumer"),
        (["--all", "--bogus"], "unrecognized"),
    ],
)
def test_bad_tail_arguments_exit_3(project: Project, args: list[str], message: str) -> None:
    result = project.ic("events", "tail", *args)
    assert result.code == 3, result.err
    assert message in result.err
    assert result.err.count("\n") == 1


def test_record_with_a_run(project: Project) -> None:
    run_id = _new_run(project)
    event = _record(project, "--type=note", f"--run={run_id}")
    assert event["run_id"] == run_id
    assert project.ic("events", "record", "--source=hook", "--type=x", "--run=zzzzzzzz").code == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--source=hook", "--type=x", "--payload={bad"], 3, "not valid JSON"),
        (["--source=hook", "--type=x", "--payload=[1, 2]"], 3, "JSON object"),
        (["--source=hook", "--type=x", '--payload={"token": "abcd"}'], 3, "secret"),
        (["--source=phase", "--type=advance"], 3, "reserved"),
        (["--source=dispatch", "--type=whatever"], 3, "reserved"),
        (["--source=hook"], 3, "--type"),
        (["--type=x"], 3, "--source"),
        (["--source=a b", "--type=x"], 3, "--source"),
        (["--source=hook", "--type=" + "t" * 65], 3, "limit is 64"),
        (["--source=hook", "--type=x", "--run=nope"], 1, "no run 'nope'"),
    ],
)
def test_bad_record_input(project: Project, args: list[str], code: int, message: str) -> None:
    result = project.ic("events", "record", *args)
    assert result.code == code, result.err
    assert message in result.err
    assert result.err.count("\n") == 1
    assert project.ic("events", "tail", "--all").out == ""


def test_a_consumer_pages_through_the_stream_without_repeats_or_gaps(project: Project) -> None:
    recorded = _seed(project, 7)
    seen: list[int] = []
    for _ in range(4):
        page = project.ic("events", "tail", "--all", "--consumer=indexer", "--limit=3", "--json")
        assert page.code == 0, page.err
        seen.extend(_ids(page.out))
    assert seen == recorded
    cursors = project.ic("events", "cursor", "list", "--json").json_lines()
    assert [(c["consumer"], c["last_event_id"]) for c in cursors] == [("indexer", recorded[-1])]
    _seed(project, 1)
    resumed = project.ic("events", "tail", "--all", "--consumer=indexer", "--json")
    assert _ids(resumed.out) == [recorded[-1] + 1]


def test_consumers_of_one_run_see_only_that_run(project: Project) -> None:
    run_id = _new_run(project)
    _seed(project, 1)
    _seed(project, 1, run_id)
    first = project.ic("events", "tail", run_id, "--consumer=runwatch", "--json").json_lines()
    assert {e["run_id"] for e in first} == {run_id}
    _seed(project, 1)
    assert project.ic("events", "tail", run_id, "--consumer=runwatch", "--json").out == ""


def test_cursor_register_reset_and_list(project: Project) -> None:
    _seed(project, 4)
    registered = project.ic("events", "cursor", "register", "bot", "--from=latest", "--json")
    assert registered.code == 0, registered.err
    assert registered.json()["last_event_id"] == 4
    assert project.ic("events", "tail", "--all", "--consumer=bot").out == ""
    again = project.ic("events", "cursor", "register", "bot")
    assert again.code == 1
    assert "already registered" in again.err
    reset = project.ic("events", "cursor", "reset", "bot", "--to=2", "--json")
    assert reset.json()["last_event_id"] == 2
    assert _ids(project.ic("events", "tail", "--all", "--consumer=bot", "--json").out) == [3, 4]
    assert project.ic("events", "cursor", "register", "fresh", "--from=1").code == 0
    assert project.ic("events", "cursor", "register", "zero").code == 0
    listed = project.ic("events", "cursor", "list").out.splitlines()
    assert listed[0].split("\t") == ["consumer", "last_event_id", "created_at", "updated_at"]
    assert [line.split("\t")[:2] for line in listed[1:]] == [["bot", "4"], ["fresh", "1"], ["zero", "0"]]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["reset", "ghost"], 1, "no consumer cursor 'ghost'"),
        (["reset", "bot", "--to=99"], 3, "outside the stream"),
        (["register", "new", "--from=99"], 3, "outside the stream"),
        (["register", "new", "--from=yesterday"], 3, "'latest' or an event id"),
        (["register", "bad name"], 3, "consumer name"),
        (["register"], 3, "required"),
        (["frob"], 3, "invalid choice"),
    ],
)
def test_bad_cursor_input(project: Project, args: list[str], code: int, message: str) -> None:
    project.ic("events", "cursor", "register", "bot")
    result = project.ic("events", "cursor", *args)
    assert result.code == code, result.err
    assert message in result.err


def test_since_overrides_a_consumer_position_and_the_cursor_never_moves_back(project: Project) -> None:
    _seed(project, 5)
    project.ic("events", "tail", "--all", "--consumer=c")
    replay = project.ic("events", "tail", "--all", "--consumer=c", "--since=1", "--limit=2", "--json")
    assert _ids(replay.out) == [2, 3]
    assert project.ic("events", "cursor", "list", "--json").json()["last_event_id"] == 5


def test_a_closed_pipe_ends_tail_quietly(project: Project) -> None:
    conn = project.connect()
    try:
        with write_tx(conn):
            for i in range(2000):
                events.record(conn, source="bulk", type="row", reason="x" * 100 + str(i))
    finally:
        conn.close()
    script = f"{' '.join(ic_executable())} events tail --all --since=0 --consumer=pipe | head -1"
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {script}"],
        cwd=project.dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("1\t")
    assert proc.stderr == ""


def test_text_that_is_not_unicode_is_refused_and_a_poisoned_row_does_not_stop_readers(
    project: Project,
) -> None:
    assert project.ic("events", "record", "--source=hook", "--type=x", '--payload={"a": "\\udc80"}').code == 3
    assert project.ic("events", "record", "--source=hook", "--type=x", "--reason=\udcff").code == 3
    assert project.ic("events", "record", "--source=hook", "--type=x", "--run=\udcff").code == 3
    assert project.ic("events", "tail", "\udcff").code == 3
    # A row from a writer that did not check: the library's `record` stores what it gets, and JSON
    # escapes a lone surrogate in a payload, so such a row can exist.
    conn = project.connect()
    try:
        with write_tx(conn):
            events.record(conn, source="legacy", type="odd", payload={"k": "\udfff"})
    finally:
        conn.close()
    as_json = project.ic("events", "tail", "--all", "--json")
    assert as_json.code == 0, as_json.err
    assert as_json.json()["payload"] == {"k": "\udfff"}
    assert "\\udfff" in as_json.out
    assert project.ic("events", "tail", "--all").code == 0


@pytest.mark.parametrize("extra", [[], ["--follow"], ["--consumer=late"]])
def test_since_beyond_the_newest_id_is_exit_3_not_silence(project: Project, extra: list[str]) -> None:
    """Ids only grow, so a larger one belongs to another database; following after it would skip."""
    _seed(project, 3)
    result = project.ic("events", "tail", "--all", "--since=4", *extra, timeout=30)
    assert result.code == 3, result.err
    assert "--since=4 is outside the stream of this database (0..3" in result.err
    assert result.err.count("\n") == 1 and result.out == ""
    assert project.ic("events", "cursor", "list").out.splitlines()[1:] == []
    assert _ids(project.ic("events", "tail", "--all", "--since=3", "--json").out) == []


def test_a_payload_over_the_size_limit_is_one_line_exit_3_from_argv_or_stdin(project: Project) -> None:
    big = json.dumps({"blob": "x" * (64 * 1024)})
    from_argv = project.ic("events", "record", "--source=hook", "--type=big", f"--payload={big}")
    assert from_argv.code == 3
    assert from_argv.err == f"ic: --payload is {len(big)} bytes; the limit is 65536 bytes (64 KiB)\n"
    huge = json.dumps({"blob": "y" * (4 * 1024 * 1024)})  # beyond what argv can carry at all
    from_stdin = project.ic("events", "record", "--source=hook", "--type=big", "--payload=-", stdin=huge)
    assert from_stdin.code == 3
    assert from_stdin.err == "ic: --payload on stdin is larger than 65536 bytes (64 KiB)\n"
    assert project.ic("events", "tail", "--all").out == ""


def test_payload_dash_reads_the_object_from_stdin(project: Project) -> None:
    piped = project.ic(
        "events", "record", "--source=hook", "--type=p", "--payload=-", "--json", stdin='{"a": [1]}'
    )
    assert piped.code == 0, piped.err
    assert piped.json()["payload"] == {"a": [1]}
    empty = project.ic("events", "record", "--source=hook", "--type=p", "--payload=-", stdin="")
    assert (empty.code, empty.err.count("\n")) == (3, 1)
    assert "stdin is empty" in empty.err
    blank = project.ic("events", "record", "--source=hook", "--type=p", "--payload=")
    assert blank.code == 3
    assert "--payload is empty" in blank.err and "stdin" not in blank.err
    assert _ids(project.ic("events", "tail", "--all", "--json").out) == [piped.json()["id"]]


def test_text_output_shows_control_characters_instead_of_sending_them_to_the_terminal(
    project: Project,
) -> None:
    hostile = "red\x1b[31m\rover\x07bell\x9b2Jcsi\x7fdel\ttab\nline"
    event = _record(project, "--type=hostile", f"--reason={hostile}")
    assert event["reason"] == hostile  # stored and printed as JSON exactly
    line = project.ic("events", "tail", "--all").out
    assert line.endswith("\tred\\x1b[31m over\\x07bell\\x9b2Jcsi\\x7fdel tab line\n")
    assert not any((ord(ch) < 32 and ch not in "\t\n") or 127 <= ord(ch) < 160 for ch in line)
    assert project.ic("events", "tail", "--all", "--json").json()["reason"] == hostile
