//! The shared store: PostgreSQL, for one collector or several on one database.
//!
//! It reads side by side with `sqlite.rs`: the same methods in the same order, the same
//! semantics, and the schema in `migrations/postgres` mirrors SQLite's column for column (see
//! `0001_initial.sql`). What differs is what several collector processes on one database need:
//!
//! - Durability: every method returns after COMMIT; `synchronous_commit` stays on (a connection
//!   whose database default turned it off turns it back on), so a ticket number handed to an
//!   agent survives a crash of the database server right after the answer.
//! - Ticket numbers: the group-commit writer takes the transaction-scoped advisory lock
//!   [`TICKET_LOCK`] and numbers each ticket MAX(number) + 1, so numbers are unique and
//!   sequential without gaps across collectors (a sequence would leave gaps on rollbacks), and a
//!   resent idempotency key finds the ticket any collector made.
//! - Audit: an append holds [`AUDIT_LOCK`] in the transaction that reads the chain's head and
//!   inserts the next entry, so concurrent appenders on different processes form one chain.
//! - Work: `take_work` claims rows with `FOR UPDATE SKIP LOCKED`, so a piece of work is
//!   delivered once even with two collectors polling for the same machine; other state changes
//!   are single conditional UPDATEs, which PostgreSQL's row locks make once-only.
//! - Catalog publishing holds [`CATALOG_LOCK`] so the version rule cannot race.
//!
//! Machine identities are cached as in `SqliteStore`, and every collector's cache is cleared
//! when any of them commits a machine change: the change's transaction sends `NOTIFY
//! lifeline_machines`, delivered on commit (see `notifications.rs`, which also carries long-poll
//! wake-ups between collectors and stops the cache while its listener is down). The other
//! collectors therefore see a revocation when their listener receives the notification, a few
//! milliseconds after the commit, not in the same instant as the one that made it. Heartbeats
//! and last-seen times are buffered and written once a second as in SQLite (losing at most that
//! second in a crash).
//!
//! The URL's password is never printed: errors name the URL through [`redact_url`].

use std::str::FromStr;
use std::time::Duration;

use lifeline_shared::findings::Finding;
use lifeline_shared::v1::api::{
    AttachedSnapshot, MachineDetail, MachineStatus, MachineSummary, MachineTicket, Priority, Role,
    TicketDetail, TicketFilter, TicketStatus, TicketSummary, TicketUpdate, UserSummary,
};
use lifeline_shared::v1::audit::{self, AuditEntry, GENESIS_HASH};
use lifeline_shared::v1::snapshot::Snapshot;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::notifications::{MACHINES_CHANNEL, Notifications, StopOnDrop};
use super::sql::{
    INGEST_QUEUE, IngestJob, PendingTelemetry, SELECT_WORK, Telemetry, TelemetrySink,
    TicketBatchWriter, audit_entry, catalog_record, check_token, clock_columns, comment,
    flush_loop, from_millis, ingest_loop, machine_columns, machine_summary, millis, next_due,
    opt_from_millis, parse, reference_key_prefix, reply, run_columns, run_record, sla_record,
    stored_action, stored_action_columns, submit_ticket, ticket_columns, ticket_summary, to_i64,
    to_u64, work_record,
};
use lifeline_shared::v1::feedback::Feedback;
use lifeline_shared::v1::integrations::{Delivery, DeliveryAttempt, DeliveryKind, DeliveryState};
use sqlx::postgres::PgRow;

use super::{
    AttemptOutcome, AttemptRecord, AuditFilter, AutoEscalation, CatalogKeyRecord, CatalogRecord,
    DueDelivery, Enrollment, EnrollmentRefusal, EscalateOutcome, Escalation, FeedbackOutcome,
    FeedbackRefusal, MachineRecord, NewAuditEntry, NewCatalog, NewDelivery, NewRunRecord,
    NewWebSession, PublishOutcome, RUN_REPORT_GRACE_SECS, RUN_SILENT_AGENT, RecordedTicket,
    RunFilter, RunFinish, RunRecord, Store, StoreError, StoreFuture, StoredAction, TicketFields,
    TicketRecord, UserRecord, VITALS_HISTORY, WebSessionRecord, WorkOutcome, WorkRecord,
};
use crate::secret::TokenHash;
// Recurring problems, knowledge and reports (issue 9).
use super::{RecurringRecord, SimilarAnswer, WindowFacts};
use crate::sla::{Policy, Schedule, SlaRecord};
use crate::wakeup::Wakeups;
use lifeline_shared::v1::sla::SlaTarget;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Advisory lock keys (`pg_advisory_xact_lock`), one per serialised write. The high half is
/// "LL" (0x4c4c) so they are unlikely to collide with another application's keys on a shared
/// server; each lock is held until its transaction ends.
/// Held while numbering tickets: numbers are MAX + 1, unique and gapless across collectors.
pub const TICKET_LOCK: i64 = 0x4c4c_0000_0001;
/// Held while appending to the audit log: the head read and the insert form one step.
pub const AUDIT_LOCK: i64 = 0x4c4c_0000_0002;
/// Held while publishing a catalog: the version check and the insert form one step.
pub const CATALOG_LOCK: i64 = 0x4c4c_0000_0003;

/// Connections per collector process. PostgreSQL's default `max_connections` (100) leaves room
/// for several collectors.
const POOL_SIZE: u32 = 16;
/// How long a request waits for a free connection (or the server to answer a new one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The group-commit writer for tickets (see [`ingest_loop`]).
    ingest: mpsc::Sender<IngestJob>,
    /// Queues this process's audit appends before they wait on [`AUDIT_LOCK`], so waiting
    /// appenders do not each hold a pooled connection.
    audit: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Heartbeats and last-seen times waiting for the next flush (see [`Telemetry`]).
    telemetry: std::sync::Arc<Telemetry>,
    /// The service-level policy due times are computed with (`apply_sla_policy`).
    sla: std::sync::Arc<std::sync::RwLock<std::sync::Arc<Policy>>>,
    // Several collectors (issue 8): notifications from the other collectors.
    notifications: std::sync::Arc<Notifications>,
    _listener: std::sync::Arc<StopOnDrop>,
}

/// `url` with its password replaced by `***` (in the user part and in a `password=` query
/// parameter), for errors and logs. When in doubt it hides more: everything up to the last `@`
/// after the user name counts as the password, even where an unencoded `@`, `/` or `?` in it
/// makes the URL ambiguous.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_query(url);
    };
    let rest = match rest.rsplit_once('@') {
        Some((user_info, host_on)) => {
            let user = match user_info.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => user_info.to_owned(),
            };
            format!("{user}@{}", redact_query(host_on))
        }
        None => redact_query(rest),
    };
    format!("{scheme}://{rest}")
}

/// `text` with the value of a `password=` query parameter replaced by `***`.
fn redact_query(text: &str) -> String {
    let Some((head, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`)
    /// and applies pending migrations. Several collectors may do this at once: the migrator
    /// holds a lock of its own while it works.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let open_error = |source| StoreError::Open {
            url: redact_url(url),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(open_error)?
            .application_name("lifeline-collector");
        // One connection first, so a wrong address or password is reported at once with its
        // cause (the pool would retry a refused connection until its timeout, then say only
        // that it timed out).
        let probe = PgConnection::connect_with(&options)
            .await
            .map_err(open_error)?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // A database (or role) whose default is `off` would acknowledge commits
                    // before they are durable; the collector's promise needs them durable.
                    sqlx::query(
                        "SELECT set_config('synchronous_commit', 'on', false) \
                         WHERE current_setting('synchronous_commit') = 'off'",
                    )
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(open_error)?;
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
        let (notifications, listener) = Notifications::start(&pool);
        Ok(PostgresStore {
            pool,
            ingest,
            audit: std::sync::Arc::default(),
            telemetry,
            sla: std::sync::Arc::default(),
            notifications,
            _listener: std::sync::Arc::new(listener),
        })
    }

    /// Publishes `wakeups`' wake-ups to the collectors sharing this database and wakes its
    /// waiters for theirs; false when a `Wakeups` was bridged already.
    pub fn bridge_wakeups(&self, wakeups: &std::sync::Arc<Wakeups>) -> bool {
        self.notifications.bridge(&self.pool, wakeups)
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

    /// The pool, for the bootstrap's shared secrets and `migrate`.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Tells every collector (this one included) to forget cached machine identities once `tx`
/// commits.
async fn notify_machine_change(tx: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(MACHINES_CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}

const SELECT_ENROLLMENT_TOKEN: &str =
    "SELECT expires_at, max_uses, uses FROM enrollment_tokens WHERE token_hash = $1";

impl TelemetrySink for PgPool {
    fn write_telemetry<'a>(&'a self, taken: &'a PendingTelemetry) -> StoreFuture<'a, ()> {
        Box::pin(write_telemetry(self, taken))
    }
}

/// One round trip per kind of row, whatever the number of machines: arrays bound as parameters.
async fn write_telemetry(pool: &PgPool, taken: &PendingTelemetry) -> Result<(), StoreError> {
    let mut seen: Vec<(&String, &i64)> = taken.seen.iter().collect();
    // Lock machine rows in one order, so two collectors flushing at once never deadlock. `NO
    // KEY UPDATE` (what the UPDATE takes anyway) leaves the KEY SHARE locks that inserting a
    // ticket or snapshot takes on its machine free: a ticket batch never waits on a flush.
    seen.sort_unstable();
    let (ids, ats): (Vec<&str>, Vec<i64>) = seen.iter().map(|(m, at)| (m.as_str(), **at)).unzip();
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM machines WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE machines m SET last_seen_at = GREATEST(m.last_seen_at, s.at) \
         FROM UNNEST($1::text[], $2::bigint[]) AS s (id, at) WHERE m.id = s.id",
    )
    .bind(&ids)
    .bind(&ats)
    .execute(&mut *tx)
    .await?;
    if !taken.beats.is_empty() {
        let machines: Vec<&str> = taken.beats.iter().map(|b| b.0.as_str()).collect();
        let documents: Vec<&str> = taken.beats.iter().map(|b| b.1.as_str()).collect();
        let received: Vec<i64> = taken.beats.iter().map(|b| b.2).collect();
        // In buffer order, so ids grow with arrival as in SQLite.
        sqlx::query(
            "INSERT INTO vitals (machine_id, received_at, document) \
             SELECT b.machine_id, b.received_at, b.document \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY \
                AS b (machine_id, received_at, document, n) \
             ORDER BY b.n",
        )
        .bind(&machines)
        .bind(&received)
        .bind(&documents)
        .execute(&mut *tx)
        .await?;
        let mut beating: Vec<&str> = machines;
        beating.sort_unstable();
        beating.dedup();
        sqlx::query(
            "DELETE FROM vitals v USING UNNEST($1::text[]) AS b (machine_id) \
             WHERE v.machine_id = b.machine_id AND v.id <= \
                (SELECT id FROM vitals WHERE machine_id = b.machine_id ORDER BY id DESC \
                 LIMIT 1 OFFSET $2)",
        )
        .bind(&beating)
        .bind(VITALS_HISTORY)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl TicketBatchWriter for PgPool {
    fn write_batch<'a>(
        &'a self,
        batch: &'a [IngestJob],
    ) -> StoreFuture<'a, Vec<Result<RecordedTicket, StoreError>>> {
        Box::pin(write_batch(self, batch))
    }
}

/// One advisory lock and one commit per batch. Each ticket is in its own savepoint, so one
/// failing ticket does not fail its neighbours.
async fn write_batch(
    pool: &PgPool,
    batch: &[IngestJob],
) -> Result<Vec<Result<RecordedTicket, StoreError>>, StoreError> {
    let mut tx = pool.begin().await?;
    // Every statement after this sees what other collectors committed before they let go of
    // the lock: the idempotency check and MAX(number) below are current.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(TICKET_LOCK)
        .execute(&mut *tx)
        .await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
        match insert_ticket(&mut savepoint, &job.ticket, &job.sla, job.now).await {
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
/// The caller holds [`TICKET_LOCK`].
async fn insert_ticket(
    conn: &mut PgConnection,
    ticket: &TicketRecord,
    sla: &Policy,
    now: OffsetDateTime,
) -> Result<RecordedTicket, StoreError> {
    let findings = serde_json::to_string(&ticket.findings)
        .map_err(|e| StoreError::Corrupt(format!("findings: {e}")))?;
    let priority = Priority::initial(ticket.urgency, ticket.worst_finding);
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
    let schedule = sla.schedule(&mut SlaRecord::new(now, priority), now);
    let opt = |t: Option<OffsetDateTime>| t.map(millis);
    let row = sqlx::query(
        "INSERT INTO tickets (number, machine_id, idempotency_key, os_user, description, \
            urgency, priority, status, tier, worst_finding, findings, created_at, updated_at, \
            first_response_due_at, first_response_risk_at, resolution_due_at, \
            resolution_risk_at) \
         SELECT COALESCE(MAX(number), 0) + 1, $1, $2, $3, $4, $5, $6, 'new', 1, $7, $8, $9, $9, \
            $10, $11, $12, $13 \
         FROM tickets \
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
    .bind(opt(schedule.first_response_due_at))
    .bind(opt(schedule.first_response_risk_at))
    .bind(opt(schedule.resolution_due_at))
    .bind(opt(schedule.resolution_risk_at))
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
    knowledge::insert_fingerprints(conn, number, &ticket.findings).await?;
    Ok(RecordedTicket {
        number: to_u64(number)?,
        created: true,
    })
}

impl Store for PostgresStore {
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
            // Lock the token's row so two enrollments cannot both use a token's last use.
            let row = sqlx::query(
                "SELECT expires_at, max_uses, uses FROM enrollment_tokens WHERE token_hash = $1 \
                 FOR UPDATE",
            )
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
            notify_machine_change(&mut tx).await?;
            tx.commit().await?;
            self.notifications.identities.invalidate();
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
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE machines SET cert_fingerprint = $1, cert_not_after = $2, \
                    last_seen_at = $3 WHERE id = $4 AND status = 'active'",
            )
            .bind(cert_fingerprint)
            .bind(millis(cert_not_after))
            .bind(millis(now))
            .bind(machine_id)
            .execute(&mut *tx)
            .await?;
            notify_machine_change(&mut tx).await?;
            tx.commit().await?;
            self.notifications.identities.invalidate();
            Ok(done.rows_affected() > 0)
        })
    }

    fn machine_by_fingerprint<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<MachineRecord>> {
        Box::pin(async move {
            // The cache is cleared by every collector's machine changes (see the module doc).
            let usable = self.notifications.cache_usable();
            let generation = match self.notifications.identities.get(fingerprint) {
                Ok(record) if usable => return Ok(Some(record)),
                Ok(_) => None,
                Err(generation) => usable.then_some(generation),
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
            if let Some(generation) = generation {
                self.notifications
                    .identities
                    .put(generation, record.clone());
            }
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

    fn machine<'a>(
        &'a self,
        id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<MachineDetail>> {
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
                .list_tickets(
                    &TicketFilter {
                        machine: Some(id.to_owned()),
                        ..TicketFilter::default()
                    },
                    now,
                )
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
            let row = sqlx::query("SELECT status FROM machines WHERE id = $1 FOR NO KEY UPDATE")
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
                notify_machine_change(&mut tx).await?;
            }
            tx.commit().await?;
            self.notifications.identities.invalidate();
            Ok(Some(before))
        })
    }

    fn revoke_machine<'a>(&'a self, id: &'a str, now: OffsetDateTime) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query(
                "UPDATE machines SET status = 'revoked', \
                    revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
            )
            .bind(millis(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            notify_machine_change(&mut tx).await?;
            tx.commit().await?;
            self.notifications.identities.invalidate();
            Ok(done.rows_affected() > 0)
        })
    }

    fn record_ticket<'a>(
        &'a self,
        ticket: &'a TicketRecord,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, RecordedTicket> {
        Box::pin(submit_ticket(&self.ingest, ticket, self.policy(), now))
    }

    fn list_tickets<'a>(
        &'a self,
        filter: &'a TicketFilter,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TicketSummary>> {
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
                        OR strpos(lower(t.description), lower($6)) > 0 \
                        OR strpos(lower(m.hostname), lower($6)) > 0) \
                 ORDER BY \
                   CASE WHEN $9 = 'priority' THEN (CASE t.priority WHEN 'critical' THEN 4 \
                        WHEN 'high' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END) ELSE 0 END DESC, \
                   CASE WHEN $9 = 'age' THEN t.number ELSE 0 END ASC, \
                   CASE WHEN $9 = 'due' THEN (CASE WHEN ",
                next_due!(),
                " IS NULL THEN 1 ELSE 0 END) ELSE 0 END ASC, \
                   CASE WHEN $9 = 'due' THEN ",
                next_due!(),
                " ELSE 0 END ASC, \
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
            let policy = self.policy();
            rows.iter()
                .map(|row| ticket_summary(row, &policy, now))
                .collect()
        })
    }

    fn ticket(&self, number: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<TicketDetail>> {
        Box::pin(async move {
            let row = sqlx::query(concat!(
                "SELECT ",
                ticket_columns!(),
                ", t.os_user, t.findings \
                 FROM tickets t JOIN machines m ON m.id = t.machine_id WHERE t.number = $1"
            ))
            .bind(to_i64(number))
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let summary = ticket_summary(&row, &self.policy(), now)?;
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
            .map(comment)
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
            let (resolution_note, fingerprints) =
                knowledge::knowledge_of(&self.pool, to_i64(number)).await?;
            Ok(Some(TicketDetail {
                summary,
                os_user: row.try_get("os_user")?,
                first_response_at: opt_from_millis(row.try_get("first_response_at")?)?,
                resolved_at: opt_from_millis(row.try_get("resolved_at")?)?,
                findings,
                comments,
                snapshots,
                has_screenshot,
                resolution_note,
                fingerprints,
                feedback,
            }))
        })
    }

    fn update_ticket<'a>(
        &'a self,
        number: u64,
        update: &'a TicketUpdate,
        by: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<()>> {
        Box::pin(async move {
            let policy = self.policy();
            let Some(mut tx) = begin_ticket_change(&self.pool, number, now).await? else {
                return Ok(None);
            };
            let (mut clocks, assignee) = load_clocks(&mut tx, number)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("ticket #{number} vanished")))?;
            let before = TicketFields {
                status: clocks.status,
                priority: clocks.priority,
                tier: clocks.tier,
                assignee,
            };
            // A status change is a response and stops or restarts the clocks; resolved_at is
            // set when moving to resolved/closed (kept if already set) and cleared on reopening.
            if let Some(status) = update.status {
                clocks.set_status(status, &policy.calendar, now);
            }
            if let Some(priority) = update.priority {
                clocks.priority = priority;
            }
            if let Some(tier) = update.tier {
                clocks.tier = tier;
            }
            let after = TicketFields {
                status: clocks.status,
                priority: clocks.priority,
                tier: clocks.tier,
                assignee: match update.assignee.as_deref() {
                    Some("") => None,
                    Some(name) => Some(name.to_owned()),
                    None => before.assignee.clone(),
                },
            };
            let schedule = policy.schedule(&mut clocks, now);
            sqlx::query(
                "UPDATE tickets SET status = $1, priority = $2, tier = $3, assignee = $4 \
                 WHERE number = $5",
            )
            .bind(after.status.as_str())
            .bind(after.priority.as_str())
            .bind(i64::from(after.tier.get()))
            .bind(after.assignee.as_deref())
            .bind(to_i64(number))
            .execute(&mut *tx)
            .await?;
            save_clocks(&mut tx, number, &clocks, &schedule).await?;
            if let Some(note) = super::change_note(by, &before, &after) {
                add_note(&mut tx, to_i64(number), &note, now).await?;
            }
            tx.commit().await?;
            Ok(Some(()))
        })
    }

    fn add_comment<'a>(
        &'a self,
        number: u64,
        author: &'a str,
        body: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool> {
        Box::pin(insert_comment(
            &self.pool,
            number,
            author,
            body,
            false,
            self.policy(),
            now,
        ))
    }

    fn record_heartbeat<'a>(
        &'a self,
        machine_id: &'a str,
        vitals_json: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(
            self.telemetry
                .record(&self.pool, machine_id, vitals_json, millis(now)),
        )
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
                 WHERE id IN (SELECT id FROM work WHERE machine_id = $1 AND state = 'queued' \
                    AND expires_at <= $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(machine_id)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            // A row another collector is claiming right now is skipped, not waited for: it
            // is that collector's to deliver, and it leaves 'queued' when that one commits.
            let rows = sqlx::query(
                "UPDATE work SET state = 'delivered', delivered_at = $2 \
                 WHERE id IN (SELECT id FROM work WHERE machine_id = $1 AND state = 'queued' \
                    AND expires_at > $2 FOR UPDATE SKIP LOCKED) \
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
            // Take the lock first, so the version check below cannot race another publish.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CATALOG_LOCK)
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
            .bind(i64::from(required))
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
                " WHERE (NOT $1 OR r.approval = 'pending') AND ($2 IS NULL OR r.machine_id = $2) \
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
            let _local = self.audit.lock().await;
            let mut tx = self.pool.begin().await?;
            // Under the lock no other collector appends, and the head read after taking it
            // sees every entry committed before: the head read here stays the head.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK)
                .execute(&mut *tx)
                .await?;
            let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
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
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(stored)
        })
    }

    fn list_audit<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            // `seq > $1` always, so paging seeks by the primary key instead of scanning.
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
        Box::pin(insert_comment(
            &self.pool,
            number,
            author,
            body,
            true,
            self.policy(),
            now,
        ))
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
                        AND f.resolved_at = tickets.resolved_at) THEN 1::BIGINT ELSE 0::BIGINT END \
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
                .map(reply)
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
                   AS received \
                 ORDER BY at DESC LIMIT 1",
            )
            .bind(machine_id)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| Ok((from_millis(r.try_get("at")?)?, r.try_get("document")?)))
                .transpose()
        })
    }

    super::sql_impl::sql_methods!(PgPool, PgConnection, PgRow);
}

super::sql_impl::sql_functions!(PgPool, PgConnection, PgRow);

/// Loads ticket `number`'s clocks and assignee inside a transaction.
async fn load_clocks(
    conn: &mut PgConnection,
    number: u64,
) -> Result<Option<(SlaRecord, Option<String>)>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        clock_columns!(),
        " FROM tickets WHERE number = $1"
    ))
    .bind(to_i64(number))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((sla_record(&row)?, row.try_get("assignee")?)))
        .transpose()
}

/// Writes a ticket's clocks and the schedule computed from them.
async fn save_clocks(
    conn: &mut PgConnection,
    number: u64,
    record: &SlaRecord,
    schedule: &Schedule,
) -> Result<(), StoreError> {
    let opt = |t: Option<OffsetDateTime>| t.map(millis);
    sqlx::query(
        "UPDATE tickets SET first_response_at = $1, resolved_at = $2, sla_paused_at = $3, \
            sla_paused_ms = $4, first_response_due_at = $5, first_response_risk_at = $6, \
            resolution_due_at = $7, resolution_risk_at = $8 \
         WHERE number = $9",
    )
    .bind(opt(record.first_response_at))
    .bind(opt(record.resolved_at))
    .bind(opt(record.paused_at))
    .bind(i64::try_from(record.paused.whole_milliseconds()).unwrap_or(i64::MAX))
    .bind(opt(schedule.first_response_due_at))
    .bind(opt(schedule.first_response_risk_at))
    .bind(opt(schedule.resolution_due_at))
    .bind(opt(schedule.resolution_risk_at))
    .bind(to_i64(number))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Starts a ticket transaction with a write, so SQLite takes the write lock before anything is
/// read (a read-then-write transaction could fail on a concurrent writer instead of waiting).
/// `None` (rolled back) when no such ticket exists.
async fn begin_ticket_change(
    pool: &PgPool,
    number: u64,
    now: OffsetDateTime,
) -> Result<Option<sqlx::Transaction<'static, sqlx::Postgres>>, StoreError> {
    let mut tx = pool.begin().await?;
    let touched = sqlx::query("UPDATE tickets SET updated_at = $1 WHERE number = $2")
        .bind(millis(now))
        .bind(to_i64(number))
        .execute(&mut *tx)
        .await?;
    if touched.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    Ok(Some(tx))
}

/// Adds a timeline entry by the collector to a ticket.
async fn add_note(
    tx: &mut PgConnection,
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

/// One run chosen by `condition` on `$1` (a fixed SQL fragment, never user text).
async fn load_run(
    pool: &PgPool,
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
    pool: &PgPool,
    number: u64,
    author: &str,
    body: &str,
    public: bool,
    sla: std::sync::Arc<Policy>,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Some(mut tx) = begin_ticket_change(pool, number, now).await? else {
        return Ok(false);
    };
    let (mut clocks, _) = load_clocks(&mut tx, number)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("ticket #{number} vanished")))?;
    clocks.respond(now);
    let schedule = sla.schedule(&mut clocks, now);
    save_clocks(&mut tx, number, &clocks, &schedule).await?;
    sqlx::query(
        "INSERT INTO comments (ticket_number, author, body, public, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(to_i64(number))
    .bind(author)
    .bind(body)
    .bind(i64::from(public))
    .bind(millis(now))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

async fn load_work(pool: &PgPool, id: u64) -> Result<Option<WorkRecord>, StoreError> {
    let row = sqlx::query(SELECT_WORK)
        .bind(to_i64(id))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(work_record).transpose()
}

// Recurring problems, knowledge and reports (issue 9).
mod knowledge;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PgCluster;

    #[test]
    fn passwords_never_show_in_a_redacted_url() {
        assert_eq!(
            redact_url("postgres://lifeline:s3cret@db.example:5432/lifeline"),
            "postgres://lifeline:***@db.example:5432/lifeline"
        );
        assert_eq!(
            redact_url("postgresql://lifeline@db/ll?sslmode=disable&password=s3cret"),
            "postgresql://lifeline@db/ll?sslmode=disable&password=***"
        );
        assert_eq!(redact_url("postgres://db/ll"), "postgres://db/ll");
        // Unencoded '@', '/' or '?' in a password still do not show any of it.
        for secret in ["s3@cr", "s3/cr", "s3?cr"] {
            let shown = redact_url(&format!("postgres://u:{secret}@db/ll"));
            assert_eq!(shown, "postgres://u:***@db/ll");
        }
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_reached_is_named_without_its_password() {
        // A port nothing listens on (bound and released just now).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://lifeline:hunter2-secret@127.0.0.1:{port}/lifeline");
        let err = PostgresStore::open(&url).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "postgres://lifeline:***@127.0.0.1:{port}/lifeline"
            )),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn a_database_whose_commits_are_not_durable_by_default_is_made_durable() {
        let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
        let admin = sqlx::PgPool::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        sqlx::query("ALTER DATABASE postgres SET synchronous_commit = off")
            .execute(&admin)
            .await
            .unwrap();
        let store = PostgresStore::open(&cluster.url("postgres")).await.unwrap();
        let setting: String = sqlx::query("SHOW synchronous_commit")
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(setting, "on");
    }
}
