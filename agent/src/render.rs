//! Renders a snapshot as a readable terminal summary: findings first, then each section's key
//! figures, then what could not be read.

use std::fmt::Write as _;

use lifeline_shared::findings::Severity;
use lifeline_shared::v1::snapshot::{Section, Snapshot};

/// Width of the section label column.
const LABEL: usize = 10;

fn gib(bytes: u64) -> String {
    let g = bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    if g >= 100.0 {
        format!("{g:.0} GiB")
    } else {
        format!("{g:.1} GiB")
    }
}

fn duration(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// One section line, or its failure.
fn row<T>(
    out: &mut String,
    name: &str,
    section: &Option<Section<T>>,
    body: impl FnOnce(&T) -> String,
) {
    let Some(section) = section else { return };
    let text = match &section.data {
        Some(data) => body(data),
        None => format!(
            "unavailable: {}",
            section
                .errors
                .first()
                .map(String::as_str)
                .unwrap_or("no data")
        ),
    };
    let _ = writeln!(out, "{name:<LABEL$} {text}");
}

/// The whole summary.
pub fn summary(s: &Snapshot, findings_only: bool, timings: bool) -> String {
    let mut out = String::new();
    if s.findings.is_empty() {
        let _ = writeln!(out, "No findings: nothing looks wrong.\n");
    } else {
        let _ = writeln!(out, "Findings ({})", s.findings.len());
        for f in &s.findings {
            let tag = match f.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "WARNING ",
                Severity::Info => "INFO    ",
            };
            let _ = writeln!(out, "  {tag}  {}", f.title);
            let _ = writeln!(out, "            {}", f.evidence);
            if let Some(action) = &f.suggested_action {
                let _ = writeln!(out, "            suggested action: {action}");
            }
        }
        let _ = writeln!(out);
    }
    if findings_only {
        return out;
    }

    row(&mut out, "System", &s.system, |d| {
        let mut parts = vec![format!("host {}", d.hostname.as_deref().unwrap_or("?"))];
        parts.push(
            d.os_pretty_name
                .clone()
                .or_else(|| d.os_name.clone())
                .unwrap_or_else(|| "unknown OS".into()),
        );
        if let Some(k) = &d.kernel {
            parts.push(format!("kernel {k}"));
        }
        parts.push(d.architecture.clone());
        parts.push(format!("up {}", duration(d.uptime_secs)));
        if let Some(tz) = &d.time_zone {
            parts.push(tz.clone());
        }
        if let Some(v) = d.virtualization.as_deref().filter(|v| *v != "none") {
            parts.push(format!("virtual ({v})"));
        }
        parts.join(" · ")
    });
    row(&mut out, "CPU", &s.cpu, |d| {
        format!(
            "{} · {} cores · {:.0}% busy · load {:.2} {:.2} {:.2}",
            if d.model.is_empty() {
                "unknown model"
            } else {
                &d.model
            },
            d.logical_cores,
            d.usage_percent,
            d.load_average.one,
            d.load_average.five,
            d.load_average.fifteen
        )
    });
    row(&mut out, "Memory", &s.memory, |d| {
        let pct = if d.total_bytes > 0 {
            d.available_bytes as f64 * 100.0 / d.total_bytes as f64
        } else {
            0.0
        };
        format!(
            "{} available of {} ({pct:.0}%) · swap {} of {} used",
            gib(d.available_bytes),
            gib(d.total_bytes),
            gib(d.swap_used_bytes),
            gib(d.swap_total_bytes)
        )
    });
    row(&mut out, "Storage", &s.storage, |d| {
        let fs: Vec<String> = d
            .filesystems
            .iter()
            .filter(|f| f.total_bytes > 0)
            .map(|f| {
                format!(
                    "{} {:.0}% ({} free{})",
                    f.mount_point,
                    f.used_percent(),
                    gib(f.available_bytes),
                    if f.read_only { ", read-only" } else { "" }
                )
            })
            .collect();
        format!(
            "{} · {} block device(s)",
            fs.join(" · "),
            d.block_devices.len()
        )
    });
    row(&mut out, "Network", &s.network, |d| {
        let mut parts: Vec<String> = d
            .interfaces
            .iter()
            .filter(|i| !i.loopback)
            .map(|i| {
                format!(
                    "{} {} {}",
                    i.name,
                    i.state,
                    i.addresses.first().map(String::as_str).unwrap_or("")
                )
                .trim_end()
                .to_owned()
            })
            .collect();
        parts.push(match d.default_routes.first() {
            Some(r) => format!("default via {} ({})", r.gateway, r.interface),
            None => "no default route".into(),
        });
        let dns_ok = d.dns_checks.iter().filter(|c| c.ok).count();
        parts.push(format!(
            "DNS {} ({dns_ok}/{} checks ok)",
            if d.dns_servers.is_empty() {
                "none".into()
            } else {
                d.dns_servers.join(", ")
            },
            d.dns_checks.len()
        ));
        if let Some(c) = &d.collector_check {
            parts.push(format!(
                "collector {}",
                if c.ok { "reachable" } else { "unreachable" }
            ));
        }
        parts.join(" · ")
    });
    row(&mut out, "Processes", &s.processes, |d| {
        let mut text = format!(
            "{} total, {} running, {} zombie(s)",
            d.total, d.running, d.zombies
        );
        if let Some(p) = d.top_by_cpu.first() {
            let _ = write!(text, " · top CPU: {} {:.0}%", p.name, p.cpu_percent);
        }
        if let Some(p) = d.top_by_memory.first() {
            let _ = write!(text, " · top memory: {} {}", p.name, gib(p.memory_bytes));
        }
        text
    });
    row(&mut out, "Services", &s.services, |d| {
        format!(
            "{} · {} failed unit(s){}",
            match (d.init.as_deref(), d.system_state.as_deref()) {
                (Some("systemd"), Some(state)) => format!("systemd {state}"),
                (Some("systemd"), None) => "systemd".to_owned(),
                (Some(other), _) => format!("init {other} (not systemd)"),
                (None, _) => "no init system".to_owned(),
            },
            d.failed_units.len(),
            if d.failed_units.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    d.failed_units
                        .iter()
                        .map(|u| u.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )
    });
    row(&mut out, "Software", &s.software, |d| {
        let updates = match d.pending_updates {
            Some(n) => format!(
                "{n} update(s) pending ({} security)",
                d.pending_security_updates.unwrap_or(0)
            ),
            None => "pending updates unknown".into(),
        };
        format!(
            "{} · {} packages · {updates} · {}",
            d.package_manager.as_deref().unwrap_or("no package manager"),
            d.package_count,
            if d.reboot_required {
                "REBOOT REQUIRED"
            } else {
                "no reboot required"
            }
        )
    });
    row(&mut out, "Logs", &s.logs, |d| {
        format!(
            "{} · {} error line(s){} · OOM kills since boot: {}",
            d.source,
            d.lines.len(),
            if d.truncated { " (newest kept)" } else { "" },
            d.oom_kills_since_boot
                .map_or_else(|| "unknown".into(), |n| n.to_string())
        )
    });
    row(&mut out, "Hardware", &s.hardware, |d| {
        let mut parts = Vec::new();
        let model = [d.vendor.as_deref(), d.product.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        parts.push(if model.is_empty() {
            "model unknown".into()
        } else {
            model
        });
        for b in &d.batteries {
            parts.push(format!(
                "battery {} {}{}",
                b.name,
                b.charge_percent
                    .map_or_else(|| "?".into(), |c| format!("{c:.0}%")),
                b.health_percent
                    .map_or_else(String::new, |h| format!(" (health {h:.0}%)"))
            ));
        }
        let hottest = d
            .temperatures
            .iter()
            .filter_map(|t| t.celsius)
            .fold(None, |m: Option<f32>, t| Some(m.map_or(t, |m| m.max(t))));
        parts.push(match hottest {
            Some(t) => format!("{} sensor(s), hottest {t:.0} °C", d.temperatures.len()),
            None => "no temperature sensors".into(),
        });
        for g in &d.gpus {
            parts.push(format!(
                "GPU {} ({})",
                g.vendor
                    .as_deref()
                    .or(g.vendor_id.as_deref())
                    .unwrap_or("?"),
                g.driver.as_deref().unwrap_or("no driver")
            ));
        }
        parts.join(" · ")
    });
    row(&mut out, "User", &s.user, |d| {
        format!(
            "{} (uid {}) · {} · {} · {} session(s)",
            d.current_user.as_deref().unwrap_or("?"),
            d.uid.map_or_else(|| "?".into(), |u| u.to_string()),
            d.session_type.as_deref().unwrap_or("no graphical session"),
            d.locale.as_deref().unwrap_or("locale unset"),
            d.sessions.len()
        )
    });

    let problems = s.section_errors();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nNot collected or incomplete:");
        for (section, error) in problems {
            let _ = writeln!(out, "  {section}: {error}");
        }
    }
    if s.anonymized {
        let _ = writeln!(
            out,
            "\nNames and addresses are replaced by pseudonyms (--anonymize)."
        );
    }
    if timings {
        let _ = writeln!(out, "\n{}", timing_table(s));
    }
    out
}

/// How long each section took.
pub fn timing_table(s: &Snapshot) -> String {
    let mut out = String::from("Timings\n");
    for (name, ms) in s.section_timings() {
        let _ = writeln!(out, "  {:<LABEL$} {ms:>6} ms", name.as_str());
    }
    out
}
