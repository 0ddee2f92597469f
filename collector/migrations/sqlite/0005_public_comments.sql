-- Lifeline collector schema (SQLite): public comments. A technician's comment is internal to the
-- help desk unless marked public; public ones are the replies an end user sees through their
-- agent (`GET /api/v1/agent/tickets`). Existing comments stay internal.

ALTER TABLE comments ADD COLUMN public INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1));
