-- Lifeline collector schema, version 4 (SQLite): the signed action catalog and runs.
-- Times are Unix milliseconds (UTC). Signed documents are stored exactly as admins signed them;
-- the agent verifies them, so altering a row here makes the agent refuse the action.

-- Keys trusted to publish catalogs (`catalog trust`).
CREATE TABLE catalog_keys (
    key_id       TEXT    PRIMARY KEY,
    public_key   TEXT    NOT NULL,      -- the lifeline-catalog.pub text
    endorsement  TEXT,                  -- KeyEndorsement JSON, relayed to agents
    added_by     TEXT    NOT NULL,
    added_at     INTEGER NOT NULL
);

-- Every catalog ever published; the highest version is the current one.
CREATE TABLE catalogs (
    version       INTEGER PRIMARY KEY,
    digest        TEXT    NOT NULL,
    key_id        TEXT    NOT NULL,
    document      TEXT    NOT NULL,     -- the FILE.signed JSON
    action_count  INTEGER NOT NULL,
    published_by  TEXT    NOT NULL,
    published_at  INTEGER NOT NULL
);

-- The actions of the current catalog, each a SignedAction JSON.
CREATE TABLE catalog_actions (
    action_id        TEXT    PRIMARY KEY,
    catalog_version  INTEGER NOT NULL REFERENCES catalogs (version),
    signed           TEXT    NOT NULL
);

-- Actions an admin marked as needing approval for every run.
CREATE TABLE action_settings (
    action_id          TEXT    PRIMARY KEY,
    require_approval   INTEGER NOT NULL,
    set_by             TEXT    NOT NULL,
    set_at             INTEGER NOT NULL
);

-- One row per run request. Dispatching queues a row in `work` (kind 'run').
CREATE TABLE runs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id               TEXT    NOT NULL UNIQUE,
    machine_id           TEXT    NOT NULL REFERENCES machines (id),
    action_id            TEXT    NOT NULL,
    signed_action        TEXT    NOT NULL,   -- the SignedAction as requested (and approved)
    params               TEXT    NOT NULL,   -- JSON object of strings
    requested_by         TEXT    NOT NULL,
    reason               TEXT,
    ticket_number        INTEGER REFERENCES tickets (number),
    risk                 TEXT    NOT NULL,
    timeout_secs         INTEGER NOT NULL,   -- the action's timeout, for runs whose agent went silent
    approval             TEXT    NOT NULL
                         CHECK (approval IN ('not_needed', 'pending', 'approved', 'denied', 'expired')),
    approval_expires_at  INTEGER,
    decided_by           TEXT,
    decided_at           INTEGER,
    decision_reason      TEXT,
    work_id              INTEGER UNIQUE REFERENCES work (id),
    created_at           INTEGER NOT NULL,
    stage                TEXT,               -- 'awaiting_consent' | 'running', as the agent reports
    started_at           INTEGER,
    result               TEXT,               -- RunResult JSON
    recheck              TEXT                -- Recheck JSON
);

CREATE INDEX runs_by_approval ON runs (approval, id);
CREATE INDEX runs_by_machine ON runs (machine_id, id);
