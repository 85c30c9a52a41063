"""The gate engine: which conditions guard a hop, and whether they hold.

Rules are keyed by the phase being left. A run's own rules (`--gates`) replace the default table;
on top of either, conditions that follow from what the run *is* are added automatically (budget
enforcement, portfolio parent, portfolio child).

`CHECKS` is the one table of every check a rule may name. Checks owned by other areas (budgets,
portfolio) live in their modules; their entry here imports that module when the check is first
needed, so plain runs never load the budget or portfolio code, and `preload_checks` does those imports
before `advance` takes the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kernel import queries as q
from kernel.errors import UsageError
from kernel.model import Run
from kernel.phase import Hop

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kernel.db import StrPath


@dataclass(frozen=True, slots=True)
class GateContext:
    conn: sqlite3.Connection
    db_path: StrPath | None
    run: Run
    from_phase: str
    to_phase: str


@dataclass(frozen=True, slots=True)
class ConditionResult:
    """One evaluated condition; `count` is what the check counted (see each check's docstring)."""

    check: str
    phase: str | None
    result: str  # "pass" | "fail"
    count: int
    detail: str

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


CheckFn = Callable[[GateContext, dict[str, Any]], ConditionResult]

# Keys a rule may carry besides "check"; each must be a string when present.
RULE_PARAMS: frozenset[str] = frozenset({"phase", "kind"})

HARD, SOFT, NONE = "hard", "soft", "none"


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    tier: str  # "hard" | "soft" | "none"
    evidence: dict[str, Any] = field(default_factory=lambda: {"conditions": []})

    @property
    def blocks(self) -> bool:
        return self.tier == HARD and not self.passed

    @property
    def result(self) -> str:
        """Either pass or fail as evaluated, or none when the tier meant nothing was evaluated."""
        if self.tier == NONE:
            return "none"
        return "pass" if self.passed else "fail"

    def failed_conditions(self) -> list[dict[str, Any]]:
        return [c for c in self.evidence.get("conditions", []) if c.get("result") != "pass"]

    def summary(self) -> str:
        """One line naming the failed conditions, for messages and event reasons."""
        failed = self.failed_conditions()
        if not failed:
            return "all conditions pass"
        return "; ".join(
            f"{c['check']}({c['phase']}): {c['detail']}" if c.get("phase") else f"{c['check']}: {c['detail']}"
            for c in failed
        )

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result, "tier": self.tier, "evidence": self.evidence}


def tier_for(priority: int, disable_gates: bool) -> str:
    """0-1 hard (blocks), 2-3 soft (recorded, advances), >= 4 or --disable-gates none."""
    if priority < 0:
        raise UsageError(f"--priority must be >= 0, got {priority}")
    if disable_gates or priority >= 4:
        return NONE
    return HARD if priority <= 1 else SOFT


def _artifact_rule(phase: str) -> list[dict[str, Any]]:
    return [{"check": "artifact_exists", "phase": phase}]


# DESIGN 3.4, keyed by the phase being left.
DEFAULT_RULES: dict[str, list[dict[str, Any]]] = {
    "brainstorm": _artifact_rule("brainstorm"),
    "brainstorm-reviewed": _artifact_rule("brainstorm-reviewed"),
    "strategized": _artifact_rule("strategized"),
    "planned": _artifact_rule("planned"),
    "executing": [{"check": "agents_complete"}],
    "review": [{"check": "verdict_exists", "phase": "review"}],
    "reflect": _artifact_rule("reflect"),
}


def _normalize_rule(item: Any, where: str) -> dict[str, Any]:
    rule = {"check": item} if isinstance(item, str) else item
    if not isinstance(rule, dict) or not isinstance(rule.get("check"), str):
        raise UsageError(f'gate rule {where} must be a check name or {{"check": NAME, ...}}, got {item!r}')
    name = rule["check"]
    if name not in CHECKS:
        known = ", ".join(sorted(CHECKS))
        raise UsageError(f"gate rule {where}: unknown check {name!r}; known checks: {known}")
    for key, value in rule.items():
        if key == "check":
            continue
        if key not in RULE_PARAMS:
            raise UsageError(f"gate rule {where}: unknown key {key!r} (allowed: check, phase, kind)")
        if not isinstance(value, str) or not value:
            raise UsageError(f"gate rule {where}: {key!r} must be a non-empty string")
    return dict(rule)


def validate_rules(obj: Any, chain: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Check and normalize a per-run rule table `{phase being left: [rule, ...]}`.

    A rule is a check name or an object `{"check": NAME, "phase": P?, "kind": K?}`. With `chain`,
    phases named as keys or as a rule's "phase" must belong to it: a typo would otherwise silently
    disable the gate.
    """
    if not isinstance(obj, dict):
        raise UsageError('gate rules must be a JSON object {"<phase>": [{"check": "..."}]}')
    table: dict[str, list[dict[str, Any]]] = {}
    for phase, rules in obj.items():
        if chain is not None and phase not in chain:
            raise UsageError(f"gate rules name phase {phase!r}, which is not in the run's chain")
        if not isinstance(rules, list):
            raise UsageError(f"gate rules for {phase!r} must be a JSON array of rules")
        normalized = [_normalize_rule(item, f"{phase}[{i}]") for i, item in enumerate(rules)]
        for rule in normalized:
            target = rule.get("phase")
            if chain is not None and target is not None and target not in chain:
                raise UsageError(f"gate rule for {phase!r} names phase {target!r}, which is not in the chain")
        table[phase] = normalized
    return table


def rule_table(run: Run) -> dict[str, list[dict[str, Any]]]:
    return DEFAULT_RULES if run.gate_rules is None else run.gate_rules


def rules_for(run: Run, phase: str | None = None) -> list[dict[str, Any]]:
    """The configured rules for leaving `phase` (default: the run's current phase)."""
    return [dict(r) for r in rule_table(run).get(run.phase if phase is None else phase, [])]


def automatic_rules(run: Run, to_phase: str) -> list[dict[str, Any]]:
    """Conditions implied by the kind of run, added to every hop on top of the table."""
    rules: list[dict[str, Any]] = []
    if run.budget_enforce:
        rules.append({"check": "budget_not_exceeded"})
    if run.is_portfolio_parent:
        rules.append({"check": "children_at_phase", "phase": to_phase})
    if run.parent_run_id is not None:
        rules.append({"check": "upstreams_at_phase", "phase": to_phase})
    return rules


def preload_checks(run: Run) -> None:
    """Import the modules of the checks the run's gates may need, so no import happens under the
    write lock."""
    names = {r["check"] for rules in rule_table(run).values() for r in rules}
    names |= {r["check"] for r in automatic_rules(run, run.phase)}
    for name in names & CHECKS.keys():
        CHECKS[name]()


def evaluate_rule(ctx: GateContext, rule: Mapping[str, Any]) -> ConditionResult:
    """Evaluate one rule. A name no check has (a rule stored before a check was renamed) fails."""
    name = str(rule["check"])
    load = CHECKS.get(name)
    if load is None:
        phase = rule.get("phase")
        target = phase if isinstance(phase, str) else None
        return ConditionResult(name, target, "fail", 0, f"unknown check {name!r}")
    return load()(ctx, dict(rule))


def evaluate(
    conn: sqlite3.Connection,
    run: Run,
    hop: Hop,
    *,
    priority: int,
    disable_gates: bool,
    db_path: StrPath | None = None,
) -> GateResult:
    """Evaluate the gate guarding `hop`. With tier "none" nothing is evaluated (and nothing fails)."""
    tier = tier_for(priority, disable_gates)
    if tier == NONE:
        return GateResult(True, NONE, {"conditions": []})
    ctx = GateContext(conn=conn, db_path=db_path, run=run, from_phase=hop.from_phase, to_phase=hop.to_phase)
    rules = rules_for(run, hop.from_phase)
    present = {r["check"] for r in rules}
    rules += [r for r in automatic_rules(run, hop.to_phase) if r["check"] not in present]
    conditions = [evaluate_rule(ctx, rule) for rule in rules]
    passed = all(c.passed for c in conditions)
    return GateResult(passed, tier, {"conditions": [c.to_json() for c in conditions]})


# -- built-in checks --------------------------------------------------------------------------------


def _verb(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def check_artifact_exists(ctx: GateContext, rule: dict[str, Any]) -> ConditionResult:
    """Passes when the run has an artifact for `phase` (default: the phase being left).

    `count` is the number of such artifacts; an optional "kind" narrows them.
    """
    phase = str(rule.get("phase") or ctx.from_phase)
    kind = rule.get("kind")
    artifacts = q.fetch_all(ctx.conn, q.ARTIFACTS_OF_RUN_PHASE, ctx.run.id, phase)
    if kind is not None:
        artifacts = [a for a in artifacts if a.kind == kind]
    what = f"{kind} artifact" if kind else "artifact"
    if artifacts:
        detail = _verb(len(artifacts), f"{what} recorded", f"{what}s recorded")
        return ConditionResult("artifact_exists", phase, "pass", len(artifacts), detail)
    return ConditionResult(
        "artifact_exists", phase, "fail", 0,
        f"no {what} recorded for phase {phase}; add one with "
        f"`ic run artifact add {ctx.run.id} --phase={phase} --path=FILE`",
    )  # fmt: skip


def check_agents_complete(ctx: GateContext, rule: dict[str, Any]) -> ConditionResult:
    """Passes when every agent of the run is `completed` (vacuously with none).

    `count` is the number of agents not completed yet (active or failed).
    """
    agents = q.fetch_all(ctx.conn, q.AGENTS_OF_RUN, ctx.run.id)
    pending = [a for a in agents if a.status != "completed"]
    if not pending:
        detail = "no agents registered" if not agents else f"all {len(agents)} agents completed"
        return ConditionResult("agents_complete", None, "pass", 0, detail)
    active = sum(1 for a in pending if a.status == "active")
    failed = len(pending) - active
    names = ", ".join(a.name for a in pending[:5]) + (", ..." if len(pending) > 5 else "")
    return ConditionResult(
        "agents_complete", None, "fail", len(pending),
        f"{active} active, {failed} failed of {len(agents)} agents ({names})",
    )  # fmt: skip


def check_verdict_exists(ctx: GateContext, rule: dict[str, Any]) -> ConditionResult:
    """Passes when the latest verdict artifact for `phase` (default: the phase being left) passed.

    The latest one decides, so a failed re-review after a pass blocks again. `count` is the number
    of passing verdicts for the phase.
    """
    phase = str(rule.get("phase") or ctx.from_phase)
    verdicts = q.fetch_all(ctx.conn, q.VERDICTS_OF_RUN_PHASE, ctx.run.id, phase)
    passing = sum(1 for v in verdicts if (v.metadata or {}).get("status") == "pass")
    if not verdicts:
        return ConditionResult(
            "verdict_exists", phase, "fail", 0,
            f"no verdict recorded for phase {phase}; add one with "
            f"`ic run artifact add {ctx.run.id} --phase={phase} --kind=verdict --verdict=pass --path=FILE`",
        )  # fmt: skip
    latest = (verdicts[-1].metadata or {}).get("status")
    if latest == "pass":
        return ConditionResult("verdict_exists", phase, "pass", passing, "latest verdict: pass")
    return ConditionResult("verdict_exists", phase, "fail", passing, f"latest verdict: {latest}")


# -- the checks -------------------------------------------------------------------------------------


def _budget_not_exceeded() -> CheckFn:
    from kernel.budget import check_budget_not_exceeded

    return check_budget_not_exceeded


def _children_at_phase() -> CheckFn:
    from kernel.portfolio.gates import check_children_at_phase

    return check_children_at_phase


def _upstreams_at_phase() -> CheckFn:
    from kernel.portfolio.gates import check_upstreams_at_phase

    return check_upstreams_at_phase


# Every check a gate rule may name -> its function (each entry returns it; see the module docstring).
CHECKS: dict[str, Callable[[], CheckFn]] = {
    "artifact_exists": lambda: check_artifact_exists,
    "agents_complete": lambda: check_agents_complete,
    "verdict_exists": lambda: check_verdict_exists,
    "budget_not_exceeded": _budget_not_exceeded,
    "children_at_phase": _children_at_phase,
    "upstreams_at_phase": _upstreams_at_phase,
}
