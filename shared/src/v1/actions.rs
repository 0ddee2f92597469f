//! The technician and admin side of remote actions: the published catalog, run requests,
//! approvals, and where a run stands.
//!
//! Routes (see [`crate::v1::api::paths`]):
//! - `GET /api/v1/catalog` ([`CatalogInfo`]), `POST /api/v1/catalog` (admin, a
//!   [`crate::v1::catalog::SignedCatalog`]: publish);
//! - `GET /api/v1/catalog/keys`, `POST /api/v1/catalog/keys` (admin, [`TrustKey`]);
//! - `GET /api/v1/actions` ([`ActionInfo`] list), `PUT /api/v1/actions/{id}/approval` (admin,
//!   [`ApprovalSetting`]);
//! - `POST /api/v1/runs` ([`NewRun`]), `GET /api/v1/runs[?state=awaiting_approval]`,
//!   `GET /api/v1/runs/{id}[?wait_secs=N]` ([`RunStatus`]), `POST /api/v1/runs/{id}/approve` and
//!   `/deny` (admin, [`Decision`]).
//!
//! The agent reports progress on a delivered run with `POST /api/v1/agent/work/{id}/progress`
//! ([`WorkProgress`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::findings::Finding;
use crate::v1::api::names;
use crate::v1::catalog::{KeyEndorsement, KeyId, Risk};
use crate::v1::run::RunResult;

/// Longest reason a technician or admin may give.
pub const REASON_MAX_LEN: usize = 2000;
/// How long a run waits for an admin's approval before the request expires.
pub const APPROVAL_TTL_SECS: i64 = 24 * 60 * 60;
/// How long a dispatched run waits for its machine (offline machines) before it expires.
pub const RUN_TTL_SECS: i64 = 60 * 60;

/// `GET /api/v1/catalog`: the published catalog, when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogInfo {
    pub version: u64,
    /// SHA-256 of the catalog's canonical encoding.
    pub digest: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub key_id: KeyId,
    pub actions: u64,
    pub published_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub published_at: OffsetDateTime,
}

/// Answer to `POST /api/v1/catalog`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    pub catalog: CatalogInfo,
    /// False when exactly this catalog was already published (publishing is idempotent).
    pub changed: bool,
    /// Run requests still waiting for an approval and runs still queued for their machine whose
    /// action came from an older catalog: publishing expired them (their status says why).
    #[serde(default)]
    pub expired_runs: Vec<u64>,
}

/// `POST /api/v1/catalog/keys`: trust a key to publish catalogs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustKey {
    /// The `lifeline-catalog.pub` file's text.
    pub public_key: String,
    /// An already-trusted key's endorsement of this key: relayed to agents, which accept a new
    /// key only that way once they have pinned one.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub endorsement: Option<KeyEndorsement>,
}

/// A key the collector trusts to publish catalogs (`GET /api/v1/catalog/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustedKeyInfo {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub key_id: KeyId,
    /// The `lifeline-catalog.pub` text.
    pub public_key: String,
    pub added_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub endorsed_by: Option<KeyId>,
}

/// One parameter of an action, for forms and `actions list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ParamInfo {
    pub name: String,
    /// `enum`, `integer`, `string`, `unit`, `service` or `pid`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What values fit, in words: `one of: loud, quiet`, `50 to 4096`, ...
    pub accepts: String,
    /// The values of an `enum`, in catalog order (empty for other types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Smallest and largest value of an `integer` or `pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Longest `string`, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u64>,
}

impl ParamInfo {
    /// The description of a catalog parameter.
    pub fn of(name: &str, ty: &crate::v1::catalog::ParamType) -> ParamInfo {
        use crate::v1::catalog::{PID_MAX, ParamType};
        let mut info = ParamInfo {
            name: name.to_owned(),
            kind: ty.type_name().to_owned(),
            accepts: ty.describe(),
            values: Vec::new(),
            min: None,
            max: None,
            max_len: None,
        };
        match ty {
            ParamType::Enum { values } => info.values = values.clone(),
            ParamType::Integer { min, max } => (info.min, info.max) = (Some(*min), Some(*max)),
            ParamType::Pid => (info.min, info.max) = (Some(1), Some(i64::from(PID_MAX))),
            ParamType::String { max_len, .. } => {
                info.max_len = Some(u64::try_from(*max_len).unwrap_or(u64::MAX));
            }
            ParamType::Unit | ParamType::Service => {}
        }
        info
    }
}

/// An action of the published catalog (`GET /api/v1/actions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionInfo {
    pub id: String,
    pub title: String,
    pub description: String,
    pub risk: Risk,
    pub consent: bool,
    /// Every run waits for an admin's approval (high risk, or an admin said so).
    pub requires_approval: bool,
    pub params: Vec<ParamInfo>,
    pub timeout_secs: u64,
    pub os: Vec<String>,
    pub catalog_version: u64,
}

/// `PUT /api/v1/actions/{id}/approval`: an admin marks an action as needing approval (or not,
/// for actions below high risk; high-risk actions always need it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalSetting {
    pub required: bool,
}

/// `POST /api/v1/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewRun {
    pub action: String,
    /// Machine id or host name.
    pub machine: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub ticket: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Ask for an admin's approval even when the action does not need it.
    #[serde(default)]
    pub require_approval: bool,
}

/// `POST /api/v1/runs/{id}/approve` and `/deny`. A denial needs a reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    #[serde(default)]
    pub reason: Option<String>,
}

names!(
    /// Where an approval stands.
    Approval, "approval", {
        NotNeeded => "not_needed",
        Pending => "pending",
        Approved => "approved",
        Denied => "denied",
        Expired => "expired",
    }
);

names!(
    /// Where a run stands, as technicians see it.
    RunState, "run state", {
        AwaitingApproval => "awaiting_approval",
        Denied => "denied",
        Queued => "queued",
        Delivered => "delivered",
        AwaitingConsent => "awaiting_consent",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Refused => "refused",
        Expired => "expired",
    }
);

impl RunState {
    /// True once nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Denied
                | RunState::Succeeded
                | RunState::Failed
                | RunState::Refused
                | RunState::Expired
        )
    }
}

names!(
    /// What the agent is doing with a delivered run.
    RunStage, "run stage", { AwaitingConsent => "awaiting_consent", Running => "running" }
);

/// `POST /api/v1/agent/work/{id}/progress` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkProgress {
    pub stage: RunStage,
}

/// The after-action check: findings of the rechecked sections right before and after the run,
/// as the collector computed them from the agent's snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recheck {
    pub sections: Vec<String>,
    pub before: Vec<Finding>,
    pub after: Vec<Finding>,
    /// One line per finding that changed, e.g. `disk.full (/): 97% used → cleared`.
    pub changes: Vec<String>,
}

impl Recheck {
    /// The check for people: a heading, then one line per change (untrusted text: callers
    /// escape it for where it goes).
    pub fn summary(&self) -> (String, Vec<String>) {
        let heading = format!("After-action check ({}):", self.sections.join(", "));
        let lines = if self.changes.is_empty() {
            vec!["no findings before or after".to_owned()]
        } else {
            self.changes.clone()
        };
        (heading, lines)
    }
}

/// A run as technicians and admins see it (`GET /api/v1/runs/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunStatus {
    /// The request number people use (`approve 7`).
    pub id: u64,
    /// The 128-bit id the agent runs at most once.
    pub run_id: String,
    pub action: String,
    pub action_title: String,
    pub risk: Risk,
    pub machine_id: String,
    pub hostname: String,
    pub params: BTreeMap<String, String>,
    pub requested_by: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub ticket: Option<u64>,
    pub approval: Approval,
    #[serde(default)]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub decision_reason: Option<String>,
    pub state: RunState,
    /// Why the run expired before it ran, when it was not its time running out: e.g.
    /// `catalog version 3 replaced by 4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_reason: Option<String>,
    pub machine_online: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Until when the current step may wait: the approval, or the machine picking the run up.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub result: Option<RunResult>,
    #[serde(default)]
    pub recheck: Option<Recheck>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_are_the_ones_nothing_follows() {
        let finals: Vec<&str> = RunState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            finals,
            ["denied", "succeeded", "failed", "refused", "expired"]
        );
        assert_eq!(
            "awaiting_approval".parse::<RunState>().unwrap(),
            RunState::AwaitingApproval
        );
        let err = "done".parse::<RunState>().unwrap_err().to_string();
        assert!(err.contains("not a valid run state"), "{err}");
    }

    #[test]
    fn new_runs_reject_unknown_fields() {
        let err = serde_json::from_str::<NewRun>(
            r#"{"action": "a", "machine": "m", "command": "rm -rf /"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `command`"), "{err}");
    }
}
