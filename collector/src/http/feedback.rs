//! `POST /api/v1/agent/tickets/{n}/feedback`: the end user's answer to "Did this fix it?".
//!
//! The machine is the caller's client certificate, so an agent answers only for its own
//! tickets (another machine's ticket is "no such ticket", as if it did not exist). Only a
//! resolved ticket can be answered, once per resolution. "No" reopens it, notes the comment in
//! its timeline, appends a `ticket.reopen` audit entry and tells its assignee by e-mail; "yes"
//! is noted in the timeline. Both count in `lifeline_feedback_total` and go to the webhooks.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Extension, Json, Router};
use lifeline_shared::v1::feedback::{AGENT_TICKET_FEEDBACK, FeedbackRecorded, NewFeedback};
use serde_json::json;

use super::AppState;
use super::auth::AgentIdentity;
use super::body::{BodyLimits, read_json};
use super::error::ApiError;
use super::extract::Path;
use crate::audit::{self, Event};
use crate::store::FeedbackRefusal;

pub fn routes() -> Router<AppState> {
    Router::new().route(AGENT_TICKET_FEEDBACK, post(give_feedback))
}

/// The timeline entry for an answer.
fn note(fixed: bool, comment: Option<&str>) -> String {
    let mut note = if fixed {
        "The user answered \"Did this fix it?\": yes.".to_owned()
    } else {
        "The user answered \"Did this fix it?\": no. The ticket is open again.".to_owned()
    };
    if let Some(comment) = comment {
        note.push_str(&format!("\nThe user wrote: \"{comment}\""));
    }
    note
}

async fn give_feedback(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentIdentity>,
    Path(n): Path<u64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<FeedbackRecorded>, ApiError> {
    let answer: NewFeedback = read_json(&headers, body, BodyLimits::SMALL).await?;
    let comment = answer.checked_comment().map_err(ApiError::BadRequest)?;
    let recorded = state
        .store
        .record_feedback(
            &agent.machine_id,
            n,
            answer.fixed,
            comment.as_deref(),
            &note(answer.fixed, comment.as_deref()),
            state.clock.now(),
        )
        .await?;
    let outcome = match recorded {
        Ok(outcome) => outcome,
        Err(FeedbackRefusal::NoSuchTicket) => {
            return Err(ApiError::NotFound(format!(
                "no ticket #{n} from this machine"
            )));
        }
        Err(FeedbackRefusal::NotResolved(status)) => {
            return Err(ApiError::Conflict(format!(
                "ticket #{n} is {}, not resolved: there is nothing to answer yet",
                status.as_str().replace('_', " ")
            )));
        }
        Err(FeedbackRefusal::AlreadyAnswered) => {
            return Err(ApiError::Conflict(format!(
                "ticket #{n} has been answered already"
            )));
        }
    };
    let actor = audit::machine_actor(&agent.machine_id);
    metrics::counter!(
        "lifeline_feedback_total",
        "answer" => if answer.fixed { "yes" } else { "no" }
    )
    .increment(1);
    tracing::info!(machine = %agent.machine_id, number = n, fixed = answer.fixed, "feedback");
    if outcome.reopened {
        let event = Event::new(&actor, "ticket.reopen")
            .subject(format!("ticket:{n}"))
            .detail(json!({ "reason": "the user answered that it is not fixed" }));
        audit::record(&state, event).await?;
    }
    crate::integrations::feedback_given(&state, n, &actor).await;
    Ok(Json(FeedbackRecorded {
        number: n,
        status: outcome.status,
        reopened: outcome.reopened,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_note_quotes_the_comment() {
        assert_eq!(
            note(true, None),
            "The user answered \"Did this fix it?\": yes."
        );
        let no = note(false, Some("still crashes"));
        assert!(no.contains(": no. The ticket is open again."), "{no}");
        assert!(no.ends_with("\"still crashes\""), "{no}");
    }
}
