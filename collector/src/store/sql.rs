//! What the SQLite and PostgreSQL stores share: time and number conversions, reading records
//! out of rows of either database, the buffered telemetry, and the group-commit ticket writer.
//!
//! Both schemas hold the same columns with the same meanings (integers are 64-bit, flags 0/1,
//! times Unix milliseconds), so a row of either reads the same way through [`StoreRow`]. Only the
//! SQL that differs between the two stays in `sqlite.rs` and `postgres.rs`.

use std::str::FromStr;
use std::time::Duration;

use lifeline_shared::findings::Severity;
use lifeline_shared::v1::api::{
    Comment, MachineStatus, MachineSummary, Priority, Reply, TicketStatus, TicketSummary, Tier,
    Urgency,
};
use lifeline_shared::v1::audit::{AuditEntry, UNREADABLE_PREFIX};
use lifeline_shared::v1::work::WorkState;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::sla::{Policy, SlaRecord};

use super::{
    CatalogRecord, EnrollmentRefusal, RecordedTicket, RunRecord, StoreError, StoredAction,
    TicketRecord, WorkRecord,
};

pub(super) fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(super) fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

pub(super) fn opt_from_millis(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_millis).transpose()
}

pub(super) fn parse<T: FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

pub(super) fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative number {value}")))
}

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The idempotency-key prefix (10 hex digits) a ticket reference like `LL-7KQ2-M9XD` encodes:
/// the reference is the key's first 40 bits in Crockford base32 (see the agent's spool).
pub(super) fn reference_key_prefix(reference: &str) -> Option<String> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let upper = reference.to_ascii_uppercase();
    let rest = upper.strip_prefix("LL-")?;
    let chars: Vec<u8> = rest.bytes().filter(|b| *b != b'-').collect();
    if chars.len() != 8 || rest.len() != 9 || rest.as_bytes()[4] != b'-' {
        return None;
    }
    let mut bits: u64 = 0;
    for c in chars {
        let value = ALPHABET.iter().position(|a| *a == c)?;
        bits = (bits << 5) | value as u64;
    }
    Some(format!("{bits:010x}"))
}

pub(super) fn parse_severity(text: &str) -> Result<Severity, StoreError> {
    match text {
        "info" => Ok(Severity::Info),
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        other => Err(StoreError::Corrupt(format!("severity {other:?}"))),
    }
}

fn parse_work_state(text: &str) -> Result<WorkState, StoreError> {
    WorkState::parse(text).ok_or_else(|| StoreError::Corrupt(format!("work state {text:?}")))
}

/// A result row of either database, read by column name. Every column the stores read is a
/// 64-bit integer or text in both schemas (flags are integers 0/1), so these four cover them.
pub(super) trait StoreRow {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;

    /// A 0/1 flag column.
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        Ok(self.int(column)? != 0)
    }
}

impl<R> StoreRow for R
where
    R: sqlx::Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database>,
    String: sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database>,
{
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }

    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
}

/// Columns of a ticket summary (a macro so queries stay `&'static str`, never formatted).
macro_rules! ticket_columns {
    () => {
        "t.number, t.machine_id, m.hostname, t.description, t.urgency, t.priority, t.status, \
         t.tier, t.assignee, t.worst_finding, t.created_at, t.updated_at, t.first_response_at, \
         t.resolved_at, t.first_response_due_at, t.resolution_due_at, t.sla_paused_at, \
         t.sla_paused_ms, t.first_response_escalated, t.resolution_escalated"
    };
}
pub(super) use ticket_columns;

/// Columns of a ticket's service-level clocks (see [`sla_record`]).
macro_rules! clock_columns {
    () => {
        "number, created_at, priority, status, tier, assignee, first_response_at, resolved_at, \
         first_response_due_at, resolution_due_at, sla_paused_at, sla_paused_ms, \
         first_response_escalated, resolution_escalated, first_response_risk_at, \
         resolution_risk_at"
    };
}
pub(super) use clock_columns;

/// The soonest due time of a target not yet met, NULL while paused or when both are met: what
/// `sort=due` orders by.
macro_rules! next_due {
    () => {
        "(CASE WHEN t.first_response_at IS NULL AND t.first_response_due_at IS NOT NULL \
              AND (t.resolved_at IS NOT NULL OR t.resolution_due_at IS NULL \
                   OR t.first_response_due_at <= t.resolution_due_at) \
            THEN t.first_response_due_at \
            WHEN t.resolved_at IS NULL THEN t.resolution_due_at END)"
    };
}
pub(super) use next_due;

pub(super) fn parse_tier(tier: i64) -> Result<Tier, StoreError> {
    u8::try_from(tier)
        .ok()
        .and_then(|t| Tier::new(t).ok())
        .ok_or_else(|| StoreError::Corrupt(format!("tier {tier}")))
}

/// A ticket's service-level clocks from a row with [`clock_columns`] (or [`ticket_columns`]).
pub(super) fn sla_record(row: &impl StoreRow) -> Result<SlaRecord, StoreError> {
    Ok(SlaRecord {
        created_at: from_millis(row.int("created_at")?)?,
        priority: parse::<Priority>(&row.text("priority")?)?,
        status: parse::<TicketStatus>(&row.text("status")?)?,
        tier: parse_tier(row.int("tier")?)?,
        paused_at: opt_from_millis(row.opt_int("sla_paused_at")?)?,
        paused: time::Duration::milliseconds(row.int("sla_paused_ms")?),
        first_response_at: opt_from_millis(row.opt_int("first_response_at")?)?,
        resolved_at: opt_from_millis(row.opt_int("resolved_at")?)?,
        first_response_due_at: opt_from_millis(row.opt_int("first_response_due_at")?)?,
        resolution_due_at: opt_from_millis(row.opt_int("resolution_due_at")?)?,
        first_response_escalated: row.flag("first_response_escalated")?,
        resolution_escalated: row.flag("resolution_escalated")?,
    })
}

pub(super) fn ticket_summary(
    row: &impl StoreRow,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<TicketSummary, StoreError> {
    let tier = row.int("tier")?;
    let worst = row.opt_text("worst_finding")?;
    let clocks = sla_record(row)?;
    Ok(TicketSummary {
        number: to_u64(row.int("number")?)?,
        machine_id: row.text("machine_id")?,
        hostname: row.text("hostname")?,
        description: row.text("description")?,
        urgency: parse::<Urgency>(&row.text("urgency")?)?,
        priority: parse::<Priority>(&row.text("priority")?)?,
        status: parse::<TicketStatus>(&row.text("status")?)?,
        tier: parse_tier(tier)?,
        assignee: row.opt_text("assignee")?,
        worst_finding: worst.as_deref().map(parse_severity).transpose()?,
        created_at: from_millis(row.int("created_at")?)?,
        updated_at: from_millis(row.int("updated_at")?)?,
        sla: Some(policy.view(&clocks, now)),
    })
}

/// Columns of a machine summary.
macro_rules! machine_columns {
    () => {
        "m.id, m.hostname, m.status, m.enrolled_at, m.last_seen_at, m.cert_not_after, \
         m.revoked_at, (SELECT COUNT(*) FROM tickets t WHERE t.machine_id = m.id \
         AND t.status NOT IN ('resolved', 'closed')) AS open_tickets"
    };
}
pub(super) use machine_columns;

pub(super) fn machine_summary(row: &impl StoreRow) -> Result<MachineSummary, StoreError> {
    Ok(MachineSummary {
        id: row.text("id")?,
        hostname: row.text("hostname")?,
        status: parse::<MachineStatus>(&row.text("status")?)?,
        enrolled_at: from_millis(row.int("enrolled_at")?)?,
        last_seen_at: from_millis(row.int("last_seen_at")?)?,
        certificate_not_after: from_millis(row.int("cert_not_after")?)?,
        open_tickets: to_u64(row.int("open_tickets")?)?,
        online: false,
    })
}

/// An enrollment token's row, as [`check_token`] reads it (`$1`: the token's hash).
pub(super) const SELECT_ENROLLMENT_TOKEN: &str =
    "SELECT expires_at, max_uses, uses, revoked_at FROM enrollment_tokens WHERE token_hash = $1";

/// Whether the enrollment token row (`expires_at, max_uses, uses, revoked_at`) may be used at
/// `now`.
pub(super) fn check_token(
    row: Option<&impl StoreRow>,
    now: OffsetDateTime,
) -> Result<Result<(), EnrollmentRefusal>, StoreError> {
    let Some(row) = row else {
        return Ok(Err(EnrollmentRefusal::Unknown));
    };
    let expires_at = row.opt_int("expires_at")?;
    let max_uses = row.opt_int("max_uses")?;
    let uses = row.int("uses")?;
    if row.opt_int("revoked_at")?.is_some() {
        return Ok(Err(EnrollmentRefusal::Revoked));
    }
    if expires_at.is_some_and(|at| at <= millis(now)) {
        return Ok(Err(EnrollmentRefusal::Expired));
    }
    if max_uses.is_some_and(|max| uses >= max) {
        return Ok(Err(EnrollmentRefusal::UsedUp));
    }
    Ok(Ok(()))
}

/// A ticket comment (`author, body, created_at, public`).
pub(super) fn comment(row: &impl StoreRow) -> Result<Comment, StoreError> {
    Ok(Comment {
        author: row.text("author")?,
        body: row.text("body")?,
        created_at: from_millis(row.int("created_at")?)?,
        public: row.flag("public")?,
    })
}

/// A public reply as the end user sees it (`author, body, created_at`).
pub(super) fn reply(row: &impl StoreRow) -> Result<Reply, StoreError> {
    Ok(Reply {
        author: row.text("author")?,
        body: row.text("body")?,
        created_at: from_millis(row.int("created_at")?)?,
    })
}

/// An audit row, read so that tampering cannot make listing or verification fail: a column
/// that cannot be read (a NULL where text belongs, a `detail` that is not JSON, a time out of
/// range) marks the entry with an unreadable hash, which verification reports as altered.
pub(super) fn audit_entry(row: &impl StoreRow) -> AuditEntry {
    let mut unreadable = Vec::new();
    let seq = row
        .int("seq")
        .ok()
        .and_then(|seq| u64::try_from(seq).ok())
        .unwrap_or_else(|| {
            unreadable.push("seq");
            0
        });
    let at = row
        .int("at")
        .ok()
        .and_then(|ms| from_millis(ms).ok())
        .unwrap_or_else(|| {
            unreadable.push("at");
            OffsetDateTime::UNIX_EPOCH
        });
    let mut text = |column: &'static str| match row.opt_text(column) {
        Ok(Some(value)) => value,
        _ => {
            unreadable.push(column);
            String::new()
        }
    };
    let actor = text("actor");
    let action = text("action");
    let prev_hash = text("prev_hash");
    let hash = text("hash");
    let subject = row.opt_text("subject").unwrap_or_else(|_| {
        unreadable.push("subject");
        None
    });
    let detail = match row.opt_text("detail") {
        Ok(Some(raw)) => serde_json::from_str(&raw).unwrap_or_else(|_| {
            unreadable.push("detail");
            serde_json::Value::String(raw)
        }),
        _ => {
            unreadable.push("detail");
            serde_json::Value::Null
        }
    };
    let hash = if unreadable.is_empty() {
        hash
    } else {
        format!("{UNREADABLE_PREFIX}{}", unreadable.join(", "))
    };
    AuditEntry {
        seq,
        at,
        actor,
        action,
        subject,
        detail,
        prev_hash,
        hash,
    }
}

/// `FROM` clause and columns of a stored action (a macro so queries stay `&'static str`).
macro_rules! stored_action_columns {
    () => {
        "a.action_id, a.catalog_version, a.signed, COALESCE(s.require_approval, 0) AS required \
         FROM catalog_actions a LEFT JOIN action_settings s ON s.action_id = a.action_id"
    };
}
pub(super) use stored_action_columns;

pub(super) fn stored_action(row: &impl StoreRow) -> Result<StoredAction, StoreError> {
    Ok(StoredAction {
        action_id: row.text("action_id")?,
        catalog_version: to_u64(row.int("catalog_version")?)?,
        signed: row.text("signed")?,
        require_approval: row.flag("required")?,
    })
}

/// A catalog (`version, digest, key_id, action_count, published_by, published_at`).
pub(super) fn catalog_record(r: &impl StoreRow) -> Result<CatalogRecord, StoreError> {
    Ok(CatalogRecord {
        version: to_u64(r.int("version")?)?,
        digest: r.text("digest")?,
        key_id: r.text("key_id")?,
        action_count: to_u64(r.int("action_count")?)?,
        published_by: r.text("published_by")?,
        published_at: from_millis(r.int("published_at")?)?,
    })
}

/// Columns of a run with its machine and work.
macro_rules! run_columns {
    () => {
        "r.id, r.run_id, r.machine_id, m.hostname, r.action_id, r.signed_action, r.params, \
            r.requested_by, r.reason, r.ticket_number, r.risk, r.approval, r.approval_expires_at, \
            r.decided_by, r.decided_at, r.decision_reason, r.created_at, r.work_id, \
            w.state AS work_state, w.expires_at AS work_expires_at, w.delivered_at, \
            w.finished_at, w.error AS work_error, r.stage, r.started_at, r.result, r.recheck, \
            r.catalog_version, r.expired_reason \
         FROM runs r JOIN machines m ON m.id = r.machine_id LEFT JOIN work w ON w.id = r.work_id"
    };
}
pub(super) use run_columns;

pub(super) fn run_record(r: &impl StoreRow) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: to_u64(r.int("id")?)?,
        run_id: r.text("run_id")?,
        machine_id: r.text("machine_id")?,
        hostname: r.text("hostname")?,
        action_id: r.text("action_id")?,
        signed_action: r.text("signed_action")?,
        params_json: r.text("params")?,
        requested_by: r.text("requested_by")?,
        reason: r.opt_text("reason")?,
        ticket: r.opt_int("ticket_number")?.map(to_u64).transpose()?,
        risk: r.text("risk")?,
        approval: r.text("approval")?,
        approval_expires_at: opt_from_millis(r.opt_int("approval_expires_at")?)?,
        decided_by: r.opt_text("decided_by")?,
        decided_at: opt_from_millis(r.opt_int("decided_at")?)?,
        decision_reason: r.opt_text("decision_reason")?,
        created_at: from_millis(r.int("created_at")?)?,
        work_id: r.opt_int("work_id")?.map(to_u64).transpose()?,
        work_state: r
            .opt_text("work_state")?
            .as_deref()
            .map(parse_work_state)
            .transpose()?,
        work_expires_at: opt_from_millis(r.opt_int("work_expires_at")?)?,
        delivered_at: opt_from_millis(r.opt_int("delivered_at")?)?,
        finished_at: opt_from_millis(r.opt_int("finished_at")?)?,
        stage: r.opt_text("stage")?,
        started_at: opt_from_millis(r.opt_int("started_at")?)?,
        result: r.opt_text("result")?,
        recheck: r.opt_text("recheck")?,
        work_error: r.opt_text("work_error")?,
        catalog_version: r.opt_int("catalog_version")?.map(to_u64).transpose()?,
        expired_reason: r.opt_text("expired_reason")?,
    })
}

/// Columns of a piece of work with its machine's host name.
pub(super) const SELECT_WORK: &str = "SELECT w.id, w.machine_id, m.hostname, w.kind, w.state, w.ticket_number, w.created_at, \
        w.expires_at, w.delivered_at, w.finished_at, w.error, w.snapshot \
     FROM work w JOIN machines m ON m.id = w.machine_id WHERE w.id = $1";

pub(super) fn work_record(r: &impl StoreRow) -> Result<WorkRecord, StoreError> {
    Ok(WorkRecord {
        id: to_u64(r.int("id")?)?,
        machine_id: r.text("machine_id")?,
        hostname: r.text("hostname")?,
        kind: r.text("kind")?,
        state: parse_work_state(&r.text("state")?)?,
        ticket: r.opt_int("ticket_number")?.map(to_u64).transpose()?,
        created_at: from_millis(r.int("created_at")?)?,
        expires_at: from_millis(r.int("expires_at")?)?,
        delivered_at: opt_from_millis(r.opt_int("delivered_at")?)?,
        finished_at: opt_from_millis(r.opt_int("finished_at")?)?,
        error: r.opt_text("error")?,
        snapshot_json: r.opt_text("snapshot")?,
    })
}

/// How often buffered heartbeats and last-seen times are written.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered heartbeats that trigger a flush before the interval is up.
pub(super) const FLUSH_AT: usize = 8192;
/// Buffered heartbeats past which senders wait for a flush (a stuck disk must not grow memory).
pub(super) const TELEMETRY_MAX: usize = 65_536;

/// Where buffered telemetry goes: one transaction per call, all or nothing.
pub(super) trait TelemetrySink: Send + Sync {
    fn write_telemetry<'a>(&'a self, taken: &'a PendingTelemetry) -> super::StoreFuture<'a, ()>;
}

/// Telemetry is acknowledged at once and written in one transaction per [`FLUSH_INTERVAL`]:
/// heartbeats are not tickets, and a crash loses at most the last second of vitals and
/// last-seen times. Thousands of agents then cost one commit a second instead of one each, and
/// the per-request last-seen refresh never takes a write lock. Every read of last-seen times
/// or vitals flushes first, so readers see what was acknowledged.
#[derive(Debug, Default)]
pub(super) struct Telemetry {
    pending: std::sync::Mutex<PendingTelemetry>,
    /// One flush at a time; readers wait for a flush in progress.
    flushing: tokio::sync::Mutex<()>,
    /// Wakes the flusher early when many heartbeats are waiting.
    pub(super) full: tokio::sync::Notify,
}

#[derive(Debug, Default)]
pub(super) struct PendingTelemetry {
    /// (machine id, vitals JSON, received at in Unix milliseconds)
    pub(super) beats: Vec<(String, String, i64)>,
    /// Latest contact per machine, Unix milliseconds.
    pub(super) seen: std::collections::HashMap<String, i64>,
}

impl PendingTelemetry {
    pub(super) fn see(&mut self, machine_id: &str, at: i64) {
        match self.seen.get_mut(machine_id) {
            Some(last) => *last = (*last).max(at),
            None => {
                self.seen.insert(machine_id.to_owned(), at);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.beats.is_empty() && self.seen.is_empty()
    }
}

impl Telemetry {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, PendingTelemetry> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes everything buffered in one transaction. On failure the data goes back into the
    /// buffer for the next attempt.
    pub(super) async fn flush(&self, sink: &impl TelemetrySink) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.lock());
        if taken.is_empty() {
            return Ok(());
        }
        match sink.write_telemetry(&taken).await {
            Ok(()) => Ok(()),
            Err(error) => {
                let mut pending = self.lock();
                for (machine, at) in &taken.seen {
                    pending.see(machine, *at);
                }
                let mut beats = taken.beats;
                beats.append(&mut pending.beats);
                beats.truncate(TELEMETRY_MAX);
                pending.beats = beats;
                Err(error)
            }
        }
    }

    /// Buffers a heartbeat; flushes at once when the buffer is full, wakes the flusher early
    /// when much is waiting.
    pub(super) async fn record(
        &self,
        sink: &impl TelemetrySink,
        machine_id: &str,
        vitals_json: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let waiting = {
            let mut pending = self.lock();
            pending.see(machine_id, at);
            pending
                .beats
                .push((machine_id.to_owned(), vitals_json.to_owned(), at));
            pending.beats.len()
        };
        if waiting >= TELEMETRY_MAX {
            self.flush(sink).await?;
        } else if waiting >= FLUSH_AT {
            self.full.notify_one();
        }
        Ok(())
    }
}

/// Flushes telemetry every [`FLUSH_INTERVAL`], or sooner when much is waiting; ends with the store.
pub(super) async fn flush_loop(sink: impl TelemetrySink, telemetry: std::sync::Weak<Telemetry>) {
    loop {
        // Holding the telemetry for one interval at most: the loop ends a second after the store.
        let Some(t) = telemetry.upgrade() else { return };
        let _ = tokio::time::timeout(FLUSH_INTERVAL, t.full.notified()).await;
        if let Err(error) = t.flush(&sink).await {
            tracing::error!(%error, "cannot write heartbeats; will retry");
        }
    }
}

/// A ticket waiting for the group commit, and where its answer goes.
#[derive(Debug)]
pub(super) struct IngestJob {
    pub(super) ticket: TicketRecord,
    pub(super) now: OffsetDateTime,
    /// The service-level policy the new ticket's due times are computed with.
    pub(super) sla: std::sync::Arc<Policy>,
    pub(super) reply: oneshot::Sender<Result<RecordedTicket, StoreError>>,
}

/// Most tickets committed together.
pub(super) const MAX_BATCH: usize = 64;
/// Tickets that may wait for the writer before senders are slowed down.
pub(super) const INGEST_QUEUE: usize = 1024;

/// Commits a batch of tickets in one transaction, each in its own savepoint: one result per job
/// (a failing ticket does not fail its neighbours), or an error when the commit itself failed.
pub(super) trait TicketBatchWriter: Send + Sync {
    fn write_batch<'a>(
        &'a self,
        batch: &'a [IngestJob],
    ) -> super::StoreFuture<'a, Vec<Result<RecordedTicket, StoreError>>>;
}

/// The group commit: whatever tickets arrived while the previous commit was being made durable
/// go into the next transaction together, so N concurrent reports cost one commit, not N. Every
/// sender gets its answer only after the commit that holds its ticket returned.
pub(super) async fn ingest_loop(
    writer: impl TicketBatchWriter,
    mut jobs: mpsc::Receiver<IngestJob>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = match writer.write_batch(&batch).await {
            Ok(results) => results,
            Err(error) => {
                let message = error.to_string();
                batch
                    .iter()
                    .map(|_| Err(StoreError::Batch(message.clone())))
                    .collect()
            }
        };
        for (job, result) in batch.into_iter().zip(results) {
            // The requester may have gone away (client disconnected); the ticket is stored.
            let _ = job.reply.send(result);
        }
    }
}

/// Sends a ticket to the group-commit writer and waits for its commit.
pub(super) async fn submit_ticket(
    ingest: &mpsc::Sender<IngestJob>,
    ticket: &TicketRecord,
    sla: std::sync::Arc<Policy>,
    now: OffsetDateTime,
) -> Result<RecordedTicket, StoreError> {
    let (reply, answer) = oneshot::channel();
    let job = IngestJob {
        ticket: ticket.clone(),
        now,
        sla,
        reply,
    };
    ingest.send(job).await.map_err(|_| StoreError::Closed)?;
    answer.await.map_err(|_| StoreError::Closed)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_decode_to_the_idempotency_key_prefix_they_encode() {
        // 0x0123456789 in Crockford base32, as the agent's spool writes it.
        assert_eq!(
            reference_key_prefix("LL-04HM-ASW9").as_deref(),
            Some("0123456789")
        );
        assert_eq!(
            reference_key_prefix("ll-04hm-asw9").as_deref(),
            Some("0123456789")
        );
        assert_eq!(reference_key_prefix("LL-04HM-ASWU"), None);
        assert_eq!(reference_key_prefix("12"), None);
    }
}
