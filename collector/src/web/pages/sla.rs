//! Service levels in the console: the due-time cell of the queue, the ticket page's card with
//! both targets, and its escalation form (handed to the API's handler).

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Form};
use lifeline_shared::v1::api::{TicketSummary, Tier};
use lifeline_shared::v1::sla::{EscalateRequest, TargetStatus, TicketSla};
use serde::Deserialize;

use super::ticket::{back_to, ticket_number};
use super::{Choice, label};
use crate::http::{AppState, escalations};
use crate::sla::{describe, human};
use crate::web::session::ConsoleUser;
use crate::web::{PageError, form, json_body, when};

/// The queue's "Due" cell: the next target not yet met.
#[derive(Debug, Clone)]
pub struct DueCell {
    /// CSS class suffix and badge: `ok`, `at_risk`, `breached`, `met`, `paused`, `none`.
    pub state: &'static str,
    pub badge: String,
    pub text: String,
}

impl DueCell {
    pub fn of(sla: Option<&TicketSla>) -> DueCell {
        let Some((which, target)) = sla.and_then(TicketSla::pending) else {
            return DueCell {
                state: "none",
                badge: String::new(),
                text: String::new(),
            };
        };
        DueCell {
            state: target.state.as_str(),
            badge: label(target.state.as_str()),
            text: format!("{}: {}", which.label(), describe(target)),
        }
    }
}

/// One target on the ticket page.
#[derive(Debug, Clone)]
pub struct TargetRow {
    pub name: &'static str,
    pub state: &'static str,
    pub badge: String,
    pub due: String,
    pub status: String,
    pub target: String,
    pub auto_escalated: bool,
}

impl TargetRow {
    fn of(name: &'static str, t: &TargetStatus) -> TargetRow {
        TargetRow {
            name,
            state: t.state.as_str(),
            badge: label(t.state.as_str()),
            due: t.due_at.map(when).unwrap_or_default(),
            status: describe(t),
            target: human(i64::try_from(t.target_secs).unwrap_or(i64::MAX)),
            auto_escalated: t.auto_escalated,
        }
    }
}

/// The ticket page's "Service levels" card.
#[derive(Debug, Clone)]
pub struct SlaCard {
    pub targets: Vec<TargetRow>,
    pub paused_since: String,
    pub business_hours: bool,
    /// The tiers above the ticket's, for the escalation form (empty at tier 3 or when finished).
    pub higher_tiers: Vec<Choice>,
}

impl SlaCard {
    pub fn of(ticket: &TicketSummary) -> Option<SlaCard> {
        let sla = ticket.sla.as_ref()?;
        let finished = sla.resolution.done_at.is_some();
        let higher_tiers = if finished {
            Vec::new()
        } else {
            (ticket.tier.get() + 1..=3)
                .map(|t| Choice::new(t.to_string(), format!("Tier {t}"), false))
                .collect()
        };
        Some(SlaCard {
            targets: vec![
                TargetRow::of("First response", &sla.first_response),
                TargetRow::of("Resolution", &sla.resolution),
            ],
            paused_since: sla.paused_since.map(when).unwrap_or_default(),
            business_hours: sla.business_hours,
            higher_tiers,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct EscalateForm {
    to_tier: String,
    #[serde(default)]
    reason: String,
}

/// `POST /tickets/{n}/escalate`.
pub async fn escalate(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    path: Result<Path<u64>, axum::extract::rejection::PathRejection>,
    body: Result<Form<EscalateForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let n = ticket_number(path)?;
    let EscalateForm { to_tier, reason } = form(body)?;
    let to_tier: Tier = to_tier.parse().map_err(PageError::bad_request)?;
    let (headers, body) = json_body(&EscalateRequest {
        to_tier,
        reason,
        assignee: None,
    })?;
    let _answer = escalations::escalate(
        State(state),
        Extension(user.staff()),
        crate::http::extract::Path(n),
        headers,
        body,
    )
    .await?;
    Ok(back_to(n))
}
