//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Durability: a commit returns only after the WAL is fsynced, so a ticket number handed to an
//! agent survives a crash or power loss right after the answer. SQLite serialises writers; the
//! busy timeout makes concurrent writers wait for their turn instead of failing. Tickets go
//! through one group-commit writer so concurrent reports share an fsync.

use std::str::FromStr;
use std::time::Duration;

use lifeline_shared::findings::{Finding, Severity};
use lifeline_shared::v1::api::{
    AttachedSnapshot, Comment, MachineDetail, MachineStatus, MachineSummary, MachineTicket,
    Priority, Reply, Role, TicketDetail, TicketFilter, TicketStatus, TicketSummary, TicketUpdate,
    Tier, Urgency, UserSummary,
};
use lifeline_shared::v1::audit::{self, AuditEntry, GENESIS_HASH, UNREADABLE_PREFIX};
use lifeline_shared::v1::snapshot::Snapshot;
use lifeline_shared::v1::work::WorkState;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use lifeline_shared::v1::feedback::Feedback;
use lifeline_shared::v1::integrations::{Delivery, DeliveryAttempt, DeliveryKind, DeliveryState};

use super::{
    AttemptOutcome, AttemptRecord, AuditFilter, CatalogKeyRecord, CatalogRecord, DueDelivery,
    Enrollment, EnrollmentRefusal, FeedbackOutcome, FeedbackRefusal, MachineRecord, NewAuditEntry,
    NewCatalog, NewDelivery, NewRunRecord, NewWebSession, PublishOutcome, RUN_REPORT_GRACE_SECS,
    RUN_SILENT_AGENT, RecordedTicket, RunFilter, RunFinish, RunRecord, Store, StoreError,
    StoreFuture, StoredAction, TicketRecord, UserRecord, VITALS_HISTORY, WebSessionRecord,
    WorkOutcome, WorkRecord,
};
use crate::secret::TokenHash;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The group-commit writer for tickets (see [`ingest_loop`]).
    ingest: mpsc::Sender<IngestJob>,
    /// Serialises audit appends: each reads the chain's head and writes the next entry.
    audit: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Heartbeats and last-seen times waiting for the next flush (see [`Telemetry`]).
    telemetry: std::sync::Arc<Telemetry>,
    /// Machines by certificate fingerprint, for the lookup every agent request makes.
    identities: std::sync::Arc<IdentityCache>,
}

/// Machines by certificate fingerprint. Every change of a machine's certificate or status goes
/// through this store, which clears the cache after committing it; the generation keeps a
/// lookup that raced with such a change from caching what it read before the change.
#[derive(Debug, Default)]
struct IdentityCache {
    inner: std::sync::Mutex<(u64, std::collections::HashMap<String, MachineRecord>)>,
}

/// Entries kept before the cache starts over.
const IDENTITY_CACHE_MAX: usize = 100_000;

impl IdentityCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, (u64, std::collections::HashMap<String, MachineRecord>)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached record, or the generation to quote when caching what the database says.
    fn get(&self, fingerprint: &str) -> Result<MachineRecord, u64> {
        let guard = self.lock();
        guard.1.get(fingerprint).cloned().ok_or(guard.0)
    }

    fn put(&self, generation: u64, record: MachineRecord) {
        let mut guard = self.lock();
        if guard.0 != generation {
            return;
        }
        if guard.1.len() >= IDENTITY_CACHE_MAX {
            guard.1.clear();
        }
        guard.1.insert(record.fingerprint.clone(), record);
    }

    /// After a committed change to any machine's certificate or status.
    fn invalidate(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1.clear();
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies pending migrations.
    pub async fn open(path: &std::path::Path) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                url: path.display().to_string(),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        let (ingest, jobs) = mpsc::channel(INGEST_QUEUE);
        tokio::spawn(ingest_loop(pool.clone(), jobs));
        let telemetry = std::sync::Arc::new(Telemetry::default());
        tokio::spawn(flush_loop(
            pool.clone(),
            std::sync::Arc::downgrade(&telemetry),
        ));
        Ok(SqliteStore {
            pool,
            ingest,
            audit: std::sync::Arc::default(),
            telemetry,
            identities: std::sync::Arc::default(),
        })
    }
}

fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

fn opt_from_millis(ms: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    ms.map(from_millis).transpose()
}

fn parse<T: FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative number {value}")))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Columns of a ticket summary (a macro so queries stay `&'static str`, never formatted).
macro_rules! ticket_columns {
    () => {
        "t.number, t.machine_id, m.hostname, t.description, t.urgency, t.priority, t.status, \
         t.tier, t.assignee, t.worst_finding, t.created_at, t.updated_at"
    };
}

fn ticket_summary(row: &SqliteRow) -> Result<TicketSummary, StoreError> {
    let tier: i64 = row.try_get("tier")?;
    let worst: Option<String> = row.try_get("worst_finding")?;
    Ok(TicketSummary {
        number: to_u64(row.try_get("number")?)?,
        machine_id: row.try_get("machine_id")?,
        hostname: row.try_get("hostname")?,
        description: row.try_get("description")?,
        urgency: parse::<Urgency>(row.try_get("urgency")?)?,
        priority: parse::<Priority>(row.try_get("priority")?)?,
        status: parse::<TicketStatus>(row.try_get("status")?)?,
        tier: u8::try_from(tier)
            .ok()
            .and_then(|t| Tier::new(t).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("tier {tier}")))?,
        assignee: row.try_get("assignee")?,
        worst_finding: worst.as_deref().map(parse_severity).transpose()?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

/// The idempotency-key prefix (10 hex digits) a ticket reference like `LL-7KQ2-M9XD` encodes:
/// the reference is the key's first 40 bits in Crockford base32 (see the agent's spool).
fn reference_key_prefix(reference: &str) -> Option<String> {
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

fn parse_severity(text: &str) -> Result<Severity, StoreError> {
    match text {
        "info" => Ok(Severity::Info),
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        other => Err(StoreError::Corrupt(format!("severity {other:?}"))),
    }
}

/// Columns of a machine summary.
macro_rules! machine_columns {
    () => {
        "m.id, m.hostname, m.status, m.enrolled_at, m.last_seen_at, m.cert_not_after, \
         m.revoked_at, (SELECT COUNT(*) FROM tickets t WHERE t.machine_id = m.id \
         AND t.status NOT IN ('resolved', 'closed')) AS open_tickets"
    };
}

fn machine_summary(row: &SqliteRow) -> Result<MachineSummary, StoreError> {
    Ok(MachineSummary {
        id: row.try_get("id")?,
        hostname: row.try_get("hostname")?,
        status: parse::<MachineStatus>(row.try_get("status")?)?,
        enrolled_at: from_millis(row.try_get("enrolled_at")?)?,
        last_seen_at: from_millis(row.try_get("last_seen_at")?)?,
        certificate_not_after: from_millis(row.try_get("cert_not_after")?)?,
        open_tickets: to_u64(row.try_get("open_tickets")?)?,
        online: false,
    })
}

fn check_token(
    row: Option<&SqliteRow>,
    now: OffsetDateTime,
) -> Result<Result<(), EnrollmentRefusal>, StoreError> {
    let Some(row) = row else {
        return Ok(Err(EnrollmentRefusal::Unknown));
    };
    let expires_at: Option<i64> = row.try_get("expires_at")?;
    let max_uses: Option<i64> = row.try_get("max_uses")?;
    let uses: i64 = row.try_get("uses")?;
    if expires_at.is_some_and(|at| at <= millis(now)) {
        return Ok(Err(EnrollmentRefusal::Expired));
    }
    if max_uses.is_some_and(|max| uses >= max) {
        return Ok(Err(EnrollmentRefusal::UsedUp));
    }
    Ok(Ok(()))
}

const SELECT_ENROLLMENT_TOKEN: &str =
    "SELECT expires_at, max_uses, uses FROM enrollment_tokens WHERE token_hash = $1";

/// How often buffered heartbeats and last-seen times are written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Buffered heartbeats that trigger a flush before the interval is up.
const FLUSH_AT: usize = 8192;
/// Buffered heartbeats past which senders wait for a flush (a stuck disk must not grow memory).
const TELEMETRY_MAX: usize = 65_536;

/// Telemetry is acknowledged at once and written in one transaction per [`FLUSH_INTERVAL`]:
/// heartbeats are not tickets, and a crash loses at most the last second of vitals and
/// last-seen times. Thousands of agents then cost one fsync a second instead of one each, and
/// the per-request last-seen refresh never takes the write lock. Every read of last-seen times
/// or vitals flushes first, so readers see what was acknowledged.
#[derive(Debug, Default)]
struct Telemetry {
    pending: std::sync::Mutex<PendingTelemetry>,
    /// One flush at a time; readers wait for a flush in progress.
    flushing: tokio::sync::Mutex<()>,
    /// Wakes the flusher early when many heartbeats are waiting.
    full: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct PendingTelemetry {
    /// (machine id, vitals JSON, received at in Unix milliseconds)
    beats: Vec<(String, String, i64)>,
    /// Latest contact per machine, Unix milliseconds.
    seen: std::collections::HashMap<String, i64>,
}

impl PendingTelemetry {
    fn see(&mut self, machine_id: &str, at: i64) {
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
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingTelemetry> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes everything buffered in one transaction. On failure the data goes back into the
    /// buffer for the next attempt.
    async fn flush(&self, pool: &SqlitePool) -> Result<(), StoreError> {
        let _one = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.lock());
        if taken.is_empty() {
            return Ok(());
        }
        match write_telemetry(pool, &taken).await {
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
}

async fn write_telemetry(pool: &SqlitePool, taken: &PendingTelemetry) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for (machine_id, at) in &taken.seen {
        sqlx::query("UPDATE machines SET last_seen_at = MAX(last_seen_at, $1) WHERE id = $2")
            .bind(at)
            .bind(machine_id)
            .execute(&mut *tx)
            .await?;
    }
    let mut beating = std::collections::BTreeSet::new();
    for (machine_id, vitals_json, at) in &taken.beats {
        sqlx::query("INSERT INTO vitals (machine_id, received_at, document) VALUES ($1, $2, $3)")
            .bind(machine_id)
            .bind(at)
            .bind(vitals_json)
            .execute(&mut *tx)
            .await?;
        beating.insert(machine_id.as_str());
    }
    for machine_id in beating {
        sqlx::query(
            "DELETE FROM vitals WHERE machine_id = $1 AND id <= \
                (SELECT id FROM vitals WHERE machine_id = $1 ORDER BY id DESC \
                 LIMIT 1 OFFSET $2)",
        )
        .bind(machine_id)
        .bind(VITALS_HISTORY)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Flushes telemetry every [`FLUSH_INTERVAL`], or sooner when much is waiting; ends with the store.
async fn flush_loop(pool: SqlitePool, telemetry: std::sync::Weak<Telemetry>) {
    loop {
        // Holding the telemetry for one interval at most: the loop ends a second after the store.
        let Some(t) = telemetry.upgrade() else { return };
        let _ = tokio::time::timeout(FLUSH_INTERVAL, t.full.notified()).await;
        if let Err(error) = t.flush(&pool).await {
            tracing::error!(%error, "cannot write heartbeats; will retry");
        }
    }
}

/// A ticket waiting for the group commit, and where its answer goes.
#[derive(Debug)]
struct IngestJob {
    ticket: TicketRecord,
    now: OffsetDateTime,
    reply: oneshot::Sender<Result<RecordedTicket, StoreError>>,
}

/// Most tickets committed together.
const MAX_BATCH: usize = 64;
/// Tickets that may wait for the writer before senders are slowed down.
const INGEST_QUEUE: usize = 1024;

/// The group commit: whatever tickets arrived while the previous commit was being fsynced go
/// into the next transaction together, so N concurrent reports cost one fsync, not N. Each
/// ticket is in its own savepoint, so one failing ticket does not fail its neighbours. Every
/// sender gets its answer only after the commit that holds its ticket returned.
async fn ingest_loop(pool: SqlitePool, mut jobs: mpsc::Receiver<IngestJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = match write_batch(&pool, &batch).await {
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

async fn write_batch(
    pool: &SqlitePool,
    batch: &[IngestJob],
) -> Result<Vec<Result<RecordedTicket, StoreError>>, StoreError> {
    // IMMEDIATE: the batch reads (idempotency keys) before it writes; a deferred transaction
    // whose snapshot another writer moved past fails at its first write with SQLITE_BUSY at
    // once, without waiting (seen when outbox inserts follow a ticket closely, issue 9).
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match insert_ticket(&mut savepoint, &job.ticket, job.now).await {
            Ok(recorded) => {
                savepoint.commit().await?;
                results.push(Ok(recorded));
            }
            Err(error) => {
                savepoint.rollback().await?;
                results.push(Err(error));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Inserts one ticket and its snapshot, or finds the ticket its idempotency key already made.
async fn insert_ticket(
    conn: &mut SqliteConnection,
    ticket: &TicketRecord,
    now: OffsetDateTime,
) -> Result<RecordedTicket, StoreError> {
    let findings = serde_json::to_string(&ticket.findings)
        .map_err(|e| StoreError::Corrupt(format!("findings: {e}")))?;
    let priority = Priority::initial(ticket.urgency, ticket.worst_finding);
    // Look before inserting: a conflicting INSERT would still consume a ticket number.
    let existing =
        sqlx::query("SELECT number FROM tickets WHERE machine_id = $1 AND idempotency_key = $2")
            .bind(&ticket.machine_id)
            .bind(&ticket.idempotency_key)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(existing) = existing {
        return Ok(RecordedTicket {
            number: to_u64(existing.try_get("number")?)?,
            created: false,
        });
    }
    let row = sqlx::query(
        "INSERT INTO tickets (machine_id, idempotency_key, os_user, description, urgency, \
            priority, status, tier, worst_finding, findings, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'new', 1, $7, $8, $9, $9) \
         RETURNING number",
    )
    .bind(&ticket.machine_id)
    .bind(&ticket.idempotency_key)
    .bind(&ticket.os_user)
    .bind(&ticket.description)
    .bind(ticket.urgency.as_str())
    .bind(priority.as_str())
    .bind(ticket.worst_finding.map(|s| s.as_str()))
    .bind(findings)
    .bind(millis(now))
    .fetch_one(&mut *conn)
    .await?;
    let number: i64 = row.try_get("number")?;
    if let Some(snapshot) = &ticket.snapshot_json {
        sqlx::query(
            "INSERT INTO snapshots (ticket_number, machine_id, received_at, document) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(number)
        .bind(&ticket.machine_id)
        .bind(millis(now))
        .bind(snapshot)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(png) = &ticket.screenshot_png {
        sqlx::query(
            "INSERT INTO screenshots (ticket_number, png, received_at) VALUES ($1, $2, $3)",
        )
        .bind(number)
        .bind(png)
        .bind(millis(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(RecordedTicket {
        number: to_u64(number)?,
        created: true,
    })
}

impl Store for SqliteStore {
    fn has_admin(&self) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
                .fetch_one(&self.pool)
                .await?;
            Ok(row.try_get::<i64, _>("n")? > 0)
        })
    }

    fn add_user<'a>(
        &'a self,
        name: &'a str,
        role: Role,
        token_hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let result = sqlx::query(
                "INSERT INTO users (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(role.as_str())
            .bind(token_hash.as_str())
            .bind(millis(now))
            .execute(&self.pool)
            .await;
            match result {
                Ok(_) => Ok(()),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    Err(StoreError::UserExists(name.to_owned()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    fn user_by_token<'a>(
        &'a self,
        token_hash: &'a TokenHash,
    ) -> StoreFuture<'a, Option<UserRecord>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT name, role, token_hash, revoked_at FROM users WHERE token_hash = $1",
            )
            .bind(token_hash.as_str())
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            Ok(Some(UserRecord {
                name: row.try_get("name")?,
                role: parse::<Role>(row.try_get("role")?)?,
                token_hash: TokenHash::from_stored(row.try_get("token_hash")?),
                revoked: revoked_at.is_some(),
            }))
        })
    }

    fn list_users(&self) -> StoreFuture<'_, Vec<UserSummary>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT name, role, created_at, revoked_at, email FROM users ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(UserSummary {
                        name: row.try_get("name")?,
                        role: parse::<Role>(row.try_get("role")?)?,
                        created_at: from_millis(row.try_get("created_at")?)?,
                        revoked_at: opt_from_millis(row.try_get("revoked_at")?)?,
                        email: row.try_get("email")?,
                    })
                })
                .collect()
        })
    }

    fn revoke_user<'a>(&'a self, name: &'a str, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE users SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            )
            .bind(millis(now))
            .bind(name)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn add_enrollment_token<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        expires_at: Option<OffsetDateTime>,
        max_uses: Option<u32>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO enrollment_tokens (token_hash, created_at, expires_at, max_uses) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(token_hash.as_str())
            .bind(millis(now))
            .bind(expires_at.map(millis))
            .bind(max_uses.map(i64::from))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn check_enrollment_token<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), EnrollmentRefusal>> {
        Box::pin(async move {
            let row = sqlx::query(SELECT_ENROLLMENT_TOKEN)
                .bind(token_hash.as_str())
                .fetch_optional(&self.pool)
                .await?;
            check_token(row.as_ref(), now)
        })
    }

    fn enroll<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        enrollment: &'a Enrollment,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, MachineStatus> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // Take the write lock first so two enrollments cannot both use a token's last use.
            sqlx::query("UPDATE enrollment_tokens SET uses = uses WHERE token_hash = $1")
                .bind(token_hash.as_str())
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(SELECT_ENROLLMENT_TOKEN)
                .bind(token_hash.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            check_token(row.as_ref(), now)??;
            sqlx::query("UPDATE enrollment_tokens SET uses = uses + 1 WHERE token_hash = $1")
                .bind(token_hash.as_str())
                .execute(&mut *tx)
                .await?;
            let machine = sqlx::query(
                "INSERT INTO machines (id, hostname, status, cert_fingerprint, cert_not_after, \
                    enrolled_at, last_seen_at) \
                 VALUES ($1, $2, $6, $3, $4, $5, $5) \
                 ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, \
                    cert_fingerprint = excluded.cert_fingerprint, \
                    cert_not_after = excluded.cert_not_after, \
                    last_seen_at = excluded.last_seen_at \
                 RETURNING status",
            )
            .bind(&enrollment.machine_id)
            .bind(&enrollment.hostname)
            .bind(&enrollment.cert_fingerprint)
            .bind(millis(enrollment.cert_not_after))
            .bind(millis(now))
            .bind(enrollment.initial_status.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let status = parse::<MachineStatus>(machine.try_get("status")?)?;
            tx.commit().await?;
            self.identities.invalidate();
            Ok(status)
        })
    }

    fn renew_certificate<'a>(
        &'a self,
        machine_id: &'a str,
        cert_fingerprint: &'a str,
        cert_not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE machines SET cert_fingerprint = $1, cert_not_after = $2, \
                    last_seen_at = $3 WHERE id = $4 AND status = 'active'",
            )
            .bind(cert_fingerprint)
            .bind(millis(cert_not_after))
            .bind(millis(now))
            .bind(machine_id)
            .execute(&self.pool)
            .await?;
            self.identities.invalidate();
            Ok(done.rows_affected() > 0)
        })
    }

    fn machine_by_fingerprint<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<MachineRecord>> {
        Box::pin(async move {
            let generation = match self.identities.get(fingerprint) {
                Ok(record) => return Ok(Some(record)),
                Err(generation) => generation,
            };
            let row = sqlx::query(
                "SELECT id, status, cert_fingerprint FROM machines WHERE cert_fingerprint = $1",
            )
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let record = MachineRecord {
                id: row.try_get("id")?,
                status: parse::<MachineStatus>(row.try_get("status")?)?,
                fingerprint: row.try_get("cert_fingerprint")?,
            };
            self.identities.put(generation, record.clone());
            Ok(Some(record))
        })
    }

    fn touch_machine<'a>(&'a self, id: &'a str, now: OffsetDateTime) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.telemetry.lock().see(id, millis(now));
            Ok(())
        })
    }

    fn list_machines(&self) -> StoreFuture<'_, Vec<MachineSummary>> {
        Box::pin(async move {
            self.telemetry.flush(&self.pool).await?;
            let rows = sqlx::query(concat!(
                "SELECT ",
                machine_columns!(),
                " FROM machines m ORDER BY m.hostname, m.id"
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(machine_summary).collect()
        })
    }

    fn machine<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<MachineDetail>> {
        Box::pin(async move {
            self.telemetry.flush(&self.pool).await?;
            let row = sqlx::query(concat!(
                "SELECT ",
                machine_columns!(),
                " FROM machines m WHERE m.id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let summary = machine_summary(&row)?;
            let revoked_at = opt_from_millis(row.try_get("revoked_at")?)?;
            let tickets = self
                .list_tickets(&TicketFilter {
                    machine: Some(id.to_owned()),
                    ..TicketFilter::default()
                })
                .await?;
            Ok(Some(MachineDetail {
                summary,
                revoked_at,
                tickets,
                last_vitals: None,
                recent_vitals: Vec::new(),
            }))
        })
    }

    fn count_active_machines(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM machines WHERE status = 'active'")
                .fetch_one(&self.pool)
                .await?;
            to_u64(row.try_get("n")?)
        })
    }

    fn approve_machine<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<MachineStatus>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query("SELECT status FROM machines WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let before = parse::<MachineStatus>(row.try_get("status")?)?;
            if before == MachineStatus::Pending {
                sqlx::query("UPDATE machines SET status = 'active' WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            self.identities.invalidate();
            Ok(Some(before))
        })
    }

    fn revoke_machine<'a>(&'a self, id: &'a str, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE machines SET status = 'revoked', \
                    revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
            )
            .bind(millis(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
            self.identities.invalidate();
            Ok(done.rows_affected() > 0)
        })
    }

    fn record_ticket<'a>(
        &'a self,
        ticket: &'a TicketRecord,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, RecordedTicket> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let job = IngestJob {
                ticket: ticket.clone(),
                now,
                reply,
            };
            self.ingest
                .send(job)
                .await
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn list_tickets<'a>(&'a self, filter: &'a TicketFilter) -> StoreFuture<'a, Vec<TicketSummary>> {
        Box::pin(async move {
            // Search: a ticket number (`12`, `#12`), a reference (`LL-7KQ2-M9XD`, matched on the
            // idempotency key it encodes), or text in the description or host name.
            let search = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
            let search_number = search
                .and_then(|q| q.trim_start_matches('#').parse::<i64>().ok())
                .unwrap_or(-1);
            let search_key_prefix = search
                .and_then(reference_key_prefix)
                .map_or_else(|| "-".to_owned(), |prefix| format!("{prefix}%"));
            let rows = sqlx::query(concat!(
                "SELECT ",
                ticket_columns!(),
                " FROM tickets t JOIN machines m ON m.id = t.machine_id \
                 WHERE ($1 IS NULL OR t.status = $1) AND ($2 IS NULL OR t.machine_id = $2 \
                    OR m.hostname = $2) \
                   AND ($3 IS NULL OR t.priority = $3) AND ($4 IS NULL OR t.tier = $4) \
                   AND ($5 IS NULL OR ($5 = '' AND t.assignee IS NULL) OR t.assignee = $5) \
                   AND ($6 IS NULL OR t.number = $7 OR t.idempotency_key LIKE $8 \
                        OR instr(lower(t.description), lower($6)) > 0 \
                        OR instr(lower(m.hostname), lower($6)) > 0) \
                 ORDER BY \
                   CASE WHEN $9 = 'priority' THEN (CASE t.priority WHEN 'critical' THEN 4 \
                        WHEN 'high' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END) ELSE 0 END DESC, \
                   CASE WHEN $9 = 'age' THEN t.number ELSE 0 END ASC, \
                   t.number DESC"
            ))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.machine.as_deref())
            .bind(filter.priority.map(|p| p.as_str()))
            .bind(filter.tier.map(|t| i64::from(t.get())))
            .bind(filter.assignee.as_deref())
            .bind(search)
            .bind(search_number)
            .bind(search_key_prefix)
            .bind(filter.sort.map(|s| s.as_str()))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(ticket_summary).collect()
        })
    }

    fn ticket(&self, number: u64) -> StoreFuture<'_, Option<TicketDetail>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                ticket_columns!(),
                ", t.os_user, t.findings, t.first_response_at, \
                    t.resolved_at \
                 FROM tickets t JOIN machines m ON m.id = t.machine_id WHERE t.number = $1"
            ))
            .bind(to_i64(number))
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let summary = ticket_summary(&row)?;
            let findings: Vec<Finding> = serde_json::from_str(row.try_get::<&str, _>("findings")?)
                .map_err(|e| StoreError::Corrupt(format!("findings of #{number}: {e}")))?;
            let comments = sqlx::query(
                "SELECT author, body, created_at, public FROM comments WHERE ticket_number = $1 \
                 ORDER BY id",
            )
            .bind(to_i64(number))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|c| {
                Ok(Comment {
                    author: c.try_get("author")?,
                    body: c.try_get("body")?,
                    created_at: from_millis(c.try_get("created_at")?)?,
                    public: c.try_get("public")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let snapshots = sqlx::query(
                "SELECT id, received_at, document FROM snapshots WHERE ticket_number = $1 \
                 ORDER BY id",
            )
            .bind(to_i64(number))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|s| {
                let snapshot: Snapshot = serde_json::from_str(s.try_get::<&str, _>("document")?)
                    .map_err(|e| StoreError::Corrupt(format!("snapshot of #{number}: {e}")))?;
                Ok(AttachedSnapshot {
                    id: to_u64(s.try_get("id")?)?,
                    received_at: from_millis(s.try_get("received_at")?)?,
                    snapshot,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let has_screenshot =
                sqlx::query("SELECT 1 AS one FROM screenshots WHERE ticket_number = $1")
                    .bind(to_i64(number))
                    .fetch_optional(&self.pool)
                    .await?
                    .is_some();
            let feedback = ticket_feedback(&self.pool, number).await?;
            Ok(Some(TicketDetail {
                summary,
                os_user: row.try_get("os_user")?,
                first_response_at: opt_from_millis(row.try_get("first_response_at")?)?,
                resolved_at: opt_from_millis(row.try_get("resolved_at")?)?,
                findings,
                comments,
                snapshots,
                has_screenshot,
                feedback,
            }))
        })
    }

    fn update_ticket<'a>(
        &'a self,
        number: u64,
        update: &'a TicketUpdate,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<()>> {
        Box::pin(async move {
            let resolving = update
                .status
                .map(|s| matches!(s, TicketStatus::Resolved | TicketStatus::Closed));
            let assignee = update
                .assignee
                .as_deref()
                .map(|a| if a.is_empty() { None } else { Some(a) });
            // resolved_at: set when moving to resolved/closed (kept if already set), cleared when
            // a ticket is reopened. first_response_at: the first change a technician makes.
            let done = sqlx::query(
                "UPDATE tickets SET \
                    status = COALESCE($1, status), \
                    priority = COALESCE($2, priority), \
                    tier = COALESCE($3, tier), \
                    assignee = CASE WHEN $4 THEN $5 ELSE assignee END, \
                    resolved_at = CASE WHEN $6 IS NULL THEN resolved_at \
                                       WHEN $6 THEN COALESCE(resolved_at, $7) ELSE NULL END, \
                    first_response_at = COALESCE(first_response_at, $7), \
                    updated_at = $7 \
                 WHERE number = $8",
            )
            .bind(update.status.map(|s| s.as_str()))
            .bind(update.priority.map(|p| p.as_str()))
            .bind(update.tier.map(|t| i64::from(t.get())))
            .bind(assignee.is_some())
            .bind(assignee.flatten())
            .bind(resolving)
            .bind(millis(now))
            .bind(to_i64(number))
            .execute(&self.pool)
            .await?;
            Ok((done.rows_affected() > 0).then_some(()))
        })
    }

    fn add_comment<'a>(
        &'a self,
        number: u64,
        author: &'a str,
        body: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(insert_comment(&self.pool, number, author, body, false, now))
    }

    fn record_heartbeat<'a>(
        &'a self,
        machine_id: &'a str,
        vitals_json: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let waiting = {
                let mut pending = self.telemetry.lock();
                pending.see(machine_id, millis(now));
                pending
                    .beats
                    .push((machine_id.to_owned(), vitals_json.to_owned(), millis(now)));
                pending.beats.len()
            };
            if waiting >= TELEMETRY_MAX {
                self.telemetry.flush(&self.pool).await?;
            } else if waiting >= FLUSH_AT {
                self.telemetry.full.notify_one();
            }
            Ok(())
        })
    }

    fn vitals<'a>(
        &'a self,
        machine_id: &'a str,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(OffsetDateTime, String)>> {
        Box::pin(async move {
            self.telemetry.flush(&self.pool).await?;
            let rows = sqlx::query(
                "SELECT received_at, document FROM vitals WHERE machine_id = $1 \
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(machine_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        from_millis(r.try_get("received_at")?)?,
                        r.try_get("document")?,
                    ))
                })
                .collect()
        })
    }

    fn queue_work<'a>(
        &'a self,
        machine_id: &'a str,
        kind: &'a str,
        ticket: Option<u64>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let row = sqlx::query(
                "INSERT INTO work (machine_id, kind, state, ticket_number, created_at, expires_at) \
                 VALUES ($1, $2, 'queued', $3, $4, $5) RETURNING id",
            )
            .bind(machine_id)
            .bind(kind)
            .bind(ticket.map(to_i64))
            .bind(millis(now))
            .bind(millis(expires_at))
            .fetch_one(&self.pool)
            .await?;
            to_u64(row.try_get("id")?)
        })
    }

    fn take_work<'a>(
        &'a self,
        machine_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<(u64, String)>> {
        Box::pin(async move {
            // Cheap read first: thousands of parked agents ask, almost always for nothing.
            let any = sqlx::query(
                "SELECT 1 FROM work WHERE machine_id = $1 AND state = 'queued' LIMIT 1",
            )
            .bind(machine_id)
            .fetch_optional(&self.pool)
            .await?;
            if any.is_none() {
                return Ok(Vec::new());
            }
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "UPDATE work SET state = 'expired', finished_at = $2 \
                 WHERE machine_id = $1 AND state = 'queued' AND expires_at <= $2",
            )
            .bind(machine_id)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            let rows = sqlx::query(
                "UPDATE work SET state = 'delivered', delivered_at = $2 \
                 WHERE machine_id = $1 AND state = 'queued' AND expires_at > $2 \
                 RETURNING id, kind",
            )
            .bind(machine_id)
            .bind(millis(now))
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut items = rows
                .iter()
                .map(|r| Ok((to_u64(r.try_get("id")?)?, r.try_get::<String, _>("kind")?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            items.sort_by_key(|(id, _)| *id);
            Ok(items)
        })
    }

    fn work(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<WorkRecord>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE work SET state = 'expired', finished_at = $2 \
                 WHERE id = $1 AND state = 'queued' AND expires_at <= $2",
            )
            .bind(to_i64(id))
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
            load_work(&self.pool, id).await
        })
    }

    fn finish_work<'a>(
        &'a self,
        machine_id: &'a str,
        id: u64,
        outcome: &'a WorkOutcome,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<WorkRecord>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let (state, error, snapshot) = match outcome {
                WorkOutcome::Snapshot(json) => ("done", None, Some(json.as_str())),
                WorkOutcome::Failed(error) => ("failed", Some(error.as_str()), None),
            };
            let row = sqlx::query(
                "UPDATE work SET state = $3, finished_at = $4, error = $5, snapshot = $6 \
                 WHERE id = $1 AND machine_id = $2 AND state IN ('queued', 'delivered') \
                 RETURNING ticket_number",
            )
            .bind(to_i64(id))
            .bind(machine_id)
            .bind(state)
            .bind(millis(now))
            .bind(error)
            .bind(snapshot)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(None);
            };
            let ticket: Option<i64> = row.try_get("ticket_number")?;
            if let Some(number) = ticket {
                let note = match outcome {
                    WorkOutcome::Snapshot(json) => {
                        sqlx::query(
                            "INSERT INTO snapshots (ticket_number, machine_id, received_at, \
                                document) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(number)
                        .bind(machine_id)
                        .bind(millis(now))
                        .bind(json)
                        .execute(&mut *tx)
                        .await?;
                        format!("live inspection {id}: fresh snapshot attached")
                    }
                    WorkOutcome::Failed(error) => {
                        format!("live inspection {id} failed: {error}")
                    }
                };
                add_note(&mut tx, number, &note, now).await?;
            }
            tx.commit().await?;
            load_work(&self.pool, id).await
        })
    }

    fn trust_catalog_key<'a>(&'a self, key: &'a CatalogKeyRecord) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "INSERT INTO catalog_keys (key_id, public_key, endorsement, added_by, added_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING",
            )
            .bind(&key.key_id)
            .bind(&key.public_key)
            .bind(key.endorsement.as_deref())
            .bind(&key.added_by)
            .bind(millis(key.added_at))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn catalog_keys(&self) -> StoreFuture<'_, Vec<CatalogKeyRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT key_id, public_key, endorsement, added_by, added_at FROM catalog_keys \
                 ORDER BY added_at, key_id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(CatalogKeyRecord {
                        key_id: r.try_get("key_id")?,
                        public_key: r.try_get("public_key")?,
                        endorsement: r.try_get("endorsement")?,
                        added_by: r.try_get("added_by")?,
                        added_at: from_millis(r.try_get("added_at")?)?,
                    })
                })
                .collect()
        })
    }

    fn current_catalog(&self) -> StoreFuture<'_, Option<CatalogRecord>> {
        Box::pin(async move { current_catalog(&self.pool).await })
    }

    fn publish_catalog<'a>(
        &'a self,
        catalog: &'a NewCatalog,
        by: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, PublishOutcome> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // Take the write lock first, so the version check below cannot race another publish.
            sqlx::query("UPDATE catalogs SET version = version WHERE 0")
                .execute(&mut *tx)
                .await?;
            let current =
                sqlx::query("SELECT version, digest FROM catalogs ORDER BY version DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(row) = current {
                let version = to_u64(row.try_get("version")?)?;
                let digest: String = row.try_get("digest")?;
                if catalog.version < version {
                    tx.rollback().await?;
                    return Ok(PublishOutcome::Rollback { current: version });
                }
                if catalog.version == version {
                    tx.rollback().await?;
                    if digest == catalog.digest {
                        let record = current_catalog(&self.pool)
                            .await?
                            .ok_or_else(|| StoreError::Corrupt("catalog vanished".to_owned()))?;
                        return Ok(PublishOutcome::Unchanged(record));
                    }
                    return Ok(PublishOutcome::VersionReused { version });
                }
            }
            let count = catalog.actions.len() as u64;
            sqlx::query(
                "INSERT INTO catalogs (version, digest, key_id, document, action_count, \
                    published_by, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(to_i64(catalog.version))
            .bind(&catalog.digest)
            .bind(&catalog.key_id)
            .bind(&catalog.document)
            .bind(to_i64(count))
            .bind(by)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM catalog_actions")
                .execute(&mut *tx)
                .await?;
            for (id, signed) in &catalog.actions {
                sqlx::query(
                    "INSERT INTO catalog_actions (action_id, catalog_version, signed) \
                     VALUES ($1, $2, $3)",
                )
                .bind(id)
                .bind(to_i64(catalog.version))
                .bind(signed)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(PublishOutcome::Published(CatalogRecord {
                version: catalog.version,
                digest: catalog.digest.clone(),
                key_id: catalog.key_id.clone(),
                action_count: count,
                published_by: by.to_owned(),
                published_at: now,
            }))
        })
    }

    fn catalog_actions(&self) -> StoreFuture<'_, Vec<StoredAction>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                stored_action_columns!(),
                " ORDER BY a.action_id"
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(stored_action).collect()
        })
    }

    fn catalog_action<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredAction>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                stored_action_columns!(),
                " WHERE a.action_id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(stored_action).transpose()
        })
    }

    fn set_action_approval<'a>(
        &'a self,
        id: &'a str,
        required: bool,
        by: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO action_settings (action_id, require_approval, set_by, set_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (action_id) DO UPDATE SET \
                    require_approval = excluded.require_approval, set_by = excluded.set_by, \
                    set_at = excluded.set_at",
            )
            .bind(id)
            .bind(required)
            .bind(by)
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn create_run<'a>(
        &'a self,
        run: &'a NewRunRecord,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, RunRecord> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let approval = if run.approval_expires_at.is_some() {
                "pending"
            } else {
                "not_needed"
            };
            let row = sqlx::query(
                "INSERT INTO runs (run_id, machine_id, action_id, signed_action, params, \
                    requested_by, reason, ticket_number, risk, approval, approval_expires_at, \
                    created_at, timeout_secs) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            )
            .bind(&run.run_id)
            .bind(&run.machine_id)
            .bind(&run.action_id)
            .bind(&run.signed_action)
            .bind(&run.params_json)
            .bind(&run.requested_by)
            .bind(run.reason.as_deref())
            .bind(run.ticket.map(to_i64))
            .bind(&run.risk)
            .bind(approval)
            .bind(run.approval_expires_at.map(millis))
            .bind(millis(now))
            .bind(to_i64(run.timeout_secs))
            .fetch_one(&mut *tx)
            .await?;
            let id: i64 = row.try_get("id")?;
            if run.approval_expires_at.is_none() {
                dispatch(&mut tx, id, run.dispatch_expires_at, now).await?;
            }
            tx.commit().await?;
            load_run(&self.pool, "r.id = $1", id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("run {id} vanished")))
        })
    }

    fn run(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<RunRecord>> {
        Box::pin(async move {
            expire_runs(&self.pool, now).await?;
            load_run(&self.pool, "r.id = $1", to_i64(id)).await
        })
    }

    fn runs<'a>(
        &'a self,
        filter: &'a RunFilter,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<RunRecord>> {
        Box::pin(async move {
            expire_runs(&self.pool, now).await?;
            let rows = sqlx::query(concat!(
                "SELECT ",
                run_columns!(),
                " WHERE ($1 = 0 OR r.approval = 'pending') AND ($2 IS NULL OR r.machine_id = $2) \
                  ORDER BY r.id DESC LIMIT $3"
            ))
            .bind(filter.awaiting_approval)
            .bind(filter.machine_id.as_deref())
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(run_record).collect()
        })
    }

    fn run_by_work(&self, work_id: u64) -> StoreFuture<'_, Option<RunRecord>> {
        Box::pin(async move { load_run(&self.pool, "r.work_id = $1", to_i64(work_id)).await })
    }

    fn decide_run<'a>(
        &'a self,
        id: u64,
        approve: bool,
        by: &'a str,
        reason: Option<&'a str>,
        dispatch_expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            expire_runs(&self.pool, now).await?;
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE runs SET approval = $2, decided_by = $3, decided_at = $4, \
                    decision_reason = $5 \
                 WHERE id = $1 AND approval = 'pending' AND approval_expires_at > $4",
            )
            .bind(to_i64(id))
            .bind(if approve { "approved" } else { "denied" })
            .bind(by)
            .bind(millis(now))
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            if approve {
                dispatch(&mut tx, to_i64(id), dispatch_expires_at, now).await?;
            }
            tx.commit().await?;
            load_run(&self.pool, "r.id = $1", to_i64(id)).await
        })
    }

    fn run_progress<'a>(
        &'a self,
        machine_id: &'a str,
        work_id: u64,
        stage: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE runs SET stage = $3, \
                    started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $4) \
                                      ELSE started_at END \
                 WHERE work_id = $1 AND machine_id = $2 AND EXISTS \
                    (SELECT 1 FROM work w WHERE w.id = $1 AND w.state = 'delivered')",
            )
            .bind(to_i64(work_id))
            .bind(machine_id)
            .bind(stage)
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn finish_run<'a>(
        &'a self,
        machine_id: &'a str,
        work_id: u64,
        finish: &'a RunFinish,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let state = if finish.result.is_some() {
                "done"
            } else {
                "failed"
            };
            let row = sqlx::query(
                "UPDATE work SET state = $3, finished_at = $4, error = $5 \
                 WHERE id = $1 AND machine_id = $2 AND kind = 'run' \
                    AND state IN ('queued', 'delivered') \
                 RETURNING ticket_number",
            )
            .bind(to_i64(work_id))
            .bind(machine_id)
            .bind(state)
            .bind(millis(now))
            .bind(finish.work_error.as_deref())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(None);
            };
            sqlx::query("UPDATE runs SET result = $2, recheck = $3 WHERE work_id = $1")
                .bind(to_i64(work_id))
                .bind(finish.result.as_deref())
                .bind(finish.recheck.as_deref())
                .execute(&mut *tx)
                .await?;
            let ticket: Option<i64> = row.try_get("ticket_number")?;
            if let Some(number) = ticket {
                add_note(&mut tx, number, &finish.note, now).await?;
            }
            tx.commit().await?;
            load_run(&self.pool, "r.work_id = $1", to_i64(work_id)).await
        })
    }

    fn append_audit<'a>(
        &'a self,
        entry: &'a NewAuditEntry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, AuditEntry> {
        Box::pin(async move {
            // Under the lock nobody else appends, so the head read here stays the head; the
            // insert is a single statement, so no read transaction has to upgrade to a write.
            let _guard = self.audit.lock().await;
            let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
            let (seq, prev_hash) = match head {
                Some(row) => (
                    to_u64(row.try_get("seq")?)? + 1,
                    row.try_get::<String, _>("hash")?,
                ),
                None => (1, GENESIS_HASH.to_owned()),
            };
            let mut stored = AuditEntry {
                seq,
                at: now,
                actor: entry.actor.clone(),
                action: entry.action.clone(),
                subject: entry.subject.clone(),
                detail: entry.detail.clone(),
                prev_hash,
                hash: String::new(),
            };
            stored.hash = stored.compute_hash();
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(to_i64(stored.seq))
            .bind(millis(stored.at))
            .bind(&stored.actor)
            .bind(&stored.action)
            .bind(stored.subject.as_deref())
            .bind(audit::canonical_json(&stored.detail))
            .bind(&stored.prev_hash)
            .bind(&stored.hash)
            .execute(&self.pool)
            .await?;
            Ok(stored)
        })
    }

    fn list_audit<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            // `seq > $1` always, so paging seeks by rowid instead of scanning from the start.
            let rows = sqlx::query(
                "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log \
                 WHERE seq > $1 AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR actor = $3) \
                 ORDER BY seq LIMIT $4",
            )
            .bind(filter.after_seq.map_or(i64::MIN, to_i64))
            .bind(filter.since.map(millis))
            .bind(filter.actor.as_deref())
            .bind(i64::from(filter.limit))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.iter().map(audit_entry).collect())
        })
    }

    fn add_public_comment<'a>(
        &'a self,
        number: u64,
        author: &'a str,
        body: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(insert_comment(&self.pool, number, author, body, true, now))
    }

    fn machine_tickets<'a>(
        &'a self,
        machine_id: &'a str,
        limit: u32,
    ) -> StoreFuture<'a, Vec<MachineTicket>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT number, description, status, created_at, updated_at, \
                    CASE WHEN status = 'resolved' AND resolved_at IS NOT NULL AND NOT EXISTS ( \
                        SELECT 1 FROM ticket_feedback f WHERE f.ticket_number = tickets.number \
                        AND f.resolved_at = tickets.resolved_at) THEN 1 ELSE 0 END \
                        AS feedback_wanted \
                 FROM tickets WHERE machine_id = $1 ORDER BY number DESC LIMIT $2",
            )
            .bind(machine_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let mut tickets = Vec::with_capacity(rows.len());
            for row in &rows {
                let number: i64 = row.try_get("number")?;
                let replies = sqlx::query(
                    "SELECT author, body, created_at FROM comments \
                     WHERE ticket_number = $1 AND public = 1 ORDER BY id",
                )
                .bind(number)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|c| {
                    Ok(Reply {
                        author: c.try_get("author")?,
                        body: c.try_get("body")?,
                        created_at: from_millis(c.try_get("created_at")?)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
                tickets.push(MachineTicket {
                    number: to_u64(number)?,
                    description: row.try_get("description")?,
                    status: parse::<TicketStatus>(row.try_get("status")?)?,
                    created_at: from_millis(row.try_get("created_at")?)?,
                    updated_at: from_millis(row.try_get("updated_at")?)?,
                    replies,
                    feedback_wanted: row.try_get::<i64, _>("feedback_wanted")? == 1,
                });
            }
            Ok(tickets)
        })
    }

    fn create_web_session<'a>(&'a self, session: &'a NewWebSession) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO web_sessions (id_hash, user_name, csrf_token, created_at, \
                    last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(session.id_hash.as_str())
            .bind(&session.user)
            .bind(&session.csrf_token)
            .bind(millis(session.created_at))
            .bind(millis(session.expires_at))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn web_session<'a>(
        &'a self,
        id_hash: &'a TokenHash,
    ) -> StoreFuture<'a, Option<WebSessionRecord>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT s.user_name, u.role, u.revoked_at, s.csrf_token, s.created_at, \
                    s.last_seen_at, s.expires_at \
                 FROM web_sessions s JOIN users u ON u.name = s.user_name WHERE s.id_hash = $1",
            )
            .bind(id_hash.as_str())
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            Ok(Some(WebSessionRecord {
                user: row.try_get("user_name")?,
                role: parse::<Role>(row.try_get("role")?)?,
                user_revoked: revoked_at.is_some(),
                csrf_token: row.try_get("csrf_token")?,
                created_at: from_millis(row.try_get("created_at")?)?,
                last_seen_at: from_millis(row.try_get("last_seen_at")?)?,
                expires_at: from_millis(row.try_get("expires_at")?)?,
            }))
        })
    }

    fn touch_web_session<'a>(
        &'a self,
        id_hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(millis(now))
                .bind(id_hash.as_str())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn delete_web_session<'a>(&'a self, id_hash: &'a TokenHash) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
                .bind(id_hash.as_str())
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_stale_web_sessions(
        &self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let done =
                sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
                    .bind(millis(now))
                    .bind(millis(idle_before))
                    .execute(&self.pool)
                    .await?;
            Ok(done.rows_affected())
        })
    }

    fn ticket_status_counts(&self) -> StoreFuture<'_, Vec<(TicketStatus, u64)>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tickets GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
            let mut counts = rows
                .iter()
                .map(|r| {
                    Ok((
                        parse::<TicketStatus>(r.try_get("status")?)?,
                        to_u64(r.try_get("n")?)?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            counts.sort_by_key(|(status, _)| *status);
            Ok(counts)
        })
    }

    fn latest_snapshot<'a>(
        &'a self,
        machine_id: &'a str,
    ) -> StoreFuture<'a, Option<(OffsetDateTime, String)>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT at, document FROM ( \
                   SELECT received_at AS at, document FROM snapshots WHERE machine_id = $1 \
                   UNION ALL \
                   SELECT finished_at AS at, snapshot AS document FROM work \
                   WHERE machine_id = $1 AND snapshot IS NOT NULL AND finished_at IS NOT NULL) \
                 ORDER BY at DESC LIMIT 1",
            )
            .bind(machine_id)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| Ok((from_millis(r.try_get("at")?)?, r.try_get("document")?)))
                .transpose()
        })
    }

    fn ticket_screenshot(&self, number: u64) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT png FROM screenshots WHERE ticket_number = $1")
                .bind(to_i64(number))
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| r.try_get::<Vec<u8>, _>("png")).transpose()?)
        })
    }

    // ---- Satisfaction, webhooks and e-mail (issue 9) ----

    fn record_feedback<'a>(
        &'a self,
        machine_id: &'a str,
        number: u64,
        fixed: bool,
        comment: Option<&'a str>,
        note: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<FeedbackOutcome, FeedbackRefusal>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // The insert comes first so the transaction writes from its first statement (no
            // read-to-write upgrade); the unique (ticket, resolution) pair allows one answer.
            let inserted = sqlx::query(
                "INSERT INTO ticket_feedback (ticket_number, resolved_at, fixed, comment, \
                    created_at) \
                 SELECT number, resolved_at, $1, $2, $3 FROM tickets \
                 WHERE number = $4 AND machine_id = $5 AND status = 'resolved' \
                    AND resolved_at IS NOT NULL \
                 ON CONFLICT (ticket_number, resolved_at) DO NOTHING",
            )
            .bind(i64::from(fixed))
            .bind(comment)
            .bind(millis(now))
            .bind(to_i64(number))
            .bind(machine_id)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                let row =
                    sqlx::query("SELECT status FROM tickets WHERE number = $1 AND machine_id = $2")
                        .bind(to_i64(number))
                        .bind(machine_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.rollback().await?;
                return Ok(Err(match row {
                    None => FeedbackRefusal::NoSuchTicket,
                    Some(row) => match parse::<TicketStatus>(row.try_get("status")?)? {
                        TicketStatus::Resolved => FeedbackRefusal::AlreadyAnswered,
                        other => FeedbackRefusal::NotResolved(other),
                    },
                }));
            }
            if !fixed {
                sqlx::query(
                    "UPDATE tickets SET status = 'open', resolved_at = NULL, updated_at = $1 \
                     WHERE number = $2",
                )
                .bind(millis(now))
                .bind(to_i64(number))
                .execute(&mut *tx)
                .await?;
            }
            add_note(&mut tx, to_i64(number), note, now).await?;
            tx.commit().await?;
            Ok(Ok(FeedbackOutcome {
                status: if fixed {
                    TicketStatus::Resolved
                } else {
                    TicketStatus::Open
                },
                reopened: !fixed,
            }))
        })
    }

    fn set_user_email<'a>(
        &'a self,
        name: &'a str,
        email: Option<&'a str>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query("UPDATE users SET email = $1 WHERE name = $2")
                .bind(email)
                .bind(name)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn user_email<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT email FROM users WHERE name = $1 AND revoked_at IS NULL")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row
                .map(|r| r.try_get::<Option<String>, _>("email"))
                .transpose()?
                .flatten())
        })
    }

    fn queue_deliveries<'a>(
        &'a self,
        deliveries: &'a [NewDelivery],
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            for d in deliveries {
                sqlx::query(
                    "INSERT INTO outbox (delivery_id, kind, target, event, ticket_number, \
                        payload, state, attempts, next_attempt_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)",
                )
                .bind(&d.delivery_id)
                .bind(d.kind.as_str())
                .bind(&d.target)
                .bind(&d.event)
                .bind(d.ticket.map(to_i64))
                .bind(&d.payload)
                .bind(millis(now))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn claim_due_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreFuture<'_, Vec<DueDelivery>> {
        Box::pin(async move {
            // A look first, so an idle outbox costs no write every second.
            let any_due = sqlx::query(
                "SELECT 1 AS one FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
                 LIMIT 1",
            )
            .bind(millis(now))
            .fetch_optional(&self.pool)
            .await?
            .is_some();
            if !any_due {
                return Ok(Vec::new());
            }
            // One statement: choosing and claiming cannot be split by another deliverer here.
            // (PostgreSQL: add FOR UPDATE SKIP LOCKED to the inner SELECT.)
            let rows = sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1 \
                 WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' \
                    AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3) \
                 RETURNING id, delivery_id, kind, target, event, ticket_number, payload, attempts",
            )
            .bind(millis(lease_until))
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let mut due = rows
                .iter()
                .map(|r| {
                    Ok(DueDelivery {
                        id: to_u64(r.try_get("id")?)?,
                        delivery_id: r.try_get("delivery_id")?,
                        kind: parse::<DeliveryKind>(r.try_get("kind")?)?,
                        target: r.try_get("target")?,
                        event: r.try_get("event")?,
                        ticket: r
                            .try_get::<Option<i64>, _>("ticket_number")?
                            .map(to_u64)
                            .transpose()?,
                        payload: r.try_get("payload")?,
                        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?)
                            .unwrap_or(u32::MAX),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            due.sort_by_key(|d| d.id);
            Ok(due)
        })
    }

    fn finish_delivery_attempt<'a>(
        &'a self,
        id: u64,
        attempt: &'a AttemptRecord,
        outcome: AttemptOutcome,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let (state, next) = match outcome {
                AttemptOutcome::Delivered => (DeliveryState::Delivered, attempt.at),
                AttemptOutcome::RetryAt(at) => (DeliveryState::Pending, at),
                AttemptOutcome::GaveUp => (DeliveryState::Failed, attempt.at),
            };
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO outbox_attempts (outbox_id, attempted_at, status, error, \
                    duration_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(to_i64(id))
            .bind(millis(attempt.at))
            .bind(attempt.status.map(i64::from))
            .bind(attempt.error.as_deref())
            .bind(to_i64(attempt.duration_ms))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, state = $1, next_attempt_at = $2, \
                    updated_at = $3 WHERE id = $4",
            )
            .bind(state.as_str())
            .bind(millis(next))
            .bind(millis(attempt.at))
            .bind(to_i64(id))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn deliveries(&self, failed_only: bool, limit: u32) -> StoreFuture<'_, Vec<Delivery>> {
        Box::pin(async move {
            let rows = sqlx::query(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM outbox WHERE ($1 = 0 OR state = 'failed') ORDER BY id DESC LIMIT $2"
            ))
            .bind(i64::from(failed_only))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            deliveries_with_history(&self.pool, &rows).await
        })
    }

    fn redeliver(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, \
                    updated_at = $1 WHERE id = $2",
            )
            .bind(millis(now))
            .bind(to_i64(id))
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            let rows = sqlx::query(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM outbox WHERE id = $1"
            ))
            .bind(to_i64(id))
            .fetch_all(&self.pool)
            .await?;
            Ok(deliveries_with_history(&self.pool, &rows).await?.pop())
        })
    }
}

// ---- Satisfaction, webhooks and e-mail (issue 9) ----

/// The end user's answers on ticket `number`, oldest first.
async fn ticket_feedback(pool: &SqlitePool, number: u64) -> Result<Vec<Feedback>, StoreError> {
    sqlx::query(
        "SELECT fixed, comment, resolved_at, created_at FROM ticket_feedback \
         WHERE ticket_number = $1 ORDER BY id",
    )
    .bind(to_i64(number))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(Feedback {
            fixed: r.try_get::<i64, _>("fixed")? == 1,
            comment: r.try_get("comment")?,
            resolved_at: from_millis(r.try_get("resolved_at")?)?,
            created_at: from_millis(r.try_get("created_at")?)?,
        })
    })
    .collect()
}

/// Columns of an outbox row (a macro so queries stay `&'static str`).
macro_rules! delivery_columns {
    () => {
        "id, delivery_id, kind, target, event, ticket_number, state, attempts, next_attempt_at, \
         created_at"
    };
}
use delivery_columns;

/// Outbox rows as deliveries, each with its attempts (one query for all of them).
async fn deliveries_with_history(
    pool: &SqlitePool,
    rows: &[SqliteRow],
) -> Result<Vec<Delivery>, StoreError> {
    let mut deliveries = Vec::with_capacity(rows.len());
    for r in rows {
        let state = parse::<DeliveryState>(r.try_get("state")?)?;
        deliveries.push(Delivery {
            id: to_u64(r.try_get("id")?)?,
            delivery_id: r.try_get("delivery_id")?,
            kind: parse::<DeliveryKind>(r.try_get("kind")?)?,
            target: r.try_get("target")?,
            event: r.try_get("event")?,
            ticket: r
                .try_get::<Option<i64>, _>("ticket_number")?
                .map(to_u64)
                .transpose()?,
            state,
            attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
            next_attempt_at: if state == DeliveryState::Pending {
                Some(from_millis(r.try_get("next_attempt_at")?)?)
            } else {
                None
            },
            created_at: from_millis(r.try_get("created_at")?)?,
            history: Vec::new(),
        });
    }
    let (Some(low), Some(high)) = (
        deliveries.iter().map(|d| d.id).min(),
        deliveries.iter().map(|d| d.id).max(),
    ) else {
        return Ok(deliveries);
    };
    let attempts = sqlx::query(
        "SELECT outbox_id, attempted_at, status, error, duration_ms FROM outbox_attempts \
         WHERE outbox_id BETWEEN $1 AND $2 ORDER BY id",
    )
    .bind(to_i64(low))
    .bind(to_i64(high))
    .fetch_all(pool)
    .await?;
    let index: std::collections::HashMap<u64, usize> = deliveries
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id, i))
        .collect();
    for a in &attempts {
        let Some(&i) = index.get(&to_u64(a.try_get("outbox_id")?)?) else {
            continue;
        };
        deliveries[i].history.push(DeliveryAttempt {
            at: from_millis(a.try_get("attempted_at")?)?,
            status: a
                .try_get::<Option<i64>, _>("status")?
                .and_then(|s| u16::try_from(s).ok()),
            error: a.try_get("error")?,
            duration_ms: to_u64(a.try_get("duration_ms")?)?,
        });
    }
    Ok(deliveries)
}

/// An audit row, read so that tampering cannot make listing or verification fail: a column
/// that cannot be read (a NULL where text belongs, a `detail` that is not JSON, a time out of
/// range) marks the entry with an unreadable hash, which verification reports as altered.
fn audit_entry(row: &SqliteRow) -> AuditEntry {
    let mut unreadable = Vec::new();
    let seq = row
        .try_get::<i64, _>("seq")
        .ok()
        .and_then(|seq| u64::try_from(seq).ok())
        .unwrap_or_else(|| {
            unreadable.push("seq");
            0
        });
    let at = row
        .try_get::<i64, _>("at")
        .ok()
        .and_then(|ms| from_millis(ms).ok())
        .unwrap_or_else(|| {
            unreadable.push("at");
            OffsetDateTime::UNIX_EPOCH
        });
    let mut text = |column: &'static str| match row.try_get::<Option<String>, _>(column) {
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
    let subject = row
        .try_get::<Option<String>, _>("subject")
        .unwrap_or_else(|_| {
            unreadable.push("subject");
            None
        });
    let detail = match row.try_get::<Option<String>, _>("detail") {
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
use stored_action_columns;

fn stored_action(row: &SqliteRow) -> Result<StoredAction, StoreError> {
    Ok(StoredAction {
        action_id: row.try_get("action_id")?,
        catalog_version: to_u64(row.try_get("catalog_version")?)?,
        signed: row.try_get("signed")?,
        require_approval: row.try_get("required")?,
    })
}

async fn current_catalog(pool: &SqlitePool) -> Result<Option<CatalogRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT version, digest, key_id, action_count, published_by, published_at FROM catalogs \
         ORDER BY version DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(CatalogRecord {
            version: to_u64(r.try_get("version")?)?,
            digest: r.try_get("digest")?,
            key_id: r.try_get("key_id")?,
            action_count: to_u64(r.try_get("action_count")?)?,
            published_by: r.try_get("published_by")?,
            published_at: from_millis(r.try_get("published_at")?)?,
        })
    })
    .transpose()
}

/// Queues run `id` as work for its machine.
async fn dispatch(
    tx: &mut SqliteConnection,
    id: i64,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "INSERT INTO work (machine_id, kind, state, ticket_number, created_at, expires_at) \
         SELECT machine_id, 'run', 'queued', ticket_number, $2, $3 FROM runs WHERE id = $1 \
         RETURNING id",
    )
    .bind(id)
    .bind(millis(now))
    .bind(millis(expires_at))
    .fetch_one(&mut *tx)
    .await?;
    let work_id: i64 = row.try_get("id")?;
    sqlx::query("UPDATE runs SET work_id = $2 WHERE id = $1")
        .bind(id)
        .bind(work_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Expires approvals and queued runs whose time is up.
async fn expire_runs(pool: &SqlitePool, now: OffsetDateTime) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE runs SET approval = 'expired' \
         WHERE approval = 'pending' AND approval_expires_at <= $1",
    )
    .bind(millis(now))
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE work SET state = 'expired', finished_at = $1 \
         WHERE kind = 'run' AND state = 'queued' AND expires_at <= $1",
    )
    .bind(millis(now))
    .execute(pool)
    .await?;
    sqlx::query(
        "UPDATE work SET state = 'failed', finished_at = $1, error = $3 \
         WHERE kind = 'run' AND state = 'delivered' AND delivered_at + 1000 * \
            ((SELECT r.timeout_secs FROM runs r WHERE r.work_id = work.id) + $2) <= $1",
    )
    .bind(millis(now))
    .bind(RUN_REPORT_GRACE_SECS)
    .bind(RUN_SILENT_AGENT)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds a timeline entry by the collector to a ticket.
async fn add_note(
    tx: &mut SqliteConnection,
    number: i64,
    note: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO comments (ticket_number, author, body, created_at) \
         VALUES ($1, 'lifeline', $2, $3)",
    )
    .bind(number)
    .bind(note)
    .bind(millis(now))
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE tickets SET updated_at = $1 WHERE number = $2")
        .bind(millis(now))
        .bind(number)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Columns of a run with its machine and work.
macro_rules! run_columns {
    () => {
        "r.id, r.run_id, r.machine_id, m.hostname, r.action_id, r.signed_action, r.params, \
            r.requested_by, r.reason, r.ticket_number, r.risk, r.approval, r.approval_expires_at, \
            r.decided_by, r.decided_at, r.decision_reason, r.created_at, r.work_id, \
            w.state AS work_state, w.expires_at AS work_expires_at, w.delivered_at, \
            w.finished_at, w.error AS work_error, r.stage, r.started_at, r.result, r.recheck \
         FROM runs r JOIN machines m ON m.id = r.machine_id LEFT JOIN work w ON w.id = r.work_id"
    };
}
use run_columns;

fn run_record(r: &SqliteRow) -> Result<RunRecord, StoreError> {
    let work_state: Option<String> = r.try_get("work_state")?;
    Ok(RunRecord {
        id: to_u64(r.try_get("id")?)?,
        run_id: r.try_get("run_id")?,
        machine_id: r.try_get("machine_id")?,
        hostname: r.try_get("hostname")?,
        action_id: r.try_get("action_id")?,
        signed_action: r.try_get("signed_action")?,
        params_json: r.try_get("params")?,
        requested_by: r.try_get("requested_by")?,
        reason: r.try_get("reason")?,
        ticket: r
            .try_get::<Option<i64>, _>("ticket_number")?
            .map(to_u64)
            .transpose()?,
        risk: r.try_get("risk")?,
        approval: r.try_get("approval")?,
        approval_expires_at: opt_from_millis(r.try_get("approval_expires_at")?)?,
        decided_by: r.try_get("decided_by")?,
        decided_at: opt_from_millis(r.try_get("decided_at")?)?,
        decision_reason: r.try_get("decision_reason")?,
        created_at: from_millis(r.try_get("created_at")?)?,
        work_id: r
            .try_get::<Option<i64>, _>("work_id")?
            .map(to_u64)
            .transpose()?,
        work_state: work_state
            .map(|s| {
                WorkState::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("work state {s:?}")))
            })
            .transpose()?,
        work_expires_at: opt_from_millis(r.try_get("work_expires_at")?)?,
        delivered_at: opt_from_millis(r.try_get("delivered_at")?)?,
        finished_at: opt_from_millis(r.try_get("finished_at")?)?,
        stage: r.try_get("stage")?,
        started_at: opt_from_millis(r.try_get("started_at")?)?,
        result: r.try_get("result")?,
        recheck: r.try_get("recheck")?,
        work_error: r.try_get("work_error")?,
    })
}

/// One run chosen by `condition` on `$1` (a fixed SQL fragment, never user text).
async fn load_run(
    pool: &SqlitePool,
    condition: &'static str,
    value: i64,
) -> Result<Option<RunRecord>, StoreError> {
    let query = match condition {
        "r.id = $1" => concat!("SELECT ", run_columns!(), " WHERE r.id = $1"),
        _ => concat!("SELECT ", run_columns!(), " WHERE r.work_id = $1"),
    };
    let row = sqlx::query(query).bind(value).fetch_optional(pool).await?;
    row.as_ref().map(run_record).transpose()
}

/// Adds a comment to ticket `number` and counts it as the first response; false when no such
/// ticket exists.
async fn insert_comment(
    pool: &SqlitePool,
    number: u64,
    author: &str,
    body: &str,
    public: bool,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "UPDATE tickets SET updated_at = $1, \
            first_response_at = COALESCE(first_response_at, $1) WHERE number = $2",
    )
    .bind(millis(now))
    .bind(to_i64(number))
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO comments (ticket_number, author, body, public, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(to_i64(number))
    .bind(author)
    .bind(body)
    .bind(public)
    .bind(millis(now))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn load_work(pool: &SqlitePool, id: u64) -> Result<Option<WorkRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT w.id, w.machine_id, m.hostname, w.kind, w.state, w.ticket_number, w.created_at, \
            w.expires_at, w.delivered_at, w.finished_at, w.error, w.snapshot \
         FROM work w JOIN machines m ON m.id = w.machine_id WHERE w.id = $1",
    )
    .bind(to_i64(id))
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let state: String = r.try_get("state")?;
    Ok(Some(WorkRecord {
        id: to_u64(r.try_get("id")?)?,
        machine_id: r.try_get("machine_id")?,
        hostname: r.try_get("hostname")?,
        kind: r.try_get("kind")?,
        state: WorkState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("work state {state:?}")))?,
        ticket: r
            .try_get::<Option<i64>, _>("ticket_number")?
            .map(to_u64)
            .transpose()?,
        created_at: from_millis(r.try_get("created_at")?)?,
        expires_at: from_millis(r.try_get("expires_at")?)?,
        delivered_at: opt_from_millis(r.try_get("delivered_at")?)?,
        finished_at: opt_from_millis(r.try_get("finished_at")?)?,
        error: r.try_get("error")?,
        snapshot_json: r.try_get("snapshot")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Secret, TokenHash};
    use lifeline_shared::v1::api::TicketSort;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        (dir, store)
    }

    /// A store with one enrolled machine, `m1` (certificate `fp1`), enrolled at t=1000.
    async fn store_with_machine() -> (tempfile::TempDir, SqliteStore) {
        let (dir, store) = store().await;
        let token = TokenHash::of(&Secret::new("lle_x"));
        store
            .add_enrollment_token(&token, None, None, at(1_000))
            .await
            .unwrap();
        store
            .enroll(&token, &enrollment("m1", "fp1"), at(1_000))
            .await
            .unwrap();
        (dir, store)
    }

    fn enrollment(id: &str, fp: &str) -> Enrollment {
        Enrollment {
            machine_id: id.into(),
            hostname: "ws-1".into(),
            cert_fingerprint: fp.into(),
            cert_not_after: at(2_000_000_000),
            initial_status: MachineStatus::Active,
        }
    }

    fn ticket(key: &str) -> TicketRecord {
        TicketRecord {
            machine_id: "m1".into(),
            idempotency_key: key.into(),
            description: "Outlook won't start".into(),
            urgency: Urgency::Normal,
            os_user: Some("alice".into()),
            findings: vec![],
            worst_finding: Some(Severity::Critical),
            snapshot_json: Some(
                serde_json::to_string(&Snapshot::empty(at(1_000), "test")).unwrap(),
            ),
            screenshot_png: None,
        }
    }

    #[tokio::test]
    async fn a_screenshot_is_stored_with_its_ticket() {
        let (_dir, store) = store_with_machine().await;
        let png = [&lifeline_shared::v1::api::PNG_SIGNATURE[..], b"rest"].concat();
        let with = TicketRecord {
            screenshot_png: Some(png.clone()),
            ..ticket("k1")
        };
        store.record_ticket(&with, at(1_100)).await.unwrap();
        store.record_ticket(&ticket("k2"), at(1_200)).await.unwrap();
        assert!(store.ticket(1).await.unwrap().unwrap().has_screenshot);
        assert_eq!(store.ticket_screenshot(1).await.unwrap(), Some(png));
        assert!(!store.ticket(2).await.unwrap().unwrap().has_screenshot);
        assert_eq!(store.ticket_screenshot(2).await.unwrap(), None);
    }

    #[tokio::test]
    async fn enrollment_token_expires_and_runs_out_of_uses() {
        let (_dir, store) = store().await;
        let token = TokenHash::of(&Secret::new("lle_x"));
        store
            .add_enrollment_token(&token, Some(at(2_000)), Some(1), at(1_000))
            .await
            .unwrap();
        assert_eq!(
            store
                .check_enrollment_token(&token, at(1_500))
                .await
                .unwrap(),
            Ok(())
        );
        assert_eq!(
            store
                .check_enrollment_token(&token, at(2_000))
                .await
                .unwrap(),
            Err(EnrollmentRefusal::Expired)
        );
        store
            .enroll(&token, &enrollment("m1", "fp1"), at(1_500))
            .await
            .unwrap();
        assert!(matches!(
            store
                .enroll(&token, &enrollment("m2", "fp2"), at(1_500))
                .await,
            Err(StoreError::Enrollment(EnrollmentRefusal::UsedUp))
        ));
        let unknown = TokenHash::of(&Secret::new("lle_y"));
        assert_eq!(
            store
                .check_enrollment_token(&unknown, at(1_500))
                .await
                .unwrap(),
            Err(EnrollmentRefusal::Unknown)
        );
        assert_eq!(store.count_active_machines().await.unwrap(), 1);
    }

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

    #[tokio::test]
    async fn the_queue_filters_searches_and_sorts() {
        let (_dir, store) = store_with_machine().await;
        let mut low = ticket("0123456789abcdef0123456789abcdef");
        low.description = "Printer jams".into();
        low.worst_finding = None;
        store.record_ticket(&low, at(1_100)).await.unwrap();
        store.record_ticket(&ticket("k2"), at(1_200)).await.unwrap();
        let numbers = |list: Vec<TicketSummary>| list.iter().map(|t| t.number).collect::<Vec<_>>();
        let find = |filter: TicketFilter| {
            let store = &store;
            async move { numbers(store.list_tickets(&filter).await.unwrap()) }
        };
        assert_eq!(find(TicketFilter::default()).await, [2, 1]);
        let q = |text: &str| TicketFilter {
            q: Some(text.into()),
            ..TicketFilter::default()
        };
        assert_eq!(find(q("printer")).await, [1]);
        assert_eq!(find(q("#2")).await, [2]);
        assert_eq!(find(q("LL-04HM-ASW9")).await, [1]);
        assert_eq!(find(q("nothing like it")).await, Vec::<u64>::new());
        let sorted = |sort| TicketFilter {
            sort: Some(sort),
            ..TicketFilter::default()
        };
        assert_eq!(find(sorted(TicketSort::Age)).await, [1, 2]);
        assert_eq!(find(sorted(TicketSort::Priority)).await, [2, 1]);
        let high = TicketFilter {
            priority: Some(Priority::High),
            assignee: Some(String::new()),
            tier: Some(Tier::FIRST),
            ..TicketFilter::default()
        };
        assert_eq!(find(high).await, [2]);
        let counts = store.ticket_status_counts().await.unwrap();
        assert_eq!(counts, [(TicketStatus::New, 2)]);
    }

    #[tokio::test]
    async fn same_idempotency_key_gives_the_same_ticket_and_numbers_are_sequential() {
        let (_dir, store) = store_with_machine().await;
        let first = store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
        let again = store.record_ticket(&ticket("k1"), at(1_200)).await.unwrap();
        let second = store.record_ticket(&ticket("k2"), at(1_300)).await.unwrap();
        assert_eq!((first.number, first.created), (1, true));
        assert_eq!((again.number, again.created), (1, false));
        assert_eq!(second.number, 2);
        let detail = store.ticket(1).await.unwrap().unwrap();
        assert_eq!(detail.snapshots.len(), 1);
        assert_eq!(detail.summary.priority, Priority::High);
        assert_eq!(detail.summary.status, TicketStatus::New);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reports_get_distinct_numbers_and_retries_share_one() {
        let (_dir, store) = store_with_machine().await;
        let store = std::sync::Arc::new(store);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = std::sync::Arc::clone(&store);
            // Every fourth report is a retry of the same key.
            let key = if i % 4 == 0 {
                "retry".to_owned()
            } else {
                format!("k{i}")
            };
            tasks.push(tokio::spawn(async move {
                store.record_ticket(&ticket(&key), at(2_000)).await.unwrap()
            }));
        }
        let mut numbers = Vec::new();
        let mut retried = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            let recorded = task.await.unwrap();
            if i % 4 == 0 {
                retried.push(recorded.number);
            } else {
                numbers.push(recorded.number);
            }
        }
        retried.dedup();
        assert_eq!(retried.len(), 1, "one ticket for one idempotency key");
        numbers.push(retried[0]);
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=31).collect::<Vec<u64>>());
        let all = store.list_tickets(&TicketFilter::default()).await.unwrap();
        assert_eq!(all.len(), 31);
    }

    #[tokio::test]
    async fn pending_machine_is_approved_once_and_revoked_stays_revoked() {
        let (_dir, store) = store().await;
        let token = TokenHash::of(&Secret::new("lle_x"));
        store
            .add_enrollment_token(&token, None, None, at(1_000))
            .await
            .unwrap();
        let pending = Enrollment {
            initial_status: MachineStatus::Pending,
            ..enrollment("m1", "fp1")
        };
        assert_eq!(
            store.enroll(&token, &pending, at(1_000)).await.unwrap(),
            MachineStatus::Pending
        );
        assert_eq!(store.count_active_machines().await.unwrap(), 0);
        // Re-enrolling keeps the status it had, whatever the mode says now.
        let again = Enrollment {
            cert_fingerprint: "fp2".into(),
            ..enrollment("m1", "fp2")
        };
        assert_eq!(
            store.enroll(&token, &again, at(1_100)).await.unwrap(),
            MachineStatus::Pending
        );
        assert_eq!(
            store.approve_machine("m1").await.unwrap(),
            Some(MachineStatus::Pending)
        );
        assert_eq!(
            store.approve_machine("m1").await.unwrap(),
            Some(MachineStatus::Active)
        );
        assert!(store.revoke_machine("m1", at(1_200)).await.unwrap());
        assert_eq!(
            store.approve_machine("m1").await.unwrap(),
            Some(MachineStatus::Revoked)
        );
        let record = store.machine_by_fingerprint("fp2").await.unwrap().unwrap();
        assert_eq!(record.status, MachineStatus::Revoked);
        assert_eq!(store.machine_by_fingerprint("fp1").await.unwrap(), None);
        assert_eq!(store.approve_machine("nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_machine_sees_its_own_tickets_with_public_comments_only() {
        let (_dir, store) = store_with_machine().await;
        let token = TokenHash::of(&Secret::new("lle_x"));
        store
            .enroll(&token, &enrollment("m2", "fp2"), at(1_000))
            .await
            .unwrap();
        store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
        let theirs = TicketRecord {
            machine_id: "m2".into(),
            ..ticket("k2")
        };
        store.record_ticket(&theirs, at(1_150)).await.unwrap();
        assert!(
            store
                .add_comment(1, "bob", "internal note", at(1_200))
                .await
                .unwrap()
        );
        assert!(
            store
                .add_public_comment(1, "bob", "Please reboot", at(1_300))
                .await
                .unwrap()
        );
        assert!(
            !store
                .add_public_comment(9, "bob", "x", at(1_300))
                .await
                .unwrap()
        );

        let mine = store.machine_tickets("m1", 20).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].number, 1);
        assert_eq!(mine[0].replies.len(), 1);
        assert_eq!(mine[0].replies[0].body, "Please reboot");
        assert_eq!(store.machine_tickets("m2", 20).await.unwrap()[0].number, 2);
        assert!(store.machine_tickets("m3", 20).await.unwrap().is_empty());

        // Technicians see both comments, each marked.
        let detail = store.ticket(1).await.unwrap().unwrap();
        let public: Vec<bool> = detail.comments.iter().map(|c| c.public).collect();
        assert_eq!(public, [false, true]);
        assert_eq!(detail.first_response_at, Some(at(1_200)));
    }

    #[tokio::test]
    async fn resolving_sets_and_reopening_clears_resolved_at() {
        let (_dir, store) = store_with_machine().await;
        store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
        let resolve = TicketUpdate {
            status: Some(TicketStatus::Resolved),
            assignee: Some("bob".into()),
            ..TicketUpdate::default()
        };
        store
            .update_ticket(1, &resolve, at(1_200))
            .await
            .unwrap()
            .unwrap();
        let t = store.ticket(1).await.unwrap().unwrap();
        assert_eq!(t.resolved_at, Some(at(1_200)));
        assert_eq!(t.first_response_at, Some(at(1_200)));
        assert_eq!(t.summary.assignee.as_deref(), Some("bob"));
        let reopen = TicketUpdate {
            status: Some(TicketStatus::Open),
            assignee: Some(String::new()),
            ..TicketUpdate::default()
        };
        store
            .update_ticket(1, &reopen, at(1_300))
            .await
            .unwrap()
            .unwrap();
        let t = store.ticket(1).await.unwrap().unwrap();
        assert_eq!(t.resolved_at, None);
        assert_eq!(t.first_response_at, Some(at(1_200)));
        assert_eq!(t.summary.assignee, None);
        assert_eq!(
            store.update_ticket(9, &reopen, at(1_300)).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn work_is_delivered_once_expires_lazily_and_only_its_machine_may_answer() {
        let (_dir, store) = store().await;
        let grant = TokenHash::of(&crate::secret::Secret::new("lle_w"));
        store
            .add_enrollment_token(&grant, None, None, at(0))
            .await
            .unwrap();
        for (id, fp) in [("m1", "f1"), ("m2", "f2")] {
            let mut e = enrollment(id, fp);
            e.initial_status = MachineStatus::Active;
            store.enroll(&grant, &e, at(0)).await.unwrap();
        }
        let live = store
            .queue_work("m1", "inspect", None, at(100), at(1))
            .await
            .unwrap();
        let stale = store
            .queue_work("m1", "inspect", None, at(5), at(1))
            .await
            .unwrap();
        assert!(store.take_work("m2", at(10)).await.unwrap().is_empty());
        let taken = store.take_work("m1", at(10)).await.unwrap();
        assert_eq!(taken, vec![(live, "inspect".to_owned())]);
        assert!(store.take_work("m1", at(11)).await.unwrap().is_empty());
        assert_eq!(
            store.work(stale, at(12)).await.unwrap().unwrap().state,
            WorkState::Expired
        );
        let outcome = WorkOutcome::Failed("no".into());
        assert!(
            store
                .finish_work("m2", live, &outcome, at(12))
                .await
                .unwrap()
                .is_none()
        );
        let done = store
            .finish_work("m1", live, &outcome, at(12))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.state, WorkState::Failed);
        assert!(
            store
                .finish_work("m1", live, &outcome, at(13))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn telemetry_is_written_within_a_flush_interval_and_readers_see_it_at_once() {
        let (_dir, store) = store_with_machine().await;
        store.touch_machine("m1", at(5_000)).await.unwrap();
        store
            .record_heartbeat("m1", "{\"n\":1}", at(4_000))
            .await
            .unwrap();
        // Nobody reads: the flusher writes it by itself.
        tokio::time::sleep(FLUSH_INTERVAL + Duration::from_millis(500)).await;
        let row = sqlx::query(
            "SELECT m.last_seen_at, (SELECT COUNT(*) FROM vitals) AS beats FROM machines m",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(row.get::<i64, _>("last_seen_at"), 5_000_000);
        assert_eq!(row.get::<i64, _>("beats"), 1);

        // A reader flushes first: what was acknowledged is what it sees.
        store
            .record_heartbeat("m1", "{\"n\":2}", at(6_000))
            .await
            .unwrap();
        let machine = store.machine("m1").await.unwrap().unwrap();
        assert_eq!(machine.summary.last_seen_at, at(6_000));
        assert_eq!(store.vitals("m1", 10).await.unwrap()[0].1, "{\"n\":2}");
    }

    #[tokio::test]
    async fn a_cached_identity_never_outlives_a_revocation_or_a_new_certificate() {
        let (_dir, store) = store_with_machine().await;
        let seen = store.machine_by_fingerprint("fp1").await.unwrap().unwrap();
        assert_eq!(seen.status, MachineStatus::Active);
        assert!(store.revoke_machine("m1", at(2_000)).await.unwrap());
        let seen = store.machine_by_fingerprint("fp1").await.unwrap().unwrap();
        assert_eq!(seen.status, MachineStatus::Revoked);

        let (_dir, store) = store_with_machine().await;
        store.machine_by_fingerprint("fp1").await.unwrap().unwrap();
        assert!(
            store
                .renew_certificate("m1", "fp2", at(3_000_000_000), at(2_000))
                .await
                .unwrap()
        );
        assert_eq!(store.machine_by_fingerprint("fp1").await.unwrap(), None);
        assert_eq!(
            store
                .machine_by_fingerprint("fp2")
                .await
                .unwrap()
                .unwrap()
                .id,
            "m1"
        );

        // A lookup that read the database before a change cannot cache what it read.
        let cache = IdentityCache::default();
        let generation = cache.get("fp9").unwrap_err();
        cache.invalidate();
        cache.put(
            generation,
            MachineRecord {
                id: "m9".into(),
                status: MachineStatus::Active,
                fingerprint: "fp9".into(),
            },
        );
        assert!(cache.get("fp9").is_err());
    }

    #[tokio::test]
    async fn vitals_history_is_bounded_per_machine() {
        let (_dir, store) = store().await;
        let grant = TokenHash::of(&crate::secret::Secret::new("lle_v"));
        store
            .add_enrollment_token(&grant, None, None, at(0))
            .await
            .unwrap();
        store
            .enroll(&grant, &enrollment("m1", "f1"), at(0))
            .await
            .unwrap();
        for i in 0..(VITALS_HISTORY + 5) {
            store
                .record_heartbeat("m1", &format!("{{\"n\":{i}}}"), at(i))
                .await
                .unwrap();
        }
        let rows = store.vitals("m1", 5000).await.unwrap();
        assert_eq!(rows.len() as i64, VITALS_HISTORY);
        assert!(rows[0].1.contains(&format!("{}", VITALS_HISTORY + 4)));
    }
    fn event(actor: &str, action: &str) -> NewAuditEntry {
        NewAuditEntry {
            actor: actor.into(),
            action: action.into(),
            subject: Some(format!("user:{actor}")),
            detail: serde_json::json!({"z": 1, "a": [1, 2]}),
        }
    }

    fn all() -> AuditFilter {
        AuditFilter {
            since: None,
            actor: None,
            after_seq: None,
            limit: 1000,
        }
    }

    /// A store with five audit entries at t = 10..=14 s, by admin, bob, admin, bob, admin.
    async fn store_with_audit() -> (tempfile::TempDir, SqliteStore) {
        let (dir, store) = store().await;
        for i in 0..5 {
            let actor = if i % 2 == 0 { "admin" } else { "bob" };
            store
                .append_audit(&event(actor, "user.add"), at(10 + i))
                .await
                .unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn audit_entries_list_in_order_and_filter_and_page() {
        let (_dir, store) = store_with_audit().await;
        let listed = store.list_audit(&all()).await.unwrap();
        assert_eq!(
            listed.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let summary = audit::verify_chain(listed.clone(), None).unwrap();
        assert_eq!(summary.entries, 5);
        assert_eq!(summary.head, listed[4].hash);

        let by_bob = AuditFilter {
            actor: Some("bob".into()),
            ..all()
        };
        let bob: Vec<u64> = store
            .list_audit(&by_bob)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(bob, [2, 4]);
        let since = AuditFilter {
            since: Some(at(13)),
            ..all()
        };
        assert_eq!(store.list_audit(&since).await.unwrap().len(), 2);
        let page = AuditFilter {
            after_seq: Some(2),
            limit: 2,
            ..all()
        };
        let page: Vec<u64> = store
            .list_audit(&page)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(page, [3, 4]);
    }

    #[tokio::test]
    async fn a_tampered_audit_row_lists_as_an_altered_entry_instead_of_failing() {
        let (_dir, store) = store_with_audit().await;
        sqlx::query("UPDATE audit_log SET detail = 'not json' WHERE seq = 3")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET at = 'yesterday', subject = x'00ff' WHERE seq = 4")
            .execute(&store.pool)
            .await
            .unwrap();
        let listed = store.list_audit(&all()).await.unwrap();
        assert_eq!(listed.len(), 5);
        assert_eq!(listed[2].detail, serde_json::json!("not json"));
        assert_eq!(listed[2].hash, format!("{UNREADABLE_PREFIX}detail"));
        assert!(
            listed[3].hash.starts_with(UNREADABLE_PREFIX),
            "{}",
            listed[3].hash
        );
        let err = audit::verify_chain(listed, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 3 was altered: its stored detail cannot be read"
        );
    }

    #[tokio::test]
    async fn a_changed_audit_detail_that_is_still_json_is_an_alteration() {
        let (_dir, store) = store_with_audit().await;
        sqlx::query("UPDATE audit_log SET detail = '{\"a\":[1,2],\"z\":2}' WHERE seq = 2")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = audit::verify_chain(store.list_audit(&all()).await.unwrap(), None).unwrap_err();
        assert_eq!(
            err,
            audit::ChainBreak::Altered {
                seq: 2,
                unreadable: None
            }
        );
    }
}
