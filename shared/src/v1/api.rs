//! HTTP API of the collector (version 1): paths, headers, request and response bodies.
//!
//! Both the agent and the collector's own client subcommands speak this; the collector serves it.
//! Enumerations are closed sets with snake_case names on the wire; free text is free text and
//! is treated as hostile by whoever displays it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::findings::{Finding, Severity};
use crate::v1::snapshot::Snapshot;

/// Header carrying the agent's idempotency key on `POST /api/v1/agent/tickets`.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest idempotency key the collector accepts.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 128;
/// Longest ticket description, in characters.
pub const DESCRIPTION_MAX_LEN: usize = 8 * 1024;
/// Longest comment, in characters.
pub const COMMENT_MAX_LEN: usize = 16 * 1024;
/// Largest screenshot a ticket may carry, in bytes of PNG (before base64).
pub const SCREENSHOT_MAX_BYTES: usize = 4 * 1024 * 1024;
/// The 8 bytes every PNG file starts with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Paths of the API. `{n}`, `{id}` and `{name}` are path parameters.
pub mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const METRICS: &str = "/metrics";
    pub const ENROLL: &str = "/api/v1/enroll";
    pub const AGENT_TICKETS: &str = "/api/v1/agent/tickets";
    pub const AGENT_MACHINE: &str = "/api/v1/agent/machine";
    pub const AGENT_RENEW: &str = "/api/v1/agent/renew";
    pub const AGENT_HEARTBEAT: &str = "/api/v1/agent/heartbeat";
    /// Long-poll for work: `?wait_secs=N`.
    pub const AGENT_WORK: &str = "/api/v1/agent/work";
    /// `POST` a work result: `/api/v1/agent/work/{id}/result`.
    pub const AGENT_WORK_RESULT: &str = "/api/v1/agent/work/{id}/result";
    /// `POST` to queue a live inspection of a machine.
    pub const MACHINE_INSPECT: &str = "/api/v1/machines/{id}/inspect";
    /// `GET` where a piece of work stands: `?wait_secs=N` waits for a change.
    pub const WORK: &str = "/api/v1/work/{id}";
    pub const TICKETS: &str = "/api/v1/tickets";
    /// `GET` a ticket's screenshot as `image/png` (404 when it has none).
    pub const TICKET_SCREENSHOT: &str = "/api/v1/tickets/{n}/screenshot";
    pub const MACHINES: &str = "/api/v1/machines";
    pub const USERS: &str = "/api/v1/users";
    /// `POST` to create an enrollment token; `GET` the list (never the tokens themselves).
    pub const ENROLLMENT_TOKENS: &str = "/api/v1/enrollment-tokens";
    /// `POST` to revoke the enrollment token named by its prefix (or its id, for tokens made
    /// before prefixes were stored).
    pub const ENROLLMENT_TOKEN_REVOKE: &str = "/api/v1/enrollment-tokens/{prefix}/revoke";
    /// `POST` how a delivered run is going: `/api/v1/agent/work/{id}/progress`.
    pub const AGENT_WORK_PROGRESS: &str = "/api/v1/agent/work/{id}/progress";
    /// `GET` the published catalog; `POST` a signed catalog to publish it.
    pub const CATALOG: &str = "/api/v1/catalog";
    /// `GET` the keys trusted to publish; `POST` to trust one.
    pub const CATALOG_KEYS: &str = "/api/v1/catalog/keys";
    pub const ACTIONS: &str = "/api/v1/actions";
    /// `PUT` whether every run of an action needs an admin's approval.
    pub const ACTION_APPROVAL: &str = "/api/v1/actions/{id}/approval";
    /// `POST` a run request; `GET` the list (`?state=awaiting_approval`).
    pub const RUNS: &str = "/api/v1/runs";
    /// `GET` where a run stands: `?wait_secs=N` waits for a change.
    pub const RUN: &str = "/api/v1/runs/{id}";
    pub const RUN_APPROVE: &str = "/api/v1/runs/{id}/approve";
    pub const RUN_DENY: &str = "/api/v1/runs/{id}/deny";
    /// `GET` audit entries in order: `?since=RFC3339&actor=NAME&after_seq=N&limit=N`.
    pub const AUDIT: &str = "/api/v1/audit";
    /// `GET` the collector's own verification of the audit chain: `?head=HASH`.
    pub const AUDIT_VERIFY: &str = "/api/v1/audit/verify";
    /// `GET` the OpenAPI 3.1 description of this API.
    pub const OPENAPI: &str = "/api/v1/openapi.json";
    /// `POST` a ticket up to a higher tier (service levels and escalation, issue 9).
    pub const TICKET_ESCALATE: &str = "/api/v1/tickets/{n}/escalate";
}

/// Body of every error response: `{"error": "what is wrong"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
}

/// Body of `GET /healthz`: `{"status": "ok"}` (200) when this collector can serve, or
/// `{"status": "unavailable", "reason": "..."}` (503) when it cannot, so a load balancer sends
/// agents elsewhere. The reason names what failed, never a secret or an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A value outside a closed set of names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what} (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Declares a closed, snake_case enumeration with `as_str`, `Display` and `FromStr`.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::v1::api::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::v1::api::UnknownName {
                        what: $what,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }
        }
    };
}

pub(crate) use names;

names!(
    /// How urgent the end user says the problem is.
    Urgency, "urgency", { Low => "low", Normal => "normal", High => "high" }
);

names!(
    /// Priority a technician works by. Ordered `Low < Normal < High < Critical`.
    Priority, "priority", { Low => "low", Normal => "normal", High => "high", Critical => "critical" }
);

names!(
    /// Where a ticket is in its life.
    TicketStatus, "status", {
        New => "new",
        Open => "open",
        InProgress => "in_progress",
        WaitingOnUser => "waiting_on_user",
        Resolved => "resolved",
        Closed => "closed",
    }
);

names!(
    /// Role of a person using the technician/admin API.
    Role, "role", { Technician => "technician", Admin => "admin" }
);

names!(
    /// Whether an enrolled machine may still talk to the collector.
    MachineStatus, "machine status", {
        Pending => "pending",
        Active => "active",
        Revoked => "revoked",
    }
);

impl Priority {
    /// The priority a new ticket gets: the user's urgency, raised by what the findings show.
    /// A critical finding makes any ticket at least high; a warning makes a low one normal.
    pub fn initial(urgency: Urgency, worst: Option<Severity>) -> Priority {
        let from_urgency = match urgency {
            Urgency::Low => Priority::Low,
            Urgency::Normal => Priority::Normal,
            Urgency::High => Priority::High,
        };
        let from_findings = match worst {
            Some(Severity::Critical) => Priority::High,
            Some(Severity::Warning) => Priority::Normal,
            Some(Severity::Info) | None => Priority::Low,
        };
        let base = from_urgency.max(from_findings);
        if urgency == Urgency::High && worst == Some(Severity::Critical) {
            Priority::Critical
        } else {
            base
        }
    }
}

/// Escalation tier, 1 to 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Tier(u8);

/// A tier outside 1–3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tier {0} is out of range (expected 1, 2 or 3)")]
pub struct BadTier(pub u8);

impl Tier {
    pub const FIRST: Tier = Tier(1);

    pub fn new(value: u8) -> Result<Tier, BadTier> {
        if (1..=3).contains(&value) {
            Ok(Tier(value))
        } else {
            Err(BadTier(value))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Tier {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(3))
            .description(Some("Escalation tier, 1 to 3"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Tier {}

impl TryFrom<u8> for Tier {
    type Error = BadTier;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Tier::new(value)
    }
}

impl From<Tier> for u8 {
    fn from(tier: Tier) -> u8 {
        tier.0
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: u8 = s
            .parse()
            .map_err(|_| format!("tier {s:?} is not a number (expected 1, 2 or 3)"))?;
        Tier::new(value).map_err(|e| e.to_string())
    }
}

/// `POST /api/v1/enroll`, authenticated by an enrollment token (bearer). When the agent presents
/// its current client certificate in the TLS handshake, the collector keeps its machine id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// PKCS#10 certificate signing request, PEM. The key pair never leaves the agent.
    pub csr_pem: String,
    /// Host name the agent reports, for display only.
    pub hostname: String,
}

/// `POST /api/v1/agent/renew`, authenticated by the agent's current client certificate: a new
/// certificate for a new key pair, same machine id. The old certificate stops working.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewRequest {
    pub csr_pem: String,
}

/// Answer to a successful enrollment or renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub machine_id: String,
    /// The agent's client certificate, PEM, signed by the collector's CA.
    pub certificate_pem: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// True when an existing machine was re-enrolled and kept its id.
    pub reenrolled: bool,
    /// `pending` when the collector holds new machines until an admin approves them.
    pub status: MachineStatus,
    /// The keys the collector trusts to sign action catalogs. An agent enrolled without
    /// `--catalog-key` trusts these on first use and prints their fingerprints.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub catalog_keys: Vec<crate::v1::catalog::PublicKey>,
}

/// `POST /api/v1/agent/tickets` body (JSON, usually zstd-compressed with `Content-Encoding: zstd`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTicket {
    pub description: String,
    #[serde(default = "default_urgency")]
    pub urgency: Urgency,
    /// The OS user who reported the problem.
    #[serde(default)]
    pub os_user: Option<String>,
    /// The machine's state when the ticket was filed; absent when the agent's offline spool had
    /// to drop it to stay within its size bound.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub snapshot: Option<Snapshot>,
    /// A screenshot of the user's screen, base64 (standard alphabet, padded) of a PNG of at
    /// most [`SCREENSHOT_MAX_BYTES`]; only when the user turned it on in the help window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screenshot_png: Option<String>,
}

/// A ticket's screenshot as it goes on the wire: base64 of the PNG.
pub fn encode_screenshot(png: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(png)
}

/// Checks and decodes a ticket's `screenshot_png`: base64, a PNG signature, at most
/// [`SCREENSHOT_MAX_BYTES`]. The error names the field.
pub fn decode_screenshot(base64_png: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    // Refuse an oversized value before decoding it.
    if base64_png.len() > SCREENSHOT_MAX_BYTES.div_ceil(3) * 4 {
        return Err(format!(
            "screenshot_png is larger than {} MiB",
            SCREENSHOT_MAX_BYTES / (1024 * 1024)
        ));
    }
    let png = base64::engine::general_purpose::STANDARD
        .decode(base64_png)
        .map_err(|e| format!("screenshot_png is not valid base64: {e}"))?;
    if png.len() > SCREENSHOT_MAX_BYTES {
        return Err(format!(
            "screenshot_png is larger than {} MiB",
            SCREENSHOT_MAX_BYTES / (1024 * 1024)
        ));
    }
    if !png.starts_with(&PNG_SIGNATURE) {
        return Err("screenshot_png is not a PNG image".to_owned());
    }
    Ok(png)
}

fn default_urgency() -> Urgency {
    Urgency::Normal
}

/// Answer to `POST /api/v1/agent/tickets`: the ticket number, also for a replayed idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketCreated {
    pub number: u64,
    /// False when the idempotency key had been seen and the existing ticket is returned.
    pub created: bool,
}

/// One row of the ticket queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketSummary {
    pub number: u64,
    pub machine_id: String,
    pub hostname: String,
    pub description: String,
    pub urgency: Urgency,
    pub priority: Priority,
    pub status: TicketStatus,
    pub tier: Tier,
    pub assignee: Option<String>,
    /// Severity of the worst finding, if any.
    pub worst_finding: Option<Severity>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    // Service levels (issue 9): due times, time left and state of the ticket's targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<crate::v1::sla::TicketSla>,
}

/// A technician's comment on a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Comment {
    pub author: String,
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// A reply the end user sees (in the help window, through their agent); comments are
    /// internal to the help desk by default.
    #[serde(default)]
    pub public: bool,
}

/// A snapshot attached to a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttachedSnapshot {
    pub id: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub snapshot: Snapshot,
}

/// `GET /api/v1/tickets/{n}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketDetail {
    #[serde(flatten)]
    pub summary: TicketSummary,
    pub os_user: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub first_response_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// Findings the collector computed from the first snapshot, worst first.
    pub findings: Vec<Finding>,
    pub comments: Vec<Comment>,
    pub snapshots: Vec<AttachedSnapshot>,
    /// Whether the ticket came with a screenshot (`GET` [`paths::TICKET_SCREENSHOT`]).
    #[serde(default)]
    pub has_screenshot: bool,
    // Recurring problems and knowledge (issue 9).
    /// How the ticket was resolved, as the technician wrote it (`--note`).
    #[serde(default)]
    pub resolution_note: Option<String>,
    /// Fingerprint keys of its warning and critical findings (`disk.full:/`, `dns.fail`).
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// The end user's answers to "Did this fix it?", oldest first (issue 9).
    #[serde(default)]
    pub feedback: Vec<crate::v1::feedback::Feedback>,
}

/// Query of `GET /api/v1/tickets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TicketStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// A user name; `""` finds unassigned tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// A ticket number (`12` or `#12`), a reference (`LL-7KQ2-M9XD`), or text found in the
    /// description or the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Order of the answer; newest first when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<TicketSort>,
}

names!(
    /// How a ticket list is ordered: newest first, highest priority first, oldest first, or the
    /// soonest service-level due time first (paused and finished tickets last).
    TicketSort, "sort order", {
        Newest => "newest",
        Priority => "priority",
        Age => "age",
        Due => "due",
    }
);

/// `PATCH /api/v1/tickets/{n}`: fields left out stay as they are. `assignee: ""` unassigns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TicketStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    // Recurring problems and knowledge (issue 9).
    /// How the problem was solved; only with `status` resolved or closed, or on a ticket that
    /// already is. Kept on the ticket and added to its timeline; searchable with `kb search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_note: Option<String>,
}

impl TicketUpdate {
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.priority.is_none()
            && self.tier.is_none()
            && self.assignee.is_none()
            && self.resolution_note.is_none()
    }
}

/// `POST /api/v1/tickets/{n}/comments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewComment {
    pub body: String,
    /// Shown to the end user who filed the ticket; internal when absent or false.
    #[serde(default)]
    pub public: bool,
}

/// An enrolled machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineSummary {
    pub id: String,
    pub hostname: String,
    pub status: MachineStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub certificate_not_after: OffsetDateTime,
    pub open_tickets: u64,
    /// Heard from within `work::OFFLINE_AFTER_SECS` (computed by the collector when answering).
    #[serde(default)]
    pub online: bool,
}

/// `GET /api/v1/machines/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineDetail {
    #[serde(flatten)]
    pub summary: MachineSummary,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    pub tickets: Vec<TicketSummary>,
    /// The newest heartbeat's figures.
    #[serde(default)]
    pub last_vitals: Option<crate::v1::vitals::Vitals>,
    /// Recent heartbeats, newest first (bounded).
    #[serde(default)]
    pub recent_vitals: Vec<VitalsSample>,
}

/// One heartbeat as the collector received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VitalsSample {
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    pub vitals: crate::v1::vitals::Vitals,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    /// Where the user gets notifications (tickets assigned to them), optional (issue 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A technician or admin account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSummary {
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Where notifications go (issue 9).
    #[serde(default)]
    pub email: Option<String>,
    /// The admin who created the account; none for the first admin and older accounts.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// Answer to `POST /api/v1/users`: the bearer token, shown this once and stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserCreated {
    pub name: String,
    pub role: Role,
    pub token: String,
}

/// `POST /api/v1/enrollment-tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEnrollmentToken {
    /// Seconds until the token expires; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    /// How many enrollments the token allows; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
}

/// Answer to `POST /api/v1/enrollment-tokens`: the token, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentTokenCreated {
    pub token: String,
    /// The token's first characters, which name it in the list and to revoke it.
    #[serde(default)]
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub max_uses: Option<u32>,
}

/// An enrollment token as `GET /api/v1/enrollment-tokens` lists it: never the token, only its
/// first characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollmentTokenInfo {
    pub id: u64,
    /// `lle_` and the next 8 characters; none for tokens made before prefixes were stored
    /// (revoke those by id).
    pub prefix: Option<String>,
    /// The admin who created it (`collector`: the token printed at first start).
    pub created_by: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Never when absent.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    pub uses: u64,
    /// Unlimited when absent.
    pub max_uses: Option<u32>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// How many of its newest tickets an agent gets from `GET /api/v1/agent/tickets`.
pub const MACHINE_TICKETS_LIMIT: u32 = 20;

/// One of the calling machine's tickets as its end user sees it (`GET /api/v1/agent/tickets`):
/// status and the technicians' public replies, nothing internal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MachineTicket {
    pub number: u64,
    pub description: String,
    pub status: TicketStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Public comments, oldest first.
    pub replies: Vec<Reply>,
    /// Resolved and not answered yet: the end user is asked "Did this fix it?" (issue 9).
    #[serde(default)]
    pub feedback_wanted: bool,
}

/// A technician's public reply to an end user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reply {
    pub author: String,
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screenshots_are_checked_and_the_errors_name_the_field() {
        let png = [&PNG_SIGNATURE[..], b"data"].concat();
        assert_eq!(decode_screenshot(&encode_screenshot(&png)).unwrap(), png);
        for bad in [
            "not base64!".to_owned(),
            encode_screenshot(b"GIF89a not a png"),
            encode_screenshot(&[&PNG_SIGNATURE[..], &vec![0; SCREENSHOT_MAX_BYTES]].concat()),
        ] {
            let error = decode_screenshot(&bad).unwrap_err();
            assert!(error.contains("screenshot_png"), "{error}");
        }
    }

    #[test]
    fn closed_names_round_trip_and_reject_unknown_values() {
        for status in TicketStatus::ALL {
            assert_eq!(status.as_str().parse::<TicketStatus>().unwrap(), *status);
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        let err = "pending".parse::<TicketStatus>().unwrap_err();
        assert!(err.to_string().contains("in_progress"), "{err}");
    }

    #[test]
    fn tier_outside_one_to_three_is_refused_on_the_wire() {
        assert!(serde_json::from_str::<TicketUpdate>(r#"{"tier": 4}"#).is_err());
        assert!(serde_json::from_str::<TicketUpdate>(r#"{"tier": 0}"#).is_err());
        let ok: TicketUpdate = serde_json::from_str(r#"{"tier": 2}"#).unwrap();
        assert_eq!(ok.tier, Some(Tier::new(2).unwrap()));
    }

    #[test]
    fn initial_priority_is_raised_by_findings_not_lowered() {
        use Severity::*;
        assert_eq!(Priority::initial(Urgency::Low, None), Priority::Low);
        assert_eq!(
            Priority::initial(Urgency::Low, Some(Warning)),
            Priority::Normal
        );
        assert_eq!(
            Priority::initial(Urgency::Normal, Some(Critical)),
            Priority::High
        );
        assert_eq!(Priority::initial(Urgency::High, Some(Info)), Priority::High);
        assert_eq!(
            Priority::initial(Urgency::High, Some(Critical)),
            Priority::Critical
        );
    }

    #[test]
    fn unknown_fields_in_requests_are_refused() {
        assert!(serde_json::from_str::<NewComment>(r#"{"body":"x","machine_id":"m"}"#).is_err());
    }
}
