"""Running git, and serializing git writes per repository.

Writes that touch shared repository state (worktree add/remove/prune, refs, the object database) take
the repository's lock: an `asyncio.Lock` for the tasks of this process, plus an `flock` on a file in
the git common directory so two orchestrator processes on one repository queue instead of racing.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from orchestrator.errors import GitError, UsageError

# Per event loop (a lock is bound to the loop that first waits on it), then per git common directory.
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
LOCK_POLL_S = 0.02


async def run_git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `git args...` in `cwd`: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=str(cwd),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **(env or {})},
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


def git_failure(args: tuple[str, ...], cwd: Path, code: int, err: str) -> GitError:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    detail = lines[0] if lines else f"exit code {code}"
    return GitError(f"git {' '.join(args[:2])} failed in {cwd}: {detail}")


async def git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run `git args...` in `cwd`; its stdout (stripped of the final newline), or GitError with one line."""
    code, out, err = await run_git(*args, cwd=cwd, env=env)
    if check and code != 0:
        raise git_failure(args, cwd, code, err)
    return out.rstrip("\n")


async def git_ok(*args: str, cwd: Path) -> bool:
    """Whether `git args...` exits 0 (for questions like "does this ref exist?")."""
    code, _, _ = await run_git(*args, cwd=cwd)
    return code == 0


async def repo_root(start: Path) -> Path:
    """The top of the main worktree containing `start`; a usage error outside any git repository."""
    if not start.is_dir():
        raise UsageError(f"{start}: no such directory")
    try:
        common = await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=start)
    except GitError:
        raise UsageError(f"{start} is not inside a git repository; run orchestrator in one") from None
    common_path = Path(common)
    if common_path.name == ".git":
        return common_path.parent.resolve()
    top = await git("rev-parse", "--show-toplevel", cwd=start)  # a bare-ish layout: trust git
    return Path(top).resolve()


class RepoLock:
    """The per-repository lock for git writes: in-process asyncio.Lock, then a cross-process flock."""

    def __init__(self, common_dir: Path) -> None:
        self.path = common_dir / "orchestrator.lock"
        self._key = str(common_dir.resolve())

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        per_loop = _LOCKS.setdefault(asyncio.get_running_loop(), {})
        async with per_loop.setdefault(self._key, asyncio.Lock()):
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(LOCK_POLL_S)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
