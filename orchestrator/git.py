"""Running git: one-line failures, and finding the repository an operator means."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from kernel.errors import UsageError
from orchestrator.errors import GitError

NO_OPTIONAL_LOCKS = {"GIT_OPTIONAL_LOCKS": "0"}  # `status` must not take the index lock to refresh it


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
    if not start.exists():
        raise UsageError(f"{start}: no such directory")
    if not start.is_dir():
        raise UsageError(f"{start} is not a directory; give the repository's directory")
    common_path = await common_dir(start)
    if common_path.name == ".git":
        return common_path.parent.resolve()
    top = await git("rev-parse", "--show-toplevel", cwd=start)  # a bare-ish layout: trust git
    return Path(top).resolve()


async def common_dir(start: Path) -> Path:
    """The git directory shared by all worktrees of the repository containing `start`."""
    try:
        common = await git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=start)
    except GitError:
        raise UsageError(f"{start} is not inside a git repository; run orchestrator in one") from None
    return Path(common)


async def tracked_changes(repo: Path) -> int:
    """How many tracked files differ from HEAD in the repository's own checkout (worktrees never see them)."""
    out = await git(
        "status", "--porcelain", "--untracked-files=no", cwd=repo, check=False, env=NO_OPTIONAL_LOCKS
    )
    return len(out.splitlines())
