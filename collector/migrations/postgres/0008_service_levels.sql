-- Lifeline collector schema (PostgreSQL): service levels and escalation (issue 9). Times are Unix
-- milliseconds (UTC), durations milliseconds; the same as migrations/sqlite/0008 (see 0001 for the mapping).
--
-- The due and at-risk times are computed by the collector (`sla.rs`: business hours, pauses) and
-- rewritten in the same transaction as every change that moves them; `serve` recomputes them at
-- start for tickets still running, so a changed `[sla]` setting applies to them and tickets from
-- before this migration get theirs. A due time is NULL while the clock is paused and frozen once
-- its target is met; an at-risk time is NULL unless the clock runs toward an unmet target.

ALTER TABLE tickets ADD COLUMN first_response_due_at BIGINT;
ALTER TABLE tickets ADD COLUMN first_response_risk_at BIGINT;
ALTER TABLE tickets ADD COLUMN resolution_due_at BIGINT;
ALTER TABLE tickets ADD COLUMN resolution_risk_at BIGINT;
-- When the current pause began (waiting on the user, resolved, closed); NULL while running.
ALTER TABLE tickets ADD COLUMN sla_paused_at BIGINT;
-- Service-level time of the pauses that ended.
ALTER TABLE tickets ADD COLUMN sla_paused_ms BIGINT NOT NULL DEFAULT 0;
-- The automatic escalation for each target happens once.
ALTER TABLE tickets ADD COLUMN first_response_escalated BIGINT NOT NULL DEFAULT 0
    CHECK (first_response_escalated IN (0, 1));
ALTER TABLE tickets ADD COLUMN resolution_escalated BIGINT NOT NULL DEFAULT 0
    CHECK (resolution_escalated IN (0, 1));

-- Tickets already waiting or finished: their clocks stand still since their last change.
UPDATE tickets SET sla_paused_at = COALESCE(resolved_at, updated_at)
    WHERE status IN ('waiting_on_user', 'resolved', 'closed');

CREATE INDEX tickets_by_first_response_risk ON tickets (first_response_risk_at);
CREATE INDEX tickets_by_resolution_risk ON tickets (resolution_risk_at);
