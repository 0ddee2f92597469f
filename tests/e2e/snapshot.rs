//! `lifeline-agent snapshot` on this machine: every section, from real sources.

use std::process::{Command, Output};

use lifeline_shared::v1::snapshot::Snapshot;

use crate::binaries;

fn agent(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(binaries::agent())
        .args(args)
        .env("LIFELINE_AGENT_DIR", cache.path())
        .output()
        .expect("run lifeline-agent")
}

fn json_snapshot(args: &[&str]) -> Snapshot {
    let out = agent(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json output parses as a Snapshot")
}

#[test]
fn json_snapshot_has_every_section_with_real_data() {
    let snap = json_snapshot(&["snapshot", "--json"]);
    assert_eq!(snap.schema_version, 1);
    let system = snap.system_data().expect("system section");
    assert!(system.hostname.is_some());
    assert!(system.kernel.is_some());
    let cpu = snap.cpu_data().expect("cpu section");
    assert!(cpu.logical_cores > 0);
    assert_eq!(cpu.per_core_usage_percent.len(), cpu.logical_cores as usize);
    assert!(cpu.sample_ms >= 150, "CPU usage needs a real sample");
    assert!(snap.memory_data().expect("memory section").total_bytes > 0);
    let storage = snap.storage_data().expect("storage section");
    assert!(storage.filesystems.iter().any(|f| f.mount_point == "/"));
    let network = snap.network_data().expect("network section");
    assert!(!network.interfaces.is_empty());
    let procs = snap.processes_data().expect("processes section");
    assert!(procs.total > 0);
    assert!(!procs.top_by_cpu.is_empty());
    assert!(snap.services_data().is_some(), "services section");
    let software = snap.software_data().expect("software section");
    assert!(software.package_count > 0, "dpkg database read");
    assert!(!snap.logs_data().expect("logs section").source.is_empty());
    assert!(snap.hardware_data().is_some(), "hardware section");
    assert!(snap.user_data().expect("user section").uid.is_some());
}

#[test]
fn summary_lists_findings_then_sections() {
    let out = agent(&["snapshot", "--timings"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let findings = text
        .find("Findings (")
        .or_else(|| text.find("No findings"))
        .expect("findings come first");
    let system = text.find("\nSystem ").expect("system line");
    assert!(findings < system);
    for label in [
        "CPU ",
        "Memory ",
        "Storage ",
        "Network ",
        "Processes ",
        "Services ",
        "Software ",
        "Logs ",
        "Hardware ",
        "User ",
    ] {
        assert!(
            text.contains(&format!("\n{label}")),
            "missing {label} in\n{text}"
        );
    }
    assert!(text.contains("Timings") && text.contains("total"), "{text}");
}

#[test]
fn section_flag_limits_the_document() {
    let snap = json_snapshot(&[
        "snapshot",
        "--json",
        "--section",
        "storage",
        "--section",
        "cpu",
    ]);
    assert!(snap.storage.is_some() && snap.cpu.is_some());
    assert!(snap.system.is_none() && snap.software.is_none() && snap.processes.is_none());
}

#[test]
fn unknown_section_is_a_clear_error() {
    let out = agent(&["snapshot", "--section", "disks"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown section \"disks\""), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn anonymized_snapshot_hides_host_name_and_addresses() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let out = agent(&[
        "snapshot",
        "--json",
        "--anonymize",
        "--section",
        "system",
        "--section",
        "network",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let snap: Snapshot = serde_json::from_str(&text).unwrap();
    assert!(snap.anonymized);
    assert_eq!(
        snap.system_data().unwrap().hostname.as_deref(),
        Some("host1")
    );
    if host.len() > 3 {
        assert!(
            !text.contains(&format!("\"{host}\"")),
            "host name {host} leaked"
        );
    }
    for iface in &snap.network_data().unwrap().interfaces {
        for addr in &iface.addresses {
            let ip = addr.split('/').next().unwrap();
            assert!(
                ip.starts_with("192.0.2.")
                    || ip.starts_with("2001:db8:")
                    || ip.starts_with("127.")
                    || ip == "::1",
                "address {addr} of {} not anonymized",
                iface.name
            );
        }
    }
}

#[test]
fn snapshot_as_an_unprivileged_user_still_works() {
    if !rustix_is_root() {
        // Already unprivileged: the other tests cover it.
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        cache.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(binaries::agent())
        .args(["snapshot", "--json"])
        .env("LIFELINE_AGENT_DIR", cache.path())
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: Snapshot = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap.user_data().unwrap().uid, Some(65534));
    assert!(snap.storage_data().is_some() && snap.processes_data().is_some());
    // What could not be read is said, one line each, never as a crash.
    for (_, error) in snap.section_errors() {
        assert!(
            !error.contains('\n') && !error.contains("panicked"),
            "{error}"
        );
    }
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}
