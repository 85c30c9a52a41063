"""Token usage parsed from recorded Codex and Claude Code outputs (tests/fixtures), noise included."""

from __future__ import annotations

from pathlib import Path

from kernel.dispatch.tokens import TokenUsage, parse_file, parse_text
from tests.fixtures.dispatching import FIXTURES


def test_codex_exec_json_stream_takes_the_turn_completed_usage() -> None:
    assert parse_file(FIXTURES / "codex_exec.jsonl") == TokenUsage(24763, 122, 24448, None)


def test_codex_last_turn_wins_across_noise_and_a_cut_off_last_line() -> None:
    assert parse_file(FIXTURES / "codex_exec_multi.jsonl") == TokenUsage(26549, 1590, 22272, None)


def test_claude_json_result_counts_cache_reads_and_writes_as_input_and_keeps_the_cost() -> None:
    usage = parse_file(FIXTURES / "claude_json.json")
    assert usage == TokenUsage(input_tokens=4 + 13456 + 5123, output_tokens=287, cache_tokens=13456,
                               cost_usd=0.0421937)  # fmt: skip


def test_claude_stream_json_uses_the_final_result_line_not_the_per_message_usage() -> None:
    usage = parse_file(FIXTURES / "claude_stream.jsonl")
    assert usage == TokenUsage(input_tokens=10 + 18000 + 2100, output_tokens=410, cache_tokens=18000,
                               cost_usd=0.0187)  # fmt: skip


def test_a_truncated_result_line_yields_nothing() -> None:
    assert parse_file(FIXTURES / "claude_truncated.jsonl") is None


def test_garbage_negative_and_malformed_usage_are_ignored() -> None:
    assert parse_file(FIXTURES / "garbage.txt") is None


def test_pretty_printed_claude_result_after_log_lines() -> None:
    text = (
        'warming up\n{\n  "type": "result",\n  "total_cost_usd": 0.5,\n  "usage": {"input_tokens": 9, '
        '"output_tokens": 4}\n}\n'
    )
    assert parse_text(text) == TokenUsage(9, 4, 0, 0.5)


def test_missing_or_binary_files_parse_to_nothing(tmp_path: Path) -> None:
    assert parse_file(tmp_path / "absent.log") is None
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    assert parse_file(blob) is None


def test_claude_verbose_json_array_takes_the_result_element() -> None:
    # `claude -p --output-format json --verbose` prints every message as one JSON array.
    usage = parse_file(FIXTURES / "claude_json_verbose.json")
    assert usage == TokenUsage(input_tokens=12 + 7000 + 1500, output_tokens=230, cache_tokens=7000,
                               cost_usd=0.0311)  # fmt: skip


def test_pretty_printed_array_after_log_lines_with_brackets() -> None:
    text = '[info] starting\n[\n  {"type": "system"},\n  {"type": "result", "usage": {"input_tokens": 5, ' \
        '"output_tokens": 1}, "total_cost_usd": 0.1}\n]\n'  # fmt: skip
    assert parse_text(text) == TokenUsage(5, 1, 0, 0.1)


def test_an_error_result_still_counts_and_null_fields_count_zero() -> None:
    assert parse_file(FIXTURES / "claude_error_max_turns.json") == TokenUsage(40, 1200, 0, 0.12)


def test_a_codex_run_whose_turn_failed_reports_nothing() -> None:
    assert parse_file(FIXTURES / "codex_exec_failed.jsonl") is None
