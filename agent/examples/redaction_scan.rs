//! Runs redaction over this machine's real process list and logs and prints every line it
//! changes, with the figures BENCHMARKS.md reports, so false positives can be counted by hand.
//!
//! `cargo run -p lifeline-agent --example redaction_scan` (add `-- --quiet` for figures only).
//! Logs: the systemd journal (`journalctl -o json`) when it has entries, else `dmesg`; plus the
//! text logs under `/var/log` that the user can read.

use std::path::Path;
use std::time::{Duration, Instant};

use lifeline_agent::exec::runner::{self, Limits};
use lifeline_agent::redact;

/// Every process's argument vector (kernel threads, which have none, are left out).
fn process_argvs() -> Vec<Vec<String>> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = bytes
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.iter().any(|a| !a.is_empty()) {
            out.push(argv);
        }
    }
    out
}

fn journal_lines() -> Vec<String> {
    let limits = Limits::new(Duration::from_secs(20), 64 * 1024 * 1024);
    let args = ["-o", "json", "--no-pager", "--quiet", "-n", "20000"];
    let Ok(out) = runner::run("journalctl", &args, limits) else {
        return Vec::new();
    };
    out.stdout_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("MESSAGE").and_then(|m| m.as_str()).map(str::to_owned))
        .collect()
}

fn dmesg_lines() -> Vec<String> {
    let limits = Limits::new(Duration::from_secs(10), 16 * 1024 * 1024);
    runner::run("dmesg", &[], limits)
        .map(|out| out.stdout_text().lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Readable, non-binary files under `/var/log`, one level of folders deep.
fn var_log_lines(dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth > 0 && !path.ends_with("journal") {
                var_log_lines(&path, depth - 1, out);
            }
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.extend(text.lines().map(str::to_owned));
        }
    }
}

fn per_line(total: Duration, lines: usize) -> f64 {
    total.as_secs_f64() * 1e6 / lines.max(1) as f64
}

fn main() {
    let quiet = std::env::args().any(|a| a == "--quiet");

    // The patterns compile on first use, once per process: timed apart from the per-line cost.
    let started = Instant::now();
    redact::redact_command(&["warm-up".to_owned(), "--password=x".to_owned()]);
    let compile_time = started.elapsed();

    let argvs = process_argvs();
    let started = Instant::now();
    let redacted: Vec<String> = argvs.iter().map(|a| redact::redact_command(a)).collect();
    let process_time = started.elapsed();
    let mut processes_changed = 0;
    for (argv, after) in argvs.iter().zip(&redacted) {
        let used = argv
            .iter()
            .rposition(|a| !a.is_empty())
            .map_or(0, |p| p + 1);
        let before = redact::bound(argv[..used].join(" "), redact::MAX_COMMAND_CHARS);
        // Titles lose their trailing padding; only a mask is a change.
        if before.trim_end() != after.trim_end() {
            processes_changed += 1;
            if !quiet {
                println!("PROCESS {before}\n     => {after}");
            }
        }
    }

    let mut source = "journal";
    let mut logs = journal_lines();
    if logs.is_empty() {
        source = "dmesg";
        logs = dmesg_lines();
    }
    let journal_count = logs.len();
    var_log_lines(Path::new("/var/log"), 1, &mut logs);
    let started = Instant::now();
    let redacted: Vec<String> = logs.iter().map(|l| redact::redact_text(l)).collect();
    let log_time = started.elapsed();
    let mut logs_changed = 0;
    for (before, after) in logs.iter().zip(&redacted) {
        if before != after {
            logs_changed += 1;
            if !quiet {
                println!("LOG     {before}\n     => {after}");
            }
        }
    }

    println!(
        "first use (patterns compiled): {:.1} ms",
        compile_time.as_secs_f64() * 1e3
    );
    println!(
        "processes: {} scanned, {processes_changed} changed, {:.1} µs per command line ({:.1} ms in all)",
        argvs.len(),
        per_line(process_time, argvs.len()),
        process_time.as_secs_f64() * 1e3
    );
    println!(
        "logs: {} lines ({journal_count} from {source}, {} from /var/log), {logs_changed} changed, {:.1} µs per line",
        logs.len(),
        logs.len() - journal_count,
        per_line(log_time, logs.len())
    );
}
