-- Lifeline collector schema, version 3 (PostgreSQL): the hash-chained audit log.
-- `seq` is assigned by the collector (1, 2, 3, ...) because the hash covers it, while holding
-- the audit advisory lock, so several collectors append to one chain; `at` is Unix milliseconds
-- (UTC); `detail` is canonical JSON (see lifeline_shared::v1::audit). Mirrors
-- migrations/sqlite/0003_audit.sql (rules in 0001).

CREATE TABLE audit_log (
    seq        BIGINT  PRIMARY KEY,
    at         BIGINT  NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    subject    TEXT,
    detail     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);

CREATE INDEX audit_by_actor ON audit_log (actor, seq);
