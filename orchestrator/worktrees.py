"""One git worktree per issue, on a branch named after it, git writes serialized.

A new branch starts from the HEAD the run started with, plus its dependencies' passed branches
merged in dependency order, so an issue builds on the code it depends on (a merge that conflicts is
undone and reported: the issue is blocked). A worktree outlives a crash: the next run finds it
through `git worktree list` (or finds the branch and checks it out again) and adopts it, so an issue
continues on the commits it already has. Passed issues lose their worktree but keep their branch (the
branch is the deliverable); capped or failed issues keep both, for a human to look at.

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
from orchestrator.errors import GitError, MergeConflict
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
    forked_from: str | None = None  # known when we created it (after merging its dependencies)


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

    async def existing_branches(self) -> set[str]:
        """Issue branches (`<prefix><id>`) that exist now, as issue ids."""
        out = await git(
            "for-each-ref", "--format=%(refname:short)", f"refs/heads/{self.prefix}", cwd=self.repo
        )
        return {line[len(self.prefix) :] for line in out.splitlines() if line.startswith(self.prefix)}

    async def ensure(self, issue_id: str, *, merge: list[str] | None = None) -> Worktree:
        """The issue's worktree: the existing one (adopted), its branch checked out again, or a new one.

        A new branch starts from the run's starting HEAD with `merge` (its dependencies' passed
        branches, in dependency order) merged in; MergeConflict when one does not merge cleanly (the
        new branch and worktree are removed again, so a later run retries from scratch).
        """
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
                wt = Worktree(issue_id, path, branch, adopted=False, forked_from=self.start_head)
                return await self._merge_dependencies(wt, merge or [])
            if "already exists" not in err:
                raise git_failure(args, self.repo, code, err)
            # The branch outlived its worktree (removed by hand, or a crash): check it out again.
            await git("worktree", "add", "-q", str(path), branch, cwd=self.repo)
            return Worktree(issue_id, path, branch, adopted=True)

    async def _merge_dependencies(self, wt: Worktree, branches: list[str]) -> Worktree:
        """Merge each dependency branch into the new branch, in order; the result is where it forks."""
        if not branches:
            return wt
        env = await self._commit_env()
        for other in branches:
            message = f"{wt.issue_id}: start from {other}"
            args = (
                "-c",
                "commit.gpgsign=false",
                "merge",
                "--no-ff",
                "--no-edit",
                "--no-verify",
                "-m",
                message,
                other,
            )
            code, out, err = await run_git(*args, cwd=wt.path, env=env)
            if code == 0:
                continue
            conflicted = await git("diff", "--name-only", "--diff-filter=U", cwd=wt.path, check=False)
            await run_git("merge", "--abort", cwd=wt.path)
            await git("worktree", "remove", "--force", str(wt.path), cwd=self.repo)
            await git("branch", "-D", wt.branch, cwd=self.repo)
            files = conflicted.split() if conflicted else []
            if not files:  # not a conflict: git itself failed
                raise git_failure(args, wt.path, code, err or out)
            raise MergeConflict(wt.issue_id, wt.branch, other, branches, files)
        head = await git("rev-parse", "HEAD", cwd=wt.path)
        return Worktree(wt.issue_id, wt.path, wt.branch, adopted=False, forked_from=head)

    async def base(self, wt: Worktree) -> str:
        """Where the issue's branch forked from the repository's HEAD: what a review diffs against.

        Known when the branch was made here (recorded in the run); for an adopted branch without that
        record, its merge-base with the run's starting HEAD.
        """
        if wt.forked_from is not None:
            return wt.forked_from
        return await git("merge-base", self.start_head, wt.branch, cwd=self.repo)

    async def head(self, wt: Worktree) -> str:
        return await git("rev-parse", "HEAD", cwd=wt.path)

    async def dirty(self, wt: Worktree) -> bool:
        out = await git("status", "--porcelain", "--untracked-files=all", cwd=wt.path, env=NO_OPTIONAL_LOCKS)
        return bool(out)

    async def discard(self, wt: Worktree, to: str = "HEAD") -> None:
        """Back to commit `to` (the last one by default): an attempt's edits and commits are dropped."""
        async with self.lock:
            await git("reset", "-q", "--hard", to, cwd=wt.path)
            await git("clean", "-fdq", cwd=wt.path)

    async def changes(self, wt: Worktree, since: str) -> list[str]:
        """Files that differ from commit `since`: edited, added or deleted, committed or not.

        One `git status` answers both whether anything is uncommitted and where HEAD is now; only
        when HEAD moved (something committed) does a diff name the committed files.
        """
        out = await git(
            "status",
            "--porcelain=v2",
            "--branch",
            "--untracked-files=all",
            cwd=wt.path,
            env=NO_OPTIONAL_LOCKS,
        )
        files: list[str] = []
        head = since
        for line in out.splitlines():
            if line.startswith("# branch.oid "):
                head = line.split()[2]
            elif line.startswith(("1 ", "u ")):
                files.append(line.split(" ", 8 if line[0] == "1" else 10)[-1])
            elif line.startswith("2 "):
                files.append(line.split(" ", 9)[-1].split("\t")[0])
            elif line.startswith("? "):
                files.append(line[2:])
        if not head.startswith(since) and not since.startswith(head):
            committed = await git("diff", "--name-only", since, head, cwd=wt.path)
            files.extend(f for f in committed.splitlines() if f not in files)
        return files

    async def _commit_env(self) -> dict[str, str]:
        if self._identity is None:
            has_email = await git("config", "user.email", cwd=self.repo, check=False)
            has_name = await git("config", "user.name", cwd=self.repo, check=False)
            self._identity = {} if has_email and has_name else dict(_FALLBACK_IDENTITY)
        return self._identity

    async def commit(self, wt: Worktree, message: str) -> str | None:
        """Commit everything the agent changed; the new commit's (abbreviated) id, or None if unchanged.

        Hooks and signing are skipped: these are bookkeeping commits of an agent's work, and a hook
        that blocks them would stall the loop (the review judges quality).
        """
        env = await self._commit_env()
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
