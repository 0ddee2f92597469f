//! Work the collector hands to agents (live inspections now, approved actions later), heartbeats,
//! and the answers.
//!
//! Agents fetch work by long-poll: `GET /api/v1/agent/work?wait_secs=25` returns at once when work
//! is queued for the machine, else an empty batch when the wait ends. Results go back with
//! `POST /api/v1/agent/work/{id}/result`. Technicians queue an inspection with
//! `POST /api/v1/machines/{machine}/inspect` and follow it with `GET /api/v1/work/{id}`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::v1::run::{RunOutcome, RunRequest};
use crate::v1::snapshot::Snapshot;
use crate::v1::vitals::Vitals;

/// Longest long-poll wait a collector grants, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// How long an inspection waits for an offline machine before it expires.
pub const INSPECTION_TTL_SECS: i64 = 15 * 60;
/// A machine without a heartbeat for this long is shown offline.
pub const OFFLINE_AFTER_SECS: i64 = 150;
/// Largest work result body (`POST /api/v1/agent/work/{id}/result`) a collector accepts, in
/// bytes as sent (zstd-compressed). Agents cut what they send to fit, so nothing is lost to a
/// "413 Payload Too Large".
pub const WORK_RESULT_MAX_WIRE_BYTES: usize = 8 * 1024 * 1024;
/// Largest work result body a collector accepts once decompressed (the JSON), in bytes.
pub const WORK_RESULT_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Most runs an agent carries out at once; it refuses a further run until one has finished.
pub const CONCURRENT_RUNS_MAX: usize = 4;

/// `POST /api/v1/agent/heartbeat` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    pub vitals: Vitals,
}

/// Answer to a heartbeat: the collector's clock, so the agent can report its clock offset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAck {
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: OffsetDateTime,
}

/// Answer to the long-poll: zero or more work items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkBatch {
    pub items: Vec<WorkItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkItem {
    pub id: u64,
    pub kind: WorkKind,
}

/// What to do. An agent that does not know a kind reports it as unsupported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WorkKind {
    /// Take a fresh snapshot and send it back.
    Inspect,
    /// Check and run a signed action (see [`crate::v1::run`]); answer with [`WorkResult::Run`].
    Run {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        request: Box<RunRequest>,
    },
    #[serde(other)]
    Unsupported,
}

/// `POST /api/v1/agent/work/{id}/result` body (JSON, usually zstd-compressed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WorkResult {
    Snapshot {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        snapshot: Box<Snapshot>,
    },
    Failed {
        error: String,
    },
    /// How a run ended, with the action's `recheck` sections collected right before and right
    /// after it (absent when the run was refused or the action rechecks nothing).
    Run {
        run: RunOutcome,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        before: Option<Box<Snapshot>>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        after: Option<Box<Snapshot>>,
    },
}

/// `POST /api/v1/machines/{machine}/inspect` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InspectRequest {
    /// Attach the snapshot to this ticket when it arrives.
    #[serde(default)]
    pub ticket: Option<u64>,
}

/// Where a piece of work stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WorkState {
    Queued,
    Delivered,
    Done,
    Failed,
    Expired,
}

impl WorkState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkState::Queued => "queued",
            WorkState::Delivered => "delivered",
            WorkState::Done => "done",
            WorkState::Failed => "failed",
            WorkState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<WorkState> {
        [
            WorkState::Queued,
            WorkState::Delivered,
            WorkState::Done,
            WorkState::Failed,
            WorkState::Expired,
        ]
        .into_iter()
        .find(|w| w.as_str() == s)
    }

    /// True once nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            WorkState::Done | WorkState::Failed | WorkState::Expired
        )
    }
}

/// `GET /api/v1/work/{id}` answer (also returned when an inspection is queued).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkStatus {
    pub id: u64,
    pub machine_id: String,
    pub hostname: String,
    pub kind: WorkKind,
    pub state: WorkState,
    pub machine_online: bool,
    pub ticket: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub snapshot: Option<Box<Snapshot>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_work_kinds_parse_as_unsupported() {
        let item: WorkItem =
            serde_json::from_str(r#"{"id": 7, "kind": {"type": "teleport", "to": "mars"}}"#)
                .unwrap();
        assert_eq!(item.kind, WorkKind::Unsupported);
        let item: WorkItem =
            serde_json::from_str(r#"{"id": 8, "kind": {"type": "inspect"}}"#).unwrap();
        assert_eq!(item.kind, WorkKind::Inspect);
    }

    #[test]
    fn work_states_round_trip_through_their_names() {
        for s in ["queued", "delivered", "done", "failed", "expired"] {
            assert_eq!(WorkState::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(WorkState::parse("lost"), None);
    }
}
