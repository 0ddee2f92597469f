//! The software section: installed packages, pending updates, reboot-required.
//!
//! The dpkg database is read directly (`/var/lib/dpkg/status`), which takes milliseconds; rpm
//! systems ask `rpm -qa`. Counting pending updates means simulating an upgrade, which takes
//! seconds, so the answer is cached and recomputed only when the package database or the package
//! lists changed since. The count is waited for at most [`Options::pending_updates_wait`]: on a
//! slow or busy machine the section arrives without it (and says so) rather than not at all, and
//! a long-running agent (the service) still caches the count when the simulation finishes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lifeline_shared::v1::snapshot::{Package, Software};
use serde::{Deserialize, Serialize};

use super::{Options, Problems, read_trimmed};
use crate::exec::runner::{self, Limits};

const DPKG_STATUS: &str = "/var/lib/dpkg/status";
const APT_LISTS: &str = "/var/lib/apt/lists";
const UPDATES_CACHE_FILE: &str = "pending-updates.json";

pub fn collect(options: &Options) -> (Software, Problems) {
    let mut problems = Vec::new();
    let mut managers = Vec::new();
    let mut packages = Vec::new();
    let dpkg = Path::new(DPKG_STATUS);
    if dpkg.exists() {
        match std::fs::read_to_string(dpkg) {
            Ok(text) => {
                managers.push("dpkg");
                packages.extend(parse_dpkg_status(&text));
            }
            Err(e) => problems.push(format!("{DPKG_STATUS}: {e}")),
        }
    }
    if Path::new("/var/lib/rpm").exists() || Path::new("/usr/lib/sysimage/rpm").exists() {
        match rpm_packages() {
            Ok(list) => {
                managers.push("rpm");
                packages.extend(list);
            }
            Err(e) => problems.push(e),
        }
    }
    if managers.is_empty() && problems.is_empty() {
        problems.push("no package database found (dpkg or rpm)".to_owned());
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));

    let (pending_updates, pending_security_updates) = if managers.contains(&"dpkg") {
        match pending_apt_updates_within(options) {
            Ok(p) => (Some(p.total), Some(p.security)),
            Err(e) => {
                problems.push(e);
                (None, None)
            }
        }
    } else {
        (None, None)
    };

    let reboot_required = Path::new("/var/run/reboot-required").exists()
        || Path::new("/run/reboot-required").exists();
    let reboot_required_by = read_trimmed("/var/run/reboot-required.pkgs")
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default();

    (
        Software {
            package_manager: (!managers.is_empty()).then(|| managers.join("+")),
            package_count: u32::try_from(packages.len()).unwrap_or(u32::MAX),
            packages,
            pending_updates,
            pending_security_updates,
            reboot_required,
            reboot_required_by,
        },
        problems,
    )
}

/// Installed packages from dpkg's status file (paragraphs of `Field: value` lines).
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    text.split("\n\n")
        .filter_map(|paragraph| {
            let mut name = None;
            let mut version = None;
            let mut arch = None;
            let mut installed = false;
            for line in paragraph.lines() {
                // Continuation lines (descriptions, conffiles) start with a space.
                if line.starts_with([' ', '\t']) {
                    continue;
                }
                let Some((field, value)) = line.split_once(':') else {
                    continue;
                };
                let value = value.trim();
                match field {
                    "Package" => name = Some(value),
                    "Version" => version = Some(value),
                    "Architecture" => arch = Some(value),
                    // "want flag status": only fully installed packages count.
                    "Status" => installed = value.ends_with(" installed"),
                    _ => {}
                }
            }
            (installed && name.is_some()).then(|| Package {
                name: name.unwrap_or_default().to_owned(),
                version: version.unwrap_or_default().to_owned(),
                architecture: arch.unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn rpm_packages() -> Result<Vec<Package>, String> {
    let out = runner::run(
        "rpm",
        &["-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n"],
        Limits::new(Duration::from_secs(5), 4 * 1024 * 1024),
    )
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("rpm -qa: {}", out.stderr_line()));
    }
    Ok(out
        .stdout_text()
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Package {
                name: f.next()?.to_owned(),
                version: f.next()?.to_owned(),
                architecture: f.next()?.to_owned(),
            })
        })
        .collect())
}

/// Upgradable package counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub total: u32,
    pub security: u32,
}

/// Counts `Inst` lines of an apt upgrade simulation; those from a security suite are security
/// updates.
pub fn parse_apt_simulation(text: &str) -> Pending {
    let mut pending = Pending {
        total: 0,
        security: 0,
    };
    for line in text.lines().filter(|l| l.starts_with("Inst ")) {
        pending.total += 1;
        if line.contains("-security") || line.contains("Debian-Security") {
            pending.security += 1;
        }
    }
    pending
}

/// Ubuntu's update-notifier summary: "12 updates can be applied immediately.\n3 of these updates
/// are standard security updates."
pub fn parse_update_notifier(text: &str) -> Option<Pending> {
    let leading_number = |line: &str| line.split_whitespace().next()?.parse::<u32>().ok();
    let total = text
        .lines()
        .find(|l| {
            l.contains("can be applied")
                || l.contains("can be updated")
                || l.contains("can be upgraded")
        })
        .and_then(leading_number)?;
    let security = text
        .lines()
        .find(|l| l.contains("security update"))
        .and_then(leading_number)
        .unwrap_or(0);
    Some(Pending { total, security })
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedPending {
    pending: Pending,
}

fn newest_mtime(paths: &[&Path]) -> Option<SystemTime> {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
}

/// [`pending_apt_updates`] on its own thread, waited for at most `pending_updates_wait`.
fn pending_apt_updates_within(options: &Options) -> Result<Pending, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let cache_dir = options.cache_dir.clone();
    std::thread::Builder::new()
        .name("pending-updates".to_owned())
        .spawn(move || {
            let _ = tx.send(pending_apt_updates(cache_dir.as_deref()));
        })
        .map_err(|e| format!("pending updates: cannot start a thread: {e}"))?;
    let wait = options.pending_updates_wait;
    rx.recv_timeout(wait).unwrap_or_else(|_| {
        Err(format!(
            "pending updates not counted: apt-get --simulate took longer than {} s on this \
             machine; a later snapshot uses its count once one run finishes",
            wait.as_secs()
        ))
    })
}

fn pending_apt_updates(cache_dir: Option<&Path>) -> Result<Pending, String> {
    if let Some(p) = read_trimmed("/var/lib/update-notifier/updates-available")
        .as_deref()
        .and_then(parse_update_notifier)
    {
        return Ok(p);
    }
    let inputs_changed = newest_mtime(&[Path::new(DPKG_STATUS), Path::new(APT_LISTS)]);
    let cache: Option<PathBuf> = cache_dir.map(|d| d.join(UPDATES_CACHE_FILE));
    if let Some(cache) = &cache {
        let fresh = std::fs::metadata(cache)
            .and_then(|m| m.modified())
            .is_ok_and(|cached_at| inputs_changed.is_none_or(|changed| cached_at > changed));
        let cached = fresh
            .then(|| std::fs::read(cache).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<CachedPending>(&b).ok());
        if let Some(c) = cached {
            return Ok(c.pending);
        }
    }
    let out = runner::run(
        "apt-get",
        &["--simulate", "-o", "Debug::NoLocking=true", "dist-upgrade"],
        Limits::new(Duration::from_secs(20), 8 * 1024 * 1024),
    )
    .map_err(|e| format!("pending updates: {e}"))?;
    if !out.status.success() {
        return Err(format!("apt-get --simulate: {}", out.stderr_line()));
    }
    let pending = parse_apt_simulation(&out.stdout_text());
    if let Some(cache) = &cache {
        // Best effort: a read-only home only costs the next snapshot the same few seconds.
        let _ = std::fs::create_dir_all(cache.parent().unwrap_or(Path::new("."))).and_then(|()| {
            let json = serde_json::to_vec(&CachedPending { pending }).unwrap_or_default();
            let tmp = cache.with_extension("tmp");
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, cache)
        });
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_installed_packages_from_dpkg_status() {
        let pkgs = parse_dpkg_status(include_str!("../../testdata/dpkg_status_small.txt"));
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        // "removed-pkg" is deinstalled (config-files) and "half" is half-installed.
        assert_eq!(names, ["bash", "libc6", "openssh-server"]);
        assert_eq!(pkgs[1].version, "2.36-9+deb12u9");
        assert_eq!(pkgs[1].architecture, "amd64");
    }

    #[test]
    fn empty_or_garbage_status_yields_nothing() {
        assert!(parse_dpkg_status("").is_empty());
        assert!(parse_dpkg_status("\u{0}\u{1}garbage\n\nmore: junk").is_empty());
    }

    #[test]
    fn counts_pending_and_security_updates_from_apt_simulation() {
        let text = "NOTE: This is only a simulation!\n\
            Inst libc6 [2.36-9+deb12u8] (2.36-9+deb12u9 Debian:12.8/stable [amd64])\n\
            Inst openssl [3.0.14-1~deb12u2] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])\n\
            Conf libc6 (2.36-9+deb12u9 Debian:12.8/stable [amd64])\n";
        assert_eq!(
            parse_apt_simulation(text),
            Pending {
                total: 2,
                security: 1
            }
        );
        assert_eq!(parse_apt_simulation("").total, 0);
    }

    #[test]
    fn parses_update_notifier_summary() {
        let text = "\n12 updates can be applied immediately.\n3 of these updates are standard security updates.\nTo see these additional updates run: apt list --upgradable\n";
        assert_eq!(
            parse_update_notifier(text),
            Some(Pending {
                total: 12,
                security: 3
            })
        );
        assert_eq!(parse_update_notifier("nothing here"), None);
    }
}
