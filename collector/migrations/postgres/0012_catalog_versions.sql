-- Lifeline collector schema, version 12 (PostgreSQL): runs remember the catalog version their
-- signed action came from, so publishing a newer catalog can expire what is still waiting.
-- Mirrors migrations/sqlite/0012_catalog_versions.sql (rules in 0001).

-- The SignedAction's catalog version; NULL for runs recorded before this column, which count
-- as older than any catalog published later.
ALTER TABLE runs ADD COLUMN catalog_version BIGINT;
-- Why a run expired before it ran when it was not its time running out, e.g.
-- "catalog version 3 replaced by 4".
ALTER TABLE runs ADD COLUMN expired_reason TEXT;
