//! Storage behind one interface: the `Store` trait, its records and errors.
//!
//! Handlers only see `dyn Store`; `sqlite` is the embedded implementation and `postgres` the one
//! for several collectors on one database, each with its own migrations. Every method takes `now`
//! from the caller's clock. A method that answers an agent's report returns only after the data
//! is durably committed.

pub mod sqlite;

// PostgreSQL store (issue 8): the second backend, what both share, and the tests both run.
pub mod postgres;
mod sql;
#[cfg(test)]
mod tests;
// Several collectors on one database (issue 8, second part): LISTEN/NOTIFY between them.
mod notifications;
pub mod secrets;

use std::future::Future;
use std::pin::Pin;

use lifeline_shared::findings::{Finding, Severity};
use lifeline_shared::v1::api::{
    MachineDetail, MachineStatus, MachineSummary, MachineTicket, Role, TicketDetail, TicketFilter,
    TicketStatus, TicketSummary, TicketUpdate, Urgency, UserSummary,
};
use lifeline_shared::v1::audit::AuditEntry;
use time::OffsetDateTime;

use crate::secret::TokenHash;

/// What every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    #[error("enrollment refused: {0}")]
    Enrollment(#[from] EnrollmentRefusal),
    #[error("ticket batch was not committed: {0}")]
    Batch(String),
    #[error("the ticket writer has stopped")]
    Closed,
}

/// Why an enrollment token did not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentRefusal {
    #[error("unknown enrollment token")]
    Unknown,
    #[error("enrollment token has expired")]
    Expired,
    #[error("enrollment token has been used up")]
    UsedUp,
}

/// A person's account as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    pub token_hash: TokenHash,
    pub revoked: bool,
}

/// A machine as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRecord {
    pub id: String,
    pub status: MachineStatus,
    /// Whether this is the machine's current certificate (re-enrolling replaces it).
    pub fingerprint: String,
}

/// An enrollment to record: a new machine, or a new certificate for an existing one.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub machine_id: String,
    pub hostname: String,
    pub cert_fingerprint: String,
    pub cert_not_after: OffsetDateTime,
    /// Status of a new machine; an existing machine keeps its status.
    pub initial_status: MachineStatus,
}

/// A ticket to record, with findings already computed by the collector.
#[derive(Debug, Clone)]
pub struct TicketRecord {
    pub machine_id: String,
    pub idempotency_key: String,
    pub description: String,
    pub urgency: Urgency,
    pub os_user: Option<String>,
    pub findings: Vec<Finding>,
    pub worst_finding: Option<Severity>,
    /// The snapshot document as JSON, when the agent sent one.
    pub snapshot_json: Option<String>,
    /// The PNG screenshot the user attached, already checked.
    pub screenshot_png: Option<Vec<u8>>,
}

/// Outcome of recording a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedTicket {
    pub number: u64,
    /// False when the idempotency key was already known.
    pub created: bool,
}

/// Vitals rows kept per machine; older ones are pruned when a heartbeat is recorded.
pub const VITALS_HISTORY: i64 = 1440;

/// A piece of work as stored. `kind` is the wire name (`inspect`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkRecord {
    pub id: u64,
    pub machine_id: String,
    pub hostname: String,
    pub kind: String,
    pub state: lifeline_shared::v1::work::WorkState,
    pub ticket: Option<u64>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub error: Option<String>,
    /// The result snapshot as JSON, when done.
    pub snapshot_json: Option<String>,
}

/// How a piece of work ended, as the agent reported it.
#[derive(Debug, Clone)]
pub enum WorkOutcome {
    /// The snapshot JSON (findings already recomputed by the collector).
    Snapshot(String),
    Failed(String),
}

/// A key trusted to publish catalogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogKeyRecord {
    pub key_id: String,
    /// The `lifeline-catalog.pub` text.
    pub public_key: String,
    /// The `KeyEndorsement` JSON that came with it, relayed to agents.
    pub endorsement: Option<String>,
    pub added_by: String,
    pub added_at: OffsetDateTime,
}

/// A published catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRecord {
    pub version: u64,
    pub digest: String,
    pub key_id: String,
    pub action_count: u64,
    pub published_by: String,
    pub published_at: OffsetDateTime,
}

/// A verified catalog to publish: its `FILE.signed` document and each signed action's JSON.
#[derive(Debug, Clone)]
pub struct NewCatalog {
    pub version: u64,
    pub digest: String,
    pub key_id: String,
    pub document: String,
    /// (action id, `SignedAction` JSON)
    pub actions: Vec<(String, String)>,
}

/// What publishing did; the version rule is applied inside the store's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    Published(CatalogRecord),
    /// Exactly this catalog (same version, same digest) is already the current one.
    Unchanged(CatalogRecord),
    /// Older than the current catalog: catalogs only move forward.
    Rollback {
        current: u64,
    },
    /// Same version as the current catalog but different content.
    VersionReused {
        version: u64,
    },
}

/// An action of the current catalog as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAction {
    pub action_id: String,
    pub catalog_version: u64,
    /// The `SignedAction` JSON, exactly as stored (the agent verifies it).
    pub signed: String,
    /// An admin marked the action as needing approval for every run.
    pub require_approval: bool,
}

/// A run request to record.
#[derive(Debug, Clone)]
pub struct NewRunRecord {
    pub run_id: String,
    pub machine_id: String,
    pub action_id: String,
    pub signed_action: String,
    pub params_json: String,
    pub requested_by: String,
    pub reason: Option<String>,
    pub ticket: Option<u64>,
    pub risk: String,
    /// The action's timeout: a delivered run whose agent stays silent this long after it (plus
    /// [`RUN_REPORT_GRACE_SECS`]) is failed.
    pub timeout_secs: u64,
    /// `Some(until)`: the run waits for an approval until then. `None`: dispatch at once.
    pub approval_expires_at: Option<OffsetDateTime>,
    /// Expiry of the queued work once dispatched.
    pub dispatch_expires_at: OffsetDateTime,
}

/// How long after a delivered run's timeout the agent may take to report (consent, the
/// after-action check, a slow network) before the run is failed.
pub const RUN_REPORT_GRACE_SECS: i64 = 600;

/// What a run whose agent never reported is failed with.
pub const RUN_SILENT_AGENT: &str = "the agent did not report how the run ended (it may have \
     restarted or lost its connection during the run); check the machine";

/// A run as stored, with its work's state.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: u64,
    pub run_id: String,
    pub machine_id: String,
    pub hostname: String,
    pub action_id: String,
    pub signed_action: String,
    pub params_json: String,
    pub requested_by: String,
    pub reason: Option<String>,
    pub ticket: Option<u64>,
    pub risk: String,
    /// `not_needed`, `pending`, `approved`, `denied` or `expired`.
    pub approval: String,
    pub approval_expires_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub work_id: Option<u64>,
    pub work_state: Option<lifeline_shared::v1::work::WorkState>,
    pub work_expires_at: Option<OffsetDateTime>,
    pub delivered_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    /// What the agent last reported: `awaiting_consent` or `running`.
    pub stage: Option<String>,
    pub started_at: Option<OffsetDateTime>,
    /// `RunResult` JSON.
    pub result: Option<String>,
    /// `Recheck` JSON.
    pub recheck: Option<String>,
    /// The error of work that failed without a run outcome.
    pub work_error: Option<String>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only requests waiting for an approval.
    pub awaiting_approval: bool,
    pub machine_id: Option<String>,
    pub limit: u32,
}

/// How a run ended, to record.
#[derive(Debug, Clone)]
pub struct RunFinish {
    /// `RunResult` JSON; `None` when the agent could not handle the work at all.
    pub result: Option<String>,
    pub work_error: Option<String>,
    pub recheck: Option<String>,
    /// The ticket timeline entry, when the run belongs to a ticket.
    pub note: String,
}

/// An audit event to append; the store assigns its sequence number and chain hash.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: serde_json::Value,
}

/// Which audit entries to list, in `seq` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Entries by this actor only.
    pub actor: Option<String>,
    /// Entries after this sequence number (paging: the last `seq` of the previous page).
    pub after_seq: Option<u64>,
    pub limit: u32,
}

/// A web console session to start (see `crate::web::session`).
#[derive(Debug, Clone)]
pub struct NewWebSession {
    /// SHA-256 of the random session id in the cookie; the id itself is never stored.
    pub id_hash: TokenHash,
    pub user: String,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A stored web console session with its user's current standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRecord {
    pub user: String,
    /// The user's role now (a role change applies to open sessions at once).
    pub role: Role,
    pub user_revoked: bool,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// The storage interface of the collector.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Whether any admin exists (false on a fresh database).
    fn has_admin(&self) -> StoreFuture<'_, bool>;
    fn add_user<'a>(
        &'a self,
        name: &'a str,
        role: Role,
        token_hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()>;
    fn user_by_token<'a>(
        &'a self,
        token_hash: &'a TokenHash,
    ) -> StoreFuture<'a, Option<UserRecord>>;
    fn list_users(&self) -> StoreFuture<'_, Vec<UserSummary>>;
    /// False when no such active user exists.
    fn revoke_user<'a>(&'a self, name: &'a str, now: OffsetDateTime) -> StoreFuture<'a, bool>;

    fn add_enrollment_token<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        expires_at: Option<OffsetDateTime>,
        max_uses: Option<u32>,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()>;
    /// Checks an enrollment token without using it.
    fn check_enrollment_token<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<(), EnrollmentRefusal>>;
    /// Uses the token once and records the machine, in one transaction; returns its status.
    fn enroll<'a>(
        &'a self,
        token_hash: &'a TokenHash,
        enrollment: &'a Enrollment,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, MachineStatus>;

    /// Replaces an active machine's certificate; false when no such active machine exists.
    fn renew_certificate<'a>(
        &'a self,
        machine_id: &'a str,
        cert_fingerprint: &'a str,
        cert_not_after: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;

    fn machine_by_fingerprint<'a>(
        &'a self,
        fingerprint: &'a str,
    ) -> StoreFuture<'a, Option<MachineRecord>>;
    fn touch_machine<'a>(&'a self, id: &'a str, now: OffsetDateTime) -> StoreFuture<'a, ()>;
    fn list_machines(&self) -> StoreFuture<'_, Vec<MachineSummary>>;
    fn machine<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<MachineDetail>>;
    fn count_active_machines(&self) -> StoreFuture<'_, u64>;
    /// Moves a pending machine to active. Returns the status it had, `None` if unknown.
    fn approve_machine<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<MachineStatus>>;
    /// False when no such machine exists.
    fn revoke_machine<'a>(&'a self, id: &'a str, now: OffsetDateTime) -> StoreFuture<'a, bool>;

    /// Records ticket and snapshot durably; a known idempotency key returns the existing ticket.
    fn record_ticket<'a>(
        &'a self,
        ticket: &'a TicketRecord,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, RecordedTicket>;
    fn list_tickets<'a>(&'a self, filter: &'a TicketFilter) -> StoreFuture<'a, Vec<TicketSummary>>;
    fn ticket(&self, number: u64) -> StoreFuture<'_, Option<TicketDetail>>;
    /// `None` when no such ticket exists.
    fn update_ticket<'a>(
        &'a self,
        number: u64,
        update: &'a TicketUpdate,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<()>>;
    /// False when no such ticket exists.
    fn add_comment<'a>(
        &'a self,
        number: u64,
        author: &'a str,
        body: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;

    /// Records a heartbeat: last seen, plus one vitals row (history bounded by
    /// [`VITALS_HISTORY`]).
    fn record_heartbeat<'a>(
        &'a self,
        machine_id: &'a str,
        vitals_json: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()>;
    /// Newest first, at most `limit` vitals documents (JSON) with their receive times.
    fn vitals<'a>(
        &'a self,
        machine_id: &'a str,
        limit: u32,
    ) -> StoreFuture<'a, Vec<(OffsetDateTime, String)>>;

    /// Queues work for a machine; returns its id.
    fn queue_work<'a>(
        &'a self,
        machine_id: &'a str,
        kind: &'a str,
        ticket: Option<u64>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, u64>;
    /// Marks the machine's queued, unexpired work delivered and returns it (id, kind); expires
    /// what is past its expiry.
    fn take_work<'a>(
        &'a self,
        machine_id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<(u64, String)>>;
    /// A piece of work, with its expiry applied lazily. `None` when unknown.
    fn work(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<WorkRecord>>;
    /// Finishes work delivered to (or queued for) `machine_id`; attaches a snapshot to the
    /// work's ticket with a note. `None` when no such open work exists for that machine.
    fn finish_work<'a>(
        &'a self,
        machine_id: &'a str,
        id: u64,
        outcome: &'a WorkOutcome,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<WorkRecord>>;

    /// Trusts a key to publish catalogs; false when it was already trusted.
    fn trust_catalog_key<'a>(&'a self, key: &'a CatalogKeyRecord) -> StoreFuture<'a, bool>;
    fn catalog_keys(&self) -> StoreFuture<'_, Vec<CatalogKeyRecord>>;
    fn current_catalog(&self) -> StoreFuture<'_, Option<CatalogRecord>>;
    /// Publishes a verified catalog if its version moves forward (see [`PublishOutcome`]).
    fn publish_catalog<'a>(
        &'a self,
        catalog: &'a NewCatalog,
        by: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, PublishOutcome>;
    /// The current catalog's actions, sorted by id.
    fn catalog_actions(&self) -> StoreFuture<'_, Vec<StoredAction>>;
    fn catalog_action<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredAction>>;
    fn set_action_approval<'a>(
        &'a self,
        id: &'a str,
        required: bool,
        by: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()>;

    /// Records a run request; one that needs no approval is queued as work in the same
    /// transaction.
    fn create_run<'a>(
        &'a self,
        run: &'a NewRunRecord,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, RunRecord>;
    /// A run, with expiry of its approval and its work applied. `None` when unknown.
    fn run(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<RunRecord>>;
    fn runs<'a>(
        &'a self,
        filter: &'a RunFilter,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<RunRecord>>;
    /// The run delivered as work `work_id`.
    fn run_by_work(&self, work_id: u64) -> StoreFuture<'_, Option<RunRecord>>;
    /// Approves (and dispatches, as work expiring at `dispatch_expires_at`) or denies a pending
    /// request. `None` when no such pending, unexpired request exists.
    #[allow(clippy::too_many_arguments)]
    fn decide_run<'a>(
        &'a self,
        id: u64,
        approve: bool,
        by: &'a str,
        reason: Option<&'a str>,
        dispatch_expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<RunRecord>>;
    /// Records the agent's progress on a run delivered to `machine_id`; false when no such open
    /// run exists.
    fn run_progress<'a>(
        &'a self,
        machine_id: &'a str,
        work_id: u64,
        stage: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;
    /// Finishes a run delivered to `machine_id`, with a timeline note on its ticket. `None`
    /// when no such open run exists.
    fn finish_run<'a>(
        &'a self,
        machine_id: &'a str,
        work_id: u64,
        finish: &'a RunFinish,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<RunRecord>>;

    /// Appends one entry to the audit log, chained to the last one, and returns it as stored.
    /// Appends are serialised so the chain stays a single line.
    fn append_audit<'a>(
        &'a self,
        entry: &'a NewAuditEntry,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, AuditEntry>;
    /// Audit entries matching `filter`, ordered by `seq`. A stored row that cannot be read
    /// (tampered with outside the collector) is listed with a `hash` starting with
    /// [`lifeline_shared::v1::audit::UNREADABLE_PREFIX`], so verification reports it as altered.
    fn list_audit<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Vec<AuditEntry>>;
    /// Adds a comment the end user sees (a public reply); otherwise like [`Store::add_comment`].
    fn add_public_comment<'a>(
        &'a self,
        number: u64,
        author: &'a str,
        body: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;
    /// `machine_id`'s newest tickets (at most `limit`, newest first) with their public comments
    /// only: what the machine's end user may see.
    fn machine_tickets<'a>(
        &'a self,
        machine_id: &'a str,
        limit: u32,
    ) -> StoreFuture<'a, Vec<MachineTicket>>;

    /// Starts a web console session.
    fn create_web_session<'a>(&'a self, session: &'a NewWebSession) -> StoreFuture<'a, ()>;
    /// The session whose id hashes to `id_hash`; `None` when unknown (expiry is the caller's).
    fn web_session<'a>(
        &'a self,
        id_hash: &'a TokenHash,
    ) -> StoreFuture<'a, Option<WebSessionRecord>>;
    /// Records that the session was used at `now` (its idle timeout starts again).
    fn touch_web_session<'a>(
        &'a self,
        id_hash: &'a TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()>;
    /// Ends a session; false when there was none.
    fn delete_web_session<'a>(&'a self, id_hash: &'a TokenHash) -> StoreFuture<'a, bool>;
    /// Deletes sessions past their absolute end at `now` or unused since `idle_before`;
    /// returns how many.
    fn delete_stale_web_sessions(
        &self,
        now: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> StoreFuture<'_, u64>;
    /// How many tickets have each status (statuses without tickets are left out).
    fn ticket_status_counts(&self) -> StoreFuture<'_, Vec<(TicketStatus, u64)>>;
    /// The newest snapshot a machine sent (with a ticket or as a live inspection): when it was
    /// received, and the document as JSON.
    fn latest_snapshot<'a>(
        &'a self,
        machine_id: &'a str,
    ) -> StoreFuture<'a, Option<(OffsetDateTime, String)>>;
    /// The PNG screenshot attached to ticket `number`, if any.
    fn ticket_screenshot(&self, number: u64) -> StoreFuture<'_, Option<Vec<u8>>>;
}
