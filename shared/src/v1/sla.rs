//! Service levels on the wire: a ticket's targets (first response, resolution) with their due
//! times, time left and state, and the escalation request.
//!
//! The collector computes all of it with its own clock, so a client shows what the collector
//! sees; times left are in the collector's service-level time (business hours when it has them).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::v1::api::{Tier, names};

names!(
    /// Where a service-level target stands.
    ///
    /// `ok`: running, more than the at-risk share left; `at_risk`: running, little left;
    /// `breached`: missed (final, also once met late); `met`: met in time; `paused`: the clock
    /// stands still (waiting on the user, resolved or closed) and the target was not missed.
    SlaState, "service-level state", {
        Ok => "ok",
        AtRisk => "at_risk",
        Breached => "breached",
        Met => "met",
        Paused => "paused",
    }
);

names!(
    /// The two targets of a ticket.
    SlaTarget, "service-level target", {
        FirstResponse => "first_response",
        Resolution => "resolution",
    }
);

impl SlaTarget {
    /// "first response", "resolution".
    pub fn label(self) -> &'static str {
        match self {
            SlaTarget::FirstResponse => "first response",
            SlaTarget::Resolution => "resolution",
        }
    }
}

/// One target of one ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetStatus {
    /// The target for the ticket's priority, in seconds of service-level time.
    pub target_secs: u64,
    /// When it is (or was) due. Absent while the clock is paused: the due time then moves
    /// later by the time paused.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    /// When the target was met: the first response, the resolution.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub done_at: Option<OffsetDateTime>,
    /// Seconds of service-level time left (negative: overdue by that much). While paused it is
    /// what was left when the clock stopped; once met, the margin it was met with.
    pub left_secs: i64,
    pub state: SlaState,
    /// The collector escalated the ticket one tier because this target was at risk.
    #[serde(default)]
    pub auto_escalated: bool,
}

/// A ticket's service levels (`sla` on tickets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TicketSla {
    pub first_response: TargetStatus,
    pub resolution: TargetStatus,
    /// Since when the clocks stand still (waiting on the user, resolved or closed).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub paused_since: Option<OffsetDateTime>,
    /// The soonest due time of a target not yet met (what `sort=due` orders by); absent while
    /// paused or once both are met.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_due_at: Option<OffsetDateTime>,
    /// Whether targets count business hours only (else around the clock).
    #[serde(default)]
    pub business_hours: bool,
}

impl TicketSla {
    pub fn target(&self, which: SlaTarget) -> &TargetStatus {
        match which {
            SlaTarget::FirstResponse => &self.first_response,
            SlaTarget::Resolution => &self.resolution,
        }
    }

    /// The target that is due next: the first one not yet met, if any.
    pub fn pending(&self) -> Option<(SlaTarget, &TargetStatus)> {
        [SlaTarget::FirstResponse, SlaTarget::Resolution]
            .into_iter()
            .map(|which| (which, self.target(which)))
            .find(|(_, t)| t.done_at.is_none())
    }
}

/// Longest escalation reason, in characters.
pub const ESCALATION_REASON_MAX_LEN: usize = 2000;

/// `POST /api/v1/tickets/{n}/escalate`: moves a ticket up to a higher tier. Without `assignee`
/// the ticket goes to that tier's queue (unassigned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EscalateRequest {
    pub to_tier: Tier,
    /// Why: recorded in the ticket's timeline and the audit log.
    pub reason: String,
    /// A user of the higher tier who takes the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_requests_are_strict() {
        let ok: EscalateRequest =
            serde_json::from_str(r#"{"to_tier": 2, "reason": "needs network team"}"#).unwrap();
        assert_eq!(ok.to_tier.get(), 2);
        assert!(
            serde_json::from_str::<EscalateRequest>(r#"{"to_tier": 4, "reason": "x"}"#).is_err()
        );
        assert!(serde_json::from_str::<EscalateRequest>(r#"{"to_tier": 2}"#).is_err());
        assert!(
            serde_json::from_str::<EscalateRequest>(r#"{"to_tier": 2, "reason": "x", "by": "y"}"#)
                .is_err()
        );
    }

    #[test]
    fn states_have_wire_names() {
        assert_eq!(SlaState::AtRisk.as_str(), "at_risk");
        assert_eq!("breached".parse::<SlaState>().unwrap(), SlaState::Breached);
        assert_eq!(
            serde_json::to_string(&SlaTarget::FirstResponse).unwrap(),
            "\"first_response\""
        );
    }
}
