"""Discovery over real directory trees: markers, symlinks, loops, permissions, depth and exclusions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bigend.core.discovery import ALWAYS_SKIP, discover
from kernel import db as kdb


def kernel_project(path: Path) -> Path:
    kdb.init_db(path / kdb.DB_DIR / kdb.DB_NAME)
    return path


def names(result: object) -> dict[str, str]:
    return {str(p.path): p.name for p in result.projects}  # type: ignore[attr-defined]


def test_finds_kernel_bare_portfolio_and_legacy_projects(tmp_path: Path) -> None:
    kernel_project(tmp_path / "api")
    (tmp_path / "bare" / ".clavain").mkdir(parents=True)
    (tmp_path / "old" / ".pollard").mkdir(parents=True)
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / ".coldwine").write_text("")
    kdb.init_db(tmp_path / "ws" / ".clavain" / kdb.PORTFOLIO_DB_NAME)
    (tmp_path / "plain" / "src").mkdir(parents=True)

    found = {p.name: p for p in discover([tmp_path]).projects}

    assert set(found) == {"api", "bare", "old", "older", "ws"}
    assert found["api"].has_intercore and found["api"].db_path == tmp_path / "api/.clavain/intercore.db"
    assert found["api"].markers == (".clavain",)
    assert not found["bare"].has_intercore and found["bare"].db_path is None
    assert found["old"].markers == (".pollard",) and found["older"].markers == (".coldwine",)
    assert found["ws"].is_portfolio and not found["ws"].has_intercore
    assert found["ws"].db_path == tmp_path / "ws/.clavain/portfolio.db"


def test_root_itself_and_nested_projects_are_found(tmp_path: Path) -> None:
    kernel_project(tmp_path)
    kernel_project(tmp_path / "services" / "billing")
    paths = [p.path for p in discover([tmp_path]).projects]
    assert paths == [tmp_path, tmp_path / "services" / "billing"]


def test_symlinked_project_appears_once_under_its_real_path(tmp_path: Path) -> None:
    real = kernel_project(tmp_path / "root" / "real")
    outside = kernel_project(tmp_path / "elsewhere" / "shared")
    (tmp_path / "root" / "alias").symlink_to(real)
    (tmp_path / "root" / "linked").symlink_to(outside)

    projects = discover([tmp_path / "root"]).projects

    assert sorted(str(p.path) for p in projects) == sorted([str(real), str(outside)])


def test_symlink_loops_end(tmp_path: Path) -> None:
    kernel_project(tmp_path / "a" / "proj")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "proj" / "up").symlink_to(tmp_path)
    (tmp_path / "self").symlink_to(tmp_path / "self")  # a link to itself: neither dir nor error
    projects = discover([tmp_path], depth=30).projects
    assert [p.path for p in projects] == [tmp_path / "a" / "proj"]


def test_depth_limits_the_walk(tmp_path: Path) -> None:
    deep = kernel_project(tmp_path / "l1" / "l2" / "l3" / "l4")
    assert discover([tmp_path], depth=3).projects == []
    assert [p.path for p in discover([tmp_path], depth=4).projects] == [deep]
    assert [p.path for p in discover([tmp_path / "l1"], depth=3).projects] == [deep]


def test_heavy_directories_and_exclude_patterns_are_skipped(tmp_path: Path) -> None:
    kernel_project(tmp_path / "node_modules" / "pkg")
    kernel_project(tmp_path / ".venv" / "lib")
    kernel_project(tmp_path / "archive-2023" / "old")
    kernel_project(tmp_path / "keep" / "tmp")
    kernel_project(tmp_path / "other" / "tmp")
    kept = kernel_project(tmp_path / "app")

    assert {"node_modules", ".venv", ".git"} <= ALWAYS_SKIP
    result = discover([tmp_path], exclude=["archive-*", f"{tmp_path}/keep/*"])
    assert [p.path for p in result.projects] == [kept, tmp_path / "other" / "tmp"]


def test_same_names_are_told_apart_by_their_parent(tmp_path: Path) -> None:
    kernel_project(tmp_path / "team-a" / "api")
    kernel_project(tmp_path / "team-b" / "api")
    kernel_project(tmp_path / "web")
    assert sorted(names(discover([tmp_path])).values()) == ["team-a/api", "team-b/api", "web"]


def test_overlapping_roots_list_each_project_once_with_the_deeper_budget(tmp_path: Path) -> None:
    deep = kernel_project(tmp_path / "x" / "y" / "z" / "w")
    result = discover([tmp_path, tmp_path / "x"], depth=3)
    assert [p.path for p in result.projects] == [deep]
    assert [p.path for p in discover([tmp_path, tmp_path], depth=4).projects] == [deep]


def test_missing_and_file_roots_are_reported_not_fatal(tmp_path: Path) -> None:
    kept = kernel_project(tmp_path / "ok")
    (tmp_path / "file.txt").write_text("x")
    result = discover([tmp_path / "missing", tmp_path / "file.txt", tmp_path])
    assert [p.path for p in result.projects] == [kept]
    assert result.unreadable_roots == {
        str(tmp_path / "missing"): "does not exist",
        str(tmp_path / "file.txt"): "is not a directory",
    }


# -- permissions --------------------------------------------------------------------------------------
@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A tree an unprivileged user can walk (pytest's tmp_path is private to its owner)."""
    base = Path(tempfile.mkdtemp(prefix="bigend-perm-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for directory, subdirs, _ in os.walk(base):
            for sub in subdirs:
                os.chmod(os.path.join(directory, sub), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def discover_unprivileged(roots: list[Path]) -> dict[str, object]:
    """Discovery as a user permissions apply to: the test user itself, or `nobody` when we are root.

    Root reads every directory whatever its mode, so a forked child drops to uid/gid 65534 first and
    reports back through a pipe (no exec: the interpreter may live where `nobody` cannot go).
    """
    if os.geteuid() != 0:
        result = discover(roots)
        return {"projects": [str(p.path) for p in result.projects], "unreadable": result.unreadable_roots}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        code = 0
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = discover(roots)
            found = [str(p.path) for p in result.projects]
            payload = {"projects": found, "unreadable": result.unreadable_roots}
            os.write(write_end, json.dumps(payload).encode())
        except BaseException as exc:  # report it: after setuid not even `traceback` may be importable
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    decoded: dict[str, object] = json.loads(b"".join(chunks))
    assert os.waitstatus_to_exitcode(status) == 0, decoded
    return decoded


def test_unreadable_directories_are_skipped_and_unreadable_roots_reported(world_readable_tmp: Path) -> None:
    base = world_readable_tmp
    visible = kernel_project(base / "visible")
    kernel_project(base / "locked" / "hidden")
    (base / "locked").chmod(0o000)
    (base / "private-root").mkdir()
    (base / "private-root").chmod(0o000)
    (visible / ".clavain").chmod(0o755)  # `ic init` makes it 0700; let the unprivileged walker look in

    seen = discover_unprivileged([base, base / "private-root"])

    assert seen["projects"] == [str(visible)]
    assert seen["unreadable"] == {str(base / "private-root"): "is not readable (permission denied)"}


def test_orchestrator_worktrees_are_not_projects_of_their_own(tmp_path: Path) -> None:
    """Issue worktrees under .orchestrator/ are checkouts of the repository, not more projects."""
    repo = kernel_project(tmp_path / "repo")
    kernel_project(repo / ".orchestrator" / "worktrees" / "007")
    result = discover([tmp_path], depth=5)
    assert [p.path for p in result.projects] == [repo]
