//! `lifeline-agent tickets` and the help window's "My tickets": this machine's recent tickets
//! with their status and the technicians' public replies, fetched with the agent's own client
//! certificate (the collector answers with the calling machine's tickets only).
//!
//! Satisfaction (issue 9): a resolved ticket asks "Did this fix it?" ([`send_feedback`], the
//! terminal prompt [`ask`], and the window). The answer is sent at once and never spooled: when
//! the collector cannot be reached the user is told so and asked to answer again later (the
//! question stays until it is answered), so an answer is never lost silently.

use std::fmt::Write as _;
use std::io::{BufRead, Write};

use lifeline_shared::v1::api::{MachineTicket, paths};
use lifeline_shared::v1::feedback::{
    AGENT_TICKET_FEEDBACK, FEEDBACK_COMMENT_MAX_LEN, FeedbackRecorded, NewFeedback,
};

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

/// The list as text, each ticket with its replies, and how to answer "Did this fix it?".
pub fn render(tickets: &[MachineTicket]) -> String {
    render_with(tickets, true)
}

/// The list as text without the command-line hint (the window asks with buttons instead).
pub fn render_list(tickets: &[MachineTicket]) -> String {
    render_with(tickets, false)
}

fn render_with(tickets: &[MachineTicket], answer_hint: bool) -> String {
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
        if t.feedback_wanted && answer_hint {
            let _ = writeln!(
                out,
                "    Resolved. Did this fix it? Answer with: lifeline-agent tickets feedback {} \
                 --yes | --no [--comment TEXT]",
                t.number
            );
        }
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

/// Sends the end user's answer for ticket `number`. The error says what went wrong; the caller
/// tells the user that the answer was not sent.
pub fn send_feedback(
    dir: &AgentDir,
    number: u64,
    fixed: bool,
    comment: Option<&str>,
) -> Result<FeedbackRecorded, ReportError> {
    let answer = NewFeedback {
        fixed,
        comment: comment
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
    };
    answer.checked_comment().map_err(ReportError::Feedback)?;
    let client = EnrolledClient::open(dir)?;
    let path = AGENT_TICKET_FEEDBACK.replace("{n}", &number.to_string());
    let url = client.collector.url(&path);
    let response = client.collector.post(&path).send_json(&answer);
    Ok(transport::finish(&url, response)?)
}

/// What the user is told after an answer went through.
pub fn thanks(recorded: &FeedbackRecorded) -> String {
    if recorded.reopened {
        format!(
            "Thank you. Ticket #{} is open again: the help desk will get back to you.",
            recorded.number
        )
    } else {
        format!("Thank you. Ticket #{} stays resolved.", recorded.number)
    }
}

/// Reads one answer line (bounded); `None` at the end of input.
fn read_answer(input: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    let limit = FEEDBACK_COMMENT_MAX_LEN as u64 * 4;
    if std::io::Read::take(&mut *input, limit).read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_owned()))
}

/// The terminal prompt: for each ticket waiting for an answer, "Did this fix it? [y/n]" and an
/// optional comment, each sent at once. An empty answer skips the ticket (it is asked again next
/// time); an answer that cannot be sent is reported with the command to send it later.
pub fn ask(
    tickets: &[MachineTicket],
    mut input: impl BufRead,
    mut out: impl Write,
    send: impl Fn(u64, bool, Option<&str>) -> Result<FeedbackRecorded, ReportError>,
) -> std::io::Result<()> {
    for ticket in tickets.iter().filter(|t| t.feedback_wanted) {
        let first_line = clean(&ticket.description);
        let first_line = first_line.lines().next().unwrap_or("");
        writeln!(
            out,
            "\nTicket #{} ({}) was resolved.",
            ticket.number,
            crate::redact::bound(first_line.to_owned(), 60)
        )?;
        let fixed = loop {
            write!(out, "Did this fix it? [y/n, Enter to answer later] ")?;
            out.flush()?;
            match read_answer(&mut input)?
                .as_deref()
                .map(str::to_ascii_lowercase)
            {
                None => return Ok(()),
                Some(a) if a.is_empty() => break None,
                Some(a) if a == "y" || a == "yes" => break Some(true),
                Some(a) if a == "n" || a == "no" => break Some(false),
                Some(_) => writeln!(out, "Please answer y or n.")?,
            }
        };
        let Some(fixed) = fixed else {
            writeln!(out, "Skipped: you will be asked again.")?;
            continue;
        };
        write!(
            out,
            "{} (optional, Enter to skip): ",
            if fixed {
                "Anything to add?"
            } else {
                "What is still wrong?"
            }
        )?;
        out.flush()?;
        let comment = read_answer(&mut input)?.unwrap_or_default();
        let comment = (!comment.is_empty()).then_some(comment);
        match send(ticket.number, fixed, comment.as_deref()) {
            Ok(recorded) => writeln!(out, "{}", thanks(&recorded))?,
            Err(error) => writeln!(
                out,
                "Your answer was NOT sent ({error}). Answer again later with: \
                 lifeline-agent tickets feedback {} {}",
                ticket.number,
                if fixed { "--yes" } else { "--no" }
            )?,
        }
    }
    Ok(())
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
            feedback_wanted: false,
        }]);
        assert!(text.starts_with("#3 waiting on user (filed 1970-01-01 00:00): Printer"));
        assert!(!text.contains('\u{1b}'));
        assert!(!text.contains("second line"));
        assert!(text.contains("      Try the other tray"));
        assert_eq!(render(&[]), "No tickets from this machine yet.\n");
    }

    fn resolved(number: u64) -> MachineTicket {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        MachineTicket {
            number,
            description: "VPN drops".into(),
            status: TicketStatus::Resolved,
            created_at: at,
            updated_at: at,
            replies: Vec::new(),
            feedback_wanted: true,
        }
    }

    #[test]
    fn the_prompt_asks_each_resolved_ticket_and_sends_the_answers() {
        let sent = std::cell::RefCell::new(Vec::new());
        let mut out = Vec::new();
        let input = "maybe\nn\nstill drops at noon\n\ny\n\n";
        ask(
            &[resolved(7), resolved(8), resolved(9)],
            input.as_bytes(),
            &mut out,
            |number, fixed, comment| {
                sent.borrow_mut()
                    .push((number, fixed, comment.map(str::to_owned)));
                Ok(FeedbackRecorded {
                    number,
                    status: if fixed {
                        TicketStatus::Resolved
                    } else {
                        TicketStatus::Open
                    },
                    reopened: !fixed,
                })
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            sent.into_inner(),
            [
                (7, false, Some("still drops at noon".to_owned())),
                (9, true, None)
            ]
        );
        assert!(text.contains("Please answer y or n."), "{text}");
        assert!(text.contains("Ticket #7 is open again"), "{text}");
        assert!(text.contains("Skipped: you will be asked again."), "{text}");
        assert!(text.contains("Ticket #9 stays resolved."), "{text}");
    }

    #[test]
    fn an_answer_that_cannot_be_sent_says_so_and_how_to_send_it_later() {
        let mut out = Vec::new();
        ask(&[resolved(4)], "n\n\n".as_bytes(), &mut out, |_, _, _| {
            Err(ReportError::Transport(
                transport::TransportError::Unreachable {
                    url: "https://collector".into(),
                    message: "connection refused".into(),
                },
            ))
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Your answer was NOT sent"), "{text}");
        assert!(
            text.contains("lifeline-agent tickets feedback 4 --no"),
            "{text}"
        );
        let listed = render(&[resolved(4)]);
        assert!(listed.contains("Did this fix it?"), "{listed}");
    }
}
