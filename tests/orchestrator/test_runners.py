"""The subprocess wrapper and the output adapters, on real processes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from kernel.dispatch import procs
from orchestrator.config import RunnerConfig
from orchestrator.review import ReviewMissing, parse_review
from orchestrator.runners import make_runner
from orchestrator.runners.base import Invocation, ProcessResult, run_process
from orchestrator.runners.claude import ClaudeParser
from orchestrator.runners.codex import CodexParser
from orchestrator.runners.command import CommandParser


async def run_script(
    tmp_path: Path, script: str, *, timeout: float = 20, stall: float = 20
) -> tuple[ProcessResult, list[tuple[str, str]], list[int]]:
    lines: list[tuple[str, str]] = []
    pids: list[int] = []
    result = await run_process(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=dict(os.environ),
        stdout_log=tmp_path / "raw.log",
        stderr_log=tmp_path / "stderr.log",
        timeout=timeout,
        stall=stall,
        kill_grace=0.5,
        on_start=pids.append,
        on_line=lambda stream, line: lines.append((stream, line)),
    )
    return result, lines, pids


async def test_lines_logs_stdin_and_process_group(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "print('hello'); print('{\"a\": 1}')\n"
        "print('stdin:', sys.stdin.read() == '', 'group:', os.getpgid(0) == os.getpid())\n"
        "sys.stderr.write('warn\\n'); sys.stdout.write('no newline at end')\n"
        "sys.exit(4)\n"
    )
    result, lines, pids = await run_script(tmp_path, script)
    assert result.exit_code == 4
    assert not result.timed_out and not result.stalled
    assert pids == [result.pid]
    stdout = [line for stream, line in lines if stream == "stdout"]
    assert stdout == ["hello", '{"a": 1}', "stdin: True group: True", "no newline at end"]
    assert ("stderr", "warn") in lines
    assert result.stderr_tail == "warn"
    raw = (tmp_path / "raw.log").read_text()
    assert raw == 'hello\n{"a": 1}\nstdin: True group: True\nno newline at end'


async def test_a_huge_json_line_arrives_whole(tmp_path: Path) -> None:
    script = "import json; print(json.dumps({'type': 'message', 'text': 'x' * 3_000_000}))"
    result, lines, _ = await run_script(tmp_path, script)
    assert result.exit_code == 0
    ((_, line),) = lines
    assert json.loads(line)["text"] == "x" * 3_000_000


@pytest.mark.slow
async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    script = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(tmp_path / 'child')!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "while True: print('busy', flush=True); time.sleep(0.2)\n"
    )
    result, lines, _ = await run_script(tmp_path, script, timeout=1.5)
    assert result.timed_out and not result.stalled
    assert result.exit_code is not None and result.exit_code < 0
    child = int((tmp_path / "child").read_text())
    assert not procs.is_alive(child, None)
    assert procs.group_members(result.pid) == []
    assert ("stdout", "started") in lines


@pytest.mark.slow
async def test_silence_is_a_stall(tmp_path: Path) -> None:
    script = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('one', flush=True)\ntime.sleep(60)"
    )
    result, _, _ = await run_script(tmp_path, script, stall=1.0)
    assert result.stalled and not result.timed_out
    assert result.exit_code == -9  # TERM was ignored, so the group got KILL after the grace
    assert procs.group_members(result.pid) == []


async def test_cancellation_takes_the_agent_down(tmp_path: Path) -> None:
    pids: list[int] = []

    def cancel_when_up(stream: str, line: str) -> None:
        if line == "up":
            task.cancel()

    task = asyncio.create_task(
        run_process(
            [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
            cwd=tmp_path, env=dict(os.environ), stdout_log=tmp_path / "o", stderr_log=tmp_path / "e",
            timeout=60, stall=60, kill_grace=0.5, on_start=pids.append,
            on_line=cancel_when_up,
        )
    )  # fmt: skip
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pids and procs.group_members(pids[0]) == []


async def test_missing_program_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        await run_process(
            ["/nonexistent/agent"], cwd=tmp_path, env={}, stdout_log=tmp_path / "o",
            stderr_log=tmp_path / "e", timeout=5, stall=5,
        )  # fmt: skip


# -- adapters -----------------------------------------------------------------------------------------


def feed(parser: CodexParser | ClaudeParser | CommandParser, lines: list[str]) -> list[str | None]:
    return [parser.feed(line) for line in lines]


def test_codex_final_message_usage_and_noise() -> None:
    parser = CodexParser()
    shown = feed(
        parser,
        [
            "Reading prompt from stdin...",
            json.dumps({"type": "thread.started", "thread_id": "t"}),
            json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": "first"}}),
            json.dumps({"type": "item.completed", "item": {"type": "command_execution", "command": "ls",
                                                           "exit_code": 0}}),
            json.dumps({"type": "turn.completed", "usage": {"input_tokens": 10, "cached_input_tokens": 4,
                                                            "output_tokens": 3}}),
            json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": "final"}}),
            json.dumps({"type": "turn.completed", "usage": {"input_tokens": 5, "output_tokens": 2}}),
            '{"type": "item.completed", "item": {"type": "agent_mess',
            json.dumps(["not", "an", "object"]),
            json.dumps({"type": "item.completed", "item": None}),
            json.dumps({"type": "item.completed", "item": {"type": "error", "message": "retrying"}}),
        ],
    )  # fmt: skip
    out = parser.result()
    assert out.final_message == "final"
    assert shown[-1] == "warning: retrying"
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.cache_tokens) == (15, 5, 4)
    assert out.error is None
    assert out.other_lines == 3 and out.json_lines == 8
    assert "$ ls (exit 0)" in shown


def test_codex_failure_and_legacy_messages() -> None:
    parser = CodexParser()
    feed(parser, [json.dumps({"id": "0", "msg": {"type": "agent_message", "message": "old style"}})])
    assert parser.result().final_message == "old style"
    feed(parser, [json.dumps({"type": "turn.failed", "error": {"message": "rate limited"}})])
    assert parser.result().error == "rate limited"


USAGE = {
    "input_tokens": 7,
    "cache_creation_input_tokens": 3,
    "cache_read_input_tokens": 11,
    "output_tokens": 9,
}


def test_claude_result_line() -> None:
    parser = ClaudeParser()
    shown = feed(
        parser,
        [
            json.dumps({"type": "system", "subtype": "init"}),
            json.dumps({"type": "assistant", "message": {"content": [
                {"type": "text", "text": "thinking"}, {"type": "tool_use", "name": "Edit"}]}}),
            json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "all done",
                        "total_cost_usd": 0.25, "usage": USAGE}),
        ],
    )  # fmt: skip
    out = parser.result()
    assert shown[1] == "thinking\ntool: Edit"
    assert out.final_message == "all done"
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.cache_tokens) == (10, 9, 11)
    assert out.usage.cost_usd == 0.25
    assert out.error is None
    errored = ClaudeParser()
    feed(errored, [json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True})])
    assert errored.result().error == "error_max_turns"


def test_command_protocol_sums_usage() -> None:
    parser = CommandParser()
    feed(
        parser,
        [
            json.dumps({"type": "message", "text": "m1"}),
            json.dumps({"type": "usage", "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.5}),
            json.dumps({"type": "usage", "input_tokens": 3, "output_tokens": 4, "cache_tokens": 5}),
            json.dumps({"type": "result", "result": {"status": "pass"}}),
            "plain text",
        ],
    )
    out = parser.result()
    assert (out.final_message, out.structured) == ("m1", {"status": "pass"})
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.cache_tokens) == (4, 6, 5)
    assert out.usage.cost_usd == 0.5


def test_argv_of_each_runner(tmp_path: Path) -> None:
    inv = Invocation("do {issue} it", tmp_path / "p.md", "7", "fix", 1, 2, tmp_path, "run1")
    codex = make_runner(RunnerConfig(kind="codex", model="m")).argv(inv)
    assert codex == ["codex", "exec", "--json", "--model", "m", "--full-auto", "--", "do {issue} it"]
    claude = make_runner(RunnerConfig(kind="claude", args=[])).argv(inv)
    assert claude == ["claude", "-p", "--output-format", "stream-json", "--verbose", "--", "do {issue} it"]
    command = make_runner(RunnerConfig(kind="command", command=["a", "{issue}:{phase}:{cycle}", "{prompt}"]))
    assert command.argv(inv) == ["a", "7:fix:1", "do {issue} it"]


# -- review verdicts ----------------------------------------------------------------------------------


def test_verdict_from_plain_fenced_and_embedded_json() -> None:
    assert parse_review(None, '{"status": "pass", "findings": []}').status == "pass"
    fenced = 'Here you go:\n```json\n{"status": "fail", "findings": ["no tests"]}\n```\nbye'
    verdict = parse_review(None, fenced)
    assert verdict.status == "fail" and verdict.findings[0].message == "no tests"
    embedded = 'I checked {"x": 1} and conclude {"status": "pass", "summary": "ok", "findings": []}.'
    assert parse_review(None, embedded).summary == "ok"
    structured = parse_review(
        {"status": "fail", "findings": [{"message": "bug", "file": "a.py", "line": 2}]}, "prose"
    )
    assert structured.findings[0].describe() == "a.py:2: bug"


@pytest.mark.parametrize(
    ("structured", "message", "expected"),
    [
        (None, None, "no final message"),
        (None, "Looks good to me!", "holds no JSON verdict"),
        (None, '{"status": "maybe"}', "invalid: status"),
        (None, '{"status": "fail", "findings": [{"severity": "high"}]}', "invalid: findings.0.message"),
        (None, '{"status": "pass", "findings": [', "holds no JSON verdict"),
    ],
)
def test_missing_or_invalid_verdict_is_infrastructure(
    structured: object, message: str | None, expected: str
) -> None:
    with pytest.raises(ReviewMissing, match=expected):
        parse_review(structured, message)
