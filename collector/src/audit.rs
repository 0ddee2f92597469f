//! Appending to the tamper-evident audit log (the chain itself is in
//! [`lifeline_shared::v1::audit`], storage in [`crate::store`]).
//!
//! Handlers describe what happened with an [`Event`] and call [`record`] once the change it
//! describes is stored. Details never carry secrets: tokens are named by their owner, never shown.

use std::sync::{Mutex, PoisonError};

use lifeline_shared::v1::audit::AuditEntry;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::http::AppState;
use crate::store::{NewAuditEntry, Store, StoreError};

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
    record_in(state.store.as_ref(), event, state.clock.now()).await
}

/// Appends `event` through a store directly (first start, before there is an [`AppState`]).
pub async fn record_in(
    store: &dyn Store,
    event: Event,
    now: OffsetDateTime,
) -> Result<AuditEntry, StoreError> {
    let entry = store.append_audit(&event.0, now).await?;
    tracing::debug!(seq = entry.seq, action = %entry.action, actor = %entry.actor, "audited");
    Ok(entry)
}

/// Refused credentials audited per minute. Past that, refusals are only counted (and in the
/// `lifeline_auth_failures_total` metric); the count is appended as one
/// `auth.failures_suppressed` entry together with the next refusal audited after the minute.
/// A flood of bad tokens thus costs at most this many database writes a minute and cannot grow
/// the log without bound, while the log still says that it happened and how often.
pub const REFUSALS_PER_MINUTE: u32 = 60;

/// The fixed one-minute window behind [`REFUSALS_PER_MINUTE`].
#[derive(Debug, Default)]
pub struct RefusalLimiter {
    window_start: Option<OffsetDateTime>,
    recorded: u32,
    suppressed: u64,
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Audit it; first append a summary of `suppressed` refusals that were only counted.
    Record { suppressed: u64 },
    /// Only count it.
    Suppress,
}

impl RefusalLimiter {
    pub const fn new() -> RefusalLimiter {
        RefusalLimiter {
            window_start: None,
            recorded: 0,
            suppressed: 0,
        }
    }

    pub fn admit(&mut self, now: OffsetDateTime) -> Admission {
        let expired = self
            .window_start
            .is_none_or(|start| now - start >= time::Duration::MINUTE || now < start);
        if expired {
            self.window_start = Some(now);
            self.recorded = 1;
            return Admission::Record {
                suppressed: std::mem::take(&mut self.suppressed),
            };
        }
        if self.recorded < REFUSALS_PER_MINUTE {
            self.recorded += 1;
            Admission::Record { suppressed: 0 }
        } else {
            self.suppressed += 1;
            Admission::Suppress
        }
    }
}

/// One window for the whole collector process.
static REFUSALS: Mutex<RefusalLimiter> = Mutex::new(RefusalLimiter::new());

/// Audits a refused request (`auth.failure`, `auth.forbidden`), within
/// [`REFUSALS_PER_MINUTE`]. `credential` names what was presented (`user token`, ...) for the
/// metric. A failure to append is logged: the caller is refused either way.
pub async fn record_refusal(state: &AppState, credential: &'static str, event: Event) {
    metrics::counter!("lifeline_auth_failures_total", "credential" => credential).increment(1);
    let admission = REFUSALS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(state.clock.now());
    let Admission::Record { suppressed } = admission else {
        return;
    };
    if suppressed > 0 {
        let summary = Event::new(COLLECTOR, "auth.failures_suppressed").detail(json!({
            "count": suppressed,
            "limit_per_minute": REFUSALS_PER_MINUTE,
        }));
        if let Err(error) = record(state, summary).await {
            tracing::error!(%error, "cannot audit the count of suppressed refusals");
        }
    }
    if let Err(error) = record(state, event).await {
        tracing::error!(%error, "cannot audit a refused request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_past_the_limit_are_counted_and_summed_up_in_the_next_minute() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let mut limiter = RefusalLimiter::new();
        for _ in 0..REFUSALS_PER_MINUTE {
            assert_eq!(limiter.admit(t0), Admission::Record { suppressed: 0 });
        }
        for _ in 0..5 {
            assert_eq!(
                limiter.admit(t0 + time::Duration::seconds(59)),
                Admission::Suppress
            );
        }
        assert_eq!(
            limiter.admit(t0 + time::Duration::seconds(60)),
            Admission::Record { suppressed: 5 }
        );
        assert_eq!(
            limiter.admit(t0 + time::Duration::seconds(61)),
            Admission::Record { suppressed: 0 }
        );
    }
}
