-- Lifeline collector schema, version 1 (SQLite). Times are Unix milliseconds (UTC).

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('technician', 'admin')),
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE enrollment_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    max_uses    INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE machines (
    id                TEXT    PRIMARY KEY,
    hostname          TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    cert_fingerprint  TEXT    NOT NULL UNIQUE,
    cert_not_after    INTEGER NOT NULL,
    enrolled_at       INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    revoked_at        INTEGER
);

CREATE TABLE tickets (
    number             INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id         TEXT    NOT NULL REFERENCES machines (id),
    idempotency_key    TEXT    NOT NULL,
    os_user            TEXT,
    description        TEXT    NOT NULL,
    urgency            TEXT    NOT NULL,
    priority           TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    tier               INTEGER NOT NULL CHECK (tier BETWEEN 1 AND 3),
    assignee           TEXT,
    worst_finding      TEXT,
    findings           TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    first_response_at  INTEGER,
    resolved_at        INTEGER,
    UNIQUE (machine_id, idempotency_key)
);

CREATE INDEX tickets_by_status ON tickets (status);
CREATE INDEX tickets_by_machine ON tickets (machine_id);

CREATE TABLE snapshots (
    id             INTEGER PRIMARY KEY,
    ticket_number  INTEGER NOT NULL REFERENCES tickets (number),
    machine_id     TEXT    NOT NULL REFERENCES machines (id),
    received_at    INTEGER NOT NULL,
    document       TEXT    NOT NULL
);

CREATE INDEX snapshots_by_ticket ON snapshots (ticket_number);

CREATE TABLE comments (
    id             INTEGER PRIMARY KEY,
    ticket_number  INTEGER NOT NULL REFERENCES tickets (number),
    author         TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE INDEX comments_by_ticket ON comments (ticket_number);
