//! E-mail to a ticket's assignee: the short plain-text messages, and sending one through the
//! configured SMTP relay (lettre, TLS through rustls with aws-lc-rs).
//!
//! A message is composed when the change happens and queued as JSON ([`Email`]); the deliverer
//! sends it with [`Smtp::send`]. Text from agents (descriptions, host names, comments) goes into
//! the body only, with control characters removed; the subject carries the ticket number and a
//! shortened first line of the description, which lettre encodes as a header must be.

use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{SmtpTransport, Transport};
use lifeline_shared::v1::api::TicketDetail;
use lifeline_shared::v1::feedback::Feedback;
use serde::{Deserialize, Serialize};

use super::webhook::Attempt;
use super::{IntegrationError, read_secret, read_small};
use crate::config::{SmtpConfig, SmtpTls};

/// Time allowed for each SMTP command.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of the description in a subject line.
const SUBJECT_DESCRIPTION: usize = 60;

/// The configured relay.
#[derive(Debug)]
pub struct Smtp {
    from: Mailbox,
    transport: SmtpTransport,
}

/// A queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    /// `ticket.assigned` or `ticket.reopened`, for the delivery log.
    pub event: String,
    pub subject: String,
    pub body: String,
}

impl Smtp {
    pub fn load(config: &SmtpConfig) -> Result<Smtp, IntegrationError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| IntegrationError::Smtp(format!("from {:?}: {e}", config.from)))?;
        let tls = match config.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let mut builder = TlsParameters::builder(config.host.clone());
                if let Some(path) = &config.ca_file {
                    let pem = read_small("SMTP CA file", path)?;
                    let cert = Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                        IntegrationError::Invalid {
                            what: "SMTP CA file",
                            path: path.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    builder = builder
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                }
                let parameters = builder
                    .build_rustls()
                    .map_err(|e| IntegrationError::Smtp(format!("TLS settings: {e}")))?;
                if config.tls == SmtpTls::Tls {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let mut builder = SmtpTransport::builder_dangerous(config.host.clone())
            .port(config.port())
            .tls(tls)
            .timeout(Some(TIMEOUT))
            .hello_name(hello_name());
        if let (Some(user), Some(path)) = (&config.username, &config.password_file) {
            let password = read_secret("SMTP password file", path)?;
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(Smtp {
            from,
            transport: builder.build(),
        })
    }

    /// Sends one message (blocking: run it off the async runtime).
    pub fn send(&self, email: &Email) -> Attempt {
        let started = Instant::now();
        let result = self.message(email).and_then(|message| {
            self.transport
                .send(&message)
                .map(|response| u16::from(response.code()))
                .map_err(|e| {
                    (
                        e.status().map(u16::from),
                        format!("SMTP: {}", one_line(&e.to_string())),
                    )
                })
        });
        let (status, error) = match result {
            Ok(code) => (Some(code), None),
            Err((code, error)) => (code, Some(error)),
        };
        Attempt {
            status,
            error,
            duration: started.elapsed(),
        }
    }

    fn message(&self, email: &Email) -> Result<Message, (Option<u16>, String)> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| (None, format!("recipient {:?}: {e}", email.to)))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| (None, format!("cannot build the message: {e}")))
    }
}

/// The EHLO name: this host's name when it is a plain domain name, else `localhost`.
fn hello_name() -> ClientId {
    let uname = rustix::system::uname();
    let host = uname.nodename().to_string_lossy().into_owned();
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if plain {
        ClientId::Domain(host)
    } else {
        ClientId::Domain("localhost".to_owned())
    }
}

/// Agent text made safe for a plain-text body: no control characters but newlines.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect()
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The first line of a description, shortened for a subject.
fn subject_text(description: &str) -> String {
    let first = one_line(description.lines().next().unwrap_or(""));
    let first = first.trim();
    if first.chars().count() <= SUBJECT_DESCRIPTION {
        first.to_owned()
    } else {
        let mut short: String = first.chars().take(SUBJECT_DESCRIPTION - 1).collect();
        short.push('…');
        short
    }
}

/// The ticket's facts, as the body lists them.
fn facts(ticket: &TicketDetail, url: Option<&str>) -> String {
    let s = &ticket.summary;
    let mut out = format!(
        "Machine:     {} ({})\nPriority:    {}\nStatus:      {}\nTier:        {}\n\nDescription:\n",
        one_line(&s.hostname),
        one_line(&s.machine_id),
        s.priority,
        s.status.as_str().replace('_', " "),
        s.tier,
    );
    for line in clean(&s.description).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push('\n');
    match url {
        Some(url) => out.push_str(&format!("Open it: {url}\n")),
        None => out.push_str(&format!(
            "Open it: lifeline-collector tickets show {}\n",
            s.number
        )),
    }
    out
}

impl Email {
    /// "Ticket #N assigned to you".
    pub fn assigned(to: &str, ticket: &TicketDetail, by: &str, url: Option<String>) -> Email {
        let s = &ticket.summary;
        Email {
            to: to.to_owned(),
            event: "ticket.assigned".to_owned(),
            subject: format!(
                "[Lifeline] #{} assigned to you: {}",
                s.number,
                subject_text(&s.description)
            ),
            body: format!(
                "Ticket #{} has been assigned to you by {}.\n\n{}",
                s.number,
                one_line(by),
                facts(ticket, url.as_deref())
            ),
        }
    }

    /// "Ticket #N reopened: the user says it is not fixed".
    pub fn reopened(
        to: &str,
        ticket: &TicketDetail,
        feedback: &Feedback,
        url: Option<String>,
    ) -> Email {
        let s = &ticket.summary;
        let said = match feedback.comment.as_deref() {
            Some(comment) => {
                let quoted: String = clean(comment)
                    .lines()
                    .map(|l| format!("  > {l}\n"))
                    .collect();
                format!("The user wrote:\n{quoted}\n")
            }
            None => String::new(),
        };
        Email {
            to: to.to_owned(),
            event: "ticket.reopened".to_owned(),
            subject: format!(
                "[Lifeline] #{} reopened: not fixed for the user: {}",
                s.number,
                subject_text(&s.description)
            ),
            body: format!(
                "The user answered \"Did this fix it?\" with No, so ticket #{} is open again.\n\n\
                 {said}{}",
                s.number,
                facts(ticket, url.as_deref())
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_short_line() {
        assert_eq!(subject_text("Printer\r\njams"), "Printer");
        assert_eq!(subject_text("a\u{1b}[2Jb"), "a [2Jb");
        let long = subject_text(&"x".repeat(100));
        assert_eq!(long.chars().count(), SUBJECT_DESCRIPTION);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_body_keeps_lines_but_drops_other_control_characters() {
        assert_eq!(clean("a\u{7}b\nc\r"), "ab\nc");
    }
}
