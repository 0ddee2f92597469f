//! What happens after a ticket changes: outbound webhooks and e-mail to the assignee, queued in
//! the database's outbox and sent by the [`outbox`] deliverer with retries.
//!
//! Handlers call the functions here once the change they tell about is committed:
//! [`ticket_created`], [`ticket_updated`] (a `PATCH`, through the API or the console),
//! [`comment_added`] and [`feedback_given`]. They never fail the request: the change is stored
//! either way, and a notification that cannot be queued is logged as an error. Webhook URLs and
//! secrets, and the SMTP password, live in the configuration only ([`Integrations::load`]); the
//! outbox names a webhook, never its secret.

pub mod email;
pub mod outbox;
pub mod webhook;

use std::path::{Path, PathBuf};

use lifeline_shared::v1::api::{Comment, TicketDetail, TicketStatus, TicketUpdate};
use lifeline_shared::v1::feedback::Feedback;
use lifeline_shared::v1::integrations::{DeliveryKind, TicketEvent, WebhookPayload, WebhookTicket};
use time::OffsetDateTime;

use crate::config::ServerConfig;
use crate::http::AppState;
use crate::secret::Secret;
use crate::store::NewDelivery;

/// Largest secret, password or CA file read.
const SECRET_FILE_MAX_LEN: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {}: {message}", path.display())]
    Invalid {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("smtp: {0}")]
    Smtp(String),
}

/// The configured webhooks and SMTP relay, ready to send.
#[derive(Debug, Default)]
pub struct Integrations {
    pub webhooks: Vec<webhook::Webhook>,
    pub smtp: Option<email::Smtp>,
    /// The console's URL (`public_url`), for links.
    pub public_url: Option<String>,
    /// Wakes the deliverer when something was queued.
    pub queued: tokio::sync::Notify,
}

/// Reads a secret file: its text, trimmed, not empty.
pub(crate) fn read_secret(what: &'static str, path: &Path) -> Result<Secret, IntegrationError> {
    let text = read_small(what, path)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(IntegrationError::Invalid {
            what,
            path: path.to_owned(),
            message: "the file is empty".to_owned(),
        });
    }
    Ok(Secret::new(trimmed))
}

/// Reads a small text file (a secret, a CA certificate).
pub(crate) fn read_small(what: &'static str, path: &Path) -> Result<String, IntegrationError> {
    let read = |source| IntegrationError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > SECRET_FILE_MAX_LEN {
        return Err(IntegrationError::Invalid {
            what,
            path: path.to_owned(),
            message: format!("{len} bytes; at most {SECRET_FILE_MAX_LEN} are allowed"),
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

impl Integrations {
    /// Reads the secret files and prepares the senders of a checked configuration.
    pub fn load(config: &ServerConfig) -> Result<Integrations, IntegrationError> {
        let webhooks = config
            .webhooks
            .iter()
            .map(webhook::Webhook::load)
            .collect::<Result<Vec<_>, _>>()?;
        let smtp = config.smtp.as_ref().map(email::Smtp::load).transpose()?;
        Ok(Integrations {
            webhooks,
            smtp,
            public_url: config.public_url.clone(),
            queued: tokio::sync::Notify::new(),
        })
    }

    /// The console page of ticket `number`, when the public URL is known.
    pub fn ticket_url(&self, number: u64) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}/tickets/{number}"))
    }

    pub fn webhook(&self, name: &str) -> Option<&webhook::Webhook> {
        self.webhooks.iter().find(|w| w.name == name)
    }
}

/// A fresh delivery id: 128 random bits in hex.
pub fn delivery_id() -> Result<String, crate::secret::RandomError> {
    let bytes = crate::secret::random_bytes::<16>()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What changed, beyond the ticket itself.
#[derive(Debug, Clone, Default)]
struct Change {
    changes: Vec<&'static str>,
    comment: Option<Comment>,
    feedback: Option<Feedback>,
}

fn webhook_ticket(state: &AppState, ticket: &TicketDetail) -> WebhookTicket {
    let s = &ticket.summary;
    WebhookTicket {
        number: s.number,
        machine_id: s.machine_id.clone(),
        hostname: s.hostname.clone(),
        description: s.description.clone(),
        status: s.status,
        priority: s.priority,
        urgency: s.urgency,
        tier: s.tier,
        assignee: s.assignee.clone(),
        worst_finding: s.worst_finding,
        findings: ticket.findings.clone(),
        created_at: s.created_at,
        updated_at: s.updated_at,
        resolved_at: ticket.resolved_at,
        url: state.integrations.ticket_url(s.number),
    }
}

/// Queues `event` for every webhook that wants it, plus `emails`, and wakes the deliverer.
async fn queue(
    state: &AppState,
    event: TicketEvent,
    actor: &str,
    ticket: &TicketDetail,
    change: Change,
    emails: Vec<email::Email>,
    now: OffsetDateTime,
) {
    let integrations = &state.integrations;
    let mut deliveries = Vec::new();
    let number = ticket.summary.number;
    for hook in integrations.webhooks.iter().filter(|w| w.wants(event)) {
        let Ok(id) = delivery_id() else {
            tracing::error!(number, webhook = %hook.name, "no random delivery id; not queued");
            continue;
        };
        let payload = WebhookPayload {
            event,
            delivery: id.clone(),
            time: now,
            actor: actor.to_owned(),
            changes: change.changes.iter().map(|c| (*c).to_owned()).collect(),
            ticket: webhook_ticket(state, ticket),
            comment: change.comment.clone(),
            feedback: change.feedback.clone(),
        };
        match serde_json::to_string(&payload) {
            Ok(body) => deliveries.push(NewDelivery {
                delivery_id: id,
                kind: DeliveryKind::Webhook,
                target: hook.name.clone(),
                event: event.as_str().to_owned(),
                ticket: Some(number),
                payload: body,
            }),
            Err(error) => tracing::error!(number, %error, "cannot encode a webhook payload"),
        }
    }
    if integrations.smtp.is_some() {
        for mail in emails {
            let (Ok(id), Ok(body)) = (delivery_id(), serde_json::to_string(&mail)) else {
                tracing::error!(number, "cannot prepare an e-mail; not queued");
                continue;
            };
            deliveries.push(NewDelivery {
                delivery_id: id,
                kind: DeliveryKind::Email,
                target: mail.to.clone(),
                event: mail.event.clone(),
                ticket: Some(number),
                payload: body,
            });
        }
    }
    if deliveries.is_empty() {
        return;
    }
    match state.store.queue_deliveries(&deliveries, now).await {
        Ok(()) => {
            tracing::debug!(number, count = deliveries.len(), %event, "notifications queued");
            integrations.queued.notify_one();
        }
        Err(error) => {
            tracing::error!(number, %event, %error, "cannot queue webhooks or e-mails for a ticket")
        }
    }
}

/// The ticket as stored now, or `None` (logged) when it cannot be read.
async fn load(state: &AppState, number: u64) -> Option<TicketDetail> {
    match state.store.ticket(number, state.clock.now()).await {
        Ok(Some(ticket)) => Some(ticket),
        Ok(None) => None,
        Err(error) => {
            tracing::error!(number, %error, "cannot read a ticket to notify about it");
            None
        }
    }
}

/// An agent filed ticket `number`.
pub async fn ticket_created(state: &AppState, number: u64, machine_actor: &str) {
    if state.integrations.webhooks.is_empty() {
        return;
    }
    let Some(ticket) = load(state, number).await else {
        return;
    };
    let now = state.clock.now();
    let change = Change::default();
    queue(
        state,
        TicketEvent::Created,
        machine_actor,
        &ticket,
        change,
        Vec::new(),
        now,
    )
    .await;
}

/// A technician changed ticket `number` (`before` is how it was). Webhooks get
/// `ticket.resolved` when it moved to resolved, else `ticket.updated` (nothing when nothing
/// changed); a new assignee with an e-mail address gets an e-mail.
pub async fn ticket_updated(
    state: &AppState,
    before: &TicketDetail,
    update: &TicketUpdate,
    by: &str,
) {
    let number = before.summary.number;
    let Some(after) = load(state, number).await else {
        return;
    };
    let (b, a) = (&before.summary, &after.summary);
    let mut changes = Vec::new();
    if update.status.is_some() && b.status != a.status {
        changes.push("status");
    }
    if update.priority.is_some() && b.priority != a.priority {
        changes.push("priority");
    }
    if update.tier.is_some() && b.tier != a.tier {
        changes.push("tier");
    }
    let new_assignee = (update.assignee.is_some() && b.assignee != a.assignee)
        .then(|| a.assignee.clone())
        .flatten();
    if update.assignee.is_some() && b.assignee != a.assignee {
        changes.push("assignee");
    }
    if changes.is_empty() {
        return;
    }
    let event = if changes.contains(&"status") && a.status == TicketStatus::Resolved {
        TicketEvent::Resolved
    } else {
        TicketEvent::Updated
    };
    let mut emails = Vec::new();
    if let Some(assignee) = new_assignee.filter(|name| name != by)
        && let Some(address) = assignee_address(state, &assignee).await
    {
        emails.push(email::Email::assigned(
            &address,
            &after,
            by,
            state.integrations.ticket_url(number),
        ));
    }
    let change = Change {
        changes,
        ..Change::default()
    };
    let now = state.clock.now();
    queue(state, event, by, &after, change, emails, now).await;
}

/// `by` commented on ticket `number`.
pub async fn comment_added(state: &AppState, number: u64, comment: Comment) {
    if state.integrations.webhooks.is_empty() {
        return;
    }
    let Some(ticket) = load(state, number).await else {
        return;
    };
    let actor = comment.author.clone();
    let change = Change {
        changes: vec!["comment"],
        comment: Some(comment),
        feedback: None,
    };
    let now = state.clock.now();
    queue(
        state,
        TicketEvent::Updated,
        &actor,
        &ticket,
        change,
        Vec::new(),
        now,
    )
    .await;
}

/// The end user answered "Did this fix it?" on ticket `number` (its newest answer); a "no"
/// reopened it, and its assignee (if any, with an address) gets an e-mail.
pub async fn feedback_given(state: &AppState, number: u64, machine_actor: &str) {
    let Some(ticket) = load(state, number).await else {
        return;
    };
    let Some(feedback) = ticket.feedback.last().cloned() else {
        return;
    };
    let mut emails = Vec::new();
    if !feedback.fixed
        && let Some(assignee) = ticket.summary.assignee.as_deref()
        && let Some(address) = assignee_address(state, assignee).await
    {
        emails.push(email::Email::reopened(
            &address,
            &ticket,
            &feedback,
            state.integrations.ticket_url(number),
        ));
    }
    let change = Change {
        changes: if feedback.fixed {
            vec!["feedback"]
        } else {
            vec!["status", "feedback"]
        },
        comment: None,
        feedback: Some(feedback),
    };
    let now = state.clock.now();
    queue(
        state,
        TicketEvent::Updated,
        machine_actor,
        &ticket,
        change,
        emails,
        now,
    )
    .await;
}

/// `user`'s e-mail address when e-mail is configured and they have one.
async fn assignee_address(state: &AppState, user: &str) -> Option<String> {
    state.integrations.smtp.as_ref()?;
    match state.store.user_email(user).await {
        Ok(address) => address,
        Err(error) => {
            tracing::error!(%user, %error, "cannot read a user's e-mail address");
            None
        }
    }
}
