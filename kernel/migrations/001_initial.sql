-- Schema v1 of a kernel database (.clavain/intercore.db, and the portfolio database).
-- PRAGMA user_version is the schema version; kernel/db.py applies these files in order.

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    project_dir     TEXT NOT NULL DEFAULT '',      -- '' for portfolio parents
    goal            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active', -- active | completed | cancelled | failed
    phase           TEXT NOT NULL,
    complexity      INTEGER NOT NULL DEFAULT 3,
    force_full      INTEGER NOT NULL DEFAULT 0,
    auto_advance    INTEGER NOT NULL DEFAULT 1,
    scope_id        TEXT,
    metadata        TEXT,                           -- JSON object or NULL
    phases          TEXT NOT NULL,                  -- JSON array: the run's chain
    token_budget    INTEGER,
    budget_warn_pct INTEGER NOT NULL DEFAULT 80,
    budget_enforce  INTEGER NOT NULL DEFAULT 0,
    budget_level    INTEGER NOT NULL DEFAULT 0,     -- 0 under, 1 warned, 2 exceeded: events fire once per crossing
    max_agents      INTEGER,
    parent_run_id   TEXT,                           -- portfolio parent (lives in the portfolio database)
    max_dispatches  INTEGER,                        -- portfolio parents: hard limit across children
    gate_rules      TEXT,                           -- JSON object or NULL (default table)
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    completed_at    INTEGER
);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_project ON runs(project_dir, status);
CREATE INDEX runs_parent ON runs(parent_run_id);
CREATE INDEX runs_scope ON runs(scope_id);

-- Phases pre-skipped with `ic run skip <phase>`.
CREATE TABLE phase_skips (
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    phase      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, phase)
);

-- The unified event stream: one monotonic id per database for every state change.
-- source: phase | gate | dispatch | run | budget | relay | state | <anything given to `ic events record`>
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT,
    source      TEXT NOT NULL,
    type        TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT,
    reason      TEXT,
    dispatch_id TEXT,
    payload     TEXT,                               -- JSON (gate evidence, tokens, child project, ...)
    timestamp   INTEGER NOT NULL
);
CREATE INDEX events_run ON events(run_id, id);
CREATE INDEX events_source ON events(source, id);
CREATE INDEX events_dispatch ON events(dispatch_id);

-- Typed views over the stream, named as the design's tables.
CREATE VIEW phase_events AS
    SELECT id, run_id, type AS event_type, from_state AS from_phase, to_state AS to_phase,
           reason, payload, timestamp FROM events WHERE source IN ('phase', 'gate');
CREATE VIEW dispatch_events AS
    SELECT id, dispatch_id, run_id, type AS event_type, from_state AS from_status,
           to_state AS to_status, reason, payload, timestamp FROM events WHERE source = 'dispatch';

CREATE TABLE dispatches (
    id            TEXT PRIMARY KEY,
    scope_id      TEXT,                             -- the run it works for, if any
    project_dir   TEXT NOT NULL,
    agent_type    TEXT NOT NULL,                    -- codex | claude | <custom>
    name          TEXT,
    model         TEXT,
    prompt_file   TEXT,
    output_file   TEXT,
    command       TEXT,                             -- JSON argv
    pid           INTEGER,
    status        TEXT NOT NULL,                    -- spawned | running | completed | failed | timeout | cancelled
    exit_code     INTEGER,
    error         TEXT,
    timeout_s     REAL,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX dispatches_status ON dispatches(status);
CREATE INDEX dispatches_scope ON dispatches(scope_id, status);

CREATE TABLE run_agents (
    id          TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    agent_type  TEXT,
    status      TEXT NOT NULL DEFAULT 'active',     -- active | completed | failed
    dispatch_id TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX run_agents_run ON run_agents(run_id);

CREATE TABLE run_artifacts (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    phase        TEXT NOT NULL,
    path         TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'file',      -- file | verdict | <custom>
    content_hash TEXT,                              -- sha256:<hex> of a readable file
    metadata     TEXT,                              -- JSON (a verdict's {"status": "pass"|"fail"})
    created_at   INTEGER NOT NULL
);
CREATE INDEX run_artifacts_run ON run_artifacts(run_id, phase);

-- Portfolio: dependencies between child projects of one portfolio run.
CREATE TABLE project_deps (
    portfolio_id TEXT NOT NULL,
    upstream     TEXT NOT NULL,
    downstream   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (portfolio_id, upstream, downstream)
);

-- Portfolio: relay cursors, one per (portfolio, child project): last child event id relayed.
CREATE TABLE relay_cursors (
    portfolio_id  TEXT NOT NULL,
    project_dir   TEXT NOT NULL,
    last_event_id INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (portfolio_id, project_dir)
);

-- Portfolio: dispatch slots; a row is a running dispatch counted against the parent's max_dispatches.
CREATE TABLE dispatch_slots (
    portfolio_id TEXT NOT NULL,
    dispatch_id  TEXT NOT NULL,
    project_dir  TEXT NOT NULL,
    pid          INTEGER,
    acquired_at  INTEGER NOT NULL,
    PRIMARY KEY (portfolio_id, dispatch_id)
);

CREATE TABLE event_cursors (
    consumer      TEXT PRIMARY KEY,
    last_event_id INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE state (
    key        TEXT NOT NULL,
    scope      TEXT NOT NULL DEFAULT '',
    payload    TEXT NOT NULL,                       -- JSON
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (key, scope)
);

CREATE TABLE sentinels (
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL DEFAULT '',
    last_fired INTEGER NOT NULL,
    PRIMARY KEY (name, scope)
);
