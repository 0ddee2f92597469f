//! The shared store: PostgreSQL, for one collector or several on one database.
//!
//! It reads side by side with `sqlite.rs`: the same semantics, the methods whose SQL both
//! databases run as written kept once in `sql_impl.rs`, the others here in the same order as in
//! `sqlite.rs`, and the schema in `migrations/postgres` mirrors SQLite's column for column (see
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
//! - Work and the outbox: `take_work` and `claim_due_deliveries` claim rows with `FOR UPDATE
//!   SKIP LOCKED`, so a piece of work is delivered once even with two collectors polling for
//!   the same machine, and a webhook or e-mail is not sent by two at once; other state changes
//!   are single conditional UPDATEs, which PostgreSQL's row locks make once-only.
//! - Catalog publishing holds [`CATALOG_LOCK`] so the version rule cannot race.
//!
//! Machine identities are cached as in `SqliteStore`, and every collector's cache is cleared
//! when any of them commits a machine change: the change's transaction sends `NOTIFY
//! lifeline_machines`, delivered on commit (see `notifications.rs`, which also carries long-poll
//! wake-ups between collectors and stops the cache while its listener is down). The other
//! collectors therefore see a revocation when their listener receives the notification, a few
//! milliseconds after the commit, not in the same instant as the one that made it. A
//! notification lost with a connection that died silently cannot keep a revoked machine in:
//! the listener checks its connection every few seconds, and no entry is used longer than
//! `notifications::IDENTITY_MAX_AGE`. Heartbeats
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
    INGEST_QUEUE, IngestJob, PendingTelemetry, SELECT_ENROLLMENT_TOKEN, SELECT_WORK, Telemetry,
    TelemetrySink, TicketBatchWriter, audit_entry, catalog_record, check_token, clock_columns,
    comment, flush_loop, from_millis, ingest_loop, machine_columns, machine_summary, millis,
    next_due, opt_from_millis, parse, reference_key_prefix, reply, run_columns, run_record,
    sla_record, stored_action, stored_action_columns, submit_ticket, ticket_columns,
    ticket_summary, to_i64, to_u64, work_record,
};
use lifeline_shared::v1::feedback::Feedback;
use lifeline_shared::v1::integrations::{Delivery, DeliveryAttempt, DeliveryKind, DeliveryState};
use sqlx::postgres::PgRow;

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

impl PostgresStore {
    /// Commits `tx`, which changed a machine, telling every collector to forget cached machine
    /// identities: the others when the NOTIFY sent inside `tx` reaches them, this one at once.
    async fn commit_machine_change(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(MACHINES_CHANNEL)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.notifications.identities.invalidate();
        Ok(())
    }
}

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

/// Begins the transaction of a batch of tickets (see `write_batch`) holding [`TICKET_LOCK`]:
/// every statement after it sees what other collectors committed before they let go of the
/// lock, so the idempotency check and MAX(number) in `insert_ticket` are current. One advisory
/// lock and one commit per batch.
async fn begin_ticket_batch(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(TICKET_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Inserts a ticket (`$1`..`$13` as `insert_ticket` binds them), numbered MAX(number) + 1: the
/// caller holds [`TICKET_LOCK`], so numbers are unique and gapless across collectors.
const INSERT_TICKET: &str = "INSERT INTO tickets (number, machine_id, idempotency_key, os_user, \
        description, urgency, priority, status, tier, worst_finding, findings, created_at, \
        updated_at, first_response_due_at, first_response_risk_at, resolution_due_at, \
        resolution_risk_at) \
     SELECT COALESCE(MAX(number), 0) + 1, $1, $2, $3, $4, $5, $6, 'new', 1, $7, $8, $9, $9, \
        $10, $11, $12, $13 \
     FROM tickets \
     RETURNING number";

// What the shared methods (`sql_impl.rs`) leave to each database.

/// PostgreSQL's function for where a text starts in another (`strpos(haystack, needle)`,
/// 1-based, 0 when absent), for `list_tickets`' text search.
macro_rules! text_position {
    () => {
        "strpos"
    };
}

/// Takes [`CATALOG_LOCK`] for `publish_catalog` until its transaction ends, so its version
/// check cannot race another collector's publish.
async fn lock_catalogs(tx: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CATALOG_LOCK)
        .execute(tx)
        .await?;
    Ok(())
}

/// Claims for `claim_due_deliveries` up to `$3` deliveries due at `$2`, until `$1`. A delivery
/// another collector is claiming right now is skipped, not waited for: once that one commits,
/// the delivery is no longer due, and it is never sent by both.
const CLAIM_DUE_DELIVERIES: &str = "UPDATE outbox SET next_attempt_at = $1 \
     WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' \
        AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, delivery_id, kind, target, event, ticket_number, payload, attempts";

impl Store for PostgresStore {
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
                "SELECT expires_at, max_uses, uses, revoked_at FROM enrollment_tokens \
                 WHERE token_hash = $1 FOR UPDATE",
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
            self.commit_machine_change(tx).await?;
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
            self.commit_machine_change(tx).await?;
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
            let generation = match self
                .notifications
                .identities
                .get(fingerprint, std::time::Instant::now())
            {
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
                self.notifications.identities.put(
                    generation,
                    record.clone(),
                    std::time::Instant::now(),
                );
            }
            Ok(Some(record))
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
                self.commit_machine_change(tx).await?;
            } else {
                tx.commit().await?;
            }
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
            self.commit_machine_change(tx).await?;
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
            let stored = next_audit_entry(&mut *tx, entry, now).await?;
            insert_audit_entry(&mut *tx, &stored).await?;
            tx.commit().await?;
            Ok(stored)
        })
    }

    super::sql_impl::sql_methods!(sqlx::Postgres, PgPool, PgConnection, PgRow);
}

super::sql_impl::sql_functions!(sqlx::Postgres, PgPool, PgConnection, PgRow);

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
