//! `audit list|verify|export`: the audit log from the admin's side.
//!
//! `verify` downloads every entry and checks the hash chain here, with the same
//! [`lifeline_shared::v1::audit::ChainVerifier`] the collector uses, so a compromised collector
//! cannot simply answer "intact". Everything pages with `after_seq`, so memory stays bounded.

use std::io::Write;

use clap::Subcommand;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use lifeline_shared::v1::api::paths;
use lifeline_shared::v1::audit::{
    AuditEntry, ChainBreak, ChainReport, ChainVerifier, LIST_LIMIT_MAX, canonical_json, is_hash,
};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use super::client::ApiClient;
use super::{CliError, Printer, encode, output};

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first (admin)
    List {
        /// Entries from this time on: RFC 3339 (2026-11-01T00:00:00Z) or an age such as 30m,
        /// 24h, 7d
        #[arg(long, value_parser = parse_since)]
        since: Option<Since>,
        /// Entries by this actor only (a user name, machine:ID, anonymous, collector)
        #[arg(long)]
        actor: Option<String>,
        /// Show at most this many entries
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// Download the whole log and verify its hash chain on this machine (admin)
    Verify {
        /// A head hash printed by an earlier `audit verify`: it must still be in the chain
        #[arg(long)]
        head: Option<String>,
    },
    /// Print every entry as one JSON object per line, e.g. for a SIEM (admin)
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
}

/// Formats of `audit export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line
    Jsonl,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit chain broken: {0}")]
    Broken(ChainBreak),
    #[error(
        "--head {0:?} is not an audit hash: expected 64 lowercase hexadecimal digits, as printed \
         by `audit verify`"
    )]
    BadHead(String),
}

/// `--since`: a point in time, or an age counted back from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(OffsetDateTime),
    Ago(Duration),
}

impl Since {
    fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Since::At(at) => at,
            Since::Ago(age) => now - age,
        }
    }
}

/// Parses `--since`: RFC 3339, or a whole number followed by `m`, `h` or `d`.
pub fn parse_since(text: &str) -> Result<Since, String> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(Since::At(at));
    }
    let unit_secs = match text.chars().last() {
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        _ => 0,
    };
    let count = text
        .get(..text.len().saturating_sub(1))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0 && *n <= 100 * 366);
    match count {
        Some(n) if unit_secs > 0 => Ok(Since::Ago(Duration::seconds(n * unit_secs))),
        _ => Err(format!(
            "{text:?} is neither an RFC 3339 time (2026-11-01T00:00:00Z) nor an age such as \
             30m, 24h or 7d"
        )),
    }
}

/// Reads the log page by page, in `seq` order.
struct Pages<'a> {
    client: &'a ApiClient,
    /// `since=...&actor=...&` or empty.
    filter: String,
    after_seq: Option<u64>,
    done: bool,
}

impl<'a> Pages<'a> {
    fn new(client: &'a ApiClient, since: Option<OffsetDateTime>, actor: Option<&str>) -> Self {
        let mut filter = String::new();
        if let Some(since) = since.and_then(|t| t.format(&Rfc3339).ok()) {
            filter.push_str(&format!("since={}&", encode(&since)));
        }
        if let Some(actor) = actor {
            filter.push_str(&format!("actor={}&", encode(actor)));
        }
        Pages {
            client,
            filter,
            after_seq: None,
            done: false,
        }
    }

    /// The next page of at most `size` entries; `None` after the last.
    fn next(&mut self, size: u32) -> Result<Option<Vec<AuditEntry>>, CliError> {
        if self.done {
            return Ok(None);
        }
        let size = size.clamp(1, LIST_LIMIT_MAX);
        let mut path = format!("{}?{}limit={size}", paths::AUDIT, self.filter);
        if let Some(after) = self.after_seq {
            path.push_str(&format!("&after_seq={after}"));
        }
        let page: Vec<AuditEntry> = self.client.get(&path)?;
        let last = page.last().map(|e| e.seq);
        // A short page is the last; so is one that does not move forward (a collector that
        // answers the same page again must not keep us looping).
        self.done = page.len() < size as usize || last <= self.after_seq;
        self.after_seq = last;
        Ok((!page.is_empty()).then_some(page))
    }
}

/// Runs one `audit` subcommand.
pub(super) fn run(
    client: &ApiClient,
    out: &Printer,
    command: &AuditCommand,
) -> Result<(), CliError> {
    match command {
        AuditCommand::List {
            since,
            actor,
            limit,
        } => {
            let since = since.map(|s| s.resolve(OffsetDateTime::now_utc()));
            let mut pages = Pages::new(client, since, actor.as_deref());
            // One more than asked, to tell whether there is more.
            let wanted = u64::from(*limit) + 1;
            let mut entries = Vec::new();
            while (entries.len() as u64) < wanted {
                let room = u32::try_from(wanted - entries.len() as u64).unwrap_or(LIST_LIMIT_MAX);
                match pages.next(room)? {
                    Some(page) => entries.extend(page),
                    None => break,
                }
            }
            let more = entries.len() > *limit as usize;
            entries.truncate(*limit as usize);
            out.show(&entries, |e| table(e))?;
            if more && !out.json {
                let last = entries.last().map_or(0, |e| e.seq);
                writeln!(
                    std::io::stderr(),
                    "more entries follow entry {last}: raise --limit, narrow with --since, or \
                     use `audit export`"
                )?;
            }
            Ok(())
        }
        AuditCommand::Verify { head } => verify(client, out, head.as_deref()),
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
        } => {
            let mut pages = Pages::new(client, None, None);
            let mut stdout = std::io::stdout().lock();
            while let Some(page) = pages.next(LIST_LIMIT_MAX)? {
                for entry in &page {
                    serde_json::to_writer(&mut stdout, entry)?;
                    stdout.write_all(b"\n")?;
                }
                stdout.flush()?;
            }
            Ok(())
        }
    }
}

fn verify(client: &ApiClient, out: &Printer, head: Option<&str>) -> Result<(), CliError> {
    if let Some(head) = head
        && !is_hash(head)
    {
        return Err(AuditError::BadHead(head.to_owned()).into());
    }
    let mut verifier = ChainVerifier::new(head);
    let mut read = 0u64;
    let mut pages = Pages::new(client, None, None);
    while let Some(page) = pages.next(LIST_LIMIT_MAX)? {
        for entry in &page {
            verifier.push(entry);
            read += 1;
        }
        if verifier.is_decided() {
            break;
        }
    }
    let verdict = verifier.finish();
    let report = ChainReport::new(verdict.clone(), read);
    out.show(&report, |r| match &r.head {
        Some(hash) => format!(
            "{}\nKeep this head hash where the collector cannot change it; later, \
             `audit verify --head {hash}` shows that no entry up to it was altered, removed \
             or cut off.",
            r.message
        ),
        None => r.message.clone(),
    })?;
    match verdict {
        Ok(_) => Ok(()),
        Err(problem) => Err(AuditError::Broken(problem).into()),
    }
}

fn table(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "no audit entries".to_owned();
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(vec!["seq", "time", "actor", "action", "subject", "detail"]);
    for e in entries {
        t.add_row(vec![
            e.seq.to_string(),
            output::when(e.at),
            output::clean_line(&e.actor),
            output::clean_line(&e.action),
            e.subject
                .as_deref()
                .map(output::clean_line)
                .unwrap_or_else(|| "-".to_owned()),
            short(&canonical_json(&e.detail), 60),
        ]);
    }
    t.to_string()
}

/// One line of at most `max` characters, control characters escaped.
fn short(text: &str, max: usize) -> String {
    let line = output::clean_line(text);
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_an_age() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            parse_since("2026-11-01T00:00:00Z").unwrap().resolve(now),
            OffsetDateTime::from_unix_timestamp(1_793_491_200).unwrap()
        );
        assert_eq!(
            parse_since("24h").unwrap().resolve(now),
            now - Duration::hours(24)
        );
        assert_eq!(parse_since("7d").unwrap(), Since::Ago(Duration::days(7)));
        assert_eq!(
            parse_since("30m").unwrap(),
            Since::Ago(Duration::minutes(30))
        );
        for bad in [
            "",
            "h",
            "0h",
            "-3d",
            "3w",
            "yesterday",
            "2026-11-01",
            "99999999d",
        ] {
            let err = parse_since(bad).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }

    #[test]
    fn details_are_shortened_to_one_safe_line() {
        assert_eq!(short("{\"a\":1}", 60), "{\"a\":1}");
        assert_eq!(short("line\none\u{1b}[31m", 60), "line one\\u{1b}[31m");
        assert_eq!(short(&"x".repeat(100), 10).chars().count(), 10);
    }
}
