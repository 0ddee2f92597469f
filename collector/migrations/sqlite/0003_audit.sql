-- Lifeline collector schema, version 3 (SQLite): the hash-chained audit log.
-- `seq` is assigned by the collector (1, 2, 3, ...) because the hash covers it; `at` is Unix
-- milliseconds (UTC); `detail` is canonical JSON (see lifeline_shared::v1::audit).

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    subject    TEXT,
    detail     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);

CREATE INDEX audit_by_actor ON audit_log (actor, seq);
