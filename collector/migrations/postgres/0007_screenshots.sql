-- Lifeline collector schema (PostgreSQL): the screenshot an end user chose to attach to a ticket
-- in the help window. At most one per ticket, a PNG of at most 4 MiB (checked at ingest), stored
-- in the same transaction as its ticket. BLOB is BYTEA (rules in 0001).

CREATE TABLE screenshots (
    ticket_number BIGINT PRIMARY KEY REFERENCES tickets (number) ON DELETE CASCADE,
    png BYTEA NOT NULL,
    received_at BIGINT NOT NULL
);
