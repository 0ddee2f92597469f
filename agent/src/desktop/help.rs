//! `lifeline-agent help`: the flow the help window and the terminal prompt share.
//!
//! Diagnostics are collected on a background thread from the moment help opens, so by the time
//! the user has described the problem the snapshot is ready and Send is instant. What will be
//! sent is shown from the very [`NewTicket`] that is filed: the snapshot is redacted while it is
//! collected (`collect`), so the preview is the document after redaction. Filing goes through
//! [`report::file`], the spool-first path of `lifeline-agent report`: the ticket is in the spool
//! before any network traffic, so closing the window after Send never loses it.

use std::sync::mpsc;
use std::time::Duration;

use lifeline_shared::v1::api::Urgency;
use lifeline_shared::v1::snapshot::Snapshot;

use crate::config::{AgentDir, ConfigError};
use crate::exec::runner::{self, Limits, RunError};
use crate::report::{self, Delivery, Filed, Report, ReportError};

/// Longest a help window may stay open; it is closed (killed) after that.
const WINDOW_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum HelpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("cannot find this program's path to start the help window: {0}")]
    OwnPath(std::io::Error),
    #[error("the help window failed: {0}")]
    Window(String),
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    #[error("{0}")]
    Input(String),
}

/// `lifeline-agent help` flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HelpArgs {
    /// Ask in the terminal even when a display is available.
    #[arg(long)]
    pub terminal: bool,
    /// Which try this is at opening the window (see `desktop::is_transient_display_error`).
    #[arg(long, hide = true, default_value_t = 1)]
    pub attempt: u32,
}

/// Runs `lifeline-agent help`: the window on a desktop, else the terminal prompt.
pub fn run(args: &HelpArgs) -> Result<(), HelpError> {
    let dir = AgentDir::from_env()?;
    // Not enrolled: say so before asking anything.
    dir.load()?;
    #[cfg(feature = "desktop")]
    if !args.terminal && super::display_available() {
        return match super::window::run(dir) {
            Err(HelpError::Window(message))
                if super::is_transient_display_error(&message)
                    && args.attempt < super::WINDOW_ATTEMPTS =>
            {
                run_window_process(args.attempt + 1)
            }
            other => other,
        };
    }
    #[cfg(not(feature = "desktop"))]
    let _ = args;
    super::terminal::run(&dir, std::io::stdin().lock(), std::io::stdout().lock())
}

/// A snapshot being collected in the background.
#[derive(Debug)]
pub struct Collecting {
    receiver: mpsc::Receiver<Snapshot>,
    snapshot: Option<Snapshot>,
}

impl Collecting {
    /// Starts collecting a report's snapshot now.
    pub fn start(dir: &AgentDir) -> Collecting {
        let options = report::snapshot_options(dir);
        let (sender, receiver) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("collect".to_owned())
            .spawn(move || {
                let _ = sender.send(crate::collect::take(&options));
            });
        if let Err(e) = spawned {
            eprintln!("lifeline-agent: cannot collect diagnostics in the background: {e}");
        }
        Collecting {
            receiver,
            snapshot: None,
        }
    }

    /// The snapshot, once it is there.
    pub fn ready(&mut self) -> Option<&Snapshot> {
        if self.snapshot.is_none() {
            self.snapshot = self.receiver.try_recv().ok();
        }
        self.snapshot.as_ref()
    }

    /// Waits for the snapshot. The collector bounds every section's time, so this returns
    /// within seconds; a collection thread that died yields an empty snapshot that says so.
    pub fn wait(mut self) -> Snapshot {
        if let Some(snapshot) = self.snapshot.take() {
            return snapshot;
        }
        self.receiver.recv().unwrap_or_else(|_| {
            eprintln!("lifeline-agent: diagnostics collection failed: sending without a snapshot");
            Snapshot::empty(time::OffsetDateTime::now_utc(), env!("CARGO_PKG_VERSION"))
        })
    }
}

/// The report the user is about to send: trimmed description, urgency, user.
pub fn draft(description: &str, urgency: Urgency, snapshot: &Snapshot) -> Report {
    Report {
        description: description.trim().to_owned(),
        urgency,
        os_user: report::os_user(snapshot),
    }
}

/// "What will be sent", readable: the ticket fields, then the snapshot's findings and
/// sections as the terminal summary shows them. `screenshot` describes the attached screenshot
/// ("1600x900 PNG, 312 KB"), when there is one.
pub fn preview(draft: &Report, snapshot: &Snapshot, screenshot: Option<&str>) -> String {
    let mut out = format!(
        "Description: {}\nUrgency:     {}\nUser:        {}\nSnapshot:    taken {}\n{}\n",
        if draft.description.is_empty() {
            "(not written yet)"
        } else {
            &draft.description
        },
        draft.urgency,
        draft.os_user.as_deref().unwrap_or("unknown"),
        snapshot
            .collected_at
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .unwrap_or_default(),
        screenshot
            .map(|s| format!("Screenshot:  {s} (shown above)\n"))
            .unwrap_or_default(),
    );
    out.push_str(&crate::render::summary(snapshot, false, false));
    out
}

/// "What will be sent", exactly: the ticket's JSON body before compression. The screenshot's
/// base64 text is long and unreadable, so it stands in as `screenshot` (its description).
pub fn document(draft: &Report, snapshot: &Snapshot, screenshot: Option<&str>) -> String {
    let ticket = lifeline_shared::v1::api::NewTicket {
        screenshot_png: screenshot.map(|s| format!("(base64 of the screenshot: {s})")),
        ..report::new_ticket(draft, Some(snapshot.clone()))
    };
    serde_json::to_string_pretty(&ticket)
        .unwrap_or_else(|e| format!("cannot show the document: {e}"))
}

/// Files the report (spool first, then deliver), with the PNG screenshot the user attached.
pub fn send(
    dir: &AgentDir,
    draft: Report,
    snapshot: Snapshot,
    screenshot_png: Option<Vec<u8>>,
) -> Result<Filed, HelpError> {
    let filed = report::file_with(dir, draft, snapshot, screenshot_png)?;
    for warning in &filed.warnings {
        eprintln!("lifeline-agent: warning: {warning}");
    }
    Ok(filed)
}

/// What the user is told after Send.
pub fn outcome(filed: &Filed) -> String {
    match &filed.delivery {
        Delivery::Delivered(number) => {
            format!("{}: delivered, ticket #{number}", filed.reference)
        }
        Delivery::Queued(_) => format!(
            "{}: queued, will be sent when the network is back",
            filed.reference
        ),
    }
}

/// Runs `lifeline-agent help` as a process of its own and waits for it: what the hotkey does.
/// The window inherits only the desktop session's variables ([`runner::Environment::Desktop`]).
pub fn run_window_process(attempt: u32) -> Result<(), HelpError> {
    let exe = std::env::current_exe().map_err(HelpError::OwnPath)?;
    let program = exe.to_string_lossy().into_owned();
    let options = runner::Options::desktop(Limits::new(WINDOW_LIFETIME, 16 * 1024));
    let attempt = attempt.to_string();
    let out = runner::run_with(&program, &["help", "--attempt", &attempt], &options)?;
    if out.timed_out {
        return Err(HelpError::Window(format!(
            "closed after {} minutes",
            WINDOW_LIFETIME.as_secs() / 60
        )));
    }
    if !out.status.success() {
        return Err(HelpError::Window(out.stderr_line()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_shows_the_ticket_fields_and_the_document_is_the_wire_body() {
        let snapshot = Snapshot::empty(time::OffsetDateTime::UNIX_EPOCH, "test");
        let report = Report {
            description: "VPN drops".into(),
            urgency: Urgency::High,
            os_user: Some("alice".into()),
        };
        let text = preview(&report, &snapshot, None);
        assert!(text.contains("Description: VPN drops"), "{text}");
        assert!(text.contains("Urgency:     high"), "{text}");
        assert!(!text.contains("Screenshot"), "{text}");
        let with = preview(&report, &snapshot, Some("800x600 PNG, 20 KB"));
        assert!(with.contains("Screenshot:  800x600 PNG, 20 KB"), "{with}");
        let doc: lifeline_shared::v1::api::NewTicket =
            serde_json::from_str(&document(&report, &snapshot, None)).unwrap();
        assert_eq!(doc.description, "VPN drops");
        assert_eq!(doc.snapshot.unwrap(), snapshot);
    }
}
