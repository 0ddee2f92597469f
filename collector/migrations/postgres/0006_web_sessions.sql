-- Lifeline collector schema, version 6 (PostgreSQL): web console sessions.
-- `id_hash` is the SHA-256 (hex) of the random session id in the browser's cookie; the id itself
-- is never stored. `csrf_token` is the per-session token every console form carries. Times are
-- Unix milliseconds (UTC); `expires_at` is the absolute end, `last_seen_at` drives the idle end.
-- Mirrors migrations/sqlite/0006_web_sessions.sql (rules in 0001).

CREATE TABLE web_sessions (
    id_hash       TEXT    PRIMARY KEY,
    user_name     TEXT    NOT NULL REFERENCES users (name),
    csrf_token    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);

CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
