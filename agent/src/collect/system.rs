//! The system section: host, OS, kernel, boot time, time zone, clock, virtualization.

use std::time::Duration;

use lifeline_shared::v1::snapshot::System;
use sysinfo::System as Sys;
use time::OffsetDateTime;

use super::{Options, Problems, read_trimmed};
use crate::exec::runner::{self, Limits};

pub fn collect(_options: &Options) -> (System, Problems) {
    let mut problems = Vec::new();
    let mut note = |what: &str, e: sysinfo::Error| problems.push(format!("{what}: {e}"));
    let hostname = Sys::host_name().map_err(|e| note("host name", e)).ok();
    let os_name = Sys::name().map_err(|e| note("OS name", e)).ok();
    let os_version = Sys::os_version().ok();
    let os_pretty_name = Sys::long_os_version().ok();
    let kernel = Sys::kernel_version().map_err(|e| note("kernel", e)).ok();
    let boot_time = Sys::boot_time()
        .map_err(|e| note("boot time", e))
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?).ok());
    let uptime_secs = Sys::uptime().map_err(|e| note("uptime", e)).unwrap_or(0);
    let systemd = std::path::Path::new("/run/systemd/system").exists();
    let system = System {
        hostname,
        os_name,
        os_version,
        os_pretty_name,
        kernel,
        architecture: Sys::cpu_arch(),
        boot_time,
        uptime_secs,
        time_zone: time_zone(),
        clock_offset_ms: None,
        clock_synchronized: if systemd {
            clock_synchronized(&mut problems)
        } else {
            None
        },
        virtualization: virtualization(),
    };
    (system, problems)
}

/// The IANA zone from `/etc/localtime`'s link target, else `/etc/timezone`.
fn time_zone() -> Option<String> {
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let target = target.to_string_lossy();
        if let Some((_, zone)) = target.split_once("zoneinfo/") {
            return Some(zone.to_owned());
        }
    }
    read_trimmed("/etc/timezone")
}

fn clock_synchronized(problems: &mut Problems) -> Option<bool> {
    let limits = Limits::new(Duration::from_millis(1500), 256);
    match runner::run(
        "timedatectl",
        &["show", "--property=NTPSynchronized", "--value"],
        limits,
    ) {
        Ok(out) if out.status.success() => match out.stdout_text().trim() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        },
        Ok(out) => {
            problems.push(format!("timedatectl: {}", out.stderr_line()));
            None
        }
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    }
}

/// "kvm", "docker", "none"... from systemd-detect-virt, else the CPU's hypervisor flag.
fn virtualization() -> Option<String> {
    let limits = Limits::new(Duration::from_millis(500), 64);
    if let Ok(out) = runner::run("systemd-detect-virt", &[], limits) {
        let kind = out.stdout_text().trim().to_owned();
        if !kind.is_empty() {
            return Some(kind);
        }
    }
    if std::path::Path::new("/.dockerenv").exists() {
        return Some("docker".to_owned());
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = cpuinfo.lines().find(|l| l.starts_with("flags"))?;
    Some(if flags.split_whitespace().any(|f| f == "hypervisor") {
        "vm".to_owned()
    } else {
        "none".to_owned()
    })
}
