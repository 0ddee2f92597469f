-- Lifeline collector schema (PostgreSQL): public comments. A technician's comment is internal to
-- the help desk unless marked public; public ones are the replies an end user sees through their
-- agent (`GET /api/v1/agent/tickets`). Existing comments stay internal. A flag is BIGINT 0/1 as
-- in SQLite (rules in 0001).

ALTER TABLE comments ADD COLUMN public BIGINT NOT NULL DEFAULT 0 CHECK (public IN (0, 1));
