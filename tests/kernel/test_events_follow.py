"""`ic events tail --follow`: real follower processes, real writer processes, signals and crashes.

Waits here are liveness bounds (a generous timeout before declaring an event lost), never timing
assertions.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, Project, ic_executable

LIVENESS_S = 30.0

# A writer process: N `ic events record` calls through the CLI entry point, without N interpreter starts.
WRITER = """
import sys
from kernel.cli.main import run
db, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
run_args = ["--run=" + sys.argv[4]] if len(sys.argv) > 4 else []
for i in range(count):
    code = run(["--db", db, "events", "record", "--source=test", "--type=" + tag, f"--reason={i}", *run_args])
    if code:
        sys.exit(code)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


class Follower:
    """`ic events tail ... --follow --json` in its own process; lines are collected by a thread."""

    def __init__(self, project: Project, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*ic_executable(), "events", "tail", "--follow", "--json", *args],
            cwd=project.dir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def take(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < count:
            try:
                out.append(json.loads(self.lines.get(timeout=LIVENESS_S)))
            except queue.Empty:
                pytest.fail(f"follower delivered {len(out)} of {count} events within {LIVENESS_S}s")
        return out

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, list[dict[str, Any]], str]:
        """Signal it; return its exit code, any lines it still printed, and its stderr."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=LIVENESS_S)
        self.thread.join(timeout=LIVENESS_S)
        rest = []
        while not self.lines.empty():
            rest.append(json.loads(self.lines.get()))
        err = self.proc.stderr.read() if self.proc.stderr else ""
        self.close()
        return code, rest, err

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def followers() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for follower in started:
        follower.close()


def _writer(project: Project, tag: str, count: int, run_id: str | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", WRITER, str(project.db), tag, str(count)]
    if run_id:
        args.append(run_id)
    return subprocess.Popen(args, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL)


def _record(project: Project, tag: str) -> int:
    result = project.ic("events", "record", "--source=test", f"--type={tag}", "--json")
    assert result.code == 0, result.err
    event_id: int = result.json()["id"]
    return event_id


def _cursor(project: Project, name: str) -> int:
    for cursor in project.ic("events", "cursor", "list", "--json").json_lines():
        if cursor["consumer"] == name:
            position: int = cursor["last_event_id"]
            return position
    raise AssertionError(f"no cursor {name}")


def _wait_for_cursor(project: Project, name: str, position: int) -> None:
    deadline = time.monotonic() + LIVENESS_S
    while _cursor(project, name) != position:
        if time.monotonic() > deadline:
            pytest.fail(f"cursor {name} did not reach {position} within {LIVENESS_S}s")
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_follow_delivers_new_events_and_stops_cleanly_on_signal(
    project: Project, followers: list[Follower], sig: int
) -> None:
    first = _record(project, "before")
    follower = Follower(project, "--all", "--consumer=watch")
    followers.append(follower)
    assert [e["id"] for e in follower.take(1)] == [first]
    later = [_record(project, f"after{i}") for i in range(3)]
    got = follower.take(3)
    assert [e["id"] for e in got] == later
    assert [e["type"] for e in got] == ["after0", "after1", "after2"]
    code, rest, err = follower.stop(sig)
    assert (code, rest, err) == (0, [], "")
    assert _cursor(project, "watch") == later[-1]
    # A restarted consumer neither repeats nor skips.
    newer = [_record(project, f"late{i}") for i in range(2)]
    resumed = project.ic("events", "tail", "--all", "--consumer=watch", "--json")
    assert [e["id"] for e in resumed.json_lines()] == newer


def test_follow_of_one_run_ignores_other_events(project: Project, followers: list[Follower]) -> None:
    created = project.ic("run", "create", "--goal=followed", "--json")
    assert created.code == 0, created.err
    run_id = created.json()["id"]
    follower = Follower(project, run_id, "--since=0")
    followers.append(follower)
    backlog = follower.take(1)
    assert backlog[0]["run_id"] == run_id
    writer = _writer(project, "noise", 5)
    assert writer.wait(timeout=LIVENESS_S) == 0
    mine = project.ic("events", "record", "--source=test", "--type=mine", f"--run={run_id}", "--json")
    got = follower.take(1)
    assert got[0]["id"] == mine.json()["id"]
    code, rest, _ = follower.stop()
    assert code == 0
    assert all(e["run_id"] == run_id for e in rest)


def test_concurrent_consumers_each_see_every_event_once_in_order(
    project: Project, followers: list[Follower]
) -> None:
    _record(project, "seed")
    names = ["alpha", "beta", "gamma"]
    for name in names:
        followers.append(Follower(project, "--all", f"--consumer={name}"))
    writers = [_writer(project, f"w{n}", 40) for n in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    total = 1 + 4 * 40
    for name, follower in zip(names, followers, strict=True):
        seen = [e["id"] for e in follower.take(total)]
        assert seen == list(range(1, total + 1)), name
        code, rest, err = follower.stop()
        assert (code, rest, err) == (0, [], "")
        assert _cursor(project, name) == total


def test_a_killed_consumer_resumes_without_skipping(project: Project, followers: list[Follower]) -> None:
    _record(project, "seed")
    follower = Follower(project, "--all", "--consumer=crashy")
    followers.append(follower)
    writer = _writer(project, "burst", 150)
    delivered = [e["id"] for e in follower.take(40)]
    follower.proc.kill()  # SIGKILL: no chance to finish anything
    follower.proc.wait(timeout=LIVENESS_S)
    follower.thread.join(timeout=LIVENESS_S)
    while not follower.lines.empty():
        delivered.append(json.loads(follower.lines.get())["id"])
    assert writer.wait(timeout=120) == 0
    last = _record(project, "after-crash")
    restart = project.ic("events", "tail", "--all", "--consumer=crashy", "--json")
    resumed = [e["id"] for e in restart.json_lines()]
    assert resumed[-1] == last == 152
    assert sorted(set(delivered) | set(resumed)) == list(range(1, 153))
    # The cursor only moves after a flush, so the restart starts at or before the first undelivered id.
    assert resumed[0] <= max(delivered) + 1
    assert resumed == sorted(resumed)
    assert delivered == sorted(delivered)


def test_a_consumer_name_is_held_by_one_process_and_freed_by_its_death(
    project: Project, followers: list[Follower]
) -> None:
    """Two processes on one cursor would print the same events twice: the second is refused, exit 1."""
    first = _record(project, "seed")
    holder = Follower(project, "--all", "--consumer=shared")
    followers.append(holder)
    assert [e["id"] for e in holder.take(1)] == [first]
    _wait_for_cursor(project, "shared", first)
    second = project.ic("events", "tail", "--all", "--consumer=shared", "--json")
    assert second.code == 1
    assert second.out == ""
    assert second.err == (
        f"ic: consumer 'shared' is in use by another process (pid {holder.proc.pid}); stop it first, "
        "or use another --consumer name\n"
    )
    assert project.ic("events", "cursor", "reset", "shared", "--to=0").code == 1
    via_link = project.dir.parent / "elsewhere.db"
    via_link.symlink_to(project.db)
    linked = project.ic(f"--db={via_link}", "events", "tail", "--all", "--consumer=shared")
    assert (linked.code, linked.out) == (1, "")
    assert _cursor(project, "shared") == first
    other_name = project.ic("events", "tail", "--all", "--consumer=other", "--json")
    assert (other_name.code, [e["id"] for e in other_name.json_lines()]) == (0, [first])
    # The holder keeps working, then dies without any chance to clean up.
    during = _record(project, "during")
    assert [e["id"] for e in holder.take(1)] == [during]
    _wait_for_cursor(project, "shared", during)  # so the kill below cannot land before the cursor moved
    holder.proc.kill()
    holder.proc.wait(timeout=LIVENESS_S)
    missed = [_record(project, f"while-dead{i}") for i in range(2)]
    successor = Follower(project, "--all", "--consumer=shared")
    followers.append(successor)
    assert [e["id"] for e in successor.take(2)] == missed
    code, rest, err = successor.stop()
    assert (code, rest, err) == (0, [], "")
    reset = project.ic("events", "cursor", "reset", "shared", "--to=0", "--json")
    assert (reset.code, reset.json()["last_event_id"]) == (0, 0)


def test_racing_one_shot_consumers_of_one_name_never_deliver_an_event_twice(project: Project) -> None:
    total = 60
    writer = _writer(project, "pile", total)
    assert writer.wait(timeout=120) == 0
    racers = [
        subprocess.Popen(
            [*ic_executable(), "events", "tail", "--all", "--consumer=race", "--limit=7", "--json"],
            cwd=project.dir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    delivered: list[int] = []
    for proc in racers:
        out, err = proc.communicate(timeout=LIVENESS_S * 2)
        if proc.returncode == 1:
            assert (out, "is in use by another process" in err) == ("", True)
            continue
        assert proc.returncode == 0, err
        delivered.extend(json.loads(line)["id"] for line in out.splitlines())
    assert delivered, "at least one racer got the name"
    assert sorted(delivered) == list(range(1, len(delivered) + 1))  # no event twice, no gap
    assert _cursor(project, "race") == len(delivered)


def test_following_a_run_that_does_not_exist_is_exit_1_at_once(project: Project) -> None:
    result = project.ic("events", "tail", "nosuchrn", "--follow", "--consumer=ghost", timeout=LIVENESS_S)
    assert result.code == 1
    assert result.err == "ic: no run 'nosuchrn' and no events for it in this database\n"
    assert project.ic("events", "cursor", "list").out.splitlines()[1:] == []
