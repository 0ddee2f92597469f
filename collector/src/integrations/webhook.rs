//! One outbound webhook: its configuration, and one signed `POST` of a queued payload.
//!
//! The body is sent exactly as it was queued, so every attempt carries the same document and
//! delivery id; the timestamp and signature are the attempt's own. Redirects are not followed
//! (a signed request is meant for the configured URL only) and count as a failure; any 2xx is a
//! success. https uses the system's root certificates, or only the webhook's `ca_file`.

use std::time::{Duration, Instant};

use lifeline_shared::v1::integrations::{
    DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, TicketEvent, signature,
};
use time::OffsetDateTime;
use ureq::tls::Certificate;

use super::{IntegrationError, read_secret, read_small};
use crate::config::WebhookConfig;
use crate::secret::Secret;

/// Time to connect, and for the whole exchange.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a refusal's body goes into the delivery log.
const BODY_EXCERPT: usize = 200;
/// Largest answer read.
const RESPONSE_LIMIT: u64 = 64 * 1024;

/// A configured webhook, ready to send.
#[derive(Debug)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    secret: Secret,
    events: Vec<TicketEvent>,
    agent: ureq::Agent,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status (webhooks) or SMTP reply code (e-mail), when there was an answer.
    pub status: Option<u16>,
    /// Why it failed; `None` on success.
    pub error: Option<String>,
    pub duration: Duration,
}

impl Webhook {
    pub fn load(config: &WebhookConfig) -> Result<Webhook, IntegrationError> {
        let name = config.name();
        // `ServerConfig::parse` refuses a webhook without one.
        let secret_path = config.secret_file.clone().unwrap_or_default();
        let secret = read_secret("webhook secret file", &secret_path)?;
        let roots = match &config.ca_file {
            Some(path) => {
                let pem = read_small("webhook CA file", path)?;
                let certs = crate::tls::ureq_certificates(pem.as_bytes());
                if certs.is_empty() {
                    return Err(IntegrationError::Invalid {
                        what: "webhook CA file",
                        path: path.clone(),
                        message: "no PEM certificate in it".to_owned(),
                    });
                }
                certs
            }
            None => system_roots(),
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(crate::tls::ureq_tls(&roots))
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("lifeline-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Webhook {
            name,
            url: config.url.clone(),
            secret,
            events: config
                .events
                .clone()
                .unwrap_or_else(|| TicketEvent::ALL.to_vec()),
            agent,
        })
    }

    pub fn wants(&self, event: TicketEvent) -> bool {
        self.events.contains(&event)
    }

    /// One signed `POST` of `body` (blocking: run it off the async runtime).
    pub fn send(&self, event: &str, delivery_id: &str, body: &str, now: OffsetDateTime) -> Attempt {
        let started = Instant::now();
        let timestamp = now.unix_timestamp().to_string();
        let signed = signature(self.secret.expose().as_bytes(), &timestamp, body.as_bytes());
        let result = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header(EVENT_HEADER, event)
            .header(DELIVERY_HEADER, delivery_id)
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, &signed)
            .send(body.as_bytes());
        let (status, error) = match result {
            Err(e) => (None, Some(crate::cli::client::describe_transport_error(&e))),
            Ok(mut response) => {
                let status = response.status();
                let text = response
                    .body_mut()
                    .with_config()
                    .limit(RESPONSE_LIMIT)
                    .read_to_string()
                    .unwrap_or_default();
                let error = if status.is_success() {
                    None
                } else if status.is_redirection() {
                    Some(format!(
                        "HTTP {}: redirects are not followed; configure the final URL",
                        status.as_u16()
                    ))
                } else {
                    Some(format!("HTTP {}: {}", status.as_u16(), excerpt(&text)))
                };
                (Some(status.as_u16()), error)
            }
        };
        Attempt {
            status,
            error,
            duration: started.elapsed(),
        }
    }
}

/// The start of an answer's body, on one line, for the delivery log.
fn excerpt(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(BODY_EXCERPT)
        .collect();
    let line = line.trim();
    if line.is_empty() {
        "(no body)".to_owned()
    } else {
        line.to_owned()
    }
}

/// The system's root certificates (an https webhook fails to verify when there are none).
fn system_roots() -> Vec<Certificate<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "cannot read some of the system's root certificates");
    }
    found
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_bounded_line() {
        assert_eq!(excerpt(""), "(no body)");
        assert_eq!(excerpt("bad\nsignature\u{1b}"), "bad signature");
        assert_eq!(excerpt(&"x".repeat(500)).len(), BODY_EXCERPT);
    }
}
