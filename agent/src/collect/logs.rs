//! The logs section: recent error-level journal and kernel lines, bounded, classified.
//!
//! Sources, in order: the systemd journal (errors of this boot, plus kernel lines about OOM kills,
//! I/O errors and segfaults, which the kernel logs below error level), else `dmesg`. The kernel's
//! own OOM-kill counter (`/proc/vmstat`) is read regardless, since it needs no privileges.

use std::time::Duration;

use lifeline_shared::v1::snapshot::{LogKind, LogLine, Logs};
use serde_json::Value;

use super::{Options, Problems};
use crate::exec::runner::{self, Limits};
use crate::redact;

/// Lines kept in a snapshot (newest win).
pub const MAX_LINES: usize = 100;
/// Characters kept of one message.
pub const MAX_MESSAGE_CHARS: usize = 400;
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Kernel messages worth reporting whatever their level.
const KERNEL_PATTERN: &str =
    "Out of memory|oom-kill|Killed process|I/O error|segfault at|EXT4-fs error|Buffer I/O";

pub fn collect(_options: &Options) -> (Logs, Problems) {
    let mut problems = Vec::new();
    let oom_kills_since_boot = std::fs::read_to_string("/proc/vmstat")
        .ok()
        .and_then(|t| parse_vmstat_oom_kills(&t));

    let (source, mut lines) = match journal_lines(&mut problems) {
        Some(lines) => ("journal", lines),
        None => match dmesg_lines(&mut problems) {
            Some(lines) => ("dmesg", lines),
            None => ("none", Vec::new()),
        },
    };
    let count =
        |kind: LogKind| u32::try_from(lines.iter().filter(|l| l.kind == kind).count()).unwrap_or(0);
    let oom_kill_lines = count(LogKind::OomKill);
    let io_error_lines = count(LogKind::IoError);
    let segfault_lines = count(LogKind::Segfault);
    let truncated = lines.len() > MAX_LINES;
    if truncated {
        lines.drain(..lines.len() - MAX_LINES);
    }
    (
        Logs {
            source: source.to_owned(),
            oom_kills_since_boot,
            oom_kill_lines,
            io_error_lines,
            segfault_lines,
            lines,
            truncated,
        },
        problems,
    )
}

/// The `oom_kill` counter of `/proc/vmstat` (Linux 4.13+).
pub fn parse_vmstat_oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// What kind of trouble a log message reports.
pub fn classify(message: &str) -> LogKind {
    if message.contains("Out of memory")
        || message.contains("oom-kill")
        || message.contains("Killed process")
    {
        LogKind::OomKill
    } else if message.contains("I/O error") || message.contains("EXT4-fs error") {
        LogKind::IoError
    } else if message.contains("segfault at") {
        LogKind::Segfault
    } else {
        LogKind::Other
    }
}

fn line(time: Option<String>, source: String, message: &str) -> LogLine {
    LogLine {
        time,
        source,
        kind: classify(message),
        message: redact::bound(redact::redact_text(message.trim()), MAX_MESSAGE_CHARS),
    }
}

fn journal_lines(problems: &mut Problems) -> Option<Vec<LogLine>> {
    // Without journal files journalctl answers "-- No entries --" and exits 0: use dmesg instead.
    let has_files =
        |dir: &str| std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if !has_files("/var/log/journal") && !has_files("/run/log/journal") {
        return None;
    }
    let limits = Limits::new(JOURNAL_TIMEOUT, 2 * 1024 * 1024);
    let fields = "--output-fields=MESSAGE,SYSLOG_IDENTIFIER,_COMM,_TRANSPORT";
    let errors = runner::run(
        "journalctl",
        &[
            "--boot",
            "--priority=err",
            "--lines=300",
            "--output=json",
            "--no-pager",
            "--quiet",
            fields,
        ],
        limits,
    );
    let errors = match errors {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            problems.push(format!("journalctl: {}", out.stderr_line()));
            return None;
        }
        Err(runner::RunError::NotFound { .. }) => return None,
        Err(e) => {
            problems.push(e.to_string());
            return None;
        }
    };
    let mut lines = parse_journal_json(&errors.stdout_text());
    // Kernel lines below error level that still matter (segfaults are logged as info).
    if let Ok(out) = runner::run(
        "journalctl",
        &[
            "--boot",
            "--dmesg",
            "--grep",
            KERNEL_PATTERN,
            "--lines=100",
            "--output=json",
            "--no-pager",
            "--quiet",
            fields,
        ],
        limits,
    ) {
        for extra in parse_journal_json(&out.stdout_text()) {
            if !lines
                .iter()
                .any(|l| l.time == extra.time && l.message == extra.message)
            {
                lines.push(extra);
            }
        }
        lines.sort_by(|a, b| a.time.cmp(&b.time));
    }
    Some(lines)
}

/// Parses `journalctl --output=json` (one object per line). `MESSAGE` may be an array of bytes
/// when it is not valid UTF-8.
pub fn parse_journal_json(text: &str) -> Vec<LogLine> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|entry| {
            let message = match entry.get("MESSAGE")? {
                Value::String(s) => s.clone(),
                Value::Array(bytes) => {
                    let bytes: Vec<u8> = bytes
                        .iter()
                        .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                _ => return None,
            };
            let text_field = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_owned);
            let source = if text_field("_TRANSPORT").as_deref() == Some("kernel") {
                "kernel".to_owned()
            } else {
                text_field("SYSLOG_IDENTIFIER")
                    .or_else(|| text_field("_COMM"))
                    .unwrap_or_else(|| "unknown".to_owned())
            };
            let time = text_field("__REALTIME_TIMESTAMP")
                .and_then(|us| us.parse::<i128>().ok())
                .and_then(|us| time::OffsetDateTime::from_unix_timestamp_nanos(us * 1000).ok())
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            Some(line(time, source, &message))
        })
        .collect()
}

fn dmesg_lines(problems: &mut Problems) -> Option<Vec<LogLine>> {
    match runner::run(
        "dmesg",
        &["--decode", "--time-format=iso", "--nopager"],
        Limits::new(JOURNAL_TIMEOUT, 4 * 1024 * 1024),
    ) {
        Ok(out) if out.status.success() => Some(parse_dmesg(&out.stdout_text())),
        Ok(out) => {
            problems.push(format!(
                "kernel log not readable: dmesg: {} (needs root or kernel.dmesg_restrict=0)",
                out.stderr_line()
            ));
            None
        }
        Err(e) => {
            problems.push(format!("kernel log not readable: {e}"));
            None
        }
    }
}

/// Parses `dmesg --decode --time-format=iso` lines (`kern  :err   : 2026-...,123+00:00 text`),
/// keeping error-level lines and the kernel lines that matter at any level.
pub fn parse_dmesg(text: &str) -> Vec<LogLine> {
    text.lines()
        .filter_map(|l| {
            let (facility, rest) = l.split_once(':')?;
            let (level, rest) = rest.split_once(':')?;
            let level = level.trim();
            let rest = rest.trim_start();
            let (time, message) = match rest.split_once(' ') {
                Some((t, m)) if t.len() >= 19 && t.as_bytes()[4] == b'-' => (Some(t.to_owned()), m),
                _ => (None, rest),
            };
            let severe = matches!(level, "emerg" | "alert" | "crit" | "err");
            let kind = classify(message);
            (severe || kind != LogKind::Other).then(|| {
                let source = if facility.trim() == "kern" {
                    "kernel"
                } else {
                    facility.trim()
                };
                line(time, source.to_owned(), message)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oom_kill_counter() {
        assert_eq!(
            parse_vmstat_oom_kills("pgfault 12\noom_kill 3\nnuma_hit 1\n"),
            Some(3)
        );
        assert_eq!(parse_vmstat_oom_kills("pgfault 12\n"), None);
    }

    #[test]
    fn parses_and_classifies_journal_lines() {
        let lines = parse_journal_json(include_str!("../../testdata/journal_errors.jsonl"));
        assert_eq!(lines.len(), 5, "the malformed line is skipped");
        assert_eq!(lines[0].kind, LogKind::OomKill);
        assert_eq!(lines[0].source, "kernel");
        assert_eq!(
            lines[0].time.as_deref(),
            Some("2026-11-23T08:13:20.123456Z")
        );
        assert_eq!(lines[1].kind, LogKind::IoError);
        assert_eq!(lines[2].kind, LogKind::Segfault);
        assert_eq!(lines[3].source, "sshd");
        assert_eq!(lines[3].kind, LogKind::Other);
        assert_eq!(lines[4].message, "binary message");
    }

    #[test]
    fn secrets_in_log_lines_are_masked() {
        let lines = parse_journal_json(include_str!("../../testdata/journal_errors.jsonl"));
        assert!(
            lines[3].message.contains("password=***"),
            "{}",
            lines[3].message
        );
        assert!(!lines[3].message.contains("hunter2"));
    }

    #[test]
    fn parses_dmesg_keeping_errors_and_notable_kernel_lines() {
        let text = "kern  :info  : 2026-11-23T08:00:00,000000+00:00 Linux version 6.1.0\n\
                    kern  :err   : 2026-11-23T08:01:00,000000+00:00 blk_update_request: I/O error, dev sda, sector 2048\n\
                    kern  :info  : 2026-11-23T08:02:00,000000+00:00 app[123]: segfault at 0 ip 00007f sp 00007ff error 4\n\
                    user  :err   : 2026-11-23T08:03:00,000000+00:00 something broke\n\
                    garbage line\n";
        let lines = parse_dmesg(text);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].kind, LogKind::IoError);
        assert_eq!(lines[0].source, "kernel");
        assert_eq!(lines[1].kind, LogKind::Segfault);
        assert_eq!(lines[2].source, "user");
        assert_eq!(
            lines[2].time.as_deref(),
            Some("2026-11-23T08:03:00,000000+00:00")
        );
    }

    #[test]
    fn long_messages_are_bounded() {
        let long = format!("{{\"MESSAGE\":\"{}\"}}", "x".repeat(5000));
        let lines = parse_journal_json(&long);
        assert_eq!(lines[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
