//! `webhooks deliveries [--failed]` and `webhooks redeliver ID` (admin): the delivery log of
//! webhooks and e-mails, and sending one again.

use clap::Subcommand;
use lifeline_shared::v1::integrations::{DELIVERIES, Delivery, DeliveryState, REDELIVER};

use super::client::ApiClient;
use super::output::{clean_line, table, when};
use super::{CliError, Printer};

#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksCommand {
    /// Webhooks and e-mails sent or waiting, newest first, with every attempt
    Deliveries {
        /// Only deliveries that were given up after their last retry
        #[arg(long)]
        failed: bool,
        /// At most this many (1 to 1000)
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Send a delivery again, from its first attempt (its log is kept)
    Redeliver { id: u64 },
}

pub(super) fn run(
    client: &ApiClient,
    out: &Printer,
    command: &WebhooksCommand,
) -> Result<(), CliError> {
    match command {
        WebhooksCommand::Deliveries { failed, limit } => {
            let mut path = format!("{DELIVERIES}?limit={limit}");
            if *failed {
                path.push_str("&failed=true");
            }
            let list: Vec<Delivery> = client.get(&path)?;
            out.show(&list, |l| deliveries_table(l))
        }
        WebhooksCommand::Redeliver { id } => {
            let delivery: Delivery = client.post(
                &REDELIVER.replace("{id}", &id.to_string()),
                &serde_json::json!({}),
            )?;
            out.show(&delivery, |d| {
                format!(
                    "delivery {} ({} {} to {}) is queued again",
                    d.id,
                    d.kind,
                    clean_line(&d.event),
                    clean_line(&d.target)
                )
            })
        }
    }
}

/// One row per delivery, its attempts listed in the last column.
pub fn deliveries_table(deliveries: &[Delivery]) -> String {
    if deliveries.is_empty() {
        return "no deliveries".to_owned();
    }
    let mut t = table(&[
        "id", "kind", "target", "event", "ticket", "state", "attempts",
    ]);
    for d in deliveries {
        let state = match (d.state, d.next_attempt_at) {
            (DeliveryState::Pending, Some(next)) => format!("pending (next {})", when(next)),
            (state, _) => state.to_string(),
        };
        let attempts: Vec<String> = d
            .history
            .iter()
            .map(|a| {
                let outcome = match (&a.error, a.status) {
                    (None, Some(status)) => format!("ok {status}"),
                    (None, None) => "ok".to_owned(),
                    (Some(error), _) => clean_line(error),
                };
                format!("{} {} ({} ms)", when(a.at), outcome, a.duration_ms)
            })
            .collect();
        t.add_row(vec![
            d.id.to_string(),
            d.kind.to_string(),
            clean_line(&d.target),
            clean_line(&d.event),
            d.ticket
                .map(|n| format!("#{n}"))
                .unwrap_or_else(|| "-".into()),
            state,
            if attempts.is_empty() {
                "none yet".to_owned()
            } else {
                attempts.join("\n")
            },
        ]);
    }
    t.to_string()
}
