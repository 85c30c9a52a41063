"""A scripted coding agent: a real process that prints codex-, claude- or command-shaped JSON lines.

Run as `fake_agent.py --shape codex|claude|command [runner arguments...]`. What it does is read from
the scenario file named by FAKE_SCENARIO:

    {"issues": {"<issue id>": {"dev": [step, ...], "review": [step, ...], "fix": [step, ...]}}}

The n-th call for an (issue, phase) plays the n-th step (the last one repeats); the call counters
live in FAKE_STATE, which also receives `calls.jsonl` (one line per call: argv, cwd, env, and what
came on stdin: its size and sha256, or that it was /dev/null). A step is an object with any of:

    write      {"path": "content"} files written in the working directory (the worktree)
    verdict    a review answer (object) or "none" for a review that answers in prose
    message    the final message text (default: a short note, or the verdict as JSON)
    usage      {"input_tokens": 10, "output_tokens": 5, "cache_tokens": 2, "cost_usd": 0.01}, in the
               kernel's meaning (input: fresh prompt tokens; cache: read from a cache), printed in
               each agent's own terms (codex's input_tokens include the cached ones)
    emit       the name of a recorded output in tests/fixtures, printed verbatim instead
    garbage    lines of non-JSON noise printed first
    truncate   cut the line carrying the final answer in half (no newline), stop there, exit 0
    exit       exit code (a crash, with a line on stderr: `crash_line`, or a default one)
    ignore_term  ignore SIGTERM, so only the KILL after the grace period ends the agent
    hang       seconds to keep printing after starting a child (`sleep`) in the same process group
    stall      seconds to stay silent after a first line
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
                }
            )
            + "\n"
        )
    if step.get("ignore_term"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if step.get("marker"):  # written whole, then renamed: a reader never sees it empty
        marker = state / step["marker"]
        marker.with_name(f"{marker.name}.part").write_text(str(os.getpid()))
        os.replace(marker.with_name(f"{marker.name}.part"), marker)
    for line in step.get("garbage", []):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if "hang" in step:
        child = subprocess.Popen(["sleep", str(step["hang"])])
        (state / f"child-{issue}-{phase}.pid").write_text(str(child.pid))
        deadline = time.monotonic() + float(step["hang"])
        while time.monotonic() < deadline:  # busy, never silent: only the wall-clock timeout stops it
            emit({"type": "note", "text": "working hard"})
            time.sleep(0.25)
    if "stall" in step:
        emit({"type": "note", "text": "thinking"})
        time.sleep(float(step["stall"]))
    for rel, content in (step.get("write") or {}).items():
        target = Path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    if phase != "review" and "write" not in step and "exit" not in step:
        Path(f"work-{issue}.txt").write_text(f"{phase} call {n}\n", encoding="utf-8")
    verdict = step.get("verdict", {"status": "pass", "findings": []} if phase == "review" else None)
    if verdict == "none":
        verdict = None
    message = step.get("message")
    if message is None:
        message = json.dumps(verdict) if verdict is not None else f"{phase} done for {issue}"
    usage = {**DEFAULT_USAGE, **step.get("usage", {})}
    if "exit" in step:
        sys.stderr.write(step.get("crash_line", f"fake agent: crashing with exit code {step['exit']}") + "\n")
        return int(step["exit"])
    if "emit" in step:
        sys.stdout.write((FIXTURES / step["emit"]).read_text())
        sys.stdout.flush()
        return 0
    lines = shaped(shape, message, usage, verdict if phase == "review" else None)
    if step.get("truncate"):  # the line carrying the final answer is cut off mid-JSON
        cut = {"codex": 3, "claude": 2}.get(shape, 0)
        for line in lines[:cut]:
            emit(line)
        text = json.dumps(lines[cut])
        sys.stdout.write(text[: len(text) // 2])
        sys.stdout.flush()
        return 0
    for line in lines:
        emit(line)
    return 0


def shaped(shape: str, message: str, usage: dict[str, Any], verdict: Any) -> list[dict[str, Any]]:
    if shape == "codex":
        return [
            {"type": "thread.started", "thread_id": "th_fake"},
            {"type": "turn.started"},
            {"type": "item.completed", "item": {"id": "item_0", "type": "reasoning", "text": "hmm"}},
            {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": message}},
            {
                "type": "turn.completed",
                "usage": {
                    "input_tokens": usage["input_tokens"] + usage["cache_tokens"],
                    "cached_input_tokens": usage["cache_tokens"],
                    "output_tokens": usage["output_tokens"],
                },
            },
        ]
    if shape == "claude":
        return [
            {"type": "system", "subtype": "init", "session_id": "s1"},
            {"type": "assistant", "message": {"content": [{"type": "text", "text": message}]}},
            {
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
            },
        ]
    lines: list[dict[str, Any]] = [{"type": "message", "text": message}, {"type": "usage", **usage}]
    if verdict is not None:
        lines.append({"type": "result", "result": verdict})
    return lines


if __name__ == "__main__":
    sys.exit(main())
