-- Lifeline collector schema (SQLite): the screenshot an end user chose to attach to a ticket in
-- the help window. At most one per ticket, a PNG of at most 4 MiB (checked at ingest), stored in
-- the same transaction as its ticket.

CREATE TABLE screenshots (
    ticket_number INTEGER PRIMARY KEY REFERENCES tickets (number) ON DELETE CASCADE,
    png BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
