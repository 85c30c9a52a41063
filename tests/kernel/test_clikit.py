"""kernel.clikit: the one parser and the one error -> exit code mapping of `ic`, `bigend` and
`orchestrator`, unit by unit and through the three real console scripts."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kernel import clikit
from kernel.errors import KernelError, NotFound, Refused, StorageError, UsageError
from orchestrator import errors as orch_errors
from orchestrator.kernel_bridge import KernelTrouble
from orchestrator.runlock import RepositoryBusy
from tests.conftest import REPO_ROOT


def test_usage_errors_name_the_command_and_its_help() -> None:
    assert (
        clikit.usage_error("ic run create", "boom").message == "run create: boom (see `ic run create --help`)"
    )
    assert clikit.usage_error("bigend", "boom").message == "boom (see `bigend --help`)"
    parser = clikit.Parser(prog="orchestrator run")
    parser.add_argument("--jobs", type=clikit.bounded_int("jobs", 1, 16))
    with pytest.raises(UsageError) as caught:
        parser.parse_args(["--jobs=17"])
    assert caught.value.exit_code == 3
    assert caught.value.message == (
        "run: argument --jobs: --jobs must be 1..16, got 17 (see `orchestrator run --help`)"
    )


def test_words_left_over_are_blamed_on_the_deepest_command() -> None:
    parser = clikit.Parser(prog="ic run", epilog="the footer")
    subs = clikit.add_subcommands(parser)
    child = subs.add_parser("phase")
    child.add_argument("run")
    child.add_argument("--verbose", action="store_true")
    assert child.epilog == "the footer"  # subcommands end their help like their parent
    assert clikit.parse(parser, ["phase", "abc"]).run == "abc"
    with pytest.raises(UsageError, match=r"^run phase: unrecognized arguments: --nope \(see `ic run phase"):
        clikit.parse(parser, ["phase", "abc", "--nope"])
    with pytest.raises(UsageError, match=r"unrecognized arguments: --verb\b"):
        clikit.parse(parser, ["phase", "abc", "--verb"])  # no abbreviations


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (NotFound("no run 'x'"), 1, "no run 'x'"),
        (Refused("gate blocked"), 1, "gate blocked"),
        (StorageError("disk"), 2, "disk"),
        (UsageError("bad flag"), 3, "bad flag"),
        (orch_errors.CycleError(["a", "b"]), 3, "dependency cycle between issues: a, b"),
        (orch_errors.ConfigMissing("no config"), 3, "no config"),
        (orch_errors.GitError("git failed"), 2, "git failed"),
        (RepositoryBusy("busy"), 1, "busy"),
        (KernelTrouble("kernel said no"), 2, "kernel said no"),
        (SystemExit(0), 0, None),
        (SystemExit(None), 0, None),
        (SystemExit(3), 3, None),
        (KeyboardInterrupt(), 130, "interrupted"),
        (BrokenPipeError(), 0, None),
        (RuntimeError("boom"), 2, "unexpected RuntimeError: boom"),
    ],
)
def test_every_ending_has_one_exit_code_and_message(
    exc: BaseException, code: int, message: str | None
) -> None:
    assert clikit.failure(exc) == (code, message)


def test_orchestrator_errors_are_kernel_errors() -> None:
    for kind in (orch_errors.CycleError, orch_errors.ConfigMissing, orch_errors.GitError, RepositoryBusy):
        assert issubclass(kind, KernelError)
    assert not hasattr(orch_errors, "OrchestratorError")  # no second base error


def test_a_database_error_says_what_to_do() -> None:
    code, message = clikit.failure(sqlite3.OperationalError("database is locked"), db_timeout=0.5)
    assert code == 2 and message is not None
    assert "database is locked" in message and "--timeout=0.5s" in message


def test_report_writes_one_inert_line_and_a_traceback_only_when_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert clikit.report("ic", NotFound("no run '\x1b[31mx'")) == 1
    assert capsys.readouterr().err == "ic: no run '\\x1b[31mx'\n"
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as exc:
        assert clikit.report("bigend", exc) == 2
        quiet = capsys.readouterr().err
        assert clikit.report("bigend", exc, verbose=True) == 2
        loud = capsys.readouterr().err
    assert quiet == "bigend: unexpected RuntimeError: boom second line\n"
    assert "Traceback" in loud and loud.endswith("bigend: unexpected RuntimeError: boom second line\n")
    assert clikit.report("ic", NotFound("x"), verbose=True) == 1
    assert "Traceback" not in capsys.readouterr().err  # an expected error is never a traceback


def _script(name: str) -> list[str]:
    beside = Path(sys.executable).parent / name
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", f"{name}.cli"]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["ic", "run", "phase", "abc", "--frob"], "ic: run phase: unrecognized arguments: --frob "
         "(see `ic run phase --help`)\n"),
        (["bigend", "--once", "--frob"], "bigend: unrecognized arguments: --frob (see `bigend --help`)\n"),
        (["bigend", "demo", "--frob"], "bigend: demo: unrecognized arguments: --frob "
         "(see `bigend demo --help`)\n"),
        (["orchestrator", "run", "--milestone=1", "--frob"], "orchestrator: run: unrecognized arguments: "
         "--frob (see `orchestrator run --help`)\n"),
    ],
)  # fmt: skip
def test_the_three_clis_report_usage_errors_alike(tmp_path: Path, argv: list[str], line: str) -> None:
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(
        [*_script(argv[0]), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "", line)


def test_there_is_one_argument_parser_class() -> None:
    """No module defines its own argparse parser subclass: kernel.clikit.Parser is the only one."""
    found = []
    for package in ("kernel", "bigend", "orchestrator"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and any(
                    "ArgumentParser" in ast.unparse(b) for b in node.bases
                ):
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.name}")
    assert found == ["kernel/clikit.py:Parser"]
