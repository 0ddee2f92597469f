//! Storage behind one interface: the `Store` trait, its records and errors.
//!
//! Handlers only see `dyn Store`; `sqlite` is the embedded implementation and `postgres` the one
//! for several collectors on one database, each with its own migrations. Every method takes `now`
//! from the caller's clock. A method that answers an agent's report returns only after the data
//! is durably committed.

pub mod sqlite;

// PostgreSQL store (issue 8): the second backend, what both share, and the tests both run.
mod knowledge_sql;
pub mod postgres;
mod sql;
mod sql_impl;
#[cfg(test)]
mod tests;
// Several collectors on one database (issue 8, second part): LISTEN/NOTIFY between them.
mod notifications;
pub mod secrets;

use std::future::Future;
use std::pin::Pin;

use lifeline_shared::findings::{Finding, Severity};
use lifeline_shared::v1::api::{
    MachineDetail, MachineStatus, MachineSummary, MachineTicket, Priority, Role, TicketDetail,
    TicketFilter, TicketStatus, TicketSummary, TicketUpdate, Tier, Urgency, UserSummary,
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
    #[error(
        "the action is from catalog version {version}, but version {current} is published now: \
         nothing was queued (look at the action again and request the run again)"
    )]
    CatalogReplaced { version: u64, current: u64 },
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
    #[error("enrollment token has been revoked")]
    Revoked,
}

/// An enrollment token to store: its hash and the non-secret prefix that names it.
#[derive(Debug, Clone)]
pub struct EnrollmentTokenRecord {
    pub token_hash: TokenHash,
    /// The token's first characters (`crate::secret::token_prefix`).
    pub prefix: String,
    /// Who created it: an admin's name, or `collector` at first start.
    pub created_by: String,
    pub expires_at: Option<OffsetDateTime>,
    pub max_uses: Option<u32>,
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
    /// Published; `expired` are the waiting requests and queued runs of older versions that
    /// publishing ended (in the same transaction).
    Published {
        catalog: CatalogRecord,
        expired: Vec<ExpiredRun>,
    },
    /// Exactly this catalog (same version, same digest) is already the current one.
    Unchanged(CatalogRecord),
    /// Older than the current catalog: catalogs only move forward.
    Rollback { current: u64 },
    /// Same version as the current catalog but different content.
    VersionReused { version: u64 },
}

/// A run request or queued run that a newer catalog ended before it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredRun {
    pub id: u64,
    pub machine_id: String,
    pub action_id: String,
    /// The version its action came from (`None` for runs recorded before versions were kept).
    pub catalog_version: Option<u64>,
    /// True when it was waiting for an approval, false when it was queued for its machine.
    pub was_awaiting_approval: bool,
    /// What the technician sees, e.g. `catalog version 3 replaced by 4`.
    pub reason: String,
}

/// Why a run from catalog `old` cannot go ahead once catalog `new` is published.
pub fn catalog_replaced(old: Option<u64>, new: u64) -> String {
    match old {
        Some(old) => format!("catalog version {old} replaced by {new}"),
        None => format!("an older catalog version replaced by {new}"),
    }
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
    /// The catalog version the signed action belongs to; a newer published catalog refuses
    /// the request.
    pub catalog_version: u64,
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
    /// The catalog version of its action (`None` for runs recorded before versions were kept).
    pub catalog_version: Option<u64>,
    /// Why it expired before it ran, when a newer catalog ended it.
    pub expired_reason: Option<String>,
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

// ---- Satisfaction, webhooks and e-mail (issue 9) ----

/// Why an end user's answer to "Did this fix it?" was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackRefusal {
    /// No such ticket on the calling machine (another machine's ticket looks the same).
    NoSuchTicket,
    /// The ticket is not resolved: there is nothing to answer.
    NotResolved(TicketStatus),
    /// This resolution has been answered already.
    AlreadyAnswered,
}

/// What recording an answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackOutcome {
    /// The ticket's status afterwards.
    pub status: TicketStatus,
    /// "No": the ticket went back to open.
    pub reopened: bool,
}

/// A webhook or e-mail to queue in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub delivery_id: String,
    pub kind: lifeline_shared::v1::integrations::DeliveryKind,
    /// The webhook's name or the recipient's address.
    pub target: String,
    pub event: String,
    pub ticket: Option<u64>,
    /// The webhook's JSON body, or the e-mail as JSON.
    pub payload: String,
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: u64,
    pub delivery_id: String,
    pub kind: lifeline_shared::v1::integrations::DeliveryKind,
    pub target: String,
    pub event: String,
    pub ticket: Option<u64>,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// How an attempt went, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub at: OffsetDateTime,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    RetryAt(OffsetDateTime),
    GaveUp,
}

/// The storage interface of the collector.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Whether the database answers a trivial query now (for `/healthz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Whether any admin exists (false on a fresh database).
    fn has_admin(&self) -> StoreFuture<'_, bool>;
    /// `created_by`: the admin who adds the account (none for the first admin).
    fn add_user<'a>(
        &'a self,
        name: &'a str,
        role: Role,
        token_hash: &'a TokenHash,
        created_by: Option<&'a str>,
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
        token: &'a EnrollmentTokenRecord,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()>;
    /// Every enrollment token, oldest first (never the token or its hash).
    fn list_enrollment_tokens(
        &self,
    ) -> StoreFuture<'_, Vec<lifeline_shared::v1::api::EnrollmentTokenInfo>>;
    /// Revokes token `id`; false when there is no such token or it was already revoked.
    fn revoke_enrollment_token(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, bool>;
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
    /// A machine with its tickets (service levels as of `now`).
    fn machine<'a>(
        &'a self,
        id: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<MachineDetail>>;
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
    /// Tickets with their service levels as of `now`.
    fn list_tickets<'a>(
        &'a self,
        filter: &'a TicketFilter,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Vec<TicketSummary>>;
    /// A ticket with its service levels as of `now`.
    fn ticket(&self, number: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<TicketDetail>>;
    /// Applies `by`'s change, with its service-level consequences (a status change is a
    /// response and may pause or restart the clocks; due times follow) and a timeline note
    /// naming what changed, in one transaction. `None` when no such ticket exists.
    fn update_ticket<'a>(
        &'a self,
        number: u64,
        update: &'a TicketUpdate,
        by: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Option<()>>;
    /// A technician's comment (the first one is the first response). False when no such
    /// ticket exists.
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

    // Service levels and escalation (issue 9).

    /// Makes `policy` the one due times are computed with, and recomputes the due and at-risk
    /// times of every ticket whose clock still runs (and of finished tickets that have none,
    /// from before service levels). Returns how many tickets changed.
    fn apply_sla_policy(
        &self,
        policy: std::sync::Arc<crate::sla::Policy>,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, u64>;
    /// Moves ticket `number` up to a higher tier with a timeline note, in one transaction.
    fn escalate_ticket<'a>(
        &'a self,
        number: u64,
        escalation: &'a Escalation,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, EscalateOutcome>;
    /// Escalates every ticket with a target at risk at `now` one tier (see
    /// [`crate::sla::Policy::escalations`]), once per target, each with a timeline note. Safe
    /// to run from several collectors at once: a ticket moves only if nobody moved it first.
    fn auto_escalate(&self, now: OffsetDateTime) -> StoreFuture<'_, Vec<AutoEscalation>>;
    // Recurring problems, knowledge and reports (issue 9). Fingerprint keys are recorded with
    // each ticket (`crate::knowledge::fingerprint_keys`).
    /// Ticket `number`'s fingerprint keys and the earlier tickets sharing at least one, best
    /// match first (most shared keys, then newest), at most `limit`. `None` when no such ticket.
    fn similar_tickets(
        &self,
        number: u64,
        limit: u32,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Option<SimilarAnswer>>;
    /// Fingerprint keys of the tickets created in `[since, until]`, most tickets first (then
    /// most machines, then key), at most `limit`.
    fn recurring_problems(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
        limit: u32,
    ) -> StoreFuture<'_, Vec<RecurringRecord>>;
    /// Resolved or closed tickets with a resolution note in which every word (lower case)
    /// occurs in the description, the note or a key, most recently resolved first, at most
    /// [`KB_CANDIDATES`]; ranking is the caller's (`crate::knowledge::rank`).
    fn knowledge_candidates<'a>(
        &'a self,
        words: &'a [String],
    ) -> StoreFuture<'a, Vec<crate::knowledge::Candidate>>;
    /// Sets ticket `number`'s resolution note and adds it to its timeline as `author`'s
    /// comment, in one transaction. False when no such ticket exists.
    fn set_resolution_note<'a>(
        &'a self,
        number: u64,
        author: &'a str,
        note: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, bool>;
    /// The facts `crate::reports::summarize` needs for `[since, until]`: every ticket created
    /// by `until` that was not resolved before `since`, and the runs that ended in the window.
    fn report_facts(
        &self,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreFuture<'_, WindowFacts>;

    // ---- Satisfaction, webhooks and e-mail (issue 9) ----

    /// Records the end user's answer for the current resolution of `machine_id`'s ticket
    /// `number`, with `note` in its timeline; "no" (`fixed` false) reopens it (status open,
    /// resolved_at cleared). One transaction.
    fn record_feedback<'a>(
        &'a self,
        machine_id: &'a str,
        number: u64,
        fixed: bool,
        comment: Option<&'a str>,
        note: &'a str,
        now: OffsetDateTime,
    ) -> StoreFuture<'a, Result<FeedbackOutcome, FeedbackRefusal>>;
    /// Sets or clears a user's e-mail address; false when no such user exists.
    fn set_user_email<'a>(&'a self, name: &'a str, email: Option<&'a str>)
    -> StoreFuture<'a, bool>;
    /// The address of an active (not revoked) user, if they have one.
    fn user_email<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>>;
    /// Queues deliveries, due at once.
    fn queue_deliveries<'a>(
        &'a self,
        deliveries: &'a [NewDelivery],
        now: OffsetDateTime,
    ) -> StoreFuture<'a, ()>;
    /// Claims up to `limit` pending deliveries due at `now`: each is pushed to `lease_until`,
    /// so no other deliverer (or a later tick) takes it while it is being tried.
    fn claim_due_deliveries(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> StoreFuture<'_, Vec<DueDelivery>>;
    /// Logs an attempt and moves the delivery on (delivered, due again, or failed).
    fn finish_delivery_attempt<'a>(
        &'a self,
        id: u64,
        attempt: &'a AttemptRecord,
        outcome: AttemptOutcome,
    ) -> StoreFuture<'a, ()>;
    /// The delivery log, newest first, with every attempt.
    fn deliveries(
        &self,
        failed_only: bool,
        limit: u32,
    ) -> StoreFuture<'_, Vec<lifeline_shared::v1::integrations::Delivery>>;
    /// Makes a delivery pending again, due at `now`, with its attempt count reset (its log is
    /// kept). `None` when unknown.
    fn redeliver(
        &self,
        id: u64,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Option<lifeline_shared::v1::integrations::Delivery>>;
}

// -------------------------------------------------------------------------------------------
// Service levels and escalation (issue 9)

/// A technician's escalation of a ticket (already checked: reason given, assignee active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub to_tier: Tier,
    pub by: String,
    pub reason: String,
    /// Who takes it; `None` puts it in the tier's queue (unassigned).
    pub assignee: Option<String>,
}

/// What [`Store::escalate_ticket`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalateOutcome {
    Escalated {
        from: Tier,
    },
    NotFound,
    /// Escalation only moves up.
    NotHigher {
        current: Tier,
    },
    /// Resolved or closed tickets are reopened, not escalated.
    Finished {
        status: TicketStatus,
    },
}

/// A ticket the collector escalated on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoEscalation {
    pub number: u64,
    pub from: Tier,
    pub to: Tier,
    pub targets: Vec<crate::sla::AtRiskTarget>,
}

impl AutoEscalation {
    /// The timeline note: "Automatically escalated to tier 2: resolution due in 14m".
    pub fn note(&self) -> String {
        let why: Vec<String> = self
            .targets
            .iter()
            .map(|t| format!("{} {}", t.target.label(), crate::sla::due_in(t.left)))
            .collect();
        format!(
            "Automatically escalated to tier {}: {}",
            self.to,
            why.join(", ")
        )
    }
}

/// The timeline note of a technician's escalation.
pub fn escalation_note(from: Tier, escalation: &Escalation) -> String {
    let owner = match &escalation.assignee {
        Some(name) => format!("assigned to {name}"),
        None => format!("in the tier {} queue", escalation.to_tier),
    };
    format!(
        "Escalated from tier {from} to tier {} by {} ({owner}): {}",
        escalation.to_tier, escalation.by, escalation.reason
    )
}

/// A ticket's fields a technician changes, before or after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFields {
    pub status: TicketStatus,
    pub priority: Priority,
    pub tier: Tier,
    pub assignee: Option<String>,
}

/// The timeline note of an update: who changed what, and what it did to the clocks. `None`
/// when nothing changed.
pub fn change_note(by: &str, before: &TicketFields, after: &TicketFields) -> Option<String> {
    let mut changes = Vec::new();
    if before.status != after.status {
        let clocks = match (
            crate::sla::stops_clock(before.status),
            crate::sla::stops_clock(after.status),
        ) {
            (false, true) => " (service-level clocks paused)",
            (true, false) => " (service-level clocks running again)",
            _ => "",
        };
        changes.push(format!(
            "status {} → {}{clocks}",
            before.status, after.status
        ));
    }
    if before.priority != after.priority {
        changes.push(format!(
            "priority {} → {} (due times follow)",
            before.priority, after.priority
        ));
    }
    if before.tier != after.tier {
        changes.push(format!("tier {} → {}", before.tier, after.tier));
    }
    if before.assignee != after.assignee {
        let name = |a: &Option<String>| a.clone().unwrap_or_else(|| "nobody".to_owned());
        changes.push(format!(
            "assignee {} → {}",
            name(&before.assignee),
            name(&after.assignee)
        ));
    }
    (!changes.is_empty()).then(|| format!("{by} changed {}", changes.join(", ")))
}

// Recurring problems, knowledge and reports (issue 9).

/// Most candidates [`Store::knowledge_candidates`] returns.
pub const KB_CANDIDATES: u32 = 500;

/// An earlier ticket with some of the same fingerprint keys.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarRecord {
    pub summary: TicketSummary,
    pub resolved_at: Option<OffsetDateTime>,
    pub resolution_note: Option<String>,
    pub shared_keys: Vec<String>,
    /// Runs requested with this ticket, oldest first.
    pub runs: Vec<RunRecord>,
}

/// Answer of [`Store::similar_tickets`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarAnswer {
    /// The ticket's own keys.
    pub keys: Vec<String>,
    pub similar: Vec<SimilarRecord>,
}

/// One fingerprint key over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurringRecord {
    pub key: String,
    pub tickets: u64,
    pub machines: u64,
    pub open: u64,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    /// The newest resolved ticket with this key and a resolution note: (number, note).
    pub example: Option<(u64, String)>,
}

/// Answer of [`Store::report_facts`]; runs become `crate::reports::RunFacts` once their state
/// is worked out (`http::actions::run_state`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowFacts {
    pub tickets: Vec<crate::reports::TicketFacts>,
    pub runs: Vec<RunRecord>,
}
