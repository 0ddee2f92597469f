//! Satisfaction: after a ticket is resolved, its end user answers "Did this fix it?".
//!
//! The agent posts the answer with its own client certificate to
//! [`AGENT_TICKET_FEEDBACK`] ([`NewFeedback`]); the collector accepts one answer per resolution,
//! only for the calling machine's own resolved tickets. "No" reopens the ticket. Technicians see
//! the answers on the ticket ([`Feedback`] in `TicketDetail::feedback`); the machine's ticket list
//! says which tickets wait for an answer (`MachineTicket::feedback_wanted`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::v1::api::TicketStatus;

/// `POST` the end user's answer for ticket `{n}` (agent certificate).
pub const AGENT_TICKET_FEEDBACK: &str = "/api/v1/agent/tickets/{n}/feedback";

/// Longest comment with an answer, in characters.
pub const FEEDBACK_COMMENT_MAX_LEN: usize = 2000;

/// `POST` [`AGENT_TICKET_FEEDBACK`]: did the resolution fix the problem?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewFeedback {
    /// True: "yes, it is fixed". False: "no", which reopens the ticket.
    pub fixed: bool,
    /// What the user adds, at most [`FEEDBACK_COMMENT_MAX_LEN`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl NewFeedback {
    /// The comment trimmed, `None` when blank; an error names the limit.
    pub fn checked_comment(&self) -> Result<Option<String>, String> {
        let Some(comment) = self.comment.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let length = comment.chars().count();
        if length > FEEDBACK_COMMENT_MAX_LEN {
            return Err(format!(
                "comment is {length} characters; the limit is {FEEDBACK_COMMENT_MAX_LEN}"
            ));
        }
        Ok((!comment.is_empty()).then(|| comment.to_owned()))
    }
}

/// Answer to [`AGENT_TICKET_FEEDBACK`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedbackRecorded {
    pub number: u64,
    /// The ticket's status now: `open` after a "no".
    pub status: TicketStatus,
    pub reopened: bool,
}

/// An end user's answer as technicians see it on the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Feedback {
    pub fixed: bool,
    pub comment: Option<String>,
    /// When the resolution it answers was made.
    #[serde(with = "time::serde::rfc3339")]
    pub resolved_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_trimmed_bounded_and_optional() {
        let with = |comment: Option<&str>| NewFeedback {
            fixed: false,
            comment: comment.map(str::to_owned),
        };
        assert_eq!(with(None).checked_comment(), Ok(None));
        assert_eq!(with(Some("   ")).checked_comment(), Ok(None));
        assert_eq!(
            with(Some(" still slow \n")).checked_comment(),
            Ok(Some("still slow".to_owned()))
        );
        let long = "x".repeat(FEEDBACK_COMMENT_MAX_LEN + 1);
        let error = with(Some(&long)).checked_comment().unwrap_err();
        assert!(error.contains("limit is 2000"), "{error}");
        assert!(serde_json::from_str::<NewFeedback>(r#"{"fixed":true,"machine":"m"}"#).is_err());
    }
}
