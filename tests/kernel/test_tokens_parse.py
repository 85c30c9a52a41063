"""The agent kinds' parsers on recorded outputs (tests/fixtures) and on hand-made edge cases.

Every expected figure is computed by hand from the fixture, in the kernel's meaning
(kernel.dispatch.agents.usage): input = prompt tokens processed fresh, cache = read from a cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.dispatch import agents
from kernel.dispatch.agents.output import AgentResult, describe_exit
from kernel.dispatch.agents.usage import TokenUsage
from tests.fixtures.dispatching import FIXTURES


def read(kind: str, name: str) -> AgentResult:
    result = agents.read_output(kind, FIXTURES / name)
    assert result is not None
    return result


def feed(kind: str, lines: list[str], *, structured: bool = False) -> AgentResult:
    parser = agents.parser_for(kind, structured=structured)
    parser.feed_lines(lines)
    return parser.result()


# -- Codex ---------------------------------------------------------------------------------------------


def test_codex_cached_input_is_part_of_input_so_fresh_input_is_the_difference() -> None:
    result = read("codex", "codex_exec.jsonl")
    assert result.usage == TokenUsage(input_tokens=24763 - 24448, output_tokens=122, cache_tokens=24448)
    assert (result.completed, result.failure) == (True, None)
    assert result.final_message == "The repository has docs, kernel and tests."
    assert "$ bash -lc ls (exit 0)" in result.display


def test_codex_turn_completed_usage_is_cumulative_so_the_last_one_wins_never_the_sum() -> None:
    # 1000/0/50, then 26549/22272/1590: the session's running totals. Summed they would be 27549 in.
    result = read("codex", "codex_exec_multi.jsonl")
    assert result.usage == TokenUsage(input_tokens=26549 - 22272, output_tokens=1590, cache_tokens=22272)
    assert result.final_message == "Done."  # the cut-off last line is not a message
    assert result.other_lines == 2  # the "reconnecting" log line and the cut-off JSON


def test_codex_reconnect_error_followed_by_more_events_is_transient() -> None:
    result = read("codex", "codex_reconnect.jsonl")
    assert result.usage == TokenUsage(input_tokens=18421 - 12160, output_tokens=907, cache_tokens=12160)
    assert (result.completed, result.failure) == (True, None)
    assert len(result.problems) == 1 and result.problems[0].startswith("transient error: Reconnecting... 1/5")
    assert "edited /tmp/proj/parser.py" in result.display


def test_codex_turn_failed_and_an_error_as_the_final_event_are_failures() -> None:
    failed = read("codex", "codex_exec_failed.jsonl")
    assert (failed.usage, failed.completed) == (None, False)
    assert failed.failure == "stream disconnected before completion"
    assert failed.problems == ()  # the error the turn failed on is the failure, not also a problem
    last = read("codex", "codex_error_last.jsonl")
    assert last.failure is not None and last.failure.startswith("unexpected status 401 Unauthorized")


def test_command_results_that_disagree_are_a_conflict_and_repeats_are_not() -> None:
    same = '{"type": "result", "result": {"status": "pass", "findings": []}}'
    other = '{"type": "result", "result": {"status": "fail", "findings": ["x"]}}'
    assert not feed("command", [same, same]).structured_conflict
    both = feed("command", [other, same])
    assert both.structured_conflict and both.structured == {"status": "pass", "findings": []}


def test_a_refused_login_is_an_auth_failure_and_a_retry_naming_it_is_not() -> None:
    assert read("codex", "codex_error_last.jsonl").auth_failed  # "unexpected status 401 Unauthorized"
    assert not read("codex", "codex_exec_failed.jsonl").auth_failed  # a stream failure: worth a retry
    retried = feed(
        "codex",
        [
            '{"type":"error","message":"Reconnecting... 1/5 (unexpected status 401 Unauthorized)"}',
            '{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}',
        ],
    )
    assert (retried.failure, retried.auth_failed) == (None, False)
    claude = read("claude", "claude_auth_failed.jsonl")
    assert (claude.failure, claude.auth_failed) == ("Invalid API key · Please run /login", True)
    assert not read("claude", "claude_error_max_turns.json").auth_failed
    command = feed("command", ['{"type": "error", "message": "token expired", "auth": true}'])
    assert (command.failure, command.auth_failed) == ("token expired", True)
    assert not feed("command", ['{"type": "error", "message": "disk full"}']).auth_failed


def test_codex_structured_result_is_the_final_message_decoded_only_when_a_schema_was_given() -> None:
    lines = (FIXTURES / "codex_structured.jsonl").read_text().splitlines()
    with_schema = feed("codex", lines, structured=True)
    assert with_schema.structured == {
        "status": "fail",
        "findings": [{"message": "the empty input still raises IndexError", "file": "parser.py", "line": 12}],
        "summary": "One edge case left.",
    }
    assert with_schema.usage == TokenUsage(input_tokens=9210 - 8064, output_tokens=655, cache_tokens=8064)
    assert feed("codex", lines).structured is None  # no schema: a JSON-looking message is just text
    prose = [json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": 'ok {"a": 1}'}})]
    answered_in_prose = feed("codex", prose, structured=True)
    assert answered_in_prose.structured is None  # never dug out of free text
    assert answered_in_prose.problems == ("the final message is not the JSON that --output-schema asked for",)


def test_codex_usage_with_invalid_counts_is_ignored_and_cached_above_input_clamps() -> None:
    bad = json.dumps({"type": "turn.completed", "usage": {"input_tokens": -5, "output_tokens": 3}})
    assert feed("codex", [bad]).usage is None
    odd = json.dumps({"type": "turn.completed", "usage": {"input_tokens": 5, "cached_input_tokens": 9}})
    assert feed("codex", [odd]).usage == TokenUsage(input_tokens=0, output_tokens=0, cache_tokens=9)


# -- Claude --------------------------------------------------------------------------------------------


def test_claude_input_excludes_cache_reads_and_writes_so_writes_are_added_and_reads_are_cache() -> None:
    result = read("claude", "claude_json.json")
    assert result.usage == TokenUsage(input_tokens=4 + 5123, output_tokens=287, cache_tokens=13456,
                                      cost_usd=0.0421937)  # fmt: skip
    assert (result.final_message, result.completed, result.failure) == ("Done: the tests pass.", True, None)


def test_claude_stream_json_takes_the_result_lines_session_total_not_the_per_message_usage() -> None:
    result = read("claude", "claude_stream.jsonl")
    assert result.usage == TokenUsage(input_tokens=10 + 2100, output_tokens=410, cache_tokens=18000,
                                      cost_usd=0.0187)  # fmt: skip
    assert "Looking at the tests." in result.display
    assert "not json: progress 50%" in result.display


def test_claude_verbose_json_array_takes_its_result_element() -> None:
    result = read("claude", "claude_json_verbose.json")
    assert result.usage == TokenUsage(input_tokens=12 + 1500, output_tokens=230, cache_tokens=7000,
                                      cost_usd=0.0311)  # fmt: skip
    assert result.final_message == "Done."


def test_claude_pretty_printed_error_result_after_a_log_line_counts_and_fails() -> None:
    result = read("claude", "claude_error_max_turns.json")
    assert result.usage == TokenUsage(input_tokens=40, output_tokens=1200, cache_tokens=0, cost_usd=0.12)
    assert (result.failure, result.completed) == ("error_max_turns", False)


def test_claude_permission_denials_are_problems_and_cache_tokens_their_own_field() -> None:
    result = read("claude", "claude_cache_denials.jsonl")
    assert result.usage == TokenUsage(input_tokens=25 + 3200, output_tokens=1850, cache_tokens=41000,
                                      cost_usd=0.0932)  # fmt: skip
    assert (result.completed, result.failure) == (True, None)
    assert result.problems == ('permission denied: Bash {"command": "rm -rf build && make"}',)
    assert "tool: Bash" in result.display


def test_claude_structured_output_is_the_results_structured_output() -> None:
    result = read("claude", "claude_structured.json")
    summary = "The change is correct and tested."
    assert result.structured == {"status": "pass", "findings": [], "summary": summary}
    assert result.usage == TokenUsage(input_tokens=6 + 812, output_tokens=342, cache_tokens=20480,
                                      cost_usd=0.0214)  # fmt: skip


def test_claude_error_results_fail_with_their_subtype_and_message() -> None:
    api_error = json.dumps(
        {"type": "result", "subtype": "success", "is_error": True, "result": "API Error: 500"}
    )
    assert feed("claude", [api_error]).failure == "API Error: 500"
    listed = json.dumps({"type": "result", "subtype": "error_during_execution", "errors": ["tool crashed"]})
    assert feed("claude", [listed]).failure == "error_during_execution: tool crashed"


def test_a_truncated_result_line_yields_no_usage_and_no_outcome() -> None:
    result = read("claude", "claude_truncated.jsonl")
    assert (result.usage, result.completed, result.failure) == (None, False, None)


# -- command -------------------------------------------------------------------------------------------


def test_command_protocol_usage_lines_add_up_and_the_result_line_is_the_structured_result() -> None:
    result = read("command", "command_protocol.jsonl")
    assert result.usage == TokenUsage(input_tokens=1200 + 300, output_tokens=300 + 100, cache_tokens=800,
                                      cost_usd=0.01)  # fmt: skip
    assert result.final_message == "Done: added the widget."
    assert result.structured == {"status": "pass", "findings": []}
    assert result.completed and result.failure is None
    failed = feed("command", [json.dumps({"type": "error", "message": "no API key"})])
    assert failed.failure == "no API key"


def test_command_placeholders_are_filled_once_and_unknown_braces_stay() -> None:
    from kernel.dispatch.agents.command import fill

    values = {"{prompt}": "fix {output} now", "{prompt_file}": "/p.md", "{output}": "/o.log", "{id}": "x1"}
    template = ["{prompt}", "--file={prompt_file}", "{{id}}", "{unknown}{id}", "{", "plain", ""]
    filled = ["fix {output} now", "--file=/p.md", "{x1}", "{unknown}x1", "{", "plain", ""]
    assert fill(template, values) == filled


# -- every kind ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["codex", "claude", "command"])
def test_garbage_negative_and_malformed_usage_is_ignored_by_every_kind(kind: str) -> None:
    assert read(kind, "garbage.txt").usage is None


@pytest.mark.parametrize("kind", ["codex", "claude", "command"])
def test_json_lines_after_a_stray_brace_are_still_read(kind: str) -> None:
    usage_line = {
        "codex": {"type": "turn.completed", "usage": {"input_tokens": 9, "output_tokens": 4}},
        "claude": {"type": "result", "subtype": "success", "usage": {"input_tokens": 9, "output_tokens": 4}},
        "command": {"type": "usage", "input_tokens": 9, "output_tokens": 4},
    }[kind]
    result = feed(kind, ["starting agent... ok", "{not json at all", "  indented", json.dumps(usage_line)])
    assert result.usage == TokenUsage(9, 4)
    assert (result.other_lines, result.json_lines) == (3, 1)


def test_pretty_printed_documents_are_collected_until_their_closing_line() -> None:
    text = (
        '[info] starting\n[\n  {"type": "system"},\n  {"type": "result", "usage": {"input_tokens": 5, '
        '"output_tokens": 1}, "total_cost_usd": 0.1}\n]\n'
    )
    assert feed("claude", text.splitlines()).usage == TokenUsage(5, 1, 0, 0.1)
    cut_off = '{\n  "type": "result",\n  "usage": {"input_tokens": 5'
    assert feed("claude", cut_off.splitlines()).usage is None


def test_missing_or_binary_files(tmp_path: Path) -> None:
    assert agents.read_output("codex", tmp_path / "absent.log") is None
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    result = agents.read_output("claude", blob)
    assert result is not None and result.usage is None


def test_exit_codes_are_described_by_code_or_signal() -> None:
    assert describe_exit(2) == "exited with code 2"
    assert describe_exit(-15) == "killed by SIGTERM (15)"


def test_default_command_lines_read_the_prompt_on_stdin() -> None:
    assert agents.default_argv("codex", model="o3") == ["codex", "exec", "--json", "--model", "o3", "-"]
    assert agents.default_argv("claude") == ["claude", "-p", "--output-format", "json"]
    assert agents.default_argv("aider") is None
