-- Several collectors on one database (issue 8): secrets every instance shares, created once by
-- the first instance to start, under an advisory lock. PostgreSQL only (a single SQLite
-- collector keeps them in its data directory), numbered apart from the mirrored migrations.
-- `ca_cert` and `ca_key` (PEM) are the CA that signs every instance's server certificate and
-- every agent's client certificate: whoever can read this table can impersonate the collector.
CREATE TABLE collector_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
