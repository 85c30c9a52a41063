"""A realistic demo workspace, written through the kernel's own API, and a changer that keeps it alive.

`build_demo(root)` creates about eight projects with runs in every phase and status, dispatches with
tokens (one failed, one timed out, some still running), a gate block and a pause, a rollback, a budget
warning, a portfolio across three projects with dependencies and relayed events, a legacy-marker
project and one corrupt database. Everything goes through kernel.runs, kernel.runtrack,
kernel.dispatch.api, kernel.portfolio and kernel.events, so the demo is exactly what agents produce.

Determinism: the build moves a scripted clock backwards from `now` through `IC_NOW`, and ids come from
`IC_ID_SEED` when a `seed` is given, so `build_demo(root, now=..., seed=...)` writes the same rows every
time (snapshot tests rely on it). `live_changes` uses the real clock: it is the "alive" part.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kernel import clock
from kernel import db as kdb
from kernel import queries as q
from kernel.dispatch import api as dispatch_api
from kernel.errors import KernelError, Refused
from kernel.model import Run
from kernel.phase import walked_phases

HOUR = 3600
DAY = 24 * HOUR

CORRUPT_PROJECT = "ml-ranker"
LEGACY_PROJECT = "legacy-scripts"
PORTFOLIO_PROJECTS = ("auth-service", "web-dashboard", "mobile-app")


@dataclass
class DemoCounts:
    """What the demo wrote, in the aggregator's terms (bigend/core/metrics.py)."""

    runs: int = 0
    active_runs: int = 0
    blocked_runs: int = 0
    dispatches: int = 0
    active_dispatches: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    runs_per_project: dict[str, int] = field(default_factory=dict)
    dispatches_per_project: dict[str, int] = field(default_factory=dict)


@dataclass
class DemoInfo:
    root: Path
    projects: list[Path]
    kernel_projects: list[Path]
    corrupt_project: Path
    legacy_project: Path
    portfolio_db: Path
    portfolio_id: str
    counts: DemoCounts
    blocked_run_ids: list[str] = field(default_factory=list)


class _Script:
    """The build's clock: each step happens `seconds_ago` before `now` (through IC_NOW)."""

    def __init__(self, now: int) -> None:
        self.now = now

    def at(self, seconds_ago: int) -> None:
        os.environ["IC_NOW"] = str(self.now - seconds_ago)


@contextlib.contextmanager
def _pinned_env(seed: str | None) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in ("IC_NOW", "IC_ID_SEED")}
    if seed is not None:
        os.environ["IC_ID_SEED"] = seed
        # kernel.clock keeps one generator per process; start it afresh so every build draws the same ids.
        clock.reset_seeded_ids()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if seed is not None:
            clock.reset_seeded_ids()


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _new_project(root: Path, name: str) -> tuple[Path, sqlite3.Connection]:
    directory = root / name
    directory.mkdir(parents=True)
    _write(directory / "README.md", f"# {name}\n\nA demo project of the Bigend workspace.\n")
    path = directory / kdb.DB_DIR / kdb.DB_NAME
    kdb.init_db(path)
    return directory, kdb.open_db(path)


def _walk_to(conn: sqlite3.Connection, project: Path, run: Run, target: str, script: _Script, t: int) -> Run:
    """Advance `run` hop by hop to `target`, producing what each gate asks for on the way."""
    from kernel import runs, runtrack

    current = runs.get_run(conn, run.id)
    step = 0
    while current.phase != target and current.status == "active":
        script.at(t - step * 7 * 60)
        phase = current.phase
        if phase == "executing":
            for agent in runtrack.list_agents(conn, current.id):
                if agent.status == "active":
                    runtrack.update_agent(conn, agent.id, status="completed")
        elif phase == "review":
            runtrack.add_artifact(conn, current.id, path="review/verdict.json", verdict="pass")
        else:
            doc = _write(project / "docs" / f"{current.id}-{phase}.md", f"# {phase}\n\n{current.goal}\n")
            runtrack.add_artifact(conn, current.id, path=doc)
        runs.advance(conn, current.id)
        current = runs.get_run(conn, current.id)
        step += 1
    return current


def _dispatch(
    conn: sqlite3.Connection,
    project: Path,
    run_id: str | None,
    *,
    name: str,
    agent: str,
    model: str,
    end: str | None,
    tokens: tuple[int, int, int],
    error: str | None = None,
) -> str:
    """A dispatch of an agent the demo "ran"; `end` None leaves it running with its tokens so far."""
    row = dispatch_api.begin_external(
        conn, project_dir=project, agent_type=agent, scope_id=run_id, name=name, model=model,
        command=[agent, "exec", "--json"],
    )  # fmt: skip
    tin, tout, tcache = tokens
    if end is None:
        dispatch_api.set_tokens(conn, row.id, input_tokens=tin, output_tokens=tout, cache_tokens=tcache)
    else:
        code = 0 if end == "completed" else None if end in ("timeout", "cancelled") else 1
        dispatch_api.finish(
            conn, row.id, status=end, exit_code=code, error=error, input_tokens=tin, output_tokens=tout,
            cache_tokens=tcache,
        )  # fmt: skip
    return row.id


def _try(action: Callable[[], object]) -> None:
    """Run a kernel call whose refusal is the point (a gate block, a pause): the event stays."""
    with contextlib.suppress(Refused):
        action()


def build_demo(root: Path, *, now: int | None = None, seed: str | None = None) -> DemoInfo:
    """Build the demo workspace in `root` (created; must be empty). Deterministic given `now` and `seed`
    (default: IC_NOW and IC_ID_SEED from the environment, else the real clock and random ids)."""
    root = Path(os.path.realpath(root))
    if root.exists() and any(root.iterdir()):
        raise Refused(f"{root} is not empty; give a new or empty directory for the demo workspace")
    root.mkdir(parents=True, exist_ok=True)
    # IC_NOW / IC_ID_SEED in the environment make the demo deterministic too (kernel.clock honours both).
    if now is None and os.environ.get("IC_NOW"):
        now = int(os.environ["IC_NOW"])
    if seed is None and os.environ.get("IC_ID_SEED"):
        seed = os.environ["IC_ID_SEED"]
    script = _Script(int(time.time()) if now is None else now)
    with _pinned_env(seed):
        blocked, portfolio_db, portfolio_id = _build(root, script)
    return _describe(root, portfolio_db, portfolio_id, blocked)


def _build(root: Path, script: _Script) -> tuple[list[str], Path, str]:
    from kernel import runs, runtrack

    blocked: list[str] = []
    script.at(6 * DAY)

    # interverse: the busy monorepo (two running agents, one review waiting on its verdict)
    d, c = _new_project(root, "interverse")
    script.at(5 * DAY + 10 * 60)  # created just before its walk starts
    r = runs.create_run(c, goal="Migrate the event bus to NATS JetStream", project_dir=d, complexity=4)
    r = _walk_to(c, d, r, "executing", script, 5 * DAY)
    script.at(3 * HOUR)
    runtrack.add_agent(c, r.id, name="bus-migrator", agent_type="codex")
    runtrack.add_agent(c, r.id, name="consumer-rewriter", agent_type="claude")
    _dispatch(c, d, r.id, name="plan-review", agent="claude", model="claude-sonnet-4", end="completed",
              tokens=(48_210, 6_904, 12_000))  # fmt: skip
    script.at(40 * 60)
    _dispatch(c, d, r.id, name="bus-migrator", agent="codex", model="gpt-5-codex", end=None,
              tokens=(131_877, 18_402, 40_960))  # fmt: skip
    script.at(12 * 60)
    _dispatch(c, d, r.id, name="consumer-rewriter", agent="claude", model="claude-sonnet-4", end=None,
              tokens=(22_450, 3_120, 0))  # fmt: skip
    script.at(2 * DAY + 10 * 60)  # created just before its walk starts
    r2 = runs.create_run(c, goal="Add per-tenant rate limiting to the API gateway", project_dir=d)
    r2 = _walk_to(c, d, r2, "review", script, 2 * DAY)
    script.at(5 * HOUR)
    _dispatch(c, d, r2.id, name="reviewer", agent="codex", model="gpt-5", end="completed",
              tokens=(64_002, 9_877, 8_192))  # fmt: skip
    script.at(9 * DAY // 2 + 10 * 60)  # created just before its walk starts
    r3 = runs.create_run(c, goal="Upgrade services to Python 3.12", project_dir=d, complexity=1)
    _walk_to(c, d, r3, "done", script, 9 * DAY // 2)
    c.close()

    # payments-api: a hard gate blocks the plan, a reconciliation job nearly done, a cancelled retirement
    script.at(4 * DAY)
    d, c = _new_project(root, "payments-api")
    script.at(3 * DAY + 10 * 60)  # created just before its walk starts
    r = runs.create_run(c, goal="Idempotency keys for the refund endpoint", project_dir=d)
    r = _walk_to(c, d, r, "planned", script, 3 * DAY)
    script.at(2 * HOUR + 15 * 60)
    _try(lambda: runs.advance(c, r.id, priority=1))
    blocked.append(r.id)
    script.at(3 * DAY + 10 * 60)  # created just before its walk starts
    r2 = runs.create_run(c, goal="Reconcile Stripe payouts nightly", project_dir=d)
    r2 = _walk_to(c, d, r2, "polish", script, 3 * DAY)
    script.at(HOUR)
    _dispatch(c, d, r2.id, name="payout-reconciler", agent="codex", model="gpt-5-codex", end="completed",
              tokens=(88_120, 14_230, 30_000))  # fmt: skip
    r3 = runs.create_run(c, goal="Retire the v1 charge API", project_dir=d)
    script.at(30 * 60)
    runs.cancel_run(c, r3.id, reason="superseded by the v2 migration plan")
    c.close()

    # web-dashboard: early phases, a failed dispatch, a recent completion
    script.at(3 * DAY)
    d, c = _new_project(root, "web-dashboard")
    script.at(2 * DAY + 10 * 60)  # created just before its walk starts
    r = runs.create_run(c, goal="Dark mode across the settings pages", project_dir=d)
    _walk_to(c, d, r, "brainstorm-reviewed", script, 2 * DAY)
    script.at(DAY + 10 * 60)  # created just before its walk starts
    r2 = runs.create_run(c, goal="Virtualize the orders table (10k rows)", project_dir=d)
    r2 = _walk_to(c, d, r2, "strategized", script, DAY)
    script.at(50 * 60)
    _dispatch(c, d, r2.id, name="table-virtualizer", agent="claude", model="claude-sonnet-4", end="failed",
              tokens=(35_600, 4_410, 0), error="tests failed: 3 of 214 (orders-table.spec.ts)")  # fmt: skip
    script.at(20 * HOUR + 10 * 60)  # created just before its walk starts
    r3 = runs.create_run(c, goal="Fix the hydration warning on /reports", project_dir=d, complexity=1)
    _walk_to(c, d, r3, "done", script, 20 * HOUR)
    c.close()

    # data-pipeline: a paused run (auto-advance off), a failed run, a timed-out dispatch
    script.at(5 * DAY)
    d, c = _new_project(root, "data-pipeline")
    script.at(4 * DAY + 10 * 60)  # created just before its walk starts
    r = runs.create_run(c, goal="Backfill 2023 events into the warehouse", project_dir=d, auto_advance=True)
    r = _walk_to(c, d, r, "executing", script, 4 * DAY)
    script.at(7 * HOUR)
    _dispatch(c, d, r.id, name="backfill-2023", agent="codex", model="gpt-5-codex", end="timeout",
              tokens=(210_448, 12_905, 65_536), error="timed out after 2h")  # fmt: skip
    runs.set_run(c, r.id, auto_advance=False)
    script.at(6 * HOUR)
    _try(lambda: runs.advance(c, r.id))
    blocked.append(r.id)
    script.at(3 * DAY + 10 * 60)  # created just before its walk starts
    r2 = runs.create_run(c, goal="Partition the clickstream table by day", project_dir=d)
    r2 = _walk_to(c, d, r2, "planned", script, 3 * DAY)
    script.at(2 * DAY)
    runs.fail_run(c, r2.id, reason="upstream schema drift: column ts is now a string")
    c.close()

    # auth-service: reflect, a fresh brainstorm, a rollback from review
    script.at(6 * DAY)
    d, c = _new_project(root, "auth-service")
    script.at(5 * DAY + 10 * 60)  # created just before its walk starts
    r = runs.create_run(c, goal="Rotate JWT signing keys without downtime", project_dir=d)
    _walk_to(c, d, r, "reflect", script, 5 * DAY)
    script.at(2 * DAY + 10 * 60)  # created just before its walk starts
    r2 = runs.create_run(c, goal="SAML SSO for enterprise tenants", project_dir=d)
    r2 = _walk_to(c, d, r2, "review", script, 2 * DAY)
    script.at(9 * HOUR)
    runs.rollback(c, r2.id, "planned", reason="review found the metadata refresh design unsafe")
    script.at(25 * 60)
    runs.create_run(c, goal="WebAuthn passkeys for the admin console", project_dir=d)
    c.close()

    # mobile-app: a run over its token budget warning, a run in review
    script.at(2 * DAY)
    d, c = _new_project(root, "mobile-app")
    script.at(DAY + 6 * HOUR + 10 * 60)  # created just before its walk starts
    r = runs.create_run(
        c, goal="Push notification preferences", project_dir=d, token_budget=120_000, budget_warn_pct=80
    )
    r = _walk_to(c, d, r, "executing", script, DAY + 6 * HOUR)
    script.at(90 * 60)
    runtrack.add_agent(c, r.id, name="prefs-builder", agent_type="codex")
    _dispatch(c, d, r.id, name="prefs-builder", agent="codex", model="gpt-5-codex", end=None,
              tokens=(101_340, 7_220, 20_480))  # fmt: skip
    script.at(20 * HOUR + 10 * 60)  # created just before its walk starts
    r2 = runs.create_run(c, goal="Offline mode for the order history", project_dir=d)
    _walk_to(c, d, r2, "review", script, 20 * HOUR)
    c.close()

    # docs-site: a quiet project with one strategized run and an old completed one
    script.at(8 * DAY)
    d, c = _new_project(root, "docs-site")
    script.at(7 * DAY + 10 * 60)  # created just before its walk starts
    r = runs.create_run(c, goal="Document the portfolio relay and its gates", project_dir=d, complexity=2)
    _walk_to(c, d, r, "planned", script, 7 * DAY)
    script.at(6 * DAY + 10 * 60)  # created just before its walk starts
    r2 = runs.create_run(c, goal="Search across all versions of the docs", project_dir=d, complexity=1)
    _walk_to(c, d, r2, "done", script, 6 * DAY)
    c.close()

    # ml-ranker: a database that is not one any more (the dashboard must show `!` and carry on)
    corrupt = root / CORRUPT_PROJECT / kdb.DB_DIR
    corrupt.mkdir(parents=True, mode=0o700)
    rng = random.Random(7)
    (corrupt / kdb.DB_NAME).write_bytes(b"not a database\n" + bytes(rng.randrange(256) for _ in range(4096)))

    # legacy-scripts: an old-style project known by its marker only
    legacy = root / LEGACY_PROJECT
    legacy.mkdir()
    (legacy / ".gurgeh").mkdir()
    _write(legacy / "README.md", "# legacy-scripts\n\nStill tracked by the old .gurgeh marker.\n")

    portfolio_db, portfolio_id = _build_portfolio(root, script)
    return blocked, portfolio_db, portfolio_id


def _build_portfolio(root: Path, script: _Script) -> tuple[Path, str]:
    from kernel import runs
    from kernel.portfolio import create, deps, relay

    script.at(30 * HOUR)
    projects = [str(root / name) for name in PORTFOLIO_PROJECTS]
    portfolio_db = root / kdb.DB_DIR / kdb.PORTFOLIO_DB_NAME
    created = create.create_portfolio(
        portfolio_db, create.PortfolioSpec(goal="Ship SSO across auth, web and mobile", projects=projects)
    )
    pid = created.parent.id
    conn = kdb.open_db(portfolio_db)
    try:
        script.at(29 * HOUR)
        deps.add_dep(conn, pid, upstream=projects[0], downstream=projects[1])
        deps.add_dep(conn, pid, upstream=projects[0], downstream=projects[2])
        # The upstream (auth-service) moves first; the relay carries it to the portfolio.
        child = next(c for c in created.children if c.project_dir == projects[0])
        pconn = kdb.open_db(Path(projects[0]) / kdb.DB_DIR / kdb.DB_NAME)
        try:
            upstream_child = runs.get_run(pconn, child.id)
            _walk_to(pconn, Path(projects[0]), upstream_child, "strategized", script, 20 * HOUR)
        finally:
            pconn.close()
        script.at(10 * HOUR)
        relay.relay_tick(conn, pid)
    finally:
        conn.close()
    return portfolio_db, pid


def _describe(root: Path, portfolio_db: Path, portfolio_id: str, blocked: list[str]) -> DemoInfo:
    """Count what the databases now hold, through the kernel's reads (what Bigend must agree with)."""
    counts = DemoCounts()
    kernel_projects: list[Path] = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        db_path = directory / kdb.DB_DIR / kdb.DB_NAME
        if directory.name == CORRUPT_PROJECT or not db_path.is_file():
            continue
        kernel_projects.append(directory)
        conn = kdb.open_db(db_path, readonly=True)
        try:
            all_runs = q.fetch_all(conn, q.RUNS_ALL)
            dispatches = q.fetch_all(conn, q.DISPATCHES_ALL)
        finally:
            conn.close()
        counts.runs += len(all_runs)
        counts.active_runs += sum(1 for r in all_runs if r.status == "active")
        counts.dispatches += len(dispatches)
        counts.active_dispatches += sum(1 for d in dispatches if not d.is_terminal)
        counts.tokens_in += sum(d.input_tokens for d in dispatches)
        counts.tokens_out += sum(d.output_tokens for d in dispatches)
        counts.runs_per_project[str(directory)] = len(all_runs)
        counts.dispatches_per_project[str(directory)] = len(dispatches)
    conn = kdb.open_db(portfolio_db, readonly=True)
    try:
        parents = q.fetch_all(conn, q.RUNS_PORTFOLIO_PARENTS)
        portfolio_runs = q.fetch_all(conn, q.RUNS_ALL)
    finally:
        conn.close()
    counts.active_runs += sum(1 for r in parents if r.status == "active")
    counts.runs += len(portfolio_runs)
    counts.runs_per_project[str(root)] = len(portfolio_runs)
    counts.dispatches_per_project[str(root)] = 0
    counts.blocked_runs = len(blocked)
    projects = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return DemoInfo(
        root=root,
        projects=[root, *projects],
        kernel_projects=kernel_projects,
        corrupt_project=root / CORRUPT_PROJECT,
        legacy_project=root / LEGACY_PROJECT,
        portfolio_db=portfolio_db,
        portfolio_id=portfolio_id,
        counts=counts,
        blocked_run_ids=blocked,
    )


# -- keeping it alive ---------------------------------------------------------------------------------
NEW_GOALS = (
    "Cache the pricing table in Redis",
    "Add OpenTelemetry traces to the checkout flow",
    "Replace moment.js with date-fns",
    "Flaky test: retry budget for the e2e suite",
    "Shard the sessions table",
    "Accessibility pass on the onboarding wizard",
    "Dependabot: batch weekly updates",
    "Rewrite the CSV export as a streaming job",
)
AGENTS = (("codex", "gpt-5-codex"), ("claude", "claude-sonnet-4"), ("codex", "gpt-5"))


class _Changer:
    """One step of plausible activity per tick, chosen at random among what the workspace allows."""

    def __init__(self, root: Path, *, seed: int | None = None) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.conns: dict[Path, sqlite3.Connection] = {}
        for directory in sorted(root.iterdir()):
            db_path = directory / kdb.DB_DIR / kdb.DB_NAME
            if directory.is_dir() and directory.name != CORRUPT_PROJECT and db_path.is_file():
                with contextlib.suppress(KernelError):
                    self.conns[directory] = kdb.open_db(db_path)
        self.portfolio_db = root / kdb.DB_DIR / kdb.PORTFOLIO_DB_NAME
        self.ticks = 0

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()

    def step(self) -> None:
        self.ticks += 1
        if not self.conns:
            return
        project = self.rng.choice(sorted(self.conns))
        conn = self.conns[project]
        action = self.rng.choices(
            (
                self._advance,
                self._start_dispatch,
                self._end_dispatch,
                self._tokens,
                self._new_run,
                self._unblock,
            ),
            weights=(3, 2, 3, 2, 1, 1),
        )[0]
        with contextlib.suppress(KernelError, sqlite3.Error):
            action(conn, project)
        if self.ticks % 5 == 0 and self.portfolio_db.is_file():
            self._relay()

    def _active_runs(self, conn: sqlite3.Connection) -> list[Run]:
        return [r for r in q.fetch_all(conn, q.RUNS_ACTIVE) if r.project_dir]

    def _waiting_on_a_human(self, conn: sqlite3.Connection, run: Run) -> bool:
        """Blocked at a gate or paused: the demo leaves those for the operator to look at."""
        recent = q.fetch_all(conn, q.EVENTS_OF_RUN_LATEST, run.id, 50)
        phase_events = [e for e in recent if e.source in ("phase", "gate")]
        return bool(phase_events) and phase_events[-1].type in ("block", "pause")

    def _advance(self, conn: sqlite3.Connection, project: Path) -> None:
        from kernel import runs

        candidates = [r for r in self._active_runs(conn) if not self._waiting_on_a_human(conn, r)]
        if not candidates:
            return self._new_run(conn, project)
        run = self.rng.choice(candidates)
        # The next phase this run walks (complexity may skip some of the chain): one hop, never a
        # walk to a phase the run would pass over, which would not stop until the run completed.
        walked = walked_phases(run)
        chain = walked if run.phase in walked else run.phases
        index = chain.index(run.phase)
        if index + 1 >= len(chain):
            return None
        if self.rng.random() < 0.1:  # now and then an agent forgets its artifact: a fresh gate block
            with contextlib.suppress(Refused):
                runs.advance(conn, run.id)
            return None
        # _walk_to pins IC_NOW for each hop it writes; the live changer must leave the clock as it
        # found it, or every later write of the process would be stamped with that frozen moment.
        with _pinned_env(None):
            _walk_to(conn, project, run, chain[index + 1], _Script(clock.now()), 0)
        return None

    def _unblock(self, conn: sqlite3.Connection, project: Path) -> None:
        """The operator's side: override one blocked gate, or switch a paused run back to auto-advance."""
        from kernel import runs

        waiting = [r for r in self._active_runs(conn) if self._waiting_on_a_human(conn, r)]
        if len(waiting) < 2:  # keep at least one blocked run in view
            return
        run = self.rng.choice(waiting)
        if not run.auto_advance:
            runs.set_run(conn, run.id, auto_advance=True)
        else:
            runs.override_gate(conn, run.id, reason="operator: reviewed by hand, proceed")

    def _start_dispatch(self, conn: sqlite3.Connection, project: Path) -> None:
        candidates = [r for r in self._active_runs(conn) if r.parent_run_id is None]
        live = q.fetch_all(conn, q.DISPATCHES_ACTIVE)
        if not candidates or len(live) >= 4:
            return
        run = self.rng.choice(candidates)
        agent, model = self.rng.choice(AGENTS)
        name = f"{run.phase}-{agent}"
        tokens = (self.rng.randrange(2_000, 20_000), self.rng.randrange(200, 3_000), 0)
        _dispatch(conn, project, run.id, name=name, agent=agent, model=model, end=None, tokens=tokens)

    def _end_dispatch(self, conn: sqlite3.Connection, project: Path) -> None:
        live = q.fetch_all(conn, q.DISPATCHES_ACTIVE)
        if not live:
            return self._start_dispatch(conn, project)
        row = self.rng.choice(live)
        end = self.rng.choices(("completed", "failed"), weights=(5, 1))[0]
        dispatch_api.finish(
            conn, row.id, status=end, exit_code=0 if end == "completed" else 1,
            error=None if end == "completed" else "agent exited with status 1",
            input_tokens=row.input_tokens + self.rng.randrange(1_000, 30_000),
            output_tokens=row.output_tokens + self.rng.randrange(100, 4_000),
        )  # fmt: skip
        return None

    def _tokens(self, conn: sqlite3.Connection, project: Path) -> None:
        live = q.fetch_all(conn, q.DISPATCHES_ACTIVE)
        if not live:
            return
        row = self.rng.choice(live)
        dispatch_api.set_tokens(
            conn, row.id, input_tokens=row.input_tokens + self.rng.randrange(500, 8_000),
            output_tokens=row.output_tokens + self.rng.randrange(50, 900), cache_tokens=row.cache_tokens,
        )  # fmt: skip

    def _new_run(self, conn: sqlite3.Connection, project: Path) -> None:
        from kernel import runs

        if len(self._active_runs(conn)) >= 4:
            return
        runs.create_run(
            conn, goal=self.rng.choice(NEW_GOALS), project_dir=project, complexity=self.rng.randrange(1, 5)
        )

    def _relay(self) -> None:
        from kernel.portfolio import relay

        with contextlib.suppress(KernelError, sqlite3.Error):
            conn = kdb.open_db(self.portfolio_db)
            try:
                for parent in q.fetch_all(conn, q.RUNS_PORTFOLIO_PARENTS):
                    if parent.status == "active":
                        relay.relay_tick(conn, parent.id)
            finally:
                conn.close()


def live_changes(root: Path, stop: threading.Event, interval: float = 1.0) -> None:
    """Keep the demo workspace changing (advances, dispatches starting and ending, tokens, new runs)
    every `interval` seconds until `stop` is set. Kernel refusals are part of life and are ignored."""
    changer = _Changer(Path(os.path.realpath(root)))
    try:
        while not stop.wait(interval):
            changer.step()
    finally:
        changer.close()


def is_demo_workspace(root: Path) -> bool:
    """Whether `root` looks like a workspace `build_demo` made (so `--live` may resume it)."""
    return (root / kdb.DB_DIR / kdb.PORTFOLIO_DB_NAME).is_file() and (root / "interverse").is_dir()
