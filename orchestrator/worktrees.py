"""One git worktree per issue, on a branch named after it, git writes serialized.

A worktree outlives a crash: the next run finds it through `git worktree list` (or finds the branch
and checks it out again) and adopts it, so an issue continues on the commits it already has. Passed
issues lose their worktree but keep their branch (the branch is the deliverable); capped or failed
issues keep both, for a human to look at.

Writes that touch shared repository state (worktree add/remove/prune, the index of a worktree, refs)
go one at a time through an asyncio lock: the issues of one run are tasks of one process, and a
second process cannot join in (the repository's run lock, orchestrator.runlock, refuses it).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import UsageError
from orchestrator.config import WorktreesConfig
from orchestrator.errors import GitError
from orchestrator.git import NO_OPTIONAL_LOCKS, git, git_failure, git_ok, run_git

_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "orchestrator",
    "GIT_AUTHOR_EMAIL": "orchestrator@localhost",
    "GIT_COMMITTER_NAME": "orchestrator",
    "GIT_COMMITTER_EMAIL": "orchestrator@localhost",
}


_COMMITTED = re.compile(r"^\[.* ([0-9a-f]{7,})\]", re.MULTILINE)


@dataclass(frozen=True)
class Worktree:
    issue_id: str
    path: Path
    branch: str
    adopted: bool  # it existed before this call: left by a crashed or earlier run
    forked_from: str | None = None  # known when we created it; else found with merge-base


@dataclass(frozen=True)
class _Listed:
    path: Path
    prunable: bool


def ensure_ignored(repo: Path, directory: Path) -> None:
    """Keep the orchestrator's own directories out of `git status` of the repository.

    A `.gitignore` holding `*` ignores everything beside it, itself included, without touching the
    repository's own ignore files.
    """
    if not directory.resolve().is_relative_to(repo):
        return
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / ".gitignore"
    if not marker.exists():
        marker.write_text("# written by orchestrator: nothing in here belongs in git\n*\n")


def exclude_locally(common_dir: Path, pattern: str) -> None:
    """Add `pattern` to the repository's own `info/exclude` (never a tracked file) if it is missing.

    Used for the kernel database directory the orchestrator creates at the repository root: without
    it, a habitual `git add -A` commits a live SQLite file, and every issue worktree gets a copy.
    """
    exclude = common_dir / "info" / "exclude"
    try:
        present = exclude.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        present = []
    if pattern in present:
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a", encoding="utf-8") as fh:
        if present and present[-1] != "":
            fh.write("\n")
        fh.write(f"# added by orchestrator: the kernel database is not source\n{pattern}\n")


class Worktrees:
    """Creates, adopts, commits in and removes the issue worktrees of one repository."""

    def __init__(self, repo: Path, common_dir: Path, head: str, config: WorktreesConfig) -> None:
        self.repo = repo
        self.root = (repo / config.root).resolve()
        self.prefix = config.branch_prefix
        self.common_dir = common_dir
        self.start_head = head  # new worktrees fork from the HEAD the run started with
        self.lock = asyncio.Lock()
        self._identity: dict[str, str] | None = None

    @classmethod
    async def open(cls, repo: Path, config: WorktreesConfig) -> Worktrees:
        code, out, _ = await run_git(
            "rev-parse", "--path-format=absolute", "--git-common-dir", "--verify", "HEAD^{commit}", cwd=repo
        )
        if code != 0:
            raise UsageError(f"{repo}: the repository has no commit yet; commit something first")
        common, head = out.split()
        root = repo / config.root
        if root.exists() and not root.is_dir():
            raise UsageError(f"worktrees.root: {root} is not a directory; point it at a directory")
        if not await git_ok("check-ref-format", "--branch", f"{config.branch_prefix}x", cwd=repo):
            raise UsageError(
                f"worktrees.branch_prefix: {config.branch_prefix!r} does not make valid branch names"
            )
        return cls(repo, Path(common), head, config)

    def branch_for(self, issue_id: str) -> str:
        return f"{self.prefix}{issue_id}"

    def path_for(self, issue_id: str) -> Path:
        return self.root / issue_id

    async def _listing(self) -> dict[str, _Listed]:
        text = await git("worktree", "list", "--porcelain", cwd=self.repo)
        found: dict[str, _Listed] = {}
        path: Path | None = None
        branch: str | None = None
        prunable = False
        for line in [*text.splitlines(), ""]:
            if not line:
                if path is not None and branch is not None:
                    found[branch] = _Listed(path, prunable or not path.exists())
                path, branch, prunable = None, None, False
            elif line.startswith("worktree "):
                path = Path(line[len("worktree ") :])
            elif line.startswith("branch "):
                branch = line[len("branch ") :]
            elif line.startswith("prunable"):
                prunable = True
        return found

    async def ensure(self, issue_id: str) -> Worktree:
        """The issue's worktree: the existing one (adopted) or a new one from the current HEAD."""
        branch = self.branch_for(issue_id)
        ensure_ignored(self.repo, self.root)
        async with self.lock:
            listed = (await self._listing()).get(f"refs/heads/{branch}")
            if listed is not None and not listed.prunable:
                if listed.path.resolve() == self.repo:
                    raise UsageError(
                        f"branch {branch} is checked out in {self.repo}; switch it to another branch"
                    )
                return Worktree(issue_id, listed.path, branch, adopted=True)
            if listed is not None:
                await git("worktree", "prune", cwd=self.repo)
            path = self.path_for(issue_id)
            if path.exists():
                if path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
                else:
                    raise GitError(
                        f"{path} exists but is not the worktree of {branch}; move it away and rerun"
                    )
            path.parent.mkdir(parents=True, exist_ok=True)
            args = ("worktree", "add", "-q", "-b", branch, str(path), self.start_head)
            code, _, err = await run_git(*args, cwd=self.repo)
            if code == 0:
                return Worktree(issue_id, path, branch, adopted=False, forked_from=self.start_head)
            if "already exists" not in err:
                raise git_failure(args, self.repo, code, err)
            # The branch outlived its worktree (removed by hand, or a crash): check it out again.
            await git("worktree", "add", "-q", str(path), branch, cwd=self.repo)
            return Worktree(issue_id, path, branch, adopted=True)

    async def base(self, wt: Worktree) -> str:
        """Where the issue's branch forked from the repository's HEAD: what a review diffs against."""
        if wt.forked_from is not None:
            return wt.forked_from
        return await git("merge-base", "HEAD", wt.branch, cwd=self.repo)

    async def head(self, wt: Worktree) -> str:
        return await git("rev-parse", "HEAD", cwd=wt.path)

    async def dirty(self, wt: Worktree) -> bool:
        out = await git("status", "--porcelain", "--untracked-files=all", cwd=wt.path, env=NO_OPTIONAL_LOCKS)
        return bool(out)

    async def discard(self, wt: Worktree) -> None:
        """Back to the last commit: an interrupted or failed attempt's half-done edits are dropped."""
        async with self.lock:
            await git("reset", "-q", "--hard", "HEAD", cwd=wt.path)
            await git("clean", "-fdq", cwd=wt.path)

    async def _commit_env(self) -> dict[str, str]:
        if self._identity is None:
            has_email = await git("config", "user.email", cwd=self.repo, check=False)
            has_name = await git("config", "user.name", cwd=self.repo, check=False)
            self._identity = {} if has_email and has_name else dict(_FALLBACK_IDENTITY)
        return self._identity

    async def commit(self, wt: Worktree, message: str, *, expect_changes: bool = True) -> str | None:
        """Commit everything the agent changed; the new commit's (abbreviated) id, or None if unchanged.

        `expect_changes=False` (a review) first asks `git status`, so an unchanged worktree costs
        one read and no lock. Hooks and signing are skipped: these are bookkeeping commits of an
        agent's work, and a hook that blocks them would stall the loop (the review judges quality).
        """
        env = await self._commit_env()
        if not expect_changes and not await self.dirty(wt):
            return None
        args = ("-c", "commit.gpgsign=false", "commit", "--no-verify", "-m", message)
        async with self.lock:
            await git("add", "-A", cwd=wt.path)
            code, out, err = await run_git(*args, cwd=wt.path, env=env)
        if code != 0:
            if "nothing to commit" in out or "nothing added to commit" in out:
                return None
            raise git_failure(args, wt.path, code, err or out)
        found = _COMMITTED.search(out)  # "[issue/7 1a2b3c4] message": saves a rev-parse per phase
        return found.group(1) if found else await self.head(wt)

    async def remove(self, wt: Worktree) -> None:
        """Remove the worktree directory, keep the branch."""
        async with self.lock:
            await git("worktree", "remove", "--force", str(wt.path), cwd=self.repo)
