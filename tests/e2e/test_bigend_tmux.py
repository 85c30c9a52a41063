"""End to end: the real `bigend --demo` binary in a real terminal (tmux), driven by keystrokes.

tmux runs on its own socket so the test never touches another tmux server; the session is killed at
the end whatever happened. What is checked is the text a person would see on the screen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest


@dataclass
class Terminal:
    socket: str
    session: str

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20, check=False
        )
        return proc.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def literal(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def wait_for(self, check: Callable[[str], bool], what: str, timeout: float = 45.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    assert shutil.which("tmux"), "tmux is required for the end-to-end test (.ci/run installs it)"
    bigend = shutil.which("bigend")
    assert bigend, "the `bigend` console script is not installed (pip install -e .)"
    term = Terminal(socket=f"bigend-e2e-{uuid.uuid4().hex[:8]}", session="bigend")
    command = f"{bigend} --demo; echo BIGEND-EXIT:$?; sleep 60"
    # COLUMNS/LINES as the pane's size. In two loaded full-suite runs the app drew at 80x24, shutil's
    # fallback when the pty reports no size yet, for the whole wait: the pane's size was not known when
    # the app asked, and no later resize reached it. The footer's "Quit" then did not fit.
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "TEXTUAL_ANIMATIONS": "none",
        "COLUMNS": "120",
        "LINES": "40",
    }
    subprocess.run(
        [
            "tmux",
            "-L",
            term.socket,
            "new-session",
            "-d",
            "-s",
            term.session,
            "-x",
            "120",
            "-y",
            "40",
            command,
        ],
        check=True,
        env=env,
        timeout=20,
    )
    try:
        yield term
    finally:
        term.tmux("kill-server")


@pytest.mark.slow
def test_bigend_demo_in_a_real_terminal(terminal: Terminal) -> None:
    def painted(s: str) -> bool:  # the whole first frame: data in the table and the footer's last key
        lines = s.rstrip("\n").splitlines()
        return "Active runs" in s and "interverse" in s and bool(lines) and "Quit" in lines[-1]

    screen = terminal.wait_for(painted, "the dashboard with data and the footer")
    assert "Dashboard" in screen and "Projects" in screen and "Events" in screen
    assert "Tokens" in screen and " in / " in screen
    # who is blocked, and why, without a key press: the Blocked rows come first, each with its reason
    lines = screen.splitlines()
    blocked = [n for n, line in enumerate(lines) if "■" in line and "Active runs" not in line]
    assert blocked, "no Blocked run on the demo dashboard"
    assert all("↳" in lines[n + 1] for n in blocked), screen
    assert "auto_advance is off" in screen or "gate blocked" in screen

    terminal.keys("2")
    terminal.wait_for(lambda s: "Runs ·" in s and "Detail" in s, "the project view")

    terminal.keys("?")
    terminal.wait_for(lambda s: "Bigend keys" in s and "Next pane" in s, "the help screen")
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "Bigend keys" not in s, "the help screen to close")

    terminal.keys("/")
    terminal.literal("status=blocked")
    terminal.keys("Enter")
    terminal.wait_for(lambda s: "filter: status=blocked" in s, "the filter in the status line")

    terminal.keys("3")
    terminal.wait_for(lambda s: "┏━ Events" in s and "[K]" in s, "events in the focused viewport")
    terminal.keys("s")  # the event viewport's key: the filter bar opens with source= ready
    terminal.literal("tmux")
    terminal.keys("Enter")
    terminal.wait_for(lambda s: "filter: status=blocked source=tmux" in s, "the source filter")
    terminal.wait_for(lambda s: "no event matches" in s, "the empty-filter message (the demo has no tmux)")

    terminal.keys("q")
    terminal.wait_for(lambda s: "BIGEND-EXIT:0" in s, "bigend to exit with 0", timeout=30)
