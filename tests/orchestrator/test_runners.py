"""The subprocess wrapper and the output adapters, on real processes."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kernel.dispatch import agents, procs
from orchestrator.config import RunnerConfig
from orchestrator.review import VERDICT_SCHEMA, VerdictError, read_verdict
from orchestrator.runners import make_runner
from orchestrator.runners.base import Invocation, ProcessResult, ReaperService, StartFailed, run_process
from tests.fixtures.dispatching import FIXTURES


@pytest.fixture
async def reapers() -> AsyncIterator[ReaperService]:
    """The run's reaper service, as the orchestrator keeps one per run."""
    service = ReaperService()
    yield service
    await service.close()


async def run_script(
    reapers: ReaperService, tmp_path: Path, script: str, *, timeout: float = 20, stall: float = 20
) -> tuple[ProcessResult, list[tuple[str, str]], list[int]]:
    lines: list[tuple[str, str]] = []
    pids: list[int] = []

    async def started(pid: int) -> None:
        pids.append(pid)

    result = await run_process(
        [sys.executable, "-c", script],
        service=reapers,
        cwd=tmp_path,
        env=dict(os.environ),
        stdout_log=tmp_path / "raw.log",
        stderr_log=tmp_path / "stderr.log",
        timeout=timeout,
        stall=stall,
        kill_grace=0.5,
        on_start=started,
        on_line=lambda stream, line: lines.append((stream, line)),
    )
    return result, lines, pids


async def test_lines_logs_stdin_and_process_group(reapers: ReaperService, tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "print('hello'); print('{\"a\": 1}')\n"
        "print('stdin:', sys.stdin.read() == '', 'group:', os.getpgid(0) == os.getpid())\n"
        "sys.stderr.write('warn\\n'); sys.stdout.write('no newline at end')\n"
        "sys.exit(4)\n"
    )
    result, lines, pids = await run_script(reapers, tmp_path, script)
    assert result.exit_code == 4
    assert not result.timed_out and not result.stalled
    assert pids == [result.pid]
    stdout = [line for stream, line in lines if stream == "stdout"]
    assert stdout == ["hello", '{"a": 1}', "stdin: True group: True", "no newline at end"]
    assert ("stderr", "warn") in lines
    assert result.stderr_tail == "warn"
    raw = (tmp_path / "raw.log").read_text()
    assert raw == 'hello\n{"a": 1}\nstdin: True group: True\nno newline at end'


async def test_a_huge_json_line_arrives_whole(reapers: ReaperService, tmp_path: Path) -> None:
    script = "import json; print(json.dumps({'type': 'message', 'text': 'x' * 3_000_000}))"
    result, lines, _ = await run_script(reapers, tmp_path, script)
    assert result.exit_code == 0
    ((_, line),) = lines
    assert json.loads(line)["text"] == "x" * 3_000_000


@pytest.mark.slow
async def test_timeout_kills_the_whole_group(reapers: ReaperService, tmp_path: Path) -> None:
    script = (
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(tmp_path / 'child')!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "while True: print('busy', flush=True); time.sleep(0.2)\n"
    )
    result, lines, _ = await run_script(reapers, tmp_path, script, timeout=1.5)
    assert result.timed_out and not result.stalled
    assert result.exit_code is not None and result.exit_code < 0
    child = int((tmp_path / "child").read_text())
    assert not procs.is_alive(child, None)
    assert procs.group_members(result.pid) == []
    assert ("stdout", "started") in lines


@pytest.mark.slow
async def test_silence_is_a_stall(reapers: ReaperService, tmp_path: Path) -> None:
    script = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('one', flush=True)\ntime.sleep(60)"
    )
    result, _, _ = await run_script(reapers, tmp_path, script, stall=1.0)
    assert result.stalled and not result.timed_out
    assert result.exit_code == -9  # TERM was ignored, so the group got KILL after the grace
    assert procs.group_members(result.pid) == []


async def test_cancellation_takes_the_agent_down(reapers: ReaperService, tmp_path: Path) -> None:
    pids: list[int] = []

    async def started(pid: int) -> None:
        pids.append(pid)

    def cancel_when_up(stream: str, line: str) -> None:
        if line == "up":
            task.cancel()

    task = asyncio.create_task(
        run_process(
            [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
            service=reapers, cwd=tmp_path, env=dict(os.environ), stdout_log=tmp_path / "o",
            stderr_log=tmp_path / "e", timeout=60, stall=60, kill_grace=0.5, on_start=started,
            on_line=cancel_when_up,
        )
    )  # fmt: skip
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pids and procs.group_members(pids[0]) == []


async def test_missing_program_cannot_start(reapers: ReaperService, tmp_path: Path) -> None:
    with pytest.raises(StartFailed, match="cannot start '/nonexistent/agent': No such file or directory"):
        await run_process(
            ["/nonexistent/agent"], service=reapers, cwd=tmp_path, env={}, stdout_log=tmp_path / "o",
            stderr_log=tmp_path / "e", timeout=5, stall=5,
        )  # fmt: skip


async def test_an_agent_that_exits_while_a_background_child_holds_its_stdout_is_not_a_timeout(
    reapers: ReaperService, tmp_path: Path
) -> None:
    # The child inherits stdout and sleeps: the pipe stays open after the agent exits.
    script = (
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '120'])\n"
        f"open({str(tmp_path / 'child')!r}, 'w').write(str(child.pid))\n"
        "print('done', flush=True)\n"
    )
    result, lines, _ = await run_script(reapers, tmp_path, script, timeout=30, stall=30)
    assert (result.exit_code, result.timed_out, result.stalled) == (0, False, False)
    assert result.leftovers == 1  # ended after the drain, with the phase
    assert ("stdout", "done") in lines
    assert not procs.is_alive(int((tmp_path / "child").read_text()), None)


async def test_a_setsid_daemon_does_not_outlive_the_phase(reapers: ReaperService, tmp_path: Path) -> None:
    # The classic escape from a process-group kill: a double fork into a new session.
    script = (
        "import os, subprocess, sys\n"
        'code = \'import subprocess, sys; p = subprocess.Popen(["sleep", "600"], start_new_session=True, '
        'stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); open(sys.argv[1], "w").write(str(p.pid))\'\n'
        f"subprocess.run([sys.executable, '-c', code, {str(tmp_path / 'daemon')!r}], check=True)\n"
        "print('daemonized', 'session leader:', os.getsid(0) == os.getpid(), flush=True)\n"
    )
    result, lines, _ = await run_script(reapers, tmp_path, script)
    daemon = int((tmp_path / "daemon").read_text())
    assert result.exit_code == 0
    assert ("stdout", "daemonized session leader: True") in lines  # the agent led its own session ...
    assert not procs.is_alive(daemon, None)  # ... and its daemon, in another one, was ended too
    assert result.leftovers == 1


# -- runners: the kernel's agent definitions with the orchestrator's choices ------------------------


def invocation(tmp_path: Path, prompt: str = "do {issue} it") -> Invocation:
    prompt_file = tmp_path / "p.md"
    prompt_file.write_text(prompt)
    return Invocation(prompt, prompt_file, "7", "fix", 1, 2, tmp_path, "run1")


def test_argv_and_stdin_of_each_runner(tmp_path: Path) -> None:
    inv = invocation(tmp_path)
    codex = make_runner(RunnerConfig(kind="codex", model="m", args=["-c", "x=1"]))
    assert codex.argv(inv) == [
        "codex", "exec", "--json", "--model", "m", "--sandbox", "workspace-write", "-c", "x=1", "-",
    ]  # fmt: skip
    assert codex.stdin(inv) == inv.prompt_file
    claude = make_runner(RunnerConfig(kind="claude", executable=["/opt/claude"]))
    assert claude.argv(inv) == [
        "/opt/claude", "-p", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits", "--allowedTools", "Bash",  # dev and fix may run the tests
    ]  # fmt: skip
    assert claude.stdin(inv) == inv.prompt_file
    command = make_runner(RunnerConfig(kind="command", command=["a", "{issue}:{phase}:{cycle}", "{prompt}"]))
    assert command.argv(inv) == ["a", "7:fix:1", "do {issue} it"]  # one pass: the prompt's {issue} stays
    assert command.stdin(inv) is None


def test_reviews_are_read_only_and_answer_in_the_verdict_schema(tmp_path: Path) -> None:
    schema = tmp_path / "verdict.schema.json"
    schema.write_text(json.dumps(VERDICT_SCHEMA))
    inv = dataclasses.replace(invocation(tmp_path), phase="review", verdict_schema=schema)
    codex = make_runner(RunnerConfig(kind="codex")).argv(inv)
    assert codex == ["codex", "exec", "--json", "--sandbox", "read-only", "--output-schema", str(schema), "-"]
    claude = make_runner(RunnerConfig(kind="claude")).argv(inv)
    assert claude[claude.index("--permission-mode") + 1] == "default"
    assert claude[claude.index("--disallowedTools") + 1] == "Edit,MultiEdit,Write,NotebookEdit"
    assert json.loads(claude[claude.index("--json-schema") + 1]) == VERDICT_SCHEMA
    command = make_runner(RunnerConfig(kind="command", command=["a", "--schema={verdict_schema}"]))
    assert command.argv(inv) == ["a", f"--schema={schema}"]
    assert command.env(inv)["ORCHESTRATOR_VERDICT_SCHEMA"] == str(schema)
    assert make_runner(RunnerConfig(kind="codex")).parser("review").result().structured is None


@pytest.mark.parametrize(
    ("kind", "args", "flag"),
    [("codex", ["--full-auto"], "--full-auto"), ("codex", ["--sandbox=danger-full-access"], "--sandbox"),
     ("claude", ["--permission-mode", "bypassPermissions"], "--permission-mode"),
     ("claude", ["--dangerously-skip-permissions"], "--dangerously-skip-permissions")],
)  # fmt: skip
def test_phase_permission_flags_are_refused_in_runner_args(kind: str, args: list[str], flag: str) -> None:
    with pytest.raises(ValueError, match=f"args: {flag} is set by the orchestrator for each phase"):
        RunnerConfig(kind=kind, args=args)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["codex", "claude"])
async def test_a_200_kib_prompt_reaches_codex_and_claude_on_stdin(
    reapers: ReaperService, tmp_path: Path, kind: str
) -> None:
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
        runner.argv(inv), service=reapers, cwd=tmp_path, env=runner.env(inv), stdout_log=tmp_path / "o",
        stderr_log=tmp_path / "e", timeout=20, stall=20, stdin_file=runner.stdin(inv),
        on_line=lambda stream, line: lines.append(line) if stream == "stdout" else None,
    )  # fmt: skip
    assert result.exit_code == 0
    seen = json.loads(lines[0])
    assert (seen["size"], seen["sha"]) == (len(prompt.encode()), hashlib.sha256(prompt.encode()).hexdigest())
    assert prompt not in seen["argv"]


def test_each_runner_parses_with_the_kernels_parser_for_its_kind() -> None:
    codex = make_runner(RunnerConfig(kind="codex")).parser("dev")
    shown = [codex.feed(line) for line in (FIXTURES / "codex_reconnect.jsonl").read_text().splitlines()]
    assert "edited /tmp/proj/parser.py" in shown
    from_file = agents.read_output("codex", FIXTURES / "codex_reconnect.jsonl")
    assert from_file is not None and codex.result().usage == from_file.usage
    claude = make_runner(RunnerConfig(kind="claude")).parser("dev")
    claude.feed_lines((FIXTURES / "claude_stream.jsonl").read_text().splitlines())
    assert claude.result().final_message == "All three tests pass."
    command = make_runner(RunnerConfig(kind="command", command=["x"])).parser("review")
    command.feed_lines((FIXTURES / "command_protocol.jsonl").read_text().splitlines())
    assert command.result().structured == {"status": "pass", "findings": []}


# -- review verdicts ----------------------------------------------------------------------------------


def test_the_verdict_is_the_structured_answer_with_harmless_variants_normalised_and_recorded() -> None:
    plain = read_verdict({"status": "pass", "summary": "ok", "findings": []}, channel="c")
    assert (plain.verdict.status, plain.verdict.summary, plain.normalised) == ("pass", "ok", ())
    lenient = read_verdict(
        {"status": " FAIL ", "findings": [
            {"description": "off by one", "file": "a.py", "line": "12-15", "severity": "high"},
            "no test",
        ]},
        channel="c",
    )  # fmt: skip
    assert lenient.verdict.status == "fail"
    assert [f.describe() for f in lenient.verdict.findings] == ["[high] a.py:12-15: off by one", "no test"]
    assert lenient.normalised == (
        "status ' FAIL ' read as 'fail'",
        "finding 0: `description` read as `message`",
        "finding 0: line '12-15' read as line 12, end_line 15",
        "finding 1 given as text, read as its message",
    )


@pytest.mark.parametrize(
    ("structured", "conflict", "expected"),
    [
        (None, False, "gave no structured verdict"),
        ("pass", False, "is not a JSON object"),
        ({"status": "maybe"}, False, "invalid: status"),
        ({"status": "fail", "findings": [{"severity": "high"}]}, False, "invalid: findings.0.message"),
        ({"status": "fail", "findings": []}, False, "contradictory: status fail with no finding to fix"),
        ({"status": "pass", "findings": []}, True, "contradictory verdicts"),
    ],
)
def test_a_missing_invalid_or_contradictory_verdict_is_an_infrastructure_failure(
    structured: object, conflict: bool, expected: str
) -> None:
    with pytest.raises(VerdictError, match=expected):
        read_verdict(structured, conflict=conflict, channel="c")


def test_json_in_a_reviews_prose_is_never_a_verdict() -> None:
    # The reproduction: a fail verdict, then an example holding "status": "pass". Only the structured
    # channel counts, and here (a codex review whose final message is prose) there is none.
    prose = 'Verdict: {"status": "fail", "findings": ["x"]}. A passing one looks like {"status": "pass"}.'
    lines = [
        json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": prose}}),
        json.dumps({"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 1}}),
    ]
    parser = make_runner(RunnerConfig(kind="codex")).parser("review")
    parser.feed_lines(lines)
    out = parser.result()
    with pytest.raises(VerdictError, match="gave no structured verdict"):
        read_verdict(out.structured, conflict=out.structured_conflict, channel="codex")
