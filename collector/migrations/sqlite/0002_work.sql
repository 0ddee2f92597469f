-- Lifeline collector schema, version 2 (SQLite): heartbeat vitals and the work queue.
-- Times are Unix milliseconds (UTC).

CREATE TABLE vitals (
    id           INTEGER PRIMARY KEY,
    machine_id   TEXT    NOT NULL REFERENCES machines (id),
    received_at  INTEGER NOT NULL,
    document     TEXT    NOT NULL
);

CREATE INDEX vitals_by_machine ON vitals (machine_id, id);

CREATE TABLE work (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id    TEXT    NOT NULL REFERENCES machines (id),
    kind          TEXT    NOT NULL,
    state         TEXT    NOT NULL
                  CHECK (state IN ('queued', 'delivered', 'done', 'failed', 'expired')),
    ticket_number INTEGER REFERENCES tickets (number),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    delivered_at  INTEGER,
    finished_at   INTEGER,
    error         TEXT,
    snapshot      TEXT
);

CREATE INDEX work_by_machine_state ON work (machine_id, state);
