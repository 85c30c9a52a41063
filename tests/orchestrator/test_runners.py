"""The subprocess wrapper and the output adapters, on real processes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from kernel.dispatch import agents, procs
from orchestrator.config import RunnerConfig
from orchestrator.review import ReviewMissing, parse_review
from orchestrator.runners import make_runner
from orchestrator.runners.base import Invocation, ProcessResult, run_process
from tests.fixtures.dispatching import FIXTURES


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


# -- runners: the kernel's agent definitions with the orchestrator's choices ------------------------


def invocation(tmp_path: Path, prompt: str = "do {issue} it") -> Invocation:
    prompt_file = tmp_path / "p.md"
    prompt_file.write_text(prompt)
    return Invocation(prompt, prompt_file, "7", "fix", 1, 2, tmp_path, "run1")


def test_argv_and_stdin_of_each_runner(tmp_path: Path) -> None:
    inv = invocation(tmp_path)
    codex = make_runner(RunnerConfig(kind="codex", model="m"))
    assert codex.argv(inv) == ["codex", "exec", "--json", "--model", "m", "--full-auto", "-"]
    assert codex.stdin(inv) == inv.prompt_file
    claude = make_runner(RunnerConfig(kind="claude", args=[], executable=["/opt/claude"]))
    assert claude.argv(inv) == ["/opt/claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert claude.stdin(inv) == inv.prompt_file
    command = make_runner(RunnerConfig(kind="command", command=["a", "{issue}:{phase}:{cycle}", "{prompt}"]))
    assert command.argv(inv) == ["a", "7:fix:1", "do {issue} it"]  # one pass: the prompt's {issue} stays
    assert command.stdin(inv) is None


@pytest.mark.parametrize("kind", ["codex", "claude"])
async def test_a_200_kib_prompt_reaches_codex_and_claude_on_stdin(tmp_path: Path, kind: str) -> None:
    # As an argument it would fail the exec ("Argument list too long": Linux allows 128 KiB per argument).
    prompt = ("Refactor the parser. " * 10_000)[: 200 * 1024]
    inv = invocation(tmp_path, prompt)
    script = tmp_path / "agent.py"
    script.write_text(
        "import hashlib, json, sys\n"
        "data = sys.stdin.buffer.read()\n"
        "print(json.dumps({'type': 'note', 'size': len(data), 'sha': hashlib.sha256(data).hexdigest(),"
        " 'argv': sys.argv[1:]}))\n"
    )
    runner = make_runner(RunnerConfig(kind=kind, executable=[sys.executable, str(script)]))
    lines: list[str] = []
    result = await run_process(
        runner.argv(inv), cwd=tmp_path, env=runner.env(inv), stdout_log=tmp_path / "o",
        stderr_log=tmp_path / "e", timeout=20, stall=20, stdin_file=runner.stdin(inv),
        on_line=lambda stream, line: lines.append(line) if stream == "stdout" else None,
    )  # fmt: skip
    assert result.exit_code == 0
    seen = json.loads(lines[0])
    assert (seen["size"], seen["sha"]) == (len(prompt.encode()), hashlib.sha256(prompt.encode()).hexdigest())
    assert prompt not in seen["argv"]


def test_each_runner_parses_with_the_kernels_parser_for_its_kind() -> None:
    codex = make_runner(RunnerConfig(kind="codex")).parser()
    shown = [codex.feed(line) for line in (FIXTURES / "codex_reconnect.jsonl").read_text().splitlines()]
    assert "edited /tmp/proj/parser.py" in shown
    from_file = agents.read_output("codex", FIXTURES / "codex_reconnect.jsonl")
    assert from_file is not None and codex.result().usage == from_file.usage
    claude = make_runner(RunnerConfig(kind="claude")).parser()
    claude.feed_lines((FIXTURES / "claude_stream.jsonl").read_text().splitlines())
    assert claude.result().final_message == "All three tests pass."
    command = make_runner(RunnerConfig(kind="command", command=["x"])).parser()
    command.feed_lines((FIXTURES / "command_protocol.jsonl").read_text().splitlines())
    assert command.result().structured == {"status": "pass", "findings": []}


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
