-- Lifeline collector schema (SQLite): recurring problems and the knowledge base (issue 9).
--
-- `ticket_fingerprints` holds one row per fingerprint key of a ticket: the `Finding::fingerprint`
-- (`id` or `id:subject`, e.g. `disk.full:/`, `dns.fail`) of each warning or critical finding,
-- computed by the collector when the ticket is stored. Tickets sharing a key have the same
-- problem. `resolution_note` is how a technician says the ticket was solved.
--
-- Tickets stored before this migration are listed in `fingerprint_backfill`; the collector
-- computes their keys once at its next start and removes them from the list as it goes (the
-- keys are computed in Rust, with the same rule as new tickets, so this file stays plain SQL).

ALTER TABLE tickets ADD COLUMN resolution_note TEXT;

CREATE TABLE ticket_fingerprints (
    ticket_number  INTEGER NOT NULL REFERENCES tickets (number),
    key            TEXT    NOT NULL,
    PRIMARY KEY (ticket_number, key)
);

CREATE INDEX ticket_fingerprints_by_key ON ticket_fingerprints (key, ticket_number);

CREATE TABLE fingerprint_backfill (
    ticket_number  INTEGER PRIMARY KEY REFERENCES tickets (number)
);

INSERT INTO fingerprint_backfill (ticket_number) SELECT number FROM tickets;
