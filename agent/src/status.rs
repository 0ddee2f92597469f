//! What the agent can tell its user about itself: `status`, `spool list` and `spool flush`.

use std::fmt::Write as _;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::{AgentDir, ConfigError};
use crate::report::{self, EnrolledClient, Report, ReportError};
use crate::service::{self, ServiceState};
use crate::spool::{self, Delivered, Spool, SpoolError};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "never".to_owned())
}

/// One queued ticket as `spool list` shows it.
#[derive(Debug, Serialize)]
pub struct Queued {
    pub reference: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub description: String,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub snapshot_trimmed: bool,
}

/// The spool's content: what waits, and what was recently delivered.
#[derive(Debug, Serialize)]
pub struct SpoolListing {
    pub queued: Vec<Queued>,
    pub delivered: Vec<Delivered>,
}

fn open_spool(dir: &AgentDir) -> Result<Spool, SpoolError> {
    Spool::open(dir.spool_path(), spool::DEFAULT_MAX_BYTES)
}

pub fn spool_listing(dir: &AgentDir) -> Result<SpoolListing, StatusError> {
    let spool = open_spool(dir)?;
    let (entries, notices) = spool.load::<Report>()?;
    for notice in notices {
        eprintln!("lifeline-agent: warning: {notice}");
    }
    Ok(SpoolListing {
        queued: entries
            .into_iter()
            .map(|e| Queued {
                reference: e.reference(),
                created_at: e.created_at,
                description: crate::redact::bound(e.ticket.description.clone(), 60),
                attempts: e.attempts,
                next_attempt_at: e.next_attempt_at,
                last_error: e.last_error.clone(),
                snapshot_trimmed: e.snapshot_trimmed,
            })
            .collect(),
        delivered: spool.delivered(),
    })
}

/// `spool list` as text.
pub fn render_listing(listing: &SpoolListing) -> String {
    let mut out = String::new();
    if listing.queued.is_empty() {
        out.push_str("No reports are waiting to be delivered.\n");
    } else {
        let _ = writeln!(out, "Waiting to be delivered ({}):", listing.queued.len());
        for q in &listing.queued {
            let _ = writeln!(
                out,
                "  {}  {}  {:?}  {} attempt(s){}{}",
                q.reference,
                when(Some(q.created_at)),
                q.description,
                q.attempts,
                q.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default(),
                if q.snapshot_trimmed {
                    ", snapshot dropped (spool full)"
                } else {
                    ""
                }
            );
        }
    }
    if !listing.delivered.is_empty() {
        let _ = writeln!(out, "Recently delivered:");
        for d in listing.delivered.iter().rev().take(10) {
            let _ = writeln!(
                out,
                "  {}  ticket #{}  {}",
                d.reference,
                d.number,
                when(Some(d.delivered_at))
            );
        }
    }
    out
}

/// `spool flush`: deliver everything now, whatever the back-off says.
pub fn flush(dir: &AgentDir) -> Result<String, StatusError> {
    let client = EnrolledClient::open(dir)?;
    let spool = open_spool(dir)?;
    let flushed = report::flush(&client, &spool, None, OffsetDateTime::now_utc())?;
    let mut out = String::new();
    for notice in &flushed.notices {
        let _ = writeln!(out, "warning: {notice}");
    }
    for (reference, number) in &flushed.delivered {
        let _ = writeln!(out, "Delivered {reference} as #{number}");
    }
    match (&flushed.unreachable, flushed.waiting) {
        (Some(e), n) => {
            let _ = writeln!(out, "{n} report(s) still queued: {e}");
        }
        (None, 0) if flushed.delivered.is_empty() => {
            out.push_str("Nothing to deliver.\n");
        }
        (None, 0) => {}
        (None, n) => {
            let _ = writeln!(
                out,
                "{n} report(s) were refused by the collector and stay queued (see `spool list`)"
            );
        }
    }
    Ok(out)
}

/// `status`: enrollment, service, spool.
#[derive(Debug, Serialize)]
pub struct Status {
    pub agent_dir: String,
    pub enrolled: bool,
    pub server: Option<String>,
    pub machine_id: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub certificate_not_after: Option<OffsetDateTime>,
    pub service_running: bool,
    pub service: Option<ServiceState>,
    pub queued_reports: usize,
}

pub fn status(dir: &AgentDir) -> Result<Status, StatusError> {
    let config = dir.load_if_enrolled()?;
    let queued = match open_spool(dir) {
        Ok(spool) => spool.load::<Report>().map(|(e, _)| e.len()).unwrap_or(0),
        Err(_) => 0,
    };
    Ok(Status {
        agent_dir: dir.root.display().to_string(),
        enrolled: config.is_some(),
        server: config.as_ref().map(|c| c.server.clone()),
        machine_id: config.as_ref().map(|c| c.machine_id.clone()),
        certificate_not_after: config.as_ref().map(|c| c.certificate_not_after),
        service_running: service::is_running(dir),
        service: ServiceState::load(dir),
        queued_reports: queued,
    })
}

pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Agent directory: {}", s.agent_dir);
    match (&s.server, &s.machine_id) {
        (Some(server), Some(id)) => {
            let _ = writeln!(out, "Enrolled with:   {server} (machine {id})");
            let _ = writeln!(
                out,
                "Certificate:     valid until {}",
                when(s.certificate_not_after)
            );
        }
        _ => out.push_str("Enrolled with:   not enrolled (run `lifeline-agent enroll`)\n"),
    }
    let _ = writeln!(
        out,
        "Service:         {}",
        if s.service_running {
            "running"
        } else {
            "not running (start it with `lifeline-agent run` or systemd)"
        }
    );
    if let Some(state) = &s.service {
        let _ = writeln!(out, "Last contact:    {}", when(state.last_contact));
        if let Some(e) = &state.last_error {
            let _ = writeln!(out, "Last error:      {e}");
        }
    }
    let _ = writeln!(out, "Queued reports:  {}", s.queued_reports);
    out
}
