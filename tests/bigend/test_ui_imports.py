"""Import hygiene of the UI: widgets depend on the render module and the snapshot types, not on
each other, on selectors, screens or the app; the core never imports Textual."""

from __future__ import annotations

import ast
from pathlib import Path

import bigend

PACKAGE = Path(bigend.__file__).resolve().parent
WIDGETS = PACKAGE / "ui" / "widgets"

# What any widget may import from this project: the data it shows, how it looks, the sanitiser, the
# messages it posts, and the keyed table it may be built on.
WIDGET_MAY_IMPORT = {
    "bigend.core.snapshot",
    "bigend.core.status",
    "bigend.core.feed",  # FeedItem: the event viewport's data
    "bigend.ui.render",
    "bigend.ui.text",
    "bigend.ui.messages",
    "bigend.ui.widgets.keyed_table",
}
# A compound widget composes its parts.
COMPOSES = {"run_detail": {"bigend.ui.widgets.dispatch_table"}}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, wherever it does (`from bigend.ui import render` counts as
    `bigend.ui.render`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module in {"bigend.ui", "bigend.core"}:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def project_imports(path: Path) -> set[str]:
    """The modules of this project (bigend, kernel, orchestrator) among them; a package imported
    only for its submodules (`bigend.ui`) does not count itself."""
    return {
        name
        for name in imported_modules(path)
        if name.split(".")[0] in {"bigend", "kernel", "orchestrator"}
        and name not in {"bigend.ui", "bigend.core"}
    }


def test_widgets_import_only_render_snapshot_types_and_messages() -> None:
    widgets = sorted(p for p in WIDGETS.glob("*.py") if p.name != "__init__.py")
    assert len(widgets) >= 8
    for path in widgets:
        allowed = WIDGET_MAY_IMPORT | COMPOSES.get(path.stem, set())
        extra = project_imports(path) - allowed
        assert not extra, f"{path.name} imports {sorted(extra)}"


def test_render_and_selectors_import_no_textual_and_no_widget() -> None:
    for name in ("render", "selectors", "filtering"):
        modules = imported_modules(PACKAGE / "ui" / f"{name}.py")
        assert not {m for m in modules if m.split(".")[0] == "textual"}, name
        assert not {m for m in modules if m.startswith(("bigend.ui.widgets", "bigend.ui.screens"))}, name


def test_core_never_imports_textual_or_the_ui() -> None:
    for path in sorted((PACKAGE / "core").glob("*.py")):
        modules = imported_modules(path)
        assert not {m for m in modules if m.split(".")[0] == "textual" or m.startswith("bigend.ui")}, (
            path.name
        )
