//! Appending to the tamper-evident audit log (the chain itself is in
//! [`lifeline_shared::v1::audit`], storage in [`crate::store`]).
//!
//! Handlers describe what happened with an [`Event`] and call [`record`] once the change it
//! describes is stored. Details never carry secrets: tokens are named by their owner, never shown.

use lifeline_shared::v1::audit::AuditEntry;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::store::{NewAuditEntry, StoreError};

/// Actor name for events the collector itself causes.
pub const COLLECTOR: &str = "collector";
/// Actor name for a caller that could not be identified.
pub const ANONYMOUS: &str = "anonymous";

/// Actor name of an enrolled machine.
pub fn machine_actor(machine_id: &str) -> String {
    format!("machine:{machine_id}")
}

/// One thing that happened, about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct Event(NewAuditEntry);

impl Event {
    /// `actor` did `action` (dotted, e.g. `run.request`).
    pub fn new(actor: impl Into<String>, action: &str) -> Event {
        Event(NewAuditEntry {
            actor: actor.into(),
            action: action.to_owned(),
            subject: None,
            detail: json!({}),
        })
    }

    /// What it happened to, e.g. `machine:<id>`.
    pub fn subject(mut self, subject: impl Into<String>) -> Event {
        self.0.subject = Some(subject.into());
        self
    }

    /// Details, as a JSON object.
    pub fn detail(mut self, detail: Value) -> Event {
        self.0.detail = detail;
        self
    }
}

/// Appends `event` to the audit log, stamped with the collector's clock.
pub async fn record(state: &AppState, event: Event) -> Result<AuditEntry, StoreError> {
    let entry = state
        .store
        .append_audit(&event.0, state.clock.now())
        .await?;
    tracing::debug!(seq = entry.seq, action = %entry.action, actor = %entry.actor, "audited");
    Ok(entry)
}
