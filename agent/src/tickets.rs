//! `lifeline-agent tickets` and the help window's "My tickets": this machine's recent tickets
//! with their status and the technicians' public replies, fetched with the agent's own client
//! certificate (the collector answers with the calling machine's tickets only).

use std::fmt::Write as _;

use lifeline_shared::v1::api::{MachineTicket, paths};

use crate::config::AgentDir;
use crate::report::{EnrolledClient, ReportError};
use crate::transport;

/// This machine's newest tickets, newest first.
pub fn fetch(dir: &AgentDir) -> Result<Vec<MachineTicket>, ReportError> {
    let client = EnrolledClient::open(dir)?;
    let url = client.collector.url(paths::AGENT_TICKETS);
    let response = client.collector.get(paths::AGENT_TICKETS).call();
    Ok(transport::finish(&url, response)?)
}

/// Free text from the collector, made safe for a terminal: control characters become spaces.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect()
}

fn when(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.format(&format).unwrap_or_default()
}

/// The list as text, each ticket with its replies.
pub fn render(tickets: &[MachineTicket]) -> String {
    if tickets.is_empty() {
        return "No tickets from this machine yet.\n".to_owned();
    }
    let mut out = String::new();
    for t in tickets {
        let first_line = clean(&t.description);
        let first_line = first_line.lines().next().unwrap_or("");
        let _ = writeln!(
            out,
            "#{} {} (filed {}): {}",
            t.number,
            t.status.as_str().replace('_', " "),
            when(t.created_at),
            crate::redact::bound(first_line.to_owned(), 80)
        );
        for reply in &t.replies {
            let _ = writeln!(
                out,
                "    {} {}:",
                when(reply.created_at),
                clean(&reply.author)
            );
            for line in clean(&reply.body).lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeline_shared::v1::api::{Reply, TicketStatus};

    #[test]
    fn replies_are_listed_under_their_ticket_and_control_characters_are_removed() {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let text = render(&[MachineTicket {
            number: 3,
            description: "Printer\u{1b}[31m jams\nsecond line".into(),
            status: TicketStatus::WaitingOnUser,
            created_at: at,
            updated_at: at,
            replies: vec![Reply {
                author: "alice".into(),
                body: "Try the other tray".into(),
                created_at: at,
            }],
        }]);
        assert!(text.starts_with("#3 waiting on user (filed 1970-01-01 00:00): Printer"));
        assert!(!text.contains('\u{1b}'));
        assert!(!text.contains("second line"));
        assert!(text.contains("      Try the other tray"));
        assert_eq!(render(&[]), "No tickets from this machine yet.\n");
    }
}
