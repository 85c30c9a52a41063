"""Worktrees on a real git repository: create, adopt, commit, discard, remove; serialized writes."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from kernel.errors import UsageError
from orchestrator.config import WorktreesConfig
from orchestrator.git import repo_root
from orchestrator.worktrees import Worktrees
from tests.orchestrator.conftest import Repo, make_repo


@pytest.fixture
def plain(tmp_path: Path) -> Repo:
    made = make_repo(tmp_path)
    made.commit("init")
    return made


async def test_create_adopt_commit_remove(plain: Repo) -> None:
    trees = await Worktrees.open(plain.dir, WorktreesConfig())
    first = await trees.ensure("007")
    assert not first.adopted
    assert first.path == plain.dir / ".orchestrator/worktrees/007"
    assert first.branch == "issue/007"
    assert await trees.commit(first, "nothing") is None
    (first.path / "new.txt").write_text("x")
    sha = await trees.commit(first, "007: dev")
    assert sha and plain.git("rev-parse", "issue/007").startswith(sha)  # abbreviated, from git's own output
    again = await trees.ensure("007")
    assert again.adopted and again.path == first.path
    assert await trees.base(again) == plain.git("rev-parse", "main")
    (first.path / "half.txt").write_text("half-done")
    (first.path / "new.txt").write_text("changed")
    assert await trees.dirty(first)
    await trees.discard(first)
    assert not await trees.dirty(first)
    assert not (first.path / "half.txt").exists()
    await trees.remove(first)
    assert not first.path.exists()
    assert plain.git("rev-parse", "issue/007").startswith(sha)  # the branch is the deliverable
    assert plain.git("status", "--porcelain") == ""  # .orchestrator/ stays out of git status


async def test_a_vanished_worktree_is_recreated_from_its_branch(plain: Repo) -> None:
    trees = await Worktrees.open(plain.dir, WorktreesConfig(root="wt", branch_prefix="orch-"))
    wt = await trees.ensure("a")
    (wt.path / "f").write_text("1")
    sha = await trees.commit(wt, "a")
    shutil.rmtree(wt.path)  # a crash, or a human cleaning up
    back = await trees.ensure("a")
    assert back.adopted and (back.path / "f").read_text() == "1"
    assert sha and (await trees.head(back)).startswith(sha)


async def test_concurrent_worktree_creation_is_serialized(plain: Repo) -> None:
    trees = await Worktrees.open(plain.dir, WorktreesConfig())
    made = await asyncio.gather(*(trees.ensure(str(i)) for i in range(6)))
    assert sorted(w.issue_id for w in made) == [str(i) for i in range(6)]
    listed = plain.worktrees()
    assert len(listed) == 7


async def test_refusals(plain: Repo, tmp_path: Path) -> None:
    trees = await Worktrees.open(plain.dir, WorktreesConfig(branch_prefix=""))
    with pytest.raises(UsageError, match="checked out in"):
        await trees.ensure("main")
    with pytest.raises(UsageError, match="not inside a git repository"):
        await repo_root(tmp_path / "fake-state")
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    with pytest.raises(UsageError, match="no commit yet"):
        await Worktrees.open(empty, WorktreesConfig())
