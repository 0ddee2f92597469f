//! The deliverer: sends what the outbox holds, with retries on the collector's clock.
//!
//! Every second of real time (and at once when something is queued) it claims the deliveries
//! due by the injected clock, sends each on a blocking thread (ureq, lettre), logs the attempt
//! and schedules the next one after a failure: [`BACKOFF_SECS`] after the first, second, ...
//! failure, then the delivery is failed (`webhooks redeliver ID` starts it over). A claimed
//! delivery is pushed [`LEASE_SECS`] ahead, so a collector that dies mid-attempt leaves it to be
//! tried again, and several collectors sharing a database never send one twice at the same time.
//! Delivery is at least once: receivers drop duplicates by delivery id. Within a round, the
//! deliveries of one ticket to one target go one after the other, oldest first; across retries
//! order is not kept, so each webhook carries the whole ticket with its `updated_at`.

use std::sync::Arc;
use std::time::Duration;

use lifeline_shared::v1::integrations::DeliveryKind;
use time::OffsetDateTime;

use super::Integrations;
use super::email::Email;
use super::webhook::Attempt;
use crate::http::AppState;
use crate::store::{AttemptOutcome, AttemptRecord, DueDelivery};

/// Waits after the 1st, 2nd, ... failed attempt: 10 s, 1 min, 5 min, 30 min, 2 h; the attempt
/// after the last wait is the last one.
pub const BACKOFF_SECS: [i64; 5] = [10, 60, 300, 1800, 7200];
/// How long a claimed delivery is kept from other deliverers (well above an attempt's limits).
pub const LEASE_SECS: i64 = 300;
/// Deliveries attempted together in one round.
const BATCH: u32 = 16;
/// Real time between rounds.
const TICK: Duration = Duration::from_secs(1);

/// What follows the failure of attempt number `attempts` (1 for the first).
pub fn after_failure(attempts: u32, now: OffsetDateTime) -> AttemptOutcome {
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    match BACKOFF_SECS.get(index) {
        Some(wait) => AttemptOutcome::RetryAt(now + time::Duration::seconds(*wait)),
        None => AttemptOutcome::GaveUp,
    }
}

/// Starts the deliverer for the life of the process.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        loop {
            round(&state).await;
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = state.integrations.queued.notified() => {}
            }
        }
    });
}

/// One round: claim what is due and try it.
async fn round(state: &AppState) {
    let now = state.clock.now();
    let lease = now + time::Duration::seconds(LEASE_SECS);
    let due = match state.store.claim_due_deliveries(now, lease, BATCH).await {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, "cannot read the outbox");
            return;
        }
    };
    // One chain per (kind, target, ticket), in id order; chains run side by side.
    let mut chains: std::collections::BTreeMap<_, Vec<DueDelivery>> = Default::default();
    for delivery in due {
        let key = (delivery.kind, delivery.target.clone(), delivery.ticket);
        chains.entry(key).or_default().push(delivery);
    }
    let mut attempts = tokio::task::JoinSet::new();
    for chain in chains.into_values() {
        let integrations = Arc::clone(&state.integrations);
        let clock = Arc::clone(&state.clock);
        attempts.spawn_blocking(move || {
            chain
                .into_iter()
                .map(|delivery| {
                    let at = clock.now();
                    let attempt = attempt(&integrations, &delivery, at);
                    (delivery, at, attempt)
                })
                .collect::<Vec<_>>()
        });
    }
    let mut tried_all = Vec::new();
    while let Some(joined) = attempts.join_next().await {
        match joined {
            Ok(tried) => tried_all.extend(tried),
            Err(_) => {
                tracing::error!("a delivery attempt crashed; it is tried again after its lease")
            }
        }
    }
    for (delivery, at, attempt) in tried_all {
        let tried = delivery.attempts.saturating_add(1);
        let outcome = match &attempt.error {
            None => AttemptOutcome::Delivered,
            Some(_) => after_failure(tried, state.clock.now()),
        };
        match (&outcome, &attempt.error) {
            (AttemptOutcome::Delivered, _) => tracing::info!(
                id = delivery.id, kind = %delivery.kind, target = %delivery.target,
                event = %delivery.event, "delivered"
            ),
            (_, Some(error)) => tracing::warn!(
                id = delivery.id, kind = %delivery.kind, target = %delivery.target,
                attempt = tried, %error, gave_up = matches!(outcome, AttemptOutcome::GaveUp),
                "delivery attempt failed"
            ),
            (_, None) => {}
        }
        metrics::counter!(
            "lifeline_deliveries_total",
            "kind" => delivery.kind.as_str(),
            "result" => if attempt.error.is_none() { "delivered" } else { "failed" }
        )
        .increment(1);
        let record = AttemptRecord {
            at,
            status: attempt.status,
            error: attempt.error,
            duration_ms: u64::try_from(attempt.duration.as_millis()).unwrap_or(u64::MAX),
        };
        if let Err(error) = state
            .store
            .finish_delivery_attempt(delivery.id, &record, outcome)
            .await
        {
            tracing::error!(id = delivery.id, %error, "cannot log a delivery attempt");
        }
    }
}

/// Sends one delivery (blocking).
fn attempt(integrations: &Integrations, delivery: &DueDelivery, now: OffsetDateTime) -> Attempt {
    let refused = |error: String| Attempt {
        status: None,
        error: Some(error),
        duration: Duration::ZERO,
    };
    match delivery.kind {
        DeliveryKind::Webhook => match integrations.webhook(&delivery.target) {
            Some(hook) => hook.send(
                &delivery.event,
                &delivery.delivery_id,
                &delivery.payload,
                now,
            ),
            None => refused(format!(
                "no webhook named {:?} is configured any more",
                delivery.target
            )),
        },
        DeliveryKind::Email => {
            let Some(smtp) = &integrations.smtp else {
                return refused("no [smtp] relay is configured any more".to_owned());
            };
            match serde_json::from_str::<Email>(&delivery.payload) {
                Ok(email) => smtp.send(&email),
                Err(e) => refused(format!("the queued e-mail cannot be read: {e}")),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_then_give_up_after_the_sixth_attempt() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let waits: Vec<i64> = (1..=5)
            .map(|n| match after_failure(n, t0) {
                AttemptOutcome::RetryAt(at) => (at - t0).whole_seconds(),
                other => panic!("attempt {n}: {other:?}"),
            })
            .collect();
        assert_eq!(waits, [10, 60, 300, 1800, 7200]);
        assert_eq!(after_failure(6, t0), AttemptOutcome::GaveUp);
    }
}
