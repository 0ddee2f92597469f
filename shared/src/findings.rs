//! Findings: rules that turn a snapshot into "what is wrong with this machine".
//!
//! The rules live here, not in the agent, so the collector can show and recompute them for stored
//! snapshots. A rule only reads the snapshot; it never looks at the live machine or the clock.
//! Each finding has a stable `id` plus an optional `subject` (a mount point, a unit name), which
//! together identify the problem across tickets.

use serde::{Deserialize, Serialize};

use crate::v1::snapshot::Snapshot;

/// How bad a finding is. Ordered: `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// Stable rule id, e.g. `disk.full`.
    pub id: String,
    pub severity: Severity,
    pub title: String,
    /// The figures that made the rule fire.
    pub evidence: String,
    /// What the finding is about (mount point, unit, sensor), when the rule can fire more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Id of a catalog action that usually fixes this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_action: Option<String>,
}

impl Finding {
    /// `id` or `id:subject`: the same problem on any machine has the same fingerprint.
    pub fn fingerprint(&self) -> String {
        match &self.subject {
            Some(subject) => format!("{}:{}", self.id, subject),
            None => self.id.clone(),
        }
    }
}

/// Thresholds the rules use. Kept together so they are documented in one place.
pub mod thresholds {
    /// Filesystem use that deserves attention.
    pub const DISK_WARN_PERCENT: f64 = 90.0;
    /// Filesystem use at which programs start failing.
    pub const DISK_CRITICAL_PERCENT: f64 = 97.0;
    pub const INODES_WARN_PERCENT: f64 = 90.0;
    pub const INODES_CRITICAL_PERCENT: f64 = 97.0;
    /// Available memory below this share of total is a shortage.
    pub const MEMORY_AVAILABLE_MIN_PERCENT: f64 = 10.0;
    /// Swap use above this share of swap is heavy.
    pub const SWAP_HEAVY_PERCENT: f64 = 50.0;
    /// Load average (5 min) above this multiple of logical cores is overload.
    pub const LOAD_PER_CORE: f64 = 2.0;
    /// This many zombie processes point at a parent that does not reap its children.
    pub const ZOMBIES_MANY: u32 = 5;
    /// Battery full-charge capacity below this share of design capacity.
    pub const BATTERY_HEALTH_LOW_PERCENT: f64 = 60.0;
    /// A sensor this close (°C) to its critical value, or above its max, is near critical.
    pub const TEMPERATURE_MARGIN_C: f32 = 5.0;
    /// Ignore pseudo filesystems smaller than this (tiny tmpfs, efivars).
    pub const DISK_MIN_BYTES: u64 = 64 * 1024 * 1024;
}

use thresholds::*;

/// Runs every rule over `snapshot` and returns the findings, worst first.
pub fn evaluate(snapshot: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    storage_rules(snapshot, &mut out);
    memory_rules(snapshot, &mut out);
    cpu_rules(snapshot, &mut out);
    service_rules(snapshot, &mut out);
    network_rules(snapshot, &mut out);
    software_rules(snapshot, &mut out);
    log_rules(snapshot, &mut out);
    process_rules(snapshot, &mut out);
    hardware_rules(snapshot, &mut out);
    sort_worst_first(&mut out);
    out
}

/// Sorts by severity (worst first), then id and subject, so output is stable.
pub fn sort_worst_first(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.subject.cmp(&b.subject))
    });
}

fn finding(
    id: &str,
    severity: Severity,
    title: String,
    evidence: String,
    subject: Option<&str>,
    action: Option<&str>,
) -> Finding {
    Finding {
        id: id.to_owned(),
        severity,
        title,
        evidence,
        subject: subject.map(str::to_owned),
        suggested_action: action.map(str::to_owned),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

fn storage_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(storage) = snapshot.storage_data() else {
        return;
    };
    for fs in &storage.filesystems {
        let mount = fs.mount_point.as_str();
        if fs.total_bytes >= DISK_MIN_BYTES && !fs.read_only {
            let used = fs.used_percent();
            let severity = if used >= DISK_CRITICAL_PERCENT {
                Some(Severity::Critical)
            } else if used >= DISK_WARN_PERCENT {
                Some(Severity::Warning)
            } else {
                None
            };
            if let Some(severity) = severity {
                out.push(finding(
                    "disk.full",
                    severity,
                    format!("Disk {mount} is {used:.0}% full"),
                    format!(
                        "{} used, {} available of {} on {} ({})",
                        gib(fs.used_bytes),
                        gib(fs.available_bytes),
                        gib(fs.total_bytes),
                        fs.device,
                        fs.fs_type
                    ),
                    Some(mount),
                    Some("clean-package-cache"),
                ));
            }
        }
        if let Some(inodes) = fs.inodes_used_percent() {
            let severity = if inodes >= INODES_CRITICAL_PERCENT {
                Some(Severity::Critical)
            } else if inodes >= INODES_WARN_PERCENT {
                Some(Severity::Warning)
            } else {
                None
            };
            if let (Some(severity), false) = (severity, fs.read_only) {
                out.push(finding(
                    "disk.inodes",
                    severity,
                    format!("Filesystem {mount} is running out of inodes ({inodes:.0}% used)"),
                    format!(
                        "{} of {} inodes free; many small files (caches, mail queues, sessions)",
                        fs.inodes_free, fs.inodes_total
                    ),
                    Some(mount),
                    None,
                ));
            }
        }
        if mount == "/" && fs.read_only {
            out.push(finding(
                "disk.root_read_only",
                Severity::Critical,
                "The root filesystem is mounted read-only".to_owned(),
                format!(
                    "{} ({}) on / is read-only; the kernel usually does this after disk errors",
                    fs.device, fs.fs_type
                ),
                Some("/"),
                None,
            ));
        }
    }
}

fn memory_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(mem) = snapshot.memory_data() else {
        return;
    };
    if mem.total_bytes > 0 {
        let available = mem.available_bytes as f64 * 100.0 / mem.total_bytes as f64;
        if available < MEMORY_AVAILABLE_MIN_PERCENT {
            let hog = mem
                .top_consumers
                .first()
                .map(|p| format!("; largest: {} ({})", p.name, gib(p.memory_bytes)))
                .unwrap_or_default();
            out.push(finding(
                "memory.low",
                Severity::Warning,
                format!("Only {available:.0}% of memory is available"),
                format!(
                    "{} available of {}{hog}",
                    gib(mem.available_bytes),
                    gib(mem.total_bytes)
                ),
                None,
                Some("kill-process"),
            ));
        }
    }
    if mem.swap_total_bytes > 0 {
        let swap = mem.swap_used_bytes as f64 * 100.0 / mem.swap_total_bytes as f64;
        if swap >= SWAP_HEAVY_PERCENT {
            out.push(finding(
                "memory.swap_heavy",
                Severity::Warning,
                format!("Heavy swap use ({swap:.0}% of swap)"),
                format!(
                    "{} of {} swap in use; the machine is likely slow",
                    gib(mem.swap_used_bytes),
                    gib(mem.swap_total_bytes)
                ),
                None,
                None,
            ));
        }
    }
}

fn cpu_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(cpu) = snapshot.cpu_data() else {
        return;
    };
    let cores = f64::from(cpu.logical_cores.max(1));
    let load = cpu.load_average.five;
    if load > LOAD_PER_CORE * cores {
        out.push(finding(
            "cpu.overloaded",
            Severity::Warning,
            format!("System is overloaded (load {load:.1} on {cores} cores)"),
            format!(
                "load average {:.2} {:.2} {:.2} (1/5/15 min), {} logical cores",
                cpu.load_average.one, cpu.load_average.five, cpu.load_average.fifteen, cores
            ),
            None,
            None,
        ));
    }
}

fn service_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(services) = snapshot.services_data() else {
        return;
    };
    for unit in &services.failed_units {
        out.push(finding(
            "service.failed",
            Severity::Warning,
            format!("Service {} has failed", unit.name),
            format!(
                "{} ({}): {}/{}",
                unit.name, unit.description, unit.active, unit.sub
            ),
            Some(&unit.name),
            Some("restart-unit"),
        ));
    }
}

fn network_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(net) = snapshot.network_data() else {
        return;
    };
    if !net.dns_checks.is_empty() && net.dns_checks.iter().all(|c| !c.ok) {
        let detail = net
            .dns_checks
            .iter()
            .map(|c| format!("{}: {}", c.target, c.detail))
            .collect::<Vec<_>>()
            .join("; ");
        out.push(finding(
            "dns.fail",
            Severity::Critical,
            "DNS resolution fails".to_owned(),
            detail,
            None,
            Some("flush-dns"),
        ));
    }
    let has_external_interface = net.interfaces.iter().any(|i| !i.loopback);
    if net.default_routes.is_empty() && has_external_interface {
        out.push(finding(
            "network.no_default_route",
            Severity::Critical,
            "No default route: the machine cannot reach other networks".to_owned(),
            format!(
                "interfaces: {}",
                net.interfaces
                    .iter()
                    .filter(|i| !i.loopback)
                    .map(|i| format!("{} {}", i.name, i.state))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
            Some("restart-networkmanager"),
        ));
    }
    if let Some(check) = net.collector_check.as_ref().filter(|c| !c.ok) {
        out.push(finding(
            "network.collector_unreachable",
            Severity::Warning,
            "The help-desk collector is unreachable".to_owned(),
            format!("{}: {}", check.target, check.detail),
            None,
            None,
        ));
    }
}

fn software_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(sw) = snapshot.software_data() else {
        return;
    };
    if sw.reboot_required {
        let by = if sw.reboot_required_by.is_empty() {
            String::new()
        } else {
            format!(" by {}", sw.reboot_required_by.join(", "))
        };
        out.push(finding(
            "system.reboot_required",
            Severity::Warning,
            "A reboot is required to finish updates".to_owned(),
            format!("reboot requested{by}"),
            None,
            Some("reboot"),
        ));
    }
    if let Some(pending) = sw.pending_updates.filter(|n| *n > 0) {
        let security = sw.pending_security_updates.unwrap_or(0);
        let severity = if security > 0 {
            Severity::Warning
        } else {
            Severity::Info
        };
        out.push(finding(
            "software.updates_pending",
            severity,
            format!("{pending} package updates are pending"),
            format!("{pending} upgradable packages, {security} of them security updates"),
            None,
            None,
        ));
    }
}

fn log_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(logs) = snapshot.logs_data() else {
        return;
    };
    let kills = logs
        .oom_kills_since_boot
        .unwrap_or(u64::from(logs.oom_kill_lines));
    if kills > 0 {
        out.push(finding(
            "memory.oom_kills",
            Severity::Warning,
            format!("The kernel killed {kills} process(es) for lack of memory since boot"),
            logs.lines
                .iter()
                .rev()
                .find(|l| l.kind == crate::v1::snapshot::LogKind::OomKill)
                .map(|l| l.message.clone())
                .unwrap_or_else(|| format!("oom_kill counter: {kills}")),
            None,
            None,
        ));
    }
    if logs.io_error_lines > 0 {
        out.push(finding(
            "disk.io_errors",
            Severity::Critical,
            "The kernel reported disk I/O errors".to_owned(),
            format!(
                "{} I/O error lines in the recent log; back up data and check the disk",
                logs.io_error_lines
            ),
            None,
            None,
        ));
    }
    if logs.segfault_lines > 0 {
        out.push(finding(
            "process.segfaults",
            Severity::Info,
            "Programs crashed with segmentation faults".to_owned(),
            format!("{} segfault lines in the recent log", logs.segfault_lines),
            None,
            None,
        ));
    }
}

fn process_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(procs) = snapshot.processes_data() else {
        return;
    };
    if procs.zombies >= ZOMBIES_MANY {
        let parents = procs
            .zombie_list
            .iter()
            .filter_map(|p| p.parent_pid)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        out.push(finding(
            "process.zombies",
            Severity::Warning,
            format!("{} zombie processes", procs.zombies),
            format!("parents not reaping their children: pid {parents}"),
            None,
            Some("kill-process"),
        ));
    }
}

fn hardware_rules(snapshot: &Snapshot, out: &mut Vec<Finding>) {
    let Some(hw) = snapshot.hardware_data() else {
        return;
    };
    for battery in &hw.batteries {
        if let Some(health) = battery
            .health_percent
            .filter(|h| *h < BATTERY_HEALTH_LOW_PERCENT)
        {
            out.push(finding(
                "battery.health_low",
                Severity::Warning,
                format!(
                    "Battery {} holds only {health:.0}% of its design capacity",
                    battery.name
                ),
                format!(
                    "health {health:.0}%, {} charge cycles; consider replacing it",
                    battery
                        .cycle_count
                        .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                ),
                Some(&battery.name),
                None,
            ));
        }
    }
    for sensor in &hw.temperatures {
        let Some(now) = sensor.celsius else { continue };
        let near_critical = sensor
            .critical_celsius
            .is_some_and(|crit| crit > 0.0 && now >= crit - TEMPERATURE_MARGIN_C);
        let over_max = sensor
            .max_celsius
            .is_some_and(|max| max > 0.0 && now >= max);
        if near_critical || over_max {
            let limit = sensor
                .critical_celsius
                .map(|c| format!("critical {c:.0} °C"))
                .or_else(|| sensor.max_celsius.map(|m| format!("max {m:.0} °C")))
                .unwrap_or_default();
            out.push(finding(
                "hardware.temperature",
                Severity::Critical,
                format!("{} is near its critical temperature", sensor.label),
                format!("{now:.0} °C ({limit})"),
                Some(&sensor.label),
                None,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::snapshot::*;
    use time::macros::datetime;

    fn snap() -> Snapshot {
        Snapshot::empty(datetime!(2026-11-23 09:00 UTC), "test")
    }

    fn ids(s: &Snapshot) -> Vec<String> {
        evaluate(s).iter().map(Finding::fingerprint).collect()
    }

    const GIB: u64 = 1024 * 1024 * 1024;

    fn fs(mount: &str, used_gib: u64, avail_gib: u64) -> Filesystem {
        Filesystem {
            mount_point: mount.into(),
            device: "/dev/vda1".into(),
            fs_type: "ext4".into(),
            total_bytes: (used_gib + avail_gib) * GIB,
            used_bytes: used_gib * GIB,
            available_bytes: avail_gib * GIB,
            inodes_total: 1000,
            inodes_free: 900,
            ..Filesystem::default()
        }
    }

    fn with_storage(filesystems: Vec<Filesystem>) -> Snapshot {
        let mut s = snap();
        s.storage = Some(Section::ok(
            Storage {
                filesystems,
                block_devices: vec![],
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn disk_full_warns_at_90_and_is_critical_at_97() {
        let s = with_storage(vec![fs("/", 89, 11), fs("/home", 91, 9), fs("/var", 98, 2)]);
        let found = evaluate(&s);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].fingerprint(), "disk.full:/var");
        assert_eq!(found[0].severity, Severity::Critical);
        assert_eq!(found[1].fingerprint(), "disk.full:/home");
        assert_eq!(found[1].severity, Severity::Warning);
        assert_eq!(
            found[0].suggested_action.as_deref(),
            Some("clean-package-cache")
        );
    }

    #[test]
    fn disk_full_ignores_tiny_and_read_only_filesystems() {
        let mut tiny = fs("/boot/efi", 0, 0);
        tiny.total_bytes = 1024;
        tiny.used_bytes = 1024;
        let mut squash = fs("/snap/core/1", 1, 0);
        squash.read_only = true;
        assert!(ids(&with_storage(vec![tiny, squash])).is_empty());
    }

    #[test]
    fn inodes_nearly_exhausted_fires() {
        let mut home = fs("/home", 10, 90);
        home.inodes_free = 20;
        assert_eq!(ids(&with_storage(vec![home])), ["disk.inodes:/home"]);
        assert!(ids(&with_storage(vec![fs("/home", 10, 90)])).is_empty());
    }

    #[test]
    fn read_only_root_is_critical() {
        let mut root = fs("/", 10, 90);
        root.read_only = true;
        let found = evaluate(&with_storage(vec![root]));
        assert_eq!(found[0].id, "disk.root_read_only");
        assert_eq!(found[0].severity, Severity::Critical);
        let mut other = fs("/mnt/cd", 10, 90);
        other.read_only = true;
        assert!(ids(&with_storage(vec![other])).is_empty());
    }

    fn with_memory(total: u64, available: u64, swap_total: u64, swap_used: u64) -> Snapshot {
        let mut s = snap();
        s.memory = Some(Section::ok(
            Memory {
                total_bytes: total,
                available_bytes: available,
                used_bytes: total - available,
                swap_total_bytes: swap_total,
                swap_used_bytes: swap_used,
                ..Memory::default()
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn low_available_memory_fires_below_ten_percent() {
        assert_eq!(ids(&with_memory(100, 9, 0, 0)), ["memory.low"]);
        assert!(ids(&with_memory(100, 10, 0, 0)).is_empty());
    }

    #[test]
    fn heavy_swap_fires_at_half_of_swap() {
        assert_eq!(ids(&with_memory(100, 50, 100, 60)), ["memory.swap_heavy"]);
        assert!(ids(&with_memory(100, 50, 100, 10)).is_empty());
        assert!(ids(&with_memory(100, 50, 0, 0)).is_empty());
    }

    fn with_load(five: f64, cores: u32) -> Snapshot {
        let mut s = snap();
        s.cpu = Some(Section::ok(
            Cpu {
                logical_cores: cores,
                load_average: LoadAverage {
                    one: five,
                    five,
                    fifteen: five,
                },
                ..Cpu::default()
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn load_above_twice_the_cores_fires() {
        assert_eq!(ids(&with_load(8.5, 4)), ["cpu.overloaded"]);
        assert!(ids(&with_load(7.9, 4)).is_empty());
    }

    #[test]
    fn each_failed_unit_is_a_finding_with_restart_suggested() {
        let mut s = snap();
        let unit = |name: &str| Unit {
            name: name.into(),
            description: "d".into(),
            load: "loaded".into(),
            active: "failed".into(),
            sub: "failed".into(),
        };
        s.services = Some(Section::ok(
            Services {
                init: Some("systemd".into()),
                system_state: Some("degraded".into()),
                failed_units: vec![unit("cups.service"), unit("nginx.service")],
            },
            vec![],
            1,
        ));
        let found = evaluate(&s);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].fingerprint(), "service.failed:cups.service");
        assert_eq!(found[0].suggested_action.as_deref(), Some("restart-unit"));

        s.services
            .as_mut()
            .unwrap()
            .data
            .as_mut()
            .unwrap()
            .failed_units
            .clear();
        assert!(ids(&s).is_empty());
    }

    fn with_network(checks: Vec<bool>, routes: usize) -> Snapshot {
        let mut s = snap();
        s.network = Some(Section::ok(
            Network {
                interfaces: vec![Interface {
                    name: "eth0".into(),
                    state: "up".into(),
                    ..Interface::default()
                }],
                default_routes: (0..routes)
                    .map(|_| Route {
                        family: "ipv4".into(),
                        gateway: "192.0.2.1".into(),
                        interface: "eth0".into(),
                    })
                    .collect(),
                dns_checks: checks
                    .into_iter()
                    .map(|ok| Check {
                        target: "server 192.0.2.53".into(),
                        ok,
                        detail: if ok { "answered" } else { "timed out" }.into(),
                        elapsed_ms: 1,
                    })
                    .collect(),
                ..Network::default()
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn dns_fails_only_when_every_check_fails() {
        assert_eq!(ids(&with_network(vec![false, false], 1)), ["dns.fail"]);
        assert!(ids(&with_network(vec![false, true], 1)).is_empty());
        assert!(ids(&with_network(vec![], 1)).is_empty());
    }

    #[test]
    fn missing_default_route_fires() {
        assert_eq!(
            ids(&with_network(vec![true], 0)),
            ["network.no_default_route"]
        );
        assert!(ids(&with_network(vec![true], 1)).is_empty());
    }

    #[test]
    fn unreachable_collector_fires_only_when_checked_and_failing() {
        let mut s = with_network(vec![true], 1);
        assert!(ids(&s).is_empty(), "not enrolled: no check, no finding");
        let net = s.network.as_mut().unwrap().data.as_mut().unwrap();
        net.collector_check = Some(Check {
            target: "connect collector.corp:8443".into(),
            ok: false,
            detail: "connection refused".into(),
            elapsed_ms: 1,
        });
        assert_eq!(ids(&s), ["network.collector_unreachable"]);
        let net = s.network.as_mut().unwrap().data.as_mut().unwrap();
        net.collector_check.as_mut().unwrap().ok = true;
        assert!(ids(&s).is_empty());
    }

    fn with_software(reboot: bool, pending: Option<u32>, security: Option<u32>) -> Snapshot {
        let mut s = snap();
        s.software = Some(Section::ok(
            Software {
                reboot_required: reboot,
                reboot_required_by: if reboot {
                    vec!["linux-image".into()]
                } else {
                    vec![]
                },
                pending_updates: pending,
                pending_security_updates: security,
                ..Software::default()
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn reboot_required_fires_with_the_packages_that_asked() {
        let found = evaluate(&with_software(true, None, None));
        assert_eq!(found[0].id, "system.reboot_required");
        assert!(found[0].evidence.contains("linux-image"));
        assert!(ids(&with_software(false, None, None)).is_empty());
    }

    #[test]
    fn pending_updates_fire_and_security_updates_raise_severity() {
        let found = evaluate(&with_software(false, Some(12), Some(0)));
        assert_eq!(found[0].id, "software.updates_pending");
        assert_eq!(found[0].severity, Severity::Info);
        let found = evaluate(&with_software(false, Some(12), Some(3)));
        assert_eq!(found[0].severity, Severity::Warning);
        assert!(ids(&with_software(false, Some(0), Some(0))).is_empty());
        assert!(ids(&with_software(false, None, None)).is_empty());
    }

    fn with_logs(oom: Option<u64>, io: u32, segv: u32) -> Snapshot {
        let mut s = snap();
        s.logs = Some(Section::ok(
            Logs {
                source: "journal".into(),
                oom_kills_since_boot: oom,
                io_error_lines: io,
                segfault_lines: segv,
                ..Logs::default()
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn oom_kills_since_boot_fire() {
        assert_eq!(ids(&with_logs(Some(2), 0, 0)), ["memory.oom_kills"]);
        assert!(ids(&with_logs(Some(0), 0, 0)).is_empty());
    }

    #[test]
    fn io_errors_are_critical_and_segfaults_informational() {
        let found = evaluate(&with_logs(Some(0), 3, 1));
        assert_eq!(found[0].id, "disk.io_errors");
        assert_eq!(found[0].severity, Severity::Critical);
        assert_eq!(found[1].id, "process.segfaults");
        assert_eq!(found[1].severity, Severity::Info);
    }

    fn with_zombies(n: u32) -> Snapshot {
        let mut s = snap();
        s.processes = Some(Section::ok(
            Processes {
                total: 100,
                zombies: n,
                zombie_list: (0..n)
                    .map(|i| ProcessSummary {
                        pid: 1000 + i,
                        parent_pid: Some(42),
                        name: "defunct".into(),
                        ..ProcessSummary::default()
                    })
                    .collect(),
                ..Processes::default()
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn many_zombies_fire_and_name_the_parent() {
        let found = evaluate(&with_zombies(6));
        assert_eq!(found[0].id, "process.zombies");
        assert!(found[0].evidence.contains("42"));
        assert!(ids(&with_zombies(2)).is_empty());
    }

    fn with_hardware(health: Option<f64>, temp: Option<(f32, Option<f32>)>) -> Snapshot {
        let mut s = snap();
        s.hardware = Some(Section::ok(
            Hardware {
                batteries: vec![Battery {
                    name: "BAT0".into(),
                    health_percent: health,
                    cycle_count: Some(812),
                    ..Battery::default()
                }],
                temperatures: temp
                    .into_iter()
                    .map(|(now, crit)| Temperature {
                        label: "Package id 0".into(),
                        celsius: Some(now),
                        max_celsius: None,
                        critical_celsius: crit,
                    })
                    .collect(),
                ..Hardware::default()
            },
            vec![],
            1,
        ));
        s
    }

    #[test]
    fn low_battery_health_fires() {
        let found = evaluate(&with_hardware(Some(48.0), None));
        assert_eq!(found[0].fingerprint(), "battery.health_low:BAT0");
        assert!(found[0].evidence.contains("812"));
        assert!(ids(&with_hardware(Some(85.0), None)).is_empty());
        assert!(ids(&with_hardware(None, None)).is_empty());
    }

    #[test]
    fn temperature_near_critical_fires() {
        assert_eq!(
            ids(&with_hardware(None, Some((97.0, Some(100.0))))),
            ["hardware.temperature:Package id 0"]
        );
        assert!(ids(&with_hardware(None, Some((60.0, Some(100.0))))).is_empty());
        assert!(ids(&with_hardware(None, Some((60.0, None)))).is_empty());
    }

    #[test]
    fn empty_snapshot_has_no_findings() {
        assert!(evaluate(&snap()).is_empty());
    }
}
