"""Runs: creation, the phase machine's writes (advance, skip, rollback), cancel/fail and settings.

Every function that changes a run does so in one `BEGIN IMMEDIATE` transaction together with the
event describing it. Reading the run inside that transaction serializes concurrent advances: each
one sees the phase the previous one left, so no phase is ever entered twice. The optimistic
`WHERE phase = <from>` on the update is kept as a second line of defence, and `expect_phase` lets a
caller say "only if the run is still where I last saw it" (an agent finishing phase X must not push
the run past a phase someone else already left).
"""

from __future__ import annotations

import json
import os
import sqlite3

from kernel import clock, events
from kernel import eventtypes as et
from kernel import queries as q
from kernel.db import write_tx
from kernel.errors import NotFound, Refused, UsageError
from kernel.model import RowType, Run
from kernel.phase import DEFAULT_CHAIN, Hop, next_hop, validate_chain, validate_complexity, walked_in

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kernel.db import StrPath

STATUSES = ("active", "completed", "cancelled", "failed")


class AdvanceResult(RowType):
    run_id: str
    from_phase: str
    to_phase: str
    skipped: list[str]
    status: str
    gate_result: str  # "pass" | "fail" | "none" (not evaluated)
    gate_tier: str
    evidence: dict[str, Any]
    overridden: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "from_phase": self.from_phase,
            "to_phase": self.to_phase,
            "skipped": list(self.skipped),
            "status": self.status,
            "gate": {"result": self.gate_result, "tier": self.gate_tier, "evidence": self.evidence},
            "overridden": self.overridden,
        }


class RollbackResult(RowType):
    run_id: str
    from_phase: str
    to_phase: str
    rolled_back: list[str]  # phases after the target up to the current one, in chain order
    status: str  # the run's status after the rollback (a completed run is reopened)
    dry_run: bool


# -- reads ------------------------------------------------------------------------------------------


def get_run(conn: sqlite3.Connection, run_id: str) -> Run:
    run = q.fetch_one(conn, q.RUN_BY_ID, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r} in this database")
    return run


def list_runs(conn: sqlite3.Connection, *, active: bool = False, scope: str | None = None) -> list[Run]:
    if scope is not None:
        return q.fetch_all(conn, q.RUNS_ACTIVE_OF_SCOPE if active else q.RUNS_OF_SCOPE, scope)
    return q.fetch_all(conn, q.RUNS_ACTIVE if active else q.RUNS_ALL)


def absolute_project(project_dir: str | os.PathLike[str]) -> str:
    """The one normal form of a project path stored in and matched against `runs.project_dir`."""
    return os.path.abspath(os.fspath(project_dir))


def current_run(conn: sqlite3.Connection, project_dir: str | os.PathLike[str]) -> Run | None:
    """The newest active run of the project; portfolio parents (project_dir '') never match."""
    path = absolute_project(project_dir)
    return q.fetch_one(conn, q.RUN_CURRENT_OF_PROJECT, path)


def nearest_run_above(conn: sqlite3.Connection, project_dir: str | os.PathLike[str]) -> Run | None:
    """The current run of the closest directory above `project_dir` that has one.

    Only for a hint when `current_run` finds nothing: a run belongs to its exact directory, and an
    agent in a subdirectory must say which project it means (`--project`), never be guessed for.
    """
    path = absolute_project(project_dir)
    parent = os.path.dirname(path)
    while parent != path:
        run = current_run(conn, parent)
        if run is not None:
            return run
        path, parent = parent, os.path.dirname(parent)
    return None


def pre_skipped(conn: sqlite3.Connection, run_id: str) -> set[str]:
    return set(q.fetch_all(conn, q.PHASE_SKIPS_OF_RUN, run_id))


# -- validation -------------------------------------------------------------------------------------


def _opt_int(name: str, value: Any, *, minimum: int = 0, maximum: int | None = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise UsageError(f"{name} must be {bound}, got {value}")
    return value


def _json_object(name: str, value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise UsageError(f"{name} must be a JSON object")
    return value


def json_text(value: Any) -> str | None:
    """How the kernel stores a JSON column (None stays NULL)."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# -- create -----------------------------------------------------------------------------------------


def create_run(
    conn: sqlite3.Connection,
    *,
    goal: str,
    project_dir: str | os.PathLike[str],
    complexity: int = 3,
    phases: list[str] | None = None,
    scope_id: str | None = None,
    token_budget: int | None = None,
    budget_warn_pct: int = 80,
    budget_enforce: bool = False,
    max_agents: int | None = None,
    gate_rules: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    force_full: bool = False,
    auto_advance: bool = True,
    parent_run_id: str | None = None,
    max_dispatches: int | None = None,
    run_id: str | None = None,
) -> Run:
    """Create a run at the first phase of its chain and record a `phase`/`created` event.

    `project_dir` is made absolute; the empty string is kept (portfolio parents). `run_id` lets a
    portfolio mirror a child run into its project database under the same id.
    """
    if not isinstance(goal, str) or not goal.strip():
        raise UsageError("--goal must be a non-empty text")
    chain = list(DEFAULT_CHAIN) if phases is None else validate_chain(phases)
    validate_complexity(complexity)
    _opt_int("--token-budget", token_budget)
    _opt_int("--budget-warn-pct", budget_warn_pct, maximum=100)
    _opt_int("--max-agents", max_agents, minimum=1)
    _opt_int("--max-dispatches", max_dispatches, minimum=1)
    _json_object("--metadata", metadata)
    if gate_rules is not None:
        from kernel.gates import validate_rules

        gate_rules = validate_rules(gate_rules, chain)
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        raise UsageError("run id must be a non-empty string")
    project = "" if project_dir == "" else absolute_project(project_dir)
    new_id = run_id or clock.new_id()
    with write_tx(conn):
        insert_run(
            conn, run_id=new_id, project_dir=project, goal=goal, chain=chain, complexity=complexity,
            force_full=force_full, auto_advance=auto_advance, scope_id=scope_id, metadata=metadata,
            token_budget=token_budget, budget_warn_pct=budget_warn_pct, budget_enforce=budget_enforce,
            max_agents=max_agents, parent_run_id=parent_run_id, max_dispatches=max_dispatches,
            gate_rules=gate_rules, now=clock.now(),
        )  # fmt: skip
        return get_run(conn, new_id)


def insert_run(
    conn: sqlite3.Connection,
    *,
    run_id: str,
    project_dir: str,
    goal: str,
    chain: list[str],
    complexity: int,
    force_full: bool,
    auto_advance: bool,
    scope_id: str | None,
    metadata: dict[str, Any] | None,
    token_budget: int | None,
    budget_warn_pct: int,
    budget_enforce: bool,
    max_agents: int | None,
    parent_run_id: str | None,
    max_dispatches: int | None,
    gate_rules: dict[str, Any] | None,
    now: int,
) -> None:
    """One validated runs row plus its `phase`/`created` event, inside the caller's transaction.

    `create_run` wraps it in its own transaction; a portfolio calls it for the parent and every child
    inside one transaction of the portfolio database.
    """
    try:
        conn.execute(
            "INSERT INTO runs (id, project_dir, goal, status, phase, complexity, force_full, "
            "auto_advance, scope_id, metadata, phases, token_budget, budget_warn_pct, budget_enforce, "
            "max_agents, parent_run_id, max_dispatches, gate_rules, created_at, updated_at) "
            "VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, project_dir, goal, chain[0], complexity, int(force_full), int(auto_advance), scope_id,
                json_text(metadata), json_text(chain), token_budget, budget_warn_pct, int(budget_enforce),
                max_agents, parent_run_id, max_dispatches, json_text(gate_rules), now, now,
            ),
        )  # fmt: skip
    except sqlite3.IntegrityError:
        raise Refused(f"a run with id {run_id!r} already exists") from None
    events.record(
        conn, source=et.PHASE, type=et.RUN_CREATED, run_id=run_id, to_state=chain[0],
        payload={"complexity": complexity, "walked": walked_in(chain, complexity, force_full)},
        timestamp=now,
    )  # fmt: skip


# -- advance ----------------------------------------------------------------------------------------


def _require_active(run: Run, doing: str) -> None:
    if run.status != "active":
        if run.status == "completed":
            raise Refused(f"run {run.id} is completed (terminal phase {run.phase!r}); cannot {doing}")
        raise Refused(f"run {run.id} is {run.status}; cannot {doing}")


def advance(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    priority: int = 1,
    disable_gates: bool = False,
    skip_reason: str | None = None,
    expect_phase: str | None = None,
    db_path: StrPath | None = None,
) -> AdvanceResult:
    """Move the run one hop along its chain, in one transaction (DESIGN 3.3).

    Refused (exit 1) when the run is terminal, paused (`auto_advance` off and no `skip_reason`: a
    `pause` event is kept), blocked by a hard gate (a `block` event with the evidence is kept), or
    no longer at `expect_phase`.
    """
    return _advance(
        conn, run_id, priority=priority, disable_gates=disable_gates, skip_reason=skip_reason,
        expect_phase=expect_phase, db_path=db_path, override_reason=None,
    )  # fmt: skip


def override_gate(
    conn: sqlite3.Connection, run_id: str, *, reason: str, db_path: StrPath | None = None
) -> AdvanceResult:
    """Advance past the gate whatever it says, recording a `gate`/`override` event with the evidence.

    An operator's explicit decision, so it also goes through a pause (`auto_advance` off).
    """
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError("--reason must be a non-empty text: say why the gate is overridden")
    return _advance(
        conn, run_id, priority=0, disable_gates=False, skip_reason=None, expect_phase=None,
        db_path=db_path, override_reason=reason,
    )  # fmt: skip


def _advance(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    priority: int,
    disable_gates: bool,
    skip_reason: str | None,
    expect_phase: str | None,
    db_path: StrPath | None,
    override_reason: str | None,
) -> AdvanceResult:
    if priority < 0:
        raise UsageError(f"--priority must be >= 0, got {priority}")
    gated = override_reason is not None or gates_apply(priority, disable_gates)
    if gated:
        # Imports happen before the transaction: they must not lengthen the time the write lock is held.
        from kernel import gates

        seen = q.fetch_one(conn, q.RUN_BY_ID, run_id)
        if seen is not None:
            gates.preload_checks(seen)
    # A pause or a block is an outcome worth keeping: its event commits, then we refuse.
    refusal: Refused | None = None
    result: AdvanceResult | None = None
    with write_tx(conn):
        run = get_run(conn, run_id)
        _require_active(run, "advance")
        if expect_phase is not None and run.phase != expect_phase:
            raise Refused(
                f"phase changed: run {run_id} is at {run.phase!r}, not {expect_phase!r}; "
                "someone else advanced it"
            )
        hop = next_hop(run, pre_skipped(conn, run_id))
        now = clock.now()
        if not run.auto_advance and not skip_reason and override_reason is None:
            events.record(
                conn, source=et.PHASE, type=et.PAUSE, run_id=run_id, from_state=hop.from_phase,
                to_state=hop.to_phase, reason="auto_advance is off", timestamp=now,
            )  # fmt: skip
            refusal = Refused(
                f"run {run_id} is paused at {run.phase!r} (auto_advance off); "
                f"pass --skip-reason=TEXT to advance, or `ic run set {run_id} --auto-advance=true`"
            )
        else:
            result, refusal = _gated_move(
                conn, run, hop, priority=priority, disable_gates=disable_gates, gated=gated, db_path=db_path,
                reason=skip_reason, override_reason=override_reason, now=now,
            )  # fmt: skip
    if refusal is not None:
        raise refusal
    assert result is not None
    return result


def gates_apply(priority: int, disable_gates: bool) -> bool:
    """Whether the gate tier is not "none" (`kernel.gates.tier_for`, without importing the engine)."""
    return not disable_gates and priority < 4


def _gated_move(
    conn: sqlite3.Connection,
    run: Run,
    hop: Hop,
    *,
    priority: int,
    disable_gates: bool,
    gated: bool,
    db_path: StrPath | None,
    reason: str | None,
    override_reason: str | None,
    now: int,
) -> tuple[AdvanceResult | None, Refused | None]:
    gate_payload: dict[str, Any] = {"result": "none", "tier": "none", "evidence": {"conditions": []}}
    if gated:
        from kernel.gates import evaluate

        gate = evaluate(conn, run, hop, priority=priority, disable_gates=disable_gates, db_path=db_path)
        gate_payload = gate.to_json()
        if gate.blocks and override_reason is None:
            events.record(
                conn, source=et.PHASE, type=et.BLOCK, run_id=run.id, from_state=hop.from_phase,
                to_state=hop.to_phase, reason=f"gate blocked: {gate.summary()}",
                payload={"gate": gate_payload}, timestamp=now,
            )  # fmt: skip
            return None, Refused(
                f"gate blocked {hop.from_phase} -> {hop.to_phase}: {gate.summary()} "
                f"(advance with --priority=2 for a soft gate, or `ic gate override {run.id} --reason=...`)"
            )
    terminal = hop.to_phase == run.phases[-1]
    status = "completed" if terminal else "active"
    cur = conn.execute(
        "UPDATE runs SET phase = ?, status = ?, updated_at = ?, completed_at = ? "
        "WHERE id = ? AND phase = ? AND status = 'active'",
        (hop.to_phase, status, now, now if terminal else None, run.id, hop.from_phase),
    )
    if cur.rowcount != 1:
        raise Refused(f"phase changed: run {run.id} is no longer at {hop.from_phase!r}; read it and retry")
    if override_reason is not None:
        events.record(
            conn, source=et.GATE, type=et.GATE_OVERRIDE, run_id=run.id, from_state=hop.from_phase,
            to_state=hop.to_phase, reason=override_reason, payload={"gate": gate_payload}, timestamp=now,
        )  # fmt: skip
    pre = pre_skipped(conn, run.id)
    for phase in hop.skipped:
        events.record(
            conn, source=et.PHASE, type=et.SKIP, run_id=run.id, from_state=hop.from_phase, to_state=phase,
            reason="pre-skipped" if phase in pre else f"not walked at complexity {run.complexity}",
            payload={"cause": "pre-skip" if phase in pre else "complexity"}, timestamp=now,
        )  # fmt: skip
    events.record(
        conn, source=et.PHASE, type=et.ADVANCE, run_id=run.id, from_state=hop.from_phase,
        to_state=hop.to_phase, reason=override_reason or reason,
        payload={"gate": gate_payload, "skipped": hop.skipped, "override": override_reason is not None},
        timestamp=now,
    )  # fmt: skip
    if terminal:
        events.record(
            conn, source=et.PHASE, type=et.COMPLETE, run_id=run.id, from_state=hop.to_phase,
            to_state=hop.to_phase, payload={"status": "completed"}, timestamp=now,
        )  # fmt: skip
    result = AdvanceResult(
        run_id=run.id, from_phase=hop.from_phase, to_phase=hop.to_phase, skipped=list(hop.skipped),
        status=status, gate_result=gate_payload["result"], gate_tier=gate_payload["tier"],
        evidence=gate_payload["evidence"],
        overridden=override_reason is not None,
    )  # fmt: skip
    return result, None


def peek_hop(conn: sqlite3.Connection, run_id: str) -> tuple[Run, Hop]:
    """The run and the hop `advance` would take now (for `ic gate check`); Refused when terminal."""
    run = get_run(conn, run_id)
    _require_active(run, "advance")
    return run, next_hop(run, pre_skipped(conn, run_id))


# -- skip, rollback ---------------------------------------------------------------------------------


def skip_phase(conn: sqlite3.Connection, run_id: str, phase: str, reason: str) -> bool:
    """Pre-skip a phase ahead of the run: advances will pass over it. Returns False if already skipped.

    The pre-skip itself is a `skip` event with no from_state (payload cause "pre-skip", planned);
    the advance that passes over the phase later records its own `skip` from the phase it left.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError("--reason must be a non-empty text: say why the phase is skipped")
    with write_tx(conn):
        run = get_run(conn, run_id)
        if phase not in run.phases:
            raise UsageError(f"phase {phase!r} is not in run {run_id}'s chain: {', '.join(run.phases)}")
        if phase == run.phases[-1]:
            raise UsageError(f"{phase!r} is the terminal phase and cannot be skipped")
        _require_active(run, "skip a phase")
        if run.phases.index(phase) <= run.phases.index(run.phase):
            raise Refused(f"run {run_id} is already at or past {phase!r} (at {run.phase!r}); nothing to skip")
        if phase in pre_skipped(conn, run_id):
            return False
        now = clock.now()
        conn.execute(
            "INSERT INTO phase_skips (run_id, phase, reason, created_at) VALUES (?, ?, ?, ?)",
            (run_id, phase, reason, now),
        )
        conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now, run_id))
        events.record(
            conn, source=et.PHASE, type=et.SKIP, run_id=run_id, to_state=phase, reason=reason,
            payload={"cause": "pre-skip", "planned": True}, timestamp=now,
        )  # fmt: skip
    return True


def rollback(
    conn: sqlite3.Connection,
    run_id: str,
    to_phase: str,
    *,
    dry_run: bool = False,
    reason: str | None = None,
) -> RollbackResult:
    """Move the run back to an earlier phase of its chain; a completed run is reopened.

    Cancelled and failed runs stay final. `dry_run` reports what would change and writes nothing.
    """
    with write_tx(conn):
        run = get_run(conn, run_id)
        if to_phase not in run.phases:
            raise UsageError(f"phase {to_phase!r} is not in run {run_id}'s chain: {', '.join(run.phases)}")
        if run.status in ("cancelled", "failed"):
            raise Refused(f"run {run_id} is {run.status}; it cannot be rolled back")
        here, there = run.phases.index(run.phase), run.phases.index(to_phase)
        if there >= here:
            raise Refused(f"run {run_id} is at {run.phase!r}; --to-phase={to_phase} is not an earlier phase")
        result = RollbackResult(
            run_id=run_id, from_phase=run.phase, to_phase=to_phase,
            rolled_back=run.phases[there + 1 : here + 1], status="active", dry_run=dry_run,
        )  # fmt: skip
        if dry_run:
            return result
        now = clock.now()
        conn.execute(
            "UPDATE runs SET phase = ?, status = 'active', completed_at = NULL, updated_at = ? WHERE id = ?",
            (to_phase, now, run_id),
        )
        events.record(
            conn, source=et.PHASE, type=et.ROLLBACK, run_id=run_id, from_state=run.phase, to_state=to_phase,
            reason=reason, payload={"rolled_back": result.rolled_back, "reopened": run.status == "completed"},
            timestamp=now,
        )  # fmt: skip
    return result


def block(
    conn: sqlite3.Connection, run_id: str, *, reason: str, payload: dict[str, Any] | None = None
) -> Run:
    """Record that an active run cannot move on for a reason outside its gates; the run stays put.

    The orchestrator's case: an issue whose dependency did not pass. The event is the `block` a failing
    hard gate writes (from the run's phase towards the next one), so every reader shows the run as
    blocked with this reason; the run's next move (`advance`, `rollback`) supersedes it.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError("a block needs a reason")
    _json_object("payload", payload)
    with write_tx(conn):
        run = get_run(conn, run_id)
        _require_active(run, "block it")
        here = run.phases.index(run.phase)
        ahead = run.phases[here + 1] if here + 1 < len(run.phases) else run.phase
        events.record(
            conn, source=et.PHASE, type=et.BLOCK, run_id=run_id, from_state=run.phase, to_state=ahead,
            reason=reason, payload=payload, timestamp=clock.now(),
        )  # fmt: skip
        return run


# -- cancel, fail -----------------------------------------------------------------------------------


def _finish(conn: sqlite3.Connection, run_id: str, status: str, event_type: str, reason: str | None) -> Run:
    with write_tx(conn):
        run = get_run(conn, run_id)
        _require_active(run, "cancel it" if status == "cancelled" else "fail it")
        now = clock.now()
        conn.execute(
            "UPDATE runs SET status = ?, completed_at = ?, updated_at = ? WHERE id = ? AND status = 'active'",
            (status, now, now, run_id),
        )
        events.record(
            conn, source=et.PHASE, type=event_type, run_id=run_id, from_state=run.phase, to_state=run.phase,
            reason=reason, payload={"status": status}, timestamp=now,
        )  # fmt: skip
        return get_run(conn, run_id)


def cancel_run(conn: sqlite3.Connection, run_id: str, *, reason: str | None = None) -> Run:
    return _finish(conn, run_id, "cancelled", et.CANCEL, reason)


def fail_run(conn: sqlite3.Connection, run_id: str, *, reason: str) -> Run:
    """Mark an active run failed (the orchestrator's verdict when an issue is capped or broken)."""
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError("a failed run needs a reason")
    return _finish(conn, run_id, "failed", et.FAIL, reason)


# -- settings ---------------------------------------------------------------------------------------


def _check_setting(key: str, value: Any, run: Run) -> Any:
    if key in ("auto_advance", "force_full", "budget_enforce"):
        if not isinstance(value, bool):
            raise UsageError(f"{key} must be true or false")
        return value
    if key == "complexity":
        return validate_complexity(value)
    if key == "token_budget":
        return _opt_int("--token-budget", value)
    if key == "budget_warn_pct":
        if value is None:
            raise UsageError("--budget-warn-pct cannot be cleared; give 0..100")
        return _opt_int("--budget-warn-pct", value, maximum=100)
    if key in ("max_agents", "max_dispatches"):
        return _opt_int(f"--{key.replace('_', '-')}", value, minimum=1)
    if key == "metadata":
        return _json_object("--metadata", value)
    if key == "gate_rules":
        if value is None:
            return None
        from kernel.gates import validate_rules

        return validate_rules(value, run.phases)
    if key == "scope_id":
        if value is not None and not isinstance(value, str):
            raise UsageError("--scope-id must be text")
        return value or None
    if key == "goal":
        if not isinstance(value, str) or not value.strip():
            raise UsageError("--goal must be a non-empty text")
        return value
    raise UsageError(f"{key!r} cannot be set; settable: {', '.join(SETTABLE)}")


SETTABLE = (
    "goal", "auto_advance", "complexity", "force_full", "token_budget", "budget_warn_pct", "budget_enforce",
    "max_agents", "max_dispatches", "metadata", "scope_id", "gate_rules",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"metadata", "gate_rules"})


def set_run(conn: sqlite3.Connection, run_id: str, **changes: Any) -> Run:
    """Change a run's settings in one transaction with one `run`/`set` event listing old and new values."""
    if not changes:
        raise UsageError("nothing to set; give at least one setting (see `ic run set --help`)")
    for key in changes:
        if key not in SETTABLE:
            raise UsageError(f"{key!r} cannot be set; settable: {', '.join(SETTABLE)}")
    with write_tx(conn):
        run = get_run(conn, run_id)
        clean = {key: _check_setting(key, value, run) for key, value in changes.items()}
        current = run.to_json()
        previous = {key: current[key] for key in clean}
        now = clock.now()
        columns = ", ".join(f"{key} = ?" for key in clean)
        values = [
            json_text(v) if k in _JSON_COLUMNS else (int(v) if isinstance(v, bool) else v)
            for k, v in clean.items()
        ]
        conn.execute(f"UPDATE runs SET {columns}, updated_at = ? WHERE id = ?", (*values, now, run_id))
        events.record(
            conn, source=et.RUN, type=et.RUN_SET, run_id=run_id, reason=", ".join(sorted(clean)),
            payload={"changes": clean, "previous": previous}, timestamp=now,
        )  # fmt: skip
        return get_run(conn, run_id)
