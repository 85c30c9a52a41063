"""The per-agent reaper (kernel.proctree run as a program), on real processes: a setsid daemon the agent
left behind, an owner that goes away, a program that cannot start, what the agent inherits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kernel import proctree
from tests.fixtures.dispatching import agent, eventually


@dataclass
class Reaped:
    proc: subprocess.Popen[bytes]
    status: Iterator[str]  # the status pipe, line by line
    control: int  # write end of the control pipe

    def next(self) -> str:
        return next(self.status)

    def end(self, grace: float = 0.5) -> None:
        os.write(self.control, f"end {grace}\n".encode())


def reaped(argv: list[str], tmp_path: Path, *, stdin: Path | None = None) -> Reaped:
    status_r, status_w = os.pipe()
    control_r, control_w = os.pipe()
    with open(stdin or os.devnull, "rb") as given:
        proc = subprocess.Popen(
            proctree.reaper_argv(sys.executable, status_w, control_r, argv),
            stdin=given, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp_path,
            pass_fds=(status_w, control_r), start_new_session=True,
        )  # fmt: skip
    os.close(status_w)
    os.close(control_r)
    lines = (line.decode().rstrip("\n") for line in os.fdopen(status_r, "rb"))
    return Reaped(proc, lines, control_w)


def signal_ignored(pid: int, signum: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    raise AssertionError("no SigIgn line")


def test_a_setsid_daemon_the_agent_left_behind_is_ended_with_the_phase(tmp_path: Path) -> None:
    daemon_file, child_file = tmp_path / "daemon", tmp_path / "child"
    run = reaped(agent("--daemon", str(daemon_file), "--grandchild", str(child_file)), tmp_path)
    started = run.next().split()
    assert started[0] == "started" and int(started[1]) > 0
    assert run.next() == "exited 0"  # the agent is gone; what it started is not
    daemon, child = int(daemon_file.read_text()), int(child_file.read_text())
    assert proctree.is_running(daemon) and proctree.is_running(child)
    assert os.getsid(daemon) == daemon  # it left the agent's session: a group kill would miss it
    assert daemon in proctree.descendants(run.proc.pid)  # re-parented to the reaper, not to init
    run.end()
    assert run.next() == "ended 2"
    assert run.proc.wait(timeout=30) == 0
    assert not proctree.is_running(daemon) and not proctree.is_running(child)
    assert run.proc.stdout is not None and run.proc.stdout.read() == b""  # EOF: nobody holds the pipe


def test_the_tree_ends_when_the_owner_goes_away(tmp_path: Path) -> None:
    run = reaped(agent("--pidfile", str(tmp_path / "pid"), "--sleep", "600"), tmp_path)
    pid = int(run.next().split()[1])
    os.close(run.control)  # the orchestrator died: EOF on the control pipe
    exited = run.next()
    assert exited.startswith("exited ")
    assert os.waitstatus_to_exitcode(int(exited.split()[1])) == -15  # TERM was enough
    assert run.next() == "ended 1"
    assert run.proc.wait(timeout=30) == 0
    assert not proctree.is_running(pid)


def test_an_agent_ignoring_term_is_killed_after_the_grace(tmp_path: Path) -> None:
    run = reaped(agent("--ignore-term", "--pidfile", str(tmp_path / "pid"), "--sleep", "600"), tmp_path)
    run.next()
    eventually(lambda: (tmp_path / "pid").exists(), what="the agent ignoring TERM")
    run.end(grace=0.2)
    assert os.waitstatus_to_exitcode(int(run.next().split()[1])) == -9
    assert run.next() == "ended 1"
    run.proc.wait(timeout=30)


def test_a_program_that_cannot_start_is_reported(tmp_path: Path) -> None:
    run = reaped(["/nonexistent/agent", "--flag"], tmp_path)
    assert run.next() == "failed cannot start '/nonexistent/agent': No such file or directory"
    assert run.proc.wait(timeout=30) == proctree.EXEC_FAILED


def test_the_agent_gets_stdin_its_own_session_and_default_signals(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.md"
    prompt.write_bytes(b"x" * (200 * 1024))  # beyond what one argument may carry
    seen, gate = tmp_path / "seen", tmp_path / "go"
    # A shell, not Python: Python ignores SIGPIPE itself, which would hide what it inherited.
    script = f"wc -c > {seen}.tmp && mv {seen}.tmp {seen}; while [ ! -e {gate} ]; do sleep 0.05; done"
    run = reaped(["/bin/sh", "-c", script], tmp_path, stdin=prompt)
    pid = int(run.next().split()[1])
    eventually(seen.exists, what="the agent reading its stdin")
    assert int(seen.read_text()) == 200 * 1024
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    assert not signal_ignored(pid, 13) and not signal_ignored(pid, 25)  # SIGPIPE, SIGXFSZ: defaults
    reaper_fds = {os.readlink(f"/proc/{run.proc.pid}/fd/{fd}") for fd in (0, 1, 2)}
    assert reaper_fds == {"/dev/null"}  # the reaper holds neither the prompt nor the output pipes
    gate.touch()
    assert run.next() == "exited 0"
    run.end()
    assert run.next() == "ended 0"
    run.proc.wait(timeout=30)


@pytest.mark.parametrize("signum", [15, 1])
def test_term_or_hup_to_the_reaper_ends_the_tree(tmp_path: Path, signum: int) -> None:
    run = reaped(agent("--sleep", "600"), tmp_path)
    pid = int(run.next().split()[1])
    run.proc.send_signal(signum)
    assert run.next().startswith("exited ")
    assert run.next() == "ended 1"
    assert run.proc.wait(timeout=30) == 0
    assert not proctree.is_running(pid)


def test_the_service_forks_a_reaper_per_request_and_exits_when_its_socket_closes(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    service = subprocess.Popen(
        proctree.service_argv(sys.executable, theirs.fileno()), pass_fds=(theirs.fileno(),),
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    theirs.close()
    runs = []
    for name in ("one", "two"):  # two agents at once, each with its own reaper and its own daemon
        out_r, out_w = os.pipe()
        status_r, status_w = os.pipe()
        control_r, control_w = os.pipe()
        stdin = os.open(os.devnull, os.O_RDONLY)
        argv = agent("--daemon", str(tmp_path / f"daemon-{name}"))
        request = proctree.encode_request(argv, str(tmp_path), dict(os.environ))
        sent = socket.send_fds(ours, [request], [stdin, out_w, out_w, status_w, control_r])
        ours.sendall(request[sent:])
        for fd in (stdin, out_w, status_w, control_r):
            os.close(fd)
        lines = (line.decode().rstrip("\n") for line in os.fdopen(status_r, "rb"))
        runs.append((lines, control_w, out_r, name))
    reapers = set()
    for lines, control_w, out_r, name in runs:
        started = next(lines).split()
        assert started[0] == "started" and int(started[3]) != service.pid
        reapers.add(int(started[3]))
        assert next(lines) == "exited 0"
        daemon = int((tmp_path / f"daemon-{name}").read_text())
        assert proctree.is_running(daemon) and daemon in proctree.descendants(int(started[3]))
        os.write(control_w, b"end 0.5\n")
        assert next(lines) == "ended 1"  # its own daemon only
        assert not proctree.is_running(daemon)
        os.close(control_w)
        assert os.read(out_r, 100) == b""  # the service and the reaper keep no copy of the agent's output
        os.close(out_r)
    assert len(reapers) == 2
    ours.close()
    assert service.wait(timeout=30) == 0
