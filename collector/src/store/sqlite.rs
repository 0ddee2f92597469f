//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Durability: a commit returns only after the WAL is fsynced, so a ticket number handed to an
//! agent survives a crash or power loss right after the answer. SQLite serialises writers; the
//! busy timeout makes concurrent writers wait for their turn instead of failing. Tickets go
//! through one group-commit writer so concurrent reports share an fsync.
//!
//! Methods whose SQL PostgreSQL runs as written too are kept once in `sql_impl.rs`; what is here
//! is what SQLite does its own way.

use std::time::{Duration, Instant};

use lifeline_shared::findings::Finding;
use lifeline_shared::v1::api::{
    AttachedSnapshot, MachineDetail, MachineStatus, MachineSummary, MachineTicket, Priority, Role,
    TicketDetail, TicketFilter, TicketStatus, TicketSummary, TicketUpdate, UserSummary,
};
use lifeline_shared::v1::audit::{self, AuditEntry, GENESIS_HASH};
use lifeline_shared::v1::snapshot::Snapshot;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use lifeline_shared::v1::feedback::Feedback;
use lifeline_shared::v1::integrations::{Delivery, DeliveryAttempt, DeliveryKind, DeliveryState};

use super::sql::{
    INGEST_QUEUE, IngestJob, PendingTelemetry, SELECT_ENROLLMENT_TOKEN, SELECT_WORK, Telemetry,
    TelemetrySink, TicketBatchWriter, audit_entry, catalog_record, check_token, clock_columns,
    comment, flush_loop, from_millis, ingest_loop, machine_columns, machine_summary, millis,
    next_due, opt_from_millis, parse, reference_key_prefix, reply, run_columns, run_record,
    sla_record, stored_action, stored_action_columns, submit_ticket, ticket_columns,
    ticket_summary, to_i64, to_u64, work_record,
};
use super::{
    AttemptOutcome, AttemptRecord, AuditFilter, AutoEscalation, CatalogKeyRecord, CatalogRecord,
    DueDelivery, Enrollment, EnrollmentRefusal, EscalateOutcome, Escalation, ExpiredRun,
    FeedbackOutcome, FeedbackRefusal, MachineRecord, NewAuditEntry, NewCatalog, NewDelivery,
    NewRunRecord, NewWebSession, PublishOutcome, RUN_REPORT_GRACE_SECS, RUN_SILENT_AGENT,
    RecordedTicket, RunFilter, RunFinish, RunRecord, Store, StoreError, StoreFuture, StoredAction,
    TicketFields, TicketRecord, UserRecord, VITALS_HISTORY, WebSessionRecord, WorkOutcome,
    WorkRecord,
};
use crate::secret::TokenHash;
use crate::sla::{Policy, Schedule, SlaRecord};
use lifeline_shared::v1::sla::SlaTarget;
// Recurring problems, knowledge and reports (issue 9).
use super::{RecurringRecord, SimilarAnswer, WindowFacts};

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
    /// The service-level policy due times are computed with (`apply_sla_policy`).
    sla: std::sync::Arc<std::sync::RwLock<std::sync::Arc<Policy>>>,
}

/// Machines by certificate fingerprint. Every change of a machine's certificate or status goes
/// through this store, which clears the cache after committing it; the generation keeps a
/// lookup that raced with such a change from caching what it read before the change. With a
/// maximum age (PostgreSQL, where other collectors' changes arrive as notifications that can
/// be lost), an entry older than that is read again from the database.
#[derive(Debug, Default)]
pub(super) struct IdentityCache {
    inner: std::sync::Mutex<CacheState>,
    max_age: Option<Duration>,
}

/// The cache's generation and its entries, each with the moment it was read.
type CacheState = (
    u64,
    std::collections::HashMap<String, (MachineRecord, Instant)>,
);

/// Entries kept before the cache starts over.
const IDENTITY_CACHE_MAX: usize = 100_000;

type CacheGuard<'a> = std::sync::MutexGuard<'a, CacheState>;

impl IdentityCache {
    /// A cache whose entries are read again from the database once older than `max_age`.
    pub(super) fn with_max_age(max_age: Duration) -> IdentityCache {
        IdentityCache {
            max_age: Some(max_age),
            ..IdentityCache::default()
        }
    }

    fn lock(&self) -> CacheGuard<'_> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached record, or the generation to quote when caching what the database says.
    /// `now` is the caller's reading of the monotonic clock.
    pub(super) fn get(&self, fingerprint: &str, now: Instant) -> Result<MachineRecord, u64> {
        let mut guard = self.lock();
        let fresh = match (guard.1.get(fingerprint), self.max_age) {
            (None, _) => return Err(guard.0),
            (Some((record, _)), None) => Some(record.clone()),
            (Some((record, cached_at)), Some(max_age)) => {
                (now.saturating_duration_since(*cached_at) < max_age).then(|| record.clone())
            }
        };
        match fresh {
            Some(record) => Ok(record),
            None => {
                guard.1.remove(fingerprint);
                Err(guard.0)
            }
        }
    }

    pub(super) fn put(&self, generation: u64, record: MachineRecord, now: Instant) {
        let mut guard = self.lock();
        if guard.0 != generation {
            return;
        }
        if guard.1.len() >= IDENTITY_CACHE_MAX {
            guard.1.clear();
        }
        guard.1.insert(record.fingerprint.clone(), (record, now));
    }

    /// After a committed change to any machine's certificate or status.
    pub(super) fn invalidate(&self) {
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
        // Fingerprints of tickets stored before they existed (issue 9); a no-op afterwards.
        let backfilled = knowledge::backfill_fingerprints(&pool).await?;
        if backfilled > 0 {
            tracing::info!(tickets = backfilled, "fingerprinted existing tickets");
        }
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
            sla: std::sync::Arc::default(),
        })
    }

    /// The service-level policy in force.
    fn policy(&self) -> std::sync::Arc<Policy> {
        std::sync::Arc::clone(
            &self
                .sla
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl TelemetrySink for SqlitePool {
    fn write_telemetry<'a>(&'a self, taken: &'a PendingTelemetry) -> StoreFuture<'a, ()> {
        Box::pin(write_telemetry(self, taken))
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

/// Begins the transaction of a batch of tickets (see `write_batch`) as IMMEDIATE: the batch
/// reads (idempotency keys) before it writes; a deferred transaction whose snapshot another
/// writer moved past fails at its first write with SQLITE_BUSY at once, without waiting (seen
/// when outbox inserts follow a ticket closely, issue 9).
async fn begin_ticket_batch(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Inserts a ticket (`$1`..`$13` as `insert_ticket` binds them); SQLite numbers it (the
/// `INTEGER PRIMARY KEY AUTOINCREMENT`, one past the highest ever used).
const INSERT_TICKET: &str = "INSERT INTO tickets (machine_id, idempotency_key, os_user, \
        description, urgency, priority, status, tier, worst_finding, findings, created_at, \
        updated_at, first_response_due_at, first_response_risk_at, resolution_due_at, \
        resolution_risk_at) \
     VALUES ($1, $2, $3, $4, $5, $6, 'new', 1, $7, $8, $9, $9, $10, $11, $12, $13) \
     RETURNING number";

// What the shared methods (`sql_impl.rs`) leave to each database.

/// SQLite's function for where a text starts in another (`instr(haystack, needle)`, 1-based, 0
/// when absent), for `list_tickets`' text search.
macro_rules! text_position {
    () => {
        "instr"
    };
}

/// Takes SQLite's write lock for `publish_catalog` (a write that changes nothing), so its
/// version check cannot race another publish.
async fn lock_catalogs(tx: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE catalogs SET version = version WHERE 0")
        .execute(tx)
        .await?;
    Ok(())
}

/// Claims for `claim_due_deliveries` up to `$3` deliveries due at `$2`, until `$1`. SQLite runs
/// one writer at a time, so no other deliverer comes between choosing and claiming.
const CLAIM_DUE_DELIVERIES: &str = "UPDATE outbox SET next_attempt_at = $1 \
     WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' \
        AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3) \
     RETURNING id, delivery_id, kind, target, event, ticket_number, payload, attempts";

impl Store for SqliteStore {
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
            let generation = match self.identities.get(fingerprint, Instant::now()) {
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
            self.identities
                .put(generation, record.clone(), Instant::now());
            Ok(Some(record))
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

    fn append_audit<'a>(
        &'a self,
        entry: &'a NewAuditEntry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, AuditEntry> {
        Box::pin(async move {
            // Under the lock nobody else appends, so the head read here stays the head; the
            // insert is a single statement, so no read transaction has to upgrade to a write.
            let _guard = self.audit.lock().await;
            let stored = next_audit_entry(&self.pool, entry, now).await?;
            insert_audit_entry(&self.pool, &stored).await?;
            Ok(stored)
        })
    }

    super::sql_impl::sql_methods!(sqlx::Sqlite, SqlitePool, SqliteConnection, SqliteRow);
}

super::sql_impl::sql_functions!(sqlx::Sqlite, SqlitePool, SqliteConnection, SqliteRow);

// Recurring problems, knowledge and reports (issue 9).
mod knowledge;

// The store's behaviour is tested once for both backends in `store/tests.rs`; what is here is
// only SQLite's.
#[cfg(test)]
mod tests {
    use super::*;

    fn machine(id: &str, fingerprint: &str) -> MachineRecord {
        MachineRecord {
            id: id.into(),
            status: MachineStatus::Active,
            fingerprint: fingerprint.into(),
        }
    }

    #[test]
    fn a_lookup_that_raced_a_change_does_not_cache_what_it_read() {
        let cache = IdentityCache::default();
        let now = Instant::now();
        let generation = cache.get("fp9", now).unwrap_err();
        cache.invalidate();
        cache.put(generation, machine("m9", "fp9"), now);
        assert!(cache.get("fp9", now).is_err());
    }

    #[test]
    fn an_entry_older_than_the_max_age_is_read_again() {
        let start = Instant::now();
        let later = |secs| start + Duration::from_secs(secs);

        let bounded = IdentityCache::with_max_age(Duration::from_secs(30));
        let generation = bounded.get("fp1", start).unwrap_err();
        bounded.put(generation, machine("m1", "fp1"), start);
        assert_eq!(bounded.get("fp1", later(29)).unwrap().id, "m1");
        // Past its age the entry is gone: the caller reads the database and may cache again.
        let generation = bounded.get("fp1", later(30)).unwrap_err();
        assert!(bounded.get("fp1", later(30)).is_err());
        bounded.put(generation, machine("m1", "fp1"), later(30));
        assert!(bounded.get("fp1", later(59)).is_ok());

        // Without a maximum age (one SQLite collector sees every change) entries stay.
        let unbounded = IdentityCache::default();
        let generation = unbounded.get("fp1", start).unwrap_err();
        unbounded.put(generation, machine("m1", "fp1"), start);
        assert!(unbounded.get("fp1", later(86_400)).is_ok());
    }
}
