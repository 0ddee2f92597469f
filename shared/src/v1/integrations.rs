//! Integrations: the outbound webhook document and its signature, the delivery log, and
//! technicians' e-mail addresses.
//!
//! A webhook is a `POST` of a [`WebhookPayload`] (JSON) with the headers [`EVENT_HEADER`],
//! [`DELIVERY_HEADER`], [`TIMESTAMP_HEADER`] and [`SIGNATURE_HEADER`]: `sha256=` and the hex
//! HMAC-SHA256, keyed with the webhook's secret, of `"{timestamp}.{body}"` ([`signature`]). The
//! timestamp is the attempt's (Unix seconds), so a receiver can refuse old replays; the delivery
//! id stays the same across retries, so a receiver can drop duplicates. Admins read the delivery
//! log (webhooks and e-mails) at [`DELIVERIES`] and send one again with [`REDELIVER`].

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::findings::{Finding, Severity};
use crate::v1::api::{Comment, Priority, TicketStatus, Tier, Urgency, names};
use crate::v1::feedback::Feedback;

/// `GET` the delivery log (admin): `?failed=true&limit=N`.
pub const DELIVERIES: &str = "/api/v1/webhooks/deliveries";
/// `POST` to send delivery `{id}` again from its first attempt (admin).
pub const REDELIVER: &str = "/api/v1/webhooks/deliveries/{id}/redeliver";
/// `PUT` a user's e-mail address (admin): [`UserEmail`].
pub const USER_EMAIL: &str = "/api/v1/users/{name}/email";

/// The event's name, e.g. `ticket.resolved`.
pub const EVENT_HEADER: &str = "x-lifeline-event";
/// The delivery id, the same for every attempt of one delivery.
pub const DELIVERY_HEADER: &str = "x-lifeline-delivery";
/// Unix seconds of this attempt; part of what is signed.
pub const TIMESTAMP_HEADER: &str = "x-lifeline-timestamp";
/// `sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`.
pub const SIGNATURE_HEADER: &str = "x-lifeline-signature";

/// Longest e-mail address (RFC 5321's path limit).
pub const EMAIL_MAX_LEN: usize = 254;
/// Most deliveries one `GET` [`DELIVERIES`] returns.
pub const DELIVERIES_LIMIT_MAX: u32 = 1000;

/// What happened to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TicketEvent {
    /// An end user filed it.
    #[serde(rename = "ticket.created")]
    Created,
    /// Status (other than to resolved), priority, tier, assignee, a comment, or the end user's
    /// answer changed.
    #[serde(rename = "ticket.updated")]
    Updated,
    /// A technician moved it to resolved.
    #[serde(rename = "ticket.resolved")]
    Resolved,
}

impl TicketEvent {
    pub const ALL: &'static [TicketEvent] = &[
        TicketEvent::Created,
        TicketEvent::Updated,
        TicketEvent::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketEvent::Created => "ticket.created",
            TicketEvent::Updated => "ticket.updated",
            TicketEvent::Resolved => "ticket.resolved",
        }
    }
}

impl std::fmt::Display for TicketEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TicketEvent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TicketEvent::ALL
            .iter()
            .copied()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a webhook event (expected ticket.created, ticket.updated or \
                     ticket.resolved)"
                )
            })
    }
}

/// The ticket as a webhook carries it: enough to mirror it in another system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookTicket {
    pub number: u64,
    pub machine_id: String,
    pub hostname: String,
    /// What the end user wrote (hostile text: escape it wherever it is shown).
    pub description: String,
    pub status: TicketStatus,
    pub priority: Priority,
    pub urgency: Urgency,
    pub tier: Tier,
    pub assignee: Option<String>,
    pub worst_finding: Option<Severity>,
    /// The collector's findings, worst first.
    pub findings: Vec<Finding>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    /// The ticket's page in the web console, when the collector knows its public URL.
    pub url: Option<String>,
}

/// The JSON body of a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    pub event: TicketEvent,
    /// The delivery id ([`DELIVERY_HEADER`]).
    pub delivery: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// Who did it: a user name, `machine:<id>` for the end user's agent, or `collector`.
    pub actor: String,
    /// What changed: `status`, `priority`, `tier`, `assignee`, `comment`, `feedback`; empty for
    /// `ticket.created`.
    pub changes: Vec<String>,
    pub ticket: WebhookTicket,
    /// The comment that was added (`changes` has `comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Comment>,
    /// The end user's answer (`changes` has `feedback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
}

/// `sha256=<hex>`: the value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut context = aws_lc_rs::hmac::Context::with_key(&key);
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

names!(
    /// What a delivery sends.
    DeliveryKind, "delivery kind", { Webhook => "webhook", Email => "email" }
);

names!(
    /// Where a delivery stands: waiting for its (next) attempt, done, or given up.
    DeliveryState, "delivery state", {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
);

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The receiver's HTTP status (webhooks) or SMTP reply code (e-mail), when it answered.
    pub status: Option<u16>,
    /// Why it failed; `None` for a success.
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// One webhook or e-mail in the delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub id: u64,
    /// The id receivers see ([`DELIVERY_HEADER`]).
    pub delivery_id: String,
    pub kind: DeliveryKind,
    /// The webhook's name, or the e-mail's recipient.
    pub target: String,
    /// `ticket.created`, `ticket.updated`, `ticket.resolved`; for e-mail `ticket.assigned` or
    /// `ticket.reopened`.
    pub event: String,
    pub ticket: Option<u64>,
    pub state: DeliveryState,
    /// Attempts since it was queued (or sent again).
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Every attempt, oldest first.
    pub history: Vec<DeliveryAttempt>,
}

/// Query of `GET` [`DELIVERIES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryFilter {
    /// Only deliveries that were given up.
    #[serde(default)]
    pub failed: bool,
    /// At most this many, newest first (default 100, at most [`DELIVERIES_LIMIT_MAX`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `PUT` [`USER_EMAIL`]: a user's address for notifications; `null` removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserEmail {
    pub email: Option<String>,
}

/// Checks an e-mail address: `local@domain`, at most [`EMAIL_MAX_LEN`] bytes, a local part of
/// visible ASCII without `<>()[]\,;:"@` and spaces, a domain of letters, digits, `-` and dots.
/// The error says what is wrong.
pub fn check_email(address: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("e-mail address {address:?} is not valid: {why}"));
    if address.len() > EMAIL_MAX_LEN {
        return bad(&format!("longer than {EMAIL_MAX_LEN} bytes"));
    }
    let Some((local, domain)) = address.split_once('@') else {
        return bad("it needs an @");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("the part before @ must be 1 to 64 characters");
    }
    if !local
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b))
    {
        return bad("the part before @ has a character that is not allowed");
    }
    let labels_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !labels_ok {
        return bad("the domain after @ must be letters, digits, '-' and dots");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Computed independently: python3 -c 'import hmac, hashlib;
        // print(hmac.new(b"Jefe", b"1700000000.{\"a\":1}", hashlib.sha256).hexdigest())'
        let sig = signature(b"Jefe", "1700000000", br#"{"a":1}"#);
        assert_eq!(
            sig,
            "sha256=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a"
        );
    }

    #[test]
    fn events_have_dotted_names_on_the_wire_and_in_config() {
        for event in TicketEvent::ALL {
            let json = serde_json::to_string(event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            assert_eq!(event.as_str().parse::<TicketEvent>().unwrap(), *event);
        }
        let error = "ticket.deleted".parse::<TicketEvent>().unwrap_err();
        assert!(error.contains("ticket.deleted"), "{error}");
    }

    #[test]
    fn e_mail_addresses_are_checked() {
        for good in [
            "alice@example.org",
            "a.b+tag@mail.example.co",
            "ops@helpdesk",
        ] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "al ice@example.org",
            "alice@exa mple.org",
            "alice@example..org",
            "alice@-example.org",
            "a\r\nBcc: x@example.org",
            "<alice@example.org>",
        ] {
            let error = check_email(bad).unwrap_err();
            assert!(error.contains("not valid"), "{bad}: {error}");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(check_email(&long).is_err());
    }
}
