"""Find the projects under the configured roots.

A project is a directory holding `.clavain/intercore.db` (a kernel project), a `.clavain/portfolio.db`
(a workspace with portfolio runs), a bare `.clavain/` directory, or one of the legacy markers. The
walk follows symlinked directories but canonicalises every directory with realpath first, so a project
reached through a symlink appears once and a symlink loop ends the first time it comes back around.
Unreadable directories are skipped (and a root we cannot read is reported), never fatal: a dashboard
must come up on a messy disk.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kernel import db as kdb

LEGACY_MARKERS = (".gurgeh", ".coldwine", ".pollard")
CLAVAIN = kdb.DB_DIR

# Heavy or never-interesting directories: always skipped, whatever the config says.
ALWAYS_SKIP = frozenset(
    {
        ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".nox",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", ".cache", ".idea", ".vscode", "site-packages",
        ".next", ".gradle", ".terraform", ".orchestrator", CLAVAIN, *LEGACY_MARKERS,
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Project:
    """One discovered project. `path` is canonical (realpath); `db_path` is the kernel database to read."""

    path: Path
    name: str
    has_intercore: bool
    markers: tuple[str, ...] = ()
    db_path: Path | None = None
    is_portfolio: bool = False

    @property
    def key(self) -> str:
        """The project's identity everywhere (state, feed ids, errors): its canonical path."""
        return str(self.path)


@dataclass
class DiscoveryResult:
    projects: list[Project] = field(default_factory=list)
    unreadable_roots: dict[str, str] = field(default_factory=dict)


def _excluded(name: str, path: str, patterns: Sequence[str]) -> bool:
    if name in ALWAYS_SKIP:
        return True
    for pattern in patterns:
        target = path if "/" in pattern else name
        if fnmatch.fnmatchcase(target, pattern):
            return True
    return False


def _kind(path: Path) -> str:
    """ "dir", "file", "other" or "" (missing or not even stat-able, e.g. permission denied)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return ""
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def inspect_dir(path: Path) -> Project | None:
    """The project rooted at `path` (already canonical), or None when it carries no marker."""
    markers: list[str] = []
    clavain = path / CLAVAIN
    has_intercore = False
    db_path: Path | None = None
    is_portfolio = False
    if _kind(clavain) == "dir":
        markers.append(CLAVAIN)
        intercore = clavain / kdb.DB_NAME
        portfolio = clavain / kdb.PORTFOLIO_DB_NAME
        if _kind(intercore) == "file":
            has_intercore = True
            db_path = intercore
        elif _kind(portfolio) == "file":
            db_path = portfolio
            is_portfolio = True
    markers.extend(marker for marker in LEGACY_MARKERS if _kind(path / marker))
    if not markers:
        return None
    return Project(
        path=path,
        name=path.name or str(path),
        has_intercore=has_intercore,
        markers=tuple(markers),
        db_path=db_path,
        is_portfolio=is_portfolio,
    )


def _walk(
    root: Path, depth: int, exclude: Sequence[str], seen: dict[str, int], found: dict[str, Project]
) -> None:
    """Depth-first walk; `seen` maps each canonical directory to the depth budget it was visited with,
    so loops and overlapping roots end at once, yet a root nested in another still gets its full depth."""
    stack: list[tuple[str, int]] = [(os.path.realpath(root), 0)]
    while stack:
        here, level = stack.pop()
        remaining = depth - level
        if seen.get(here, -1) >= remaining:
            continue
        seen[here] = remaining
        if here not in found:
            project = inspect_dir(Path(here))
            if project is not None:
                found[project.key] = project
        if remaining <= 0:
            continue
        try:
            with os.scandir(here) as entries:
                children = [
                    entry.path
                    for entry in entries
                    if not _excluded(entry.name, entry.path, exclude) and _is_dir(entry)
                ]
        except OSError:
            continue  # unreadable or vanished: skip it, keep walking elsewhere
        for child in sorted(children, reverse=True):
            stack.append((os.path.realpath(child), level + 1))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks: a symlinked project is found (once, via realpath)
    except OSError:
        return False


def _unique_names(projects: list[Project]) -> list[Project]:
    """Same-named projects in different places get their parent directory prefixed: `a/api`, `b/api`."""
    counts: dict[str, int] = {}
    for project in projects:
        counts[project.name] = counts.get(project.name, 0) + 1
    out = []
    for project in projects:
        if counts[project.name] > 1 and project.path.parent.name:
            project = Project(
                path=project.path,
                name=f"{project.path.parent.name}/{project.name}",
                has_intercore=project.has_intercore,
                markers=project.markers,
                db_path=project.db_path,
                is_portfolio=project.is_portfolio,
            )
        out.append(project)
    return out


def root_problem(root: Path) -> str | None:
    """Why `root` cannot be scanned, or None when it can."""
    kind = _kind(root)
    if not kind:
        try:
            root.stat()
        except PermissionError:
            return "is not reachable (permission denied)"
        except OSError:
            pass
        return "does not exist"
    if kind != "dir":
        return "is not a directory"
    if not os.access(root, os.R_OK | os.X_OK):
        return "is not readable (permission denied)"
    return None


def discover(roots: Iterable[Path], *, depth: int = 3, exclude: Sequence[str] = ()) -> DiscoveryResult:
    """Every project under `roots` to `depth` levels, sorted by path, each canonical path once."""
    result = DiscoveryResult()
    seen: dict[str, int] = {}
    found: dict[str, Project] = {}
    for root in roots:
        problem = root_problem(root)
        if problem is not None:
            result.unreadable_roots[str(root)] = problem
            continue
        _walk(root, depth, exclude, seen, found)
    result.projects = _unique_names([found[key] for key in sorted(found)])
    return result
