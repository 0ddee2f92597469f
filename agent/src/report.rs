//! `lifeline-agent report`: file a ticket with a fresh snapshot, through the offline spool.
//!
//! The ticket is written to the spool (with a random idempotency key) before anything is sent,
//! and removed only after the collector acknowledged it, so a report survives a collector that
//! is down, a network that is gone and an agent killed mid-send. Tickets left in the spool by
//! earlier reports are delivered first, oldest first, so ticket numbers follow the order users
//! reported in. The body is the JSON `NewTicket`, zstd-compressed (`Content-Encoding: zstd`);
//! a resend carries the same idempotency key, so the collector answers it with the ticket it
//! already stored instead of creating a second one.

use std::time::Duration;

use lifeline_shared::v1::api::{
    DESCRIPTION_MAX_LEN, IDEMPOTENCY_KEY_HEADER, NewTicket, TicketCreated, Urgency,
    encode_screenshot, paths,
};
use lifeline_shared::v1::snapshot::Snapshot;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::config::{AgentConfig, AgentDir, ConfigError};
use crate::spool::{self, Entry, IdempotencyKey, Spool, SpoolError};
use crate::transport::{self, Collector, Identity, TransportError};

/// Sends after the first one when the collector cannot be reached; the spool covers the rest.
const RETRIES: u32 = 1;
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// zstd level: fast, and snapshots compress well anyway.
pub(crate) const COMPRESSION_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("the ticket description is empty: say what is wrong")]
    EmptyDescription,
    #[error("the ticket description is {0} bytes; the limit is {DESCRIPTION_MAX_LEN}")]
    DescriptionTooLong(usize),
    #[error("cannot encode the ticket: {0}")]
    Encode(String),
    /// An answer to "Did this fix it?" the collector would refuse (issue 9).
    #[error("{0}")]
    Feedback(String),
    #[error("the system random number generator failed")]
    Random,
    #[error("this agent's certificate expired on {0}: enroll again with a new enrollment token")]
    Expired(OffsetDateTime),
    #[error("{error} (the report is kept in the spool as {reference})")]
    Kept {
        reference: String,
        #[source]
        error: TransportError,
    },
}

/// What the user reported: the part of a ticket the spool never trims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub description: String,
    pub urgency: Urgency,
    pub os_user: Option<String>,
}

impl Report {
    /// Refuses what the collector would refuse anyway, before it is spooled.
    pub fn check(&self) -> Result<(), ReportError> {
        if self.description.trim().is_empty() {
            return Err(ReportError::EmptyDescription);
        }
        if self.description.len() > DESCRIPTION_MAX_LEN {
            return Err(ReportError::DescriptionTooLong(self.description.len()));
        }
        Ok(())
    }
}

/// A connection to the collector this agent enrolled with, as that agent.
#[derive(Debug)]
pub struct EnrolledClient {
    pub config: AgentConfig,
    pub collector: Collector,
}

impl EnrolledClient {
    pub fn open(dir: &AgentDir) -> Result<EnrolledClient, ReportError> {
        let config = dir.load()?;
        let ca = transport::read_certs(&dir.ca_path())?;
        let identity = Identity::load(&dir.cert_path(), &dir.key_path())?;
        let collector = Collector::new(&config.server, &ca, Some(&identity))?;
        Ok(EnrolledClient { config, collector })
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ReportError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ReportError::Random)?;
    Ok(bytes)
}

/// A fresh random idempotency key (128 bits).
pub fn new_idempotency_key() -> Result<IdempotencyKey, ReportError> {
    Ok(IdempotencyKey::from_bytes(random_bytes::<16>()?))
}

/// A number in 0..=1 for the retry back-off's jitter.
pub fn jitter() -> f64 {
    random_bytes::<4>()
        .map(|b| f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX))
        .unwrap_or(0.5)
}

/// `value` as zstd-compressed JSON, the encoding of every large agent upload.
pub fn compress_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ReportError> {
    let json = serde_json::to_vec(value).map_err(|e| ReportError::Encode(e.to_string()))?;
    zstd::encode_all(&json[..], COMPRESSION_LEVEL).map_err(|e| ReportError::Encode(e.to_string()))
}

/// The compressed body of a ticket.
pub fn encode(report: &Report, snapshot: Option<Snapshot>) -> Result<Vec<u8>, ReportError> {
    encode_with(report, snapshot, None)
}

/// The compressed body of a ticket with the screenshot (base64 PNG) the user attached.
pub fn encode_with(
    report: &Report,
    snapshot: Option<Snapshot>,
    screenshot_png: Option<String>,
) -> Result<Vec<u8>, ReportError> {
    report.check()?;
    compress_json(&NewTicket {
        screenshot_png,
        ..new_ticket(report, snapshot)
    })
}

/// Sends an encoded ticket, retrying a transient failure once with the same idempotency key.
pub fn send(
    client: &EnrolledClient,
    body: &[u8],
    idempotency_key: &str,
) -> Result<TicketCreated, TransportError> {
    let url = client.collector.url(paths::AGENT_TICKETS);
    let mut attempt = 0;
    loop {
        let response = client
            .collector
            .post(paths::AGENT_TICKETS)
            .header("content-type", "application/json")
            .header("content-encoding", "zstd")
            .header(IDEMPOTENCY_KEY_HEADER, idempotency_key)
            .send(body);
        match transport::finish::<TicketCreated>(&url, response) {
            Err(e) if e.is_transient() && attempt < RETRIES => {
                attempt += 1;
                std::thread::sleep(RETRY_PAUSE * attempt);
            }
            other => return other,
        }
    }
}

/// Tries to deliver one spooled ticket. Acknowledged tickets leave the spool; a failure is
/// recorded on the entry with the time of the next attempt.
fn deliver(
    client: &EnrolledClient,
    spool: &Spool,
    entry: &mut Entry<Report>,
    now: OffsetDateTime,
) -> Result<Result<TicketCreated, TransportError>, ReportError> {
    let body = encode_with(
        &entry.ticket,
        entry.snapshot.clone(),
        entry.screenshot_png.clone(),
    )?;
    match send(client, &body, entry.key.as_str()) {
        Ok(created) => {
            spool.acknowledge(&entry.key)?;
            spool.record_delivered(&entry.reference(), created.number, now)?;
            Ok(Ok(created))
        }
        Err(error) => {
            let next = now + spool::backoff(entry.attempts, jitter());
            spool.record_failure(entry, &error.to_string(), next)?;
            Ok(Err(error))
        }
    }
}

/// What [`flush`] did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// (reference, ticket number) of each ticket delivered, oldest first.
    pub delivered: Vec<(String, u64)>,
    /// Tickets still waiting.
    pub waiting: usize,
    /// Why delivery stopped, when the collector could not be reached.
    pub unreachable: Option<TransportError>,
    /// Spool events the user should hear about (quarantined files).
    pub notices: Vec<spool::Notice>,
}

/// Delivers every spooled ticket except `skip`, oldest first. Stops at the first transient
/// failure (the collector is unreachable: the others would fail too); a ticket the collector
/// refuses stays in the spool with the reason and the others still go.
pub fn flush(
    client: &EnrolledClient,
    spool: &Spool,
    skip: Option<&IdempotencyKey>,
    now: OffsetDateTime,
) -> Result<Flushed, ReportError> {
    let (entries, notices) = spool.load::<Report>()?;
    let mut flushed = Flushed {
        notices,
        ..Flushed::default()
    };
    let mut pending = entries
        .into_iter()
        .filter(|e| Some(&e.key) != skip)
        .collect::<Vec<_>>()
        .into_iter();
    for mut entry in pending.by_ref() {
        match deliver(client, spool, &mut entry, now)? {
            Ok(created) => flushed.delivered.push((entry.reference(), created.number)),
            Err(error) if error.is_transient() => {
                flushed.waiting += 1;
                flushed.unreachable = Some(error);
                break;
            }
            Err(_) => flushed.waiting += 1,
        }
    }
    flushed.waiting += pending.count();
    Ok(flushed)
}

/// `lifeline-agent report` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// What is wrong, in your words
    pub description: String,
    /// How urgent it is for you
    #[arg(long, default_value = "normal")]
    pub urgency: Urgency,
}

/// The snapshot options of a report: every section, plus the reachability check of the collector
/// this agent enrolled with (when it is enrolled; the check is skipped otherwise).
pub fn snapshot_options(dir: &AgentDir) -> crate::collect::Options {
    let collector = dir
        .load()
        .ok()
        .and_then(|config| transport::authority_of(&config.server));
    crate::collect::Options {
        collector,
        ..crate::collect::Options::default()
    }
}

/// The user a report is filed for: the snapshot's current user, else the environment's.
pub fn os_user(snapshot: &Snapshot) -> Option<String> {
    snapshot
        .user_data()
        .and_then(|u| u.current_user.clone())
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
}

/// The exact body of a ticket before compression: what "What will be sent" shows.
pub fn new_ticket(report: &Report, snapshot: Option<Snapshot>) -> NewTicket {
    NewTicket {
        description: report.description.clone(),
        urgency: report.urgency,
        os_user: report.os_user.clone(),
        snapshot,
        screenshot_png: None,
    }
}

/// Where a filed report went.
#[derive(Debug)]
pub enum Delivery {
    /// The collector stored it as this ticket number.
    Delivered(u64),
    /// The collector cannot be reached: the report waits in the spool and is delivered later
    /// (by the service, or the next report).
    Queued(TransportError),
}

/// What [`file`] did.
#[derive(Debug)]
pub struct Filed {
    /// The report's reference (`LL-XXXX-XXXX`), known before any network traffic.
    pub reference: String,
    pub delivery: Delivery,
    /// Earlier queued reports delivered on the way, (reference, ticket number).
    pub earlier: Vec<(String, u64)>,
    /// Things the user should hear about (renewal failures, quarantined spool files).
    pub warnings: Vec<String>,
}

/// Files a report with `snapshot`: spools it, delivers what waited before it, then sends it.
/// Shared by `lifeline-agent report`, the help window and the terminal prompt. Once this has
/// spooled the report, nothing loses it: an unreachable collector is [`Delivery::Queued`], and
/// a refusal is [`ReportError::Kept`] with the report still in the spool.
pub fn file(dir: &AgentDir, draft: Report, snapshot: Snapshot) -> Result<Filed, ReportError> {
    file_with(dir, draft, snapshot, None)
}

/// [`file`] with a PNG screenshot the user chose to attach (the help window). If the spool
/// cannot hold the ticket with it, the screenshot is dropped (with a warning), not the ticket.
pub fn file_with(
    dir: &AgentDir,
    draft: Report,
    snapshot: Snapshot,
    screenshot_png: Option<Vec<u8>>,
) -> Result<Filed, ReportError> {
    draft.check()?;
    let mut warnings = Vec::new();
    // Renewal failing is not a reason to lose the report: the current certificate still works
    // until it expires, and the next report tries again.
    match crate::enroll::renew_if_due(dir, OffsetDateTime::now_utc()) {
        Ok(_) => {}
        Err(crate::enroll::EnrollError::Expired(at)) => return Err(ReportError::Expired(at)),
        Err(error) => warnings.push(format!("certificate renewal failed: {error}")),
    }
    let client = EnrolledClient::open(dir)?;
    let report = Report {
        os_user: draft.os_user.clone().or_else(|| os_user(&snapshot)),
        ..draft
    };

    let now = OffsetDateTime::now_utc();
    let spool = Spool::open(dir.spool_path(), spool::DEFAULT_MAX_BYTES)?;
    let mut entry = Entry::new(new_idempotency_key()?, report, snapshot, now);
    entry.screenshot_png = screenshot_png.as_deref().map(encode_screenshot);
    let pushed = match spool.push(&entry) {
        Err(SpoolError::TooLarge { .. }) if entry.screenshot_png.is_some() => {
            entry.screenshot_png = None;
            warnings.push("spool full: the screenshot was left out of this report".to_owned());
            spool.push(&entry)
        }
        other => other,
    };
    warnings.extend(pushed?.iter().map(ToString::to_string));

    let earlier = flush(&client, &spool, Some(&entry.key), now)?;
    warnings.extend(earlier.notices.iter().map(ToString::to_string));
    let outcome = match earlier.unreachable {
        // No point waiting for a second timeout: the collector just did not answer.
        Some(error) => Err(error),
        None => deliver(&client, &spool, &mut entry, now)?,
    };
    let delivery = match outcome {
        Ok(created) => Delivery::Delivered(created.number),
        Err(error) if error.is_transient() => Delivery::Queued(error),
        // Refused: the ticket stays in the spool (nothing is lost), and the user hears why.
        Err(error) => {
            return Err(ReportError::Kept {
                reference: entry.reference(),
                error,
            });
        }
    };
    Ok(Filed {
        reference: entry.reference(),
        delivery,
        earlier: earlier.delivered,
        warnings,
    })
}

/// Runs `lifeline-agent report`: snapshot, spool, deliver, print the ticket number (or that the
/// report waits in the spool).
pub fn run(args: &ReportArgs) -> Result<(), ReportError> {
    let draft = Report {
        description: args.description.trim().to_owned(),
        urgency: args.urgency,
        os_user: None,
    };
    draft.check()?;
    let dir = AgentDir::from_env()?;
    // Fail before the snapshot when not enrolled.
    dir.load()?;
    let snapshot = crate::collect::take(&snapshot_options(&dir));
    let filed = file(&dir, draft, snapshot)?;
    for warning in &filed.warnings {
        eprintln!("lifeline-agent: warning: {warning}");
    }
    for (reference, number) in &filed.earlier {
        println!("Delivered your earlier report {reference} as #{number}");
    }
    match filed.delivery {
        Delivery::Delivered(number) => println!("#{number}"),
        Delivery::Queued(error) => println!(
            "{}: queued, will be delivered automatically.\n(The collector cannot be reached \
             right now: {error})",
            filed.reference
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(description: &str) -> Report {
        Report {
            description: description.into(),
            urgency: Urgency::High,
            os_user: Some("alice".into()),
        }
    }

    #[test]
    fn encoded_ticket_is_zstd_json_with_the_description() {
        let snapshot = Snapshot::empty(OffsetDateTime::UNIX_EPOCH, "test");
        let body = encode(&report("Outlook won't start"), Some(snapshot)).unwrap();
        let json = zstd::decode_all(&body[..]).unwrap();
        let ticket: NewTicket = serde_json::from_slice(&json).unwrap();
        assert_eq!(ticket.description, "Outlook won't start");
        assert_eq!(ticket.urgency, Urgency::High);
        assert!(ticket.snapshot.is_some());
    }

    #[test]
    fn a_screenshot_goes_in_the_body_and_is_absent_otherwise() {
        let png = [&lifeline_shared::v1::api::PNG_SIGNATURE[..], b"x"].concat();
        let body = encode_with(&report("Look"), None, Some(encode_screenshot(&png))).unwrap();
        let ticket: NewTicket =
            serde_json::from_slice(&zstd::decode_all(&body[..]).unwrap()).unwrap();
        let sent = ticket.screenshot_png.unwrap();
        assert_eq!(
            lifeline_shared::v1::api::decode_screenshot(&sent).unwrap(),
            png
        );
        let json = zstd::decode_all(&encode(&report("No"), None).unwrap()[..]).unwrap();
        assert!(!String::from_utf8(json).unwrap().contains("screenshot"));
    }

    #[test]
    fn a_trimmed_snapshot_is_sent_as_absent() {
        let body = encode(&report("No snapshot left"), None).unwrap();
        let ticket: NewTicket =
            serde_json::from_slice(&zstd::decode_all(&body[..]).unwrap()).unwrap();
        assert!(ticket.snapshot.is_none());
    }

    #[test]
    fn empty_or_oversize_descriptions_are_refused_before_spooling() {
        assert!(matches!(
            report("  ").check(),
            Err(ReportError::EmptyDescription)
        ));
        let long = "x".repeat(DESCRIPTION_MAX_LEN + 1);
        assert!(matches!(
            report(&long).check(),
            Err(ReportError::DescriptionTooLong(_))
        ));
        assert!(report("fine").check().is_ok());
    }

    #[test]
    fn idempotency_keys_are_unique() {
        let a = new_idempotency_key().unwrap();
        let b = new_idempotency_key().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..=1.0).contains(&j), "{j}");
        }
    }
}
