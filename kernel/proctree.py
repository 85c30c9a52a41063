"""Process trees that end for sure: a child subreaper, the tree below it, and a per-agent reaper program.

Ending an agent's process group misses a daemon that left the group (`setsid`, a double fork): its
parent exits, the daemon is re-parented to init and nothing links it to the agent any more. Linux
lets a process declare itself a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`): orphans anywhere
below it are re-parented to it instead of init, so every descendant stays reachable through the
parent links in /proc and can be ended. Two users:

- the `ic dispatch` supervisor (`kernel.dispatch.launch`) becomes a subreaper before it starts its
  agent, and ends what is left below it when the agent exits;
- the orchestrator starts every agent under a small per-agent reaper that becomes a subreaper,
  starts the agent in its own session, reports the agent's pid and exit status on a pipe, and ends
  everything below it when told to, or when the orchestrator itself goes away (its control pipe
  reaches EOF), so no descendant outlives the phase. The reapers are forked by one reaper service
  per orchestrator run (`serve`, `service_argv`): forking that small warm process is much cheaper
  than starting an interpreter per agent (`reaper_argv` runs one reaper directly, for tests).

The reaper protocol. A reaper has the agent's stdin and stdout/stderr pipes as its fds 0-2 and its
cwd and environment (from the service's request, or as `python -I -S proctree.py STATUS_FD CONTROL_FD
-- ARGV...`); it hands them to the agent and keeps none of them. On STATUS_FD it writes one line per
fact:

    started PID START REAPER   the agent runs (START: field 22 of /proc/PID/stat; REAPER: its pid)
    failed REASON              the agent could not be started (the reaper then exits 127)
    exited STATUS              the agent exited; the raw wait status (os.waitstatus_to_exitcode)
    note TEXT                  something worth reporting (it could not become a subreaper, ...)
    ended N                    the tree is gone; N processes were still running below the reaper

It reads CONTROL_FD: `end GRACE\\n` (or EOF) ends the tree: TERM (and CONT) to every process below the
reaper, KILL to those still there after GRACE seconds, all reaped; then `ended`, and the reaper exits.
TERM, INT or HUP sent to the reaper itself do the same.

The service protocol: each request is `encode_request(argv, cwd, env)` (a length, then marshal data)
sent on the service's socket with five descriptors attached (SCM_RIGHTS): the agent's stdin, stdout
and stderr, the reaper's status pipe (write end) and control pipe (read end). The service exits when
the socket closes.

Standard library only, and cheap to import (the C half of `signal`, no `dataclasses`, `socket` only
in the service): it runs as a script under `python -I -S`, and the dispatch supervisor imports it
before its agent starts.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C half of `signal`: no enum module to import
import os
import select
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PROC = "/proc"
EXEC_FAILED = 127
DEFAULT_GRACE_S = 3.0
KILL_WAIT_S = 5.0  # after KILL, how long to wait for the tree to vanish (a process stuck in D state)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterable
    from typing import Any


def become_subreaper() -> str | None:
    """Make orphans below this process re-parent to it (Linux); None on success, else why not."""
    try:
        import ctypes

        libc: Any = _libc()
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return f"prctl failed: {os.strerror(ctypes.get_errno())}"
    except (OSError, AttributeError) as exc:  # not Linux: orphans go to init as usual
        return str(exc)
    return None


# -- the tree ---------------------------------------------------------------------------------------


def _parents() -> dict[int, list[tuple[int, bool]]]:
    """ppid -> [(pid, is_zombie)] for every process /proc shows now."""
    try:
        names = os.listdir(PROC)
    except OSError:
        return {}
    children: dict[int, list[tuple[int, bool]]] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"{PROC}/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        fields = raw[raw.rfind(b")") + 2 :].split()
        if len(fields) < 2:
            continue
        children.setdefault(int(fields[1]), []).append((int(name), fields[0] in (b"Z", b"X")))
    return children


def descendants(root: int, keep: Iterable[int] = ()) -> list[int]:
    """Live (non-zombie) processes below `root`, whatever their group or session.

    A subtree rooted at a pid in `keep` is left out entirely (the dispatch supervisor's watchdog).
    """
    kept = set(keep)
    children = _parents()
    found: list[int] = []
    todo = [root]
    while todo:
        for pid, zombie in children.get(todo.pop(), []):
            if pid in kept or pid == root:
                continue
            if not zombie:
                found.append(pid)
            todo.append(pid)
    return found


def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    fields = raw[raw.rfind(b")") + 2 :].split()
    return bool(fields) and fields[0] not in (b"Z", b"X")


def _signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap_any() -> list[tuple[int, int]]:
    """Reap every exited child of this process: [(pid, raw wait status)]."""
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def end_pids(pids: list[int], grace_s: float, *, reap: Callable[[], object] | None = None) -> bool:
    """TERM these processes, KILL those left after `grace_s`; True if any was still running.

    Each pid was seen running a moment ago and is checked again before every signal. `reap` is
    called while waiting: a subreaper reaps the children that exit meanwhile (its adopted orphans).
    """
    running = [pid for pid in pids if is_running(pid)]
    if not running:
        return False
    _signal_pids(running, _signal.SIGTERM)
    _signal_pids(running, _signal.SIGCONT)  # a stopped process acts on TERM only once continued
    for wait_s, then_kill in ((grace_s, True), (KILL_WAIT_S, False)):
        deadline = time.monotonic() + wait_s
        delay = 0.005
        while True:
            if reap is not None:
                reap()
            running = [pid for pid in running if is_running(pid)]
            if not running or time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        if not running or not then_kill:
            break
        _signal_pids(running, _signal.SIGKILL)
    return True


def end_descendants(
    root: int, grace_s: float, keep: Iterable[int] = (), *, reap: Callable[[], object] | None = None
) -> int:
    """End every process below `root` (but `keep`); how many were running.

    Repeated, as a dying process may fork once more (and its orphans re-parent while it dies).
    """
    kept = tuple(keep)
    ended = 0
    for _ in range(5):
        found = descendants(root, kept)
        if not found:
            break
        ended += len(found)
        end_pids(found, grace_s, reap=reap)
    return ended


# -- the reaper (the orchestrator's per-agent process owner) ----------------------------------------


def reaper_argv(python: str, status_fd: int, control_fd: int, argv: list[str]) -> list[str]:
    """The command line that runs `argv` under a reaper (see the module docstring for the protocol)."""
    return [python, "-I", "-S", os.path.abspath(__file__), str(status_fd), str(control_fd), "--", *argv]


def service_argv(python: str, socket_fd: int) -> list[str]:
    """The command line of the reaper service listening on `socket_fd` (see `serve`)."""
    return [python, "-I", "-S", os.path.abspath(__file__), "--serve", str(socket_fd)]


def _has_children() -> bool:
    """Whether this process has any child, running or exited (no /proc scan needed to know)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


class _Reaper:
    def __init__(self, status_fd: int, control_fd: int) -> None:
        self.status_fd = status_fd
        self.control_fd = control_fd
        self.agent: int | None = None
        self.stop = False

    def say(self, line: str) -> None:
        try:
            os.write(self.status_fd, (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
        except OSError:
            pass  # the orchestrator went away; the control pipe's EOF ends the tree

    def start(self, argv: list[str], cwd: str | None, env: dict[str, str] | None) -> int | None:
        """Start the agent in its own session; its pid, or None (said why) when it cannot start.

        `posix_spawnp` (a vfork underneath) rather than fork + exec: forking a Python process copies its
        page tables and faults in its pages, several times the cost of the spawn itself. Python ignores
        SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec, so both are reset.
        """
        try:
            if cwd is not None:
                os.chdir(cwd)  # the reaper's own directory is of no concern; the agent starts in it
            return os.posix_spawnp(
                argv[0], argv, os.environ if env is None else env, setsid=True,
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
            )  # fmt: skip
        except OSError as exc:
            where = f" in {cwd}" if cwd is not None and not os.path.isdir(cwd) else ""
            self.say(f"failed cannot start {argv[0]!r}{where}: {exc.strerror or exc}")
            return None

    def on_stop_signal(self, signum: int, frame: object) -> None:
        self.stop = True

    def collect(self) -> None:
        for pid, status in _reap_any():
            if pid == self.agent:
                self.say(f"exited {status}")
                self.agent = None

    def run(self, argv: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None) -> int:
        problem = become_subreaper()
        wake_r, wake_w = os.pipe()
        for fd in (wake_r, wake_w):
            os.set_blocking(fd, False)
        _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        _signal.signal(_signal.SIGCHLD, lambda signum, frame: None)
        for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP):
            _signal.signal(sig, self.on_stop_signal)
        self.agent = self.start(argv, cwd, env)
        if self.agent is None:
            return EXEC_FAILED
        start = None
        try:
            with open(f"{PROC}/{self.agent}/stat", "rb") as fh:
                raw = fh.read()
            start = int(raw[raw.rfind(b")") + 2 :].split()[19])
        except (OSError, IndexError, ValueError):
            pass
        self.say(f"started {self.agent} {start if start is not None else '-'} {os.getpid()}")
        if problem is not None:
            self.say(f"note cannot become a child subreaper ({problem}); a daemon that leaves the agent's "
                     "session may outlive it")  # fmt: skip
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the agent's stdin and output pipes are the agent's alone
            os.dup2(null, fd)
        os.close(null)
        grace = DEFAULT_GRACE_S
        while not self.stop:
            self.collect()
            try:
                ready, _, _ = select.select([wake_r, self.control_fd], [], [])
            except InterruptedError:
                continue
            if wake_r in ready:
                try:
                    while os.read(wake_r, 512):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            if self.control_fd in ready:
                message = os.read(self.control_fd, 256).decode("ascii", "replace")
                words = message.split()
                if len(words) == 2 and words[0] == "end":
                    try:
                        grace = max(float(words[1]), 0.0)
                    except ValueError:
                        pass
                break  # `end` or EOF: the orchestrator is done with this agent, or gone
        self.collect()
        # No child left means no descendant left (every orphan below re-parents here): no /proc scan.
        ended = end_descendants(os.getpid(), grace, reap=self.collect) if _has_children() else 0
        self.collect()
        self.say(f"ended {ended}")
        return 0


# -- the reaper service: one warm process per orchestrator run that forks a reaper per agent ---------

FDS_PER_REQUEST = 5  # stdin, stdout, stderr, status, control
HEADER = 4  # bytes of the big-endian length of the marshal payload that follows


def encode_request(argv: list[str], cwd: str, env: dict[str, str]) -> bytes:
    """One request to the service: a length, then marshal data (the service reads it back the same way).

    Sent with its FDS_PER_REQUEST descriptors attached (SCM_RIGHTS) to the first bytes.
    """
    import marshal

    payload = marshal.dumps({"argv": argv, "cwd": cwd, "env": env})
    return len(payload).to_bytes(HEADER, "big") + payload


def _receive(sock: socket.socket) -> tuple[dict[str, object], list[int]] | None:
    """One request and its descriptors; None at EOF (the orchestrator closed the socket, or died)."""
    import marshal
    import socket

    header, fds, _, _ = socket.recv_fds(sock, HEADER, FDS_PER_REQUEST)
    if not header:
        return None
    while len(header) < HEADER:
        more = sock.recv(HEADER - len(header))
        if not more:
            return None
        header += more
    size = int.from_bytes(header, "big")
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    request = marshal.loads(b"".join(chunks))
    return (request if isinstance(request, dict) else {}), fds


def serve(socket_fd: int) -> int:
    """The reaper service: for each request, fork a reaper for its agent, until the socket closes.

    Forking this small, warm process costs a fraction of starting an interpreter per agent (what
    `python -I -S proctree.py STATUS CONTROL -- ARGV` does); the forked reaper is exactly that
    program's `_Reaper`. The service itself owns nothing but its reapers, which it reaps.
    """
    import socket

    _libc()  # load ctypes once, here, so every forked reaper has it already
    sock = socket.socket(fileno=socket_fd)
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    _signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    _signal.signal(_signal.SIGCHLD, lambda signum, frame: None)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # the orchestrator decides when agents stop
    while True:
        _reap_any()
        try:
            ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        if sock.fileno() not in ready:
            continue
        received = _receive(sock)
        if received is None:
            return 0
        request, fds = received
        if len(fds) != FDS_PER_REQUEST:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            sock.close()
            for fd in (wake_r, wake_w):
                os.close(fd)
            _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
            stdin, stdout, stderr, status, control = fds
            for source, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
                os.dup2(source, target)
                os.close(source)
            argv, cwd, env = request.get("argv"), request.get("cwd"), request.get("env")
            code = EXEC_FAILED
            try:
                if isinstance(argv, list) and argv and isinstance(cwd, str) and isinstance(env, dict):
                    code = _Reaper(status, control).run(argv, cwd=cwd, env=env)
                else:
                    _Reaper(status, control).say("failed malformed request")
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


_LIBC: object | None = None


def _libc() -> object:
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def main(args: list[str]) -> int:
    """`proctree.py STATUS_FD CONTROL_FD -- ARGV...` runs ARGV under a reaper; `--serve FD` the service."""
    if len(args) == 2 and args[0] == "--serve":
        return serve(int(args[1]))
    if len(args) < 4 or args[2] != "--":
        sys.stderr.write(
            "usage: proctree.py STATUS_FD CONTROL_FD -- ARGV... | proctree.py --serve SOCKET_FD\n"
        )
        return 2
    status_fd, control_fd = int(args[0]), int(args[1])
    for fd in (status_fd, control_fd):
        os.set_inheritable(fd, False)  # the agent gets neither
    return _Reaper(status_fd, control_fd).run(args[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
