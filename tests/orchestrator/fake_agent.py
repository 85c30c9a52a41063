"""A scripted coding agent: a real process that prints what codex, claude or a command runner print.

Run as `fake_agent.py --shape codex|claude|command [runner arguments...]`. What it does is read from
the scenario file named by FAKE_SCENARIO:

    {"issues": {"<issue id>": {"dev": [step, ...], "review": [step, ...], "fix": [step, ...]}}}

The n-th call for an (issue, phase) plays the n-th step (the last one repeats); the call counters
live in FAKE_STATE, which also receives `calls.jsonl` (one line per call: argv, cwd, env, and what
came on stdin: its size and sha256, or that it was /dev/null).

A review's verdict travels on the structured channel the real tool uses, and only when the runner
asked for it as the real tool requires: Codex prints it as its final agent message when its argv has
`--output-schema FILE`; Claude Code puts it in the result's `structured_output` when its argv has
`--json-schema`; a command runner prints `{"type": "result", "result": ...}`. Its prose (`message`)
is printed as a message either way. A step is an object with any of:

    record_files  list the worktree's files at the start (FAKE_STATE/files-<issue>-<phase>.json)
    write      {"path": "content"} files written in the working directory (the worktree)
    git_commit commit them with git itself
    nochange   write nothing (by default dev and fix write `work-<issue>.txt`)
    verdict    a review answer (object), "none" for a review that gives no structured answer, or a
               list of answers (a command runner printing several result lines)
    message    the final message text (default: a short note, or the verdict as JSON)
    usage      {"input_tokens": 10, "output_tokens": 5, "cache_tokens": 2, "cost_usd": 0.01}, in the
               kernel's meaning (input: fresh prompt tokens; cache: read from a cache), printed in
               each agent's own terms (codex's input_tokens include the cached ones)
    emit       the name of a recorded output in tests/fixtures, printed verbatim instead
    garbage    lines of non-JSON noise printed first (e.g. an HTML error page)
    reconnect  Codex: print the stream-retry error line `Reconnecting... 1/5` before recovering
    denials    Claude: tools whose use was denied (the result's permission_denials)
    auth       the agent's login is refused, printed as each tool prints it, exit 1
    truncate   cut the line carrying the final answer in half (no newline), stop there, exit 0
    exit       exit code (a crash, with a line on stderr: `crash_line`, or a default one)
    exit_after exit code after printing everything normally (a completed turn, then a non-zero exit)
    ignore_term  ignore SIGTERM, so only the KILL after the grace period ends the agent
    hang       seconds to keep printing after starting a child (`sleep`) in the same process group
    stall      seconds to stay silent after a first line (after a usage line with `early_usage`)
    background seconds a child started last keeps the agent's stdout open after the agent exits
    daemon     double-fork a `setsid` sleeper (pid to FAKE_STATE/daemon-<issue>-<phase>.pid)
    marker     a file name (in FAKE_STATE) written once the step has started
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

DEFAULT_USAGE = {"input_tokens": 100, "output_tokens": 20, "cache_tokens": 10, "cost_usd": 0.001}
AUTH_LINES = {
    "codex": [
        {"type": "thread.started", "thread_id": "th_fake"},
        {"type": "turn.started"},
        {"type": "error", "message": "Reconnecting... 1/5 (unexpected status 401 Unauthorized)"},
        {
            "type": "error",
            "message": "unexpected status 401 Unauthorized: Missing bearer or basic authentication",
        },
    ],
    "command": [{"type": "error", "message": "token expired; log in again", "auth": True}],
}
DAEMON = """
import subprocess, sys
sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
open(sys.argv[1], "w").write(str(sleeper.pid))
"""


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def next_step(state: Path, issue: str, phase: str, scenario: dict[str, Any]) -> tuple[dict[str, Any], int]:
    steps = scenario.get("issues", {}).get(issue, {}).get(phase) or [{}]
    counter = state / f"count-{issue}-{phase}"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    return steps[min(n, len(steps) - 1)], n


def read_stdin() -> dict[str, Any]:
    """What came on stdin: /dev/null, or a file or pipe read to its end (never a terminal)."""
    info = os.fstat(0)
    if os.path.samestat(info, os.stat(os.devnull)):
        return {"stdin_is_devnull": True, "stdin_size": 0, "stdin_sha256": None}
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        return {"stdin_is_devnull": False, "stdin_size": None, "stdin_sha256": None}
    data = sys.stdin.buffer.read()
    digest = hashlib.sha256(data).hexdigest()
    return {"stdin_is_devnull": False, "stdin_size": len(data), "stdin_sha256": digest}


def main() -> int:
    args = sys.argv[1:]
    shape = args[args.index("--shape") + 1] if "--shape" in args else "command"
    state = Path(os.environ["FAKE_STATE"])
    state.mkdir(parents=True, exist_ok=True)
    scenario_file = os.environ.get("FAKE_SCENARIO")
    scenario = json.loads(Path(scenario_file).read_text()) if scenario_file else {}
    issue = os.environ.get("ORCHESTRATOR_ISSUE", "?")
    phase = os.environ.get("ORCHESTRATOR_PHASE", "dev")
    step, n = next_step(state, issue, phase, scenario)
    with open(state / "calls.jsonl", "a") as fh:
        fh.write(
            json.dumps(
                {
                    "issue": issue,
                    "phase": phase,
                    "call": n,
                    "argv": sys.argv,
                    "cwd": os.getcwd(),
                    **read_stdin(),
                    "pgid_is_pid": os.getpgid(0) == os.getpid(),
                    "cycle": os.environ.get("ORCHESTRATOR_CYCLE"),
                    "attempt": os.environ.get("ORCHESTRATOR_ATTEMPT"),
                    "run_id": os.environ.get("ORCHESTRATOR_RUN_ID"),
                    "prompt_file": os.environ.get("ORCHESTRATOR_PROMPT_FILE"),
                    "verdict_schema": os.environ.get("ORCHESTRATOR_VERDICT_SCHEMA"),
                }
            )
            + "\n"
        )
    if step.get("record_files"):  # what the worktree held when the agent started
        found = sorted(str(p) for p in Path(".").rglob("*") if p.is_file() and ".git" not in p.parts)
        (state / f"files-{issue}-{phase}.json").write_text(json.dumps(found))
    if step.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if step.get("marker"):  # written whole, then renamed: a reader never sees it empty
        marker = state / step["marker"]
        marker.with_name(f"{marker.name}.part").write_text(str(os.getpid()))
        os.replace(marker.with_name(f"{marker.name}.part"), marker)
    for line in step.get("garbage", []):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    usage = {**DEFAULT_USAGE, **step.get("usage", {})}
    if "hang" in step:
        child = subprocess.Popen(["sleep", str(step["hang"])])
        (state / f"child-{issue}-{phase}.pid").write_text(str(child.pid))
        deadline = time.monotonic() + float(step["hang"])
        while time.monotonic() < deadline:  # busy, never silent: only the wall-clock timeout stops it
            emit({"type": "note", "text": "working hard"})
            time.sleep(0.25)
    if "stall" in step:
        if step.get("early_usage"):  # a command runner reports what it used so far, then thinks
            emit({"type": "usage", **{k: v for k, v in usage.items() if k != "cost_usd"}})
        else:
            emit({"type": "note", "text": "thinking"})
        time.sleep(float(step["stall"]))
    if step.get("daemon"):
        pidfile = state / f"daemon-{issue}-{phase}.pid"
        subprocess.run([sys.executable, "-c", DAEMON, str(pidfile)], check=True)
    for rel, content in (step.get("write") or {}).items():
        target = Path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    if step.get("git_commit"):  # the agent commits on its own (a reviewer should not)
        subprocess.run(["git", "add", "-A"], check=True)
        subprocess.run(["git", "commit", "-qm", "agent's own commit"], check=True)
    quiet = "write" in step or "exit" in step or step.get("nochange") or step.get("auth")
    if phase != "review" and not quiet:
        Path(f"work-{issue}.txt").write_text(f"{phase} call {n}\n", encoding="utf-8")
    if step.get("auth"):
        return refused_login(shape)
    verdict = step.get("verdict", {"status": "pass", "findings": []} if phase == "review" else None)
    if verdict == "none":
        verdict = None
    message = step.get("message")
    if message is None:
        shown = verdict[-1] if isinstance(verdict, list) else verdict
        message = json.dumps(shown) if shown is not None else f"{phase} done for {issue}"
    if "exit" in step:
        sys.stderr.write(step.get("crash_line", f"fake agent: crashing with exit code {step['exit']}") + "\n")
        return int(step["exit"])
    if "emit" in step:
        sys.stdout.write((FIXTURES / step["emit"]).read_text())
        sys.stdout.flush()
        return 0
    answers = verdict if isinstance(verdict, list) else [verdict] if verdict is not None else []
    lines = shaped(shape, args, message, usage, answers if phase == "review" else [], step)
    if step.get("truncate"):  # the line carrying the final answer is cut off mid-JSON
        cut = {"codex": 3, "claude": 4}.get(shape, 0)
        for line in lines[:cut]:
            emit(line)
        text = json.dumps(lines[cut])
        sys.stdout.write(text[: len(text) // 2])
        sys.stdout.flush()
        return 0
    for line in lines:
        emit(line)
    if "background" in step:  # a child inherits stdout and outlives the agent
        child = subprocess.Popen(["sleep", str(step["background"])])
        (state / f"background-{issue}-{phase}.pid").write_text(str(child.pid))
    return int(step.get("exit_after", 0))


def refused_login(shape: str) -> int:
    if shape == "claude":
        sys.stdout.write((FIXTURES / "claude_auth_failed.jsonl").read_text())
    else:
        for line in AUTH_LINES[shape]:
            emit(line)
    sys.stdout.flush()
    return 1


def shaped(
    shape: str, argv: list[str], message: str, usage: dict[str, Any], answers: list[Any], step: dict[str, Any]
) -> list[dict[str, Any]]:
    if shape == "codex":
        final = json.dumps(answers[-1]) if answers and "--output-schema" in argv else message
        lines: list[dict[str, Any]] = [
            {"type": "thread.started", "thread_id": "th_fake"},
            {"type": "turn.started"},
            {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "hmm"}},
        ]
        if step.get("reconnect"):
            lines.insert(
                2, {"type": "error", "message": "Reconnecting... 1/5 (stream disconnected before completion)"}
            )
        if final != message:
            lines.append(
                {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": message}}
            )
        lines += [
            {"type": "item.completed", "item": {"id": "item_2", "type": "agent_message", "text": final}},
            {
                "type": "turn.completed",
                "usage": {
                    "input_tokens": usage["input_tokens"] + usage["cache_tokens"],
                    "cached_input_tokens": usage["cache_tokens"],
                    "output_tokens": usage["output_tokens"],
                },
            },
        ]
        return lines
    if shape == "claude":  # stream-json with --verbose: init, assistant turns, tool results, result
        result: dict[str, Any] = {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": message,
            "total_cost_usd": usage["cost_usd"],
            "usage": {
                "input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": usage["cache_tokens"],
                "output_tokens": usage["output_tokens"],
            },
            "permission_denials": [
                {"tool_name": tool, "tool_use_id": f"toolu_{i}", "tool_input": {"command": "make test"}}
                for i, tool in enumerate(step.get("denials", []))
            ],
        }
        if answers and "--json-schema" in argv:
            result["structured_output"] = answers[-1]
        read = {"type": "tool_use", "id": "toolu_a", "name": "Read", "input": {"file_path": "README.md"}}
        seen = {"type": "tool_result", "tool_use_id": "toolu_a", "content": "# demo"}
        return [
            {"type": "system", "subtype": "init", "session_id": "s1", "tools": ["Bash", "Edit", "Read"]},
            {"type": "assistant", "message": {"content": [read]}},
            {"type": "user", "message": {"content": [seen]}},
            {"type": "assistant", "message": {"content": [{"type": "text", "text": message}]}},
            result,
        ]
    lines = [{"type": "message", "text": message}, {"type": "usage", **usage}]
    lines += [{"type": "result", "result": answer} for answer in answers]
    return lines


if __name__ == "__main__":
    sys.exit(main())
