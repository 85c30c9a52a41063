"""`ic` is wired with explicit calls: what `kernel/cli/main.py` and the group modules say is what runs.

- the global flags and the subcommands owning a flag of the same name are a static table, checked
  here against the options every group's parser declares;
- no module of the wheel guards against another one being absent, and nothing is imported by a
  module-name string outside main's one table of command groups.
"""

from __future__ import annotations

import argparse
import ast
import importlib

from kernel import clikit
from kernel.cli import main
from tests.conftest import REPO_ROOT, Project


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for action in parser._actions for opt in action.option_strings}


def _leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser itself and every (sub)command parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _leaves(child)
    return found


def test_the_global_flag_table_matches_the_options_subcommands_declare() -> None:
    owned: dict[tuple[str, str], set[str]] = {}
    for group, (module_name, _) in main.GROUPS.items():
        parser = clikit.Parser(prog=f"ic {group}")
        importlib.import_module(module_name).build(parser, group, ())  # no words: every subcommand
        assert not _options(parser) & set(main.GLOBAL_FLAGS) - {"-h", "--help"}, group
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                continue
            for sub, child in action.choices.items():
                clash = {opt for leaf in _leaves(child) for opt in _options(leaf)} & set(main.GLOBAL_FLAGS)
                if clash:
                    owned[(group, sub)] = clash
    assert owned == {key: set(flags) for key, flags in main.SUBCOMMAND_FLAGS.items()}


def _built(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(
        " ".join(leaf.prog.split()[1:]) for leaf in _leaves(parser) if leaf.get_default("handler") is not None
    )


def test_only_the_subcommand_named_is_built() -> None:
    from kernel.cli import run

    def built(*argv: str) -> list[str]:
        parser = clikit.Parser(prog="ic run")
        run.build(parser, "run", argv)
        return _built(parser)

    assert built("phase", "abc") == ["run phase"]
    assert built("agent", "add", "abc", "--name=x") == ["run agent add"]
    everything = built()
    assert built("--help") == built("no-such-command") == everything
    assert {
        "run create",
        "run phase",
        "run tokens",
        "run budget",
        "run agent add",
        "run artifact list",
    } <= set(everything)


def test_global_flags_anywhere_and_owned_flags_left_to_their_subcommand() -> None:
    found, rest = main._split_globals(["--json", "run", "phase", "x", "--db", "a.db", "-v", "--timeout=2s"])
    assert found == {"json": True, "db": "a.db", "verbose": True, "timeout": "2s"}
    assert rest == ["run", "phase", "x"]
    found, rest = main._split_globals(["--timeout=1s", "dispatch", "wait", "d1", "--timeout=30s", "--json"])
    assert found == {"timeout": "1s", "json": True}
    assert rest == ["dispatch", "wait", "d1", "--timeout=30s"]


def test_main_imports_only_the_requested_group(project: Project) -> None:
    probe = (
        "import sys\n"
        "from kernel.cli.main import run\n"
        "code = run(['version'])\n"
        "groups = sorted(m for m in sys.modules if m.startswith('kernel.cli.') and m != 'kernel.cli.main')\n"
        "print(code, groups, file=sys.stderr)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", probe], cwd=project.dir, capture_output=True, text=True)
    code, groups = done.stderr.strip().splitlines()[-1].split(" ", 1)
    assert code == "0", done.stderr
    assert "kernel.cli.run" not in groups and "kernel.cli.admin" in groups, groups


def _sources() -> list[tuple[str, ast.Module]]:
    found = []
    for package in ("kernel", "bigend", "orchestrator"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            found.append((str(path.relative_to(REPO_ROOT)), ast.parse(path.read_text())))
    return found


def test_no_module_guards_against_another_being_absent() -> None:
    guards = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = ast.unparse(node.type)
                if "ModuleNotFoundError" in caught or "ImportError" in caught:
                    guards.append(f"{name}:{node.lineno}: except {caught}")
    assert guards == []


def test_nothing_is_imported_by_a_module_name_string_but_the_command_groups() -> None:
    dynamic = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and "import_module" in ast.unparse(node.func):
                dynamic.append(name)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "__import__":
                dynamic.append(name)
    assert dynamic == ["kernel/cli/main.py"]
