-- Lifeline collector schema (SQLite): satisfaction, webhooks and e-mail (issue 9).
-- Plain SQL meant to port to PostgreSQL as is: times are BIGINT Unix milliseconds (UTC), flags
-- 0/1 integers.

-- Where a user's notifications go (optional).
ALTER TABLE users ADD COLUMN email TEXT;

-- The end user's answer to "Did this fix it?". One answer per resolution: `resolved_at` is the
-- ticket's resolved_at when it was answered, so a ticket resolved again may be answered again.
CREATE TABLE ticket_feedback (
    id             INTEGER PRIMARY KEY,
    ticket_number  INTEGER NOT NULL REFERENCES tickets (number),
    resolved_at    BIGINT  NOT NULL,
    fixed          INTEGER NOT NULL CHECK (fixed IN (0, 1)),
    comment        TEXT,
    created_at     BIGINT  NOT NULL,
    UNIQUE (ticket_number, resolved_at)
);

-- The outbox: every webhook and e-mail to deliver, queued in the database after the change it
-- tells about was committed, and sent by the deliverer with retries. `target` is the webhook's
-- name (its URL and secret stay in the configuration) or the recipient's address; `payload` is
-- the webhook's JSON body or the e-mail as JSON (to, subject, body). `next_attempt_at` is when a
-- pending delivery is due; a claimed one is pushed past its attempt's time limit, so a collector
-- that dies mid-attempt leaves it to be tried again.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    delivery_id      TEXT    NOT NULL UNIQUE,
    kind             TEXT    NOT NULL CHECK (kind IN ('webhook', 'email')),
    target           TEXT    NOT NULL,
    event            TEXT    NOT NULL,
    ticket_number    INTEGER,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

-- The delivery log: one row per attempt.
CREATE TABLE outbox_attempts (
    id            INTEGER PRIMARY KEY,
    outbox_id     INTEGER NOT NULL REFERENCES outbox (id),
    attempted_at  BIGINT  NOT NULL,
    status        INTEGER,
    error         TEXT,
    duration_ms   BIGINT  NOT NULL
);

CREATE INDEX outbox_attempts_by_delivery ON outbox_attempts (outbox_id);
