//! Automatic escalation: a task of `serve` that wakes every second of real time, asks the store
//! to move up one tier every ticket whose service-level target is at risk by the collector's
//! clock (an injected clock, so tests move time instead of waiting), and audits each move.
//!
//! Each target escalates a ticket once (the store keeps a flag per target), and only a ticket
//! nobody changed meanwhile moves, so several collectors sharing a database may all run this.

use std::time::Duration;

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::audit::{self, COLLECTOR, Event};
use crate::http::AppState;
use crate::store::{AutoEscalation, StoreError};

/// How often the task looks, in real time.
pub const TICK: Duration = Duration::from_secs(1);

/// Runs until the task is dropped (aborted when `serve` returns).
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Err(error) = escalate_due(&state).await {
            tracing::error!(%error, "automatic escalation failed; will retry");
        }
    }
}

/// Escalates what is due at the collector's `now` and audits it; returns what moved.
pub async fn escalate_due(state: &AppState) -> Result<Vec<AutoEscalation>, StoreError> {
    let escalated = state.store.auto_escalate(state.clock.now()).await?;
    for e in &escalated {
        tracing::info!(
            number = e.number,
            from = e.from.get(),
            to = e.to.get(),
            "ticket escalated automatically"
        );
        let targets: Vec<_> = e
            .targets
            .iter()
            .map(|t| {
                json!({
                    "target": t.target,
                    "due_at": t.due_at.format(&Rfc3339).ok(),
                    "left_secs": t.left.whole_seconds(),
                })
            })
            .collect();
        let event = Event::new(COLLECTOR, "ticket.auto_escalate")
            .subject(format!("ticket:{}", e.number))
            .detail(json!({
                "from_tier": e.from,
                "to_tier": e.to,
                "targets": targets,
            }));
        if let Err(error) = audit::record(state, event).await {
            tracing::error!(%error, number = e.number, "cannot audit an automatic escalation");
        }
    }
    Ok(escalated)
}
