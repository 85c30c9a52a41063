"""The JSON contracts: checked-in schemas are current, and real `ic ... --json` outputs match them.

Outputs are validated against the checked-in files in docs/contracts/ (what consumers read), with a
small validator for the subset of JSON Schema that pydantic emits. It refuses keywords it does not
know, so a schema can never pass here merely because a rule was ignored.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kernel import db as kdb
from kernel import queries as q
from kernel.contracts import CONTRACTS
from tests.conftest import REPO_ROOT, Project

CONTRACTS_DIR = REPO_ROOT / "docs" / "contracts"
GENERATOR = REPO_ROOT / "scripts" / "gen_contracts.py"

_ANNOTATIONS = {"title", "description", "default", "$schema", "$id", "$defs", "examples"}
_TYPES: dict[str, Any] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_KNOWN = _ANNOTATIONS | {
    "$ref",
    "anyOf",
    "allOf",
    "enum",
    "const",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
}


def validate(
    instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$"
) -> list[str]:
    """Errors of `instance` against `schema` (empty when valid)."""
    root = schema if root is None else root
    unknown = set(schema) - _KNOWN
    if unknown:
        raise AssertionError(f"{path}: the test validator does not implement {sorted(unknown)}")
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        return validate(instance, root["$defs"][ref.removeprefix("#/$defs/")], root, path)
    errors: list[str] = []
    if "anyOf" in schema and all(validate(instance, s, root, path) for s in schema["anyOf"]):
        return [f"{path}: {instance!r} matches none of {len(schema['anyOf'])} alternatives"]
    for sub in schema.get("allOf", []):
        errors += validate(instance, sub, root, path)
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: {instance!r} is not {schema['const']!r}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[k](instance) for k in kinds):
            return [*errors, f"{path}: {instance!r} is not of type {kinds}"]
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{path}: {instance} < minimum {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{path}: {instance} > maximum {schema['maximum']}")
    if isinstance(instance, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing required key {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in props:
                errors += validate(value, props[key], root, f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                errors += validate(value, extra, root, f"{path}.{key}")
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            errors += validate(item, schema["items"], root, f"{path}[{i}]")
    return errors


def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CONTRACTS_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    return schema


# -- the generator -----------------------------------------------------------------------------------


def _generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )


def test_checked_in_schemas_are_current() -> None:
    result = _generator("--check")
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"


def test_every_contract_has_a_schema_file_and_a_kebab_case_name() -> None:
    for name in [*CONTRACTS, "bigend-state"]:
        assert name == name.lower() and " " not in name and "_" not in name, name
        assert (CONTRACTS_DIR / f"{name}.schema.json").is_file(), name


def test_check_mode_lists_stale_missing_and_orphaned_files_then_fixes_them(tmp_path: Path) -> None:
    out = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, out)
    (out / "event.schema.json").write_text("{}\n")
    (out / "sentinel.schema.json").unlink()
    (out / "retired.schema.json").write_text("{}\n")
    check = _generator("--check", f"--out={out}")
    assert check.returncode == 1
    for name in ("event.schema.json", "sentinel.schema.json", "retired.schema.json"):
        assert name in check.stdout
    assert "run.schema.json" not in check.stdout
    assert _generator(f"--out={out}").returncode == 0
    assert not (out / "retired.schema.json").exists()
    assert _generator("--check", f"--out={out}").returncode == 0


# -- the validator itself -------------------------------------------------------------------------------

GOOD_EVENT = {
    "id": 1,
    "run_id": None,
    "source": "hook",
    "type": "t",
    "from_state": None,
    "to_state": None,
    "reason": None,
    "dispatch_id": None,
    "payload": {"k": [1]},
    "timestamp": 5,
}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"id": "1"}, "is not of type"),
        ({"id": True}, "is not of type"),
        ({"payload": [1]}, "matches none"),
        ({"source": None}, "is not of type"),
        ({"surprise": 1}, "unexpected key"),
    ],
)
def test_the_validator_catches_wrong_shapes(change: dict[str, Any], error: str) -> None:
    schema = load_schema("event")
    assert validate(GOOD_EVENT, schema) == []
    errors = validate({**GOOD_EVENT, **change}, schema)
    assert errors and error in errors[0]
    missing = {k: v for k, v in GOOD_EVENT.items() if k != "timestamp"}
    assert validate(missing, schema) == ["$: missing required key 'timestamp'"]


# -- real outputs -----------------------------------------------------------------------------------------


def _documents(out: str) -> list[Any]:
    """Every JSON document printed (one per line); a list document contributes its items."""
    docs: list[Any] = []
    for line in out.splitlines():
        value = json.loads(line)
        docs.extend(value if isinstance(value, list) else [value])
    return docs


def test_real_outputs_match_their_contracts(tmp_path: Path, project: Project) -> None:
    checked: list[tuple[str, str]] = []
    failures: list[str] = []

    def expect(
        contract: str, *args: str, stdin: str | None = None, code: int = 0, cwd: Path | None = None
    ) -> list[Any]:
        result = project.ic(*args, "--json", stdin=stdin, cwd=cwd)
        label = "ic " + " ".join(args)
        assert result.code == code, f"{label}: exit {result.code}: {result.err}"
        docs = _documents(result.out)
        assert docs, f"{label} printed no JSON"
        schema = load_schema(contract)
        for doc in docs:
            failures.extend(f"{label} [{contract}] {e}" for e in validate(doc, schema))
        checked.append((label, contract))
        return docs

    def expect_rows(contract: str, label: str, rows: list[Any]) -> None:
        """Rows no `ic` command prints (yet) but readers get from the kernel: their `to_json()`."""
        assert rows, f"{label}: no rows to check"
        schema = load_schema(contract)
        for row in rows:
            failures.extend(f"{label} [{contract}] {e}" for e in validate(row.to_json(), schema))
        checked.append((label, contract))

    fresh = Project(tmp_path / "fresh")
    fresh.dir.mkdir()
    init = fresh.ic("init", "--json")
    failures.extend(f"ic init [init] {e}" for e in validate(init.json(), load_schema("init")))
    checked.append(("ic init", "init"))
    expect("version", "version")
    expect("health", "health")

    run_id = project.ic("run", "create", "--goal=contracts", "--json").json()["id"]
    expect("event", "events", "record", "--source=hook", "--type=t", f"--run={run_id}", '--payload={"a": 1}')
    expect("event", "events", "record", "--source=hook", "--type=bare")
    expect("event", "events", "tail", "--all")
    expect("event", "events", "tail", run_id, "--consumer=c1")
    expect("event-cursor", "events", "cursor", "register", "c2", "--from=latest")
    expect("event-cursor", "events", "cursor", "reset", "c2", "--to=1")
    expect("event-cursor", "events", "cursor", "list")
    expect("state-entry", "state", "set", "k", "--ttl=1h", stdin='{"nested": {"list": [1, "two", null]}}')
    expect("state-entry", "state", "set", "k", "other", stdin="3.5")
    expect("state-entry", "state", "get", "k")
    expect("state-entry", "state", "list")
    expect("state-entry", "state", "delete", "k", "other")
    expect("pruned", "state", "prune")
    expect("sentinel-check", "sentinel", "check", "s", "--interval=1h")
    expect("sentinel-check", "sentinel", "check", "s", "--interval=1h", code=1)
    expect("sentinel", "sentinel", "list")
    expect("sentinel", "sentinel", "reset", "s")
    expect("pruned", "sentinel", "prune", "--older-than=1d")
    # Row outputs of other groups that print kernel.model rows.
    expect("run", "run", "status", run_id)
    expect("run", "run", "list")
    expect("event", "run", "events", run_id)
    expect("run-agent", "run", "agent", "add", run_id, "--name=reviewer")
    expect("run-agent", "run", "agent", "list", run_id)
    expect("token-totals", "run", "tokens", run_id)
    (project.dir / "plan.md").write_text("the plan\n")
    expect("run-artifact", "run", "artifact", "add", run_id, "--path=plan.md", "--phase=brainstorm")
    expect("run-artifact", "run", "artifact", "list", run_id)
    # Results of runs, gates, dispatches and budgets.
    chain = '["a","b","c","d"]'
    short = expect("run-created", "run", "create", "--goal=short", f"--phases={chain}")[0]["id"]
    expect("run-phase", "run", "phase", short)
    expect("run-advanced", "run", "advance", short, "--disable-gates")
    expect("run-skip", "run", "skip", short, "c", "--reason=not needed")
    expect("run-advanced", "run", "advance", short, "--disable-gates")
    expect("run-rolled-back", "run", "rollback", short, "--to-phase=a", "--dry-run")
    expect("run-rolled-back", "run", "rollback", short, "--to-phase=a")
    expect("budget-status", "run", "budget", short)
    prompt = project.dir / "prompt.md"
    prompt.write_text("say hi\n")
    spawned = expect(
        "dispatch-spawn",
        "dispatch",
        "spawn",
        f"--prompt-file={prompt}",
        f"--scope-id={short}",
        "--type=custom",
        "--command=true",
    )[0]
    expect("dispatch", "dispatch", "wait", spawned["id"], "--timeout=30s")
    expect("dispatch", "dispatch", "list")
    # Portfolio results, in a portfolio database of their own.
    for name in ("pa", "pb"):
        (tmp_path / name).mkdir()
    portfolio_db = f"--db={tmp_path / 'ws' / '.clavain' / 'portfolio.db'}"
    created = expect(
        "portfolio-created",
        "run",
        "create",
        "--goal=ship",
        portfolio_db,
        "--max-dispatches=2",
        f"--projects={tmp_path / 'pa'},{tmp_path / 'pb'}",
    )[0]
    expect("portfolio-run-status", "run", "status", created["id"], portfolio_db)
    expect(
        "project-dep",
        "portfolio",
        "dep",
        "add",
        created["id"],
        portfolio_db,
        f"--upstream={tmp_path / 'pa'}",
        f"--downstream={tmp_path / 'pb'}",
    )
    expect("portfolio-order", "portfolio", "order", created["id"], portfolio_db)
    expect("portfolio-status", "portfolio", "status", created["id"], portfolio_db)
    expect("relay-tick", "portfolio", "relay", created["id"], "--once", portfolio_db)
    # A child's spawn takes a dispatch slot in the portfolio database; the relay keeps its cursors there.
    child = created["children"][0]
    held = expect(
        "dispatch-spawn", "dispatch", "spawn", f"--prompt-file={prompt}", f"--scope-id={child['id']}",
        "--type=custom", "--command=sleep 60", cwd=Path(child["project"]),
    )[0]  # fmt: skip
    conn = kdb.open_db(Path(portfolio_db.removeprefix("--db=")))
    try:
        slots = q.fetch_all(conn, q.SLOTS_OF_PORTFOLIO, created["id"])
        expect_rows("dispatch-slot", "portfolio slots", slots)
        cursors = q.fetch_all(conn, q.RELAY_CURSORS_OF_PORTFOLIO, created["id"])
        expect_rows("relay-cursor", "relay cursors", cursors)
    finally:
        conn.close()
    expect("dispatch", "dispatch", "kill", held["id"], cwd=Path(child["project"]))
    expect("portfolio-cancelled", "run", "cancel", created["id"], portfolio_db)

    assert failures == []
    assert {contract for _, contract in checked} == set(CONTRACTS), "every contract needs a real output"
