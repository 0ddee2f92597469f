//! The diagnostics snapshot document (schema version 1).
//!
//! A snapshot is what the agent knows about a machine at one moment. Every section is optional (the
//! user may ask for a subset) and every section carries its own errors, so one unreadable source
//! never costs the rest of the document.
//!
//! Compatibility: no type here denies unknown fields and every field has a default, so a document
//! written by a newer agent, with fields this version does not know, still parses.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::findings::Finding;

/// The schema version this crate writes. Readers accept any document with the same major version.
pub const SCHEMA_VERSION: u32 = 1;

/// Every section of a snapshot, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionName {
    System,
    Cpu,
    Memory,
    Storage,
    Network,
    Processes,
    Services,
    Software,
    Logs,
    Hardware,
    User,
    Findings,
}

impl SectionName {
    /// All sections in display order.
    pub const ALL: [SectionName; 12] = [
        SectionName::System,
        SectionName::Cpu,
        SectionName::Memory,
        SectionName::Storage,
        SectionName::Network,
        SectionName::Processes,
        SectionName::Services,
        SectionName::Software,
        SectionName::Logs,
        SectionName::Hardware,
        SectionName::User,
        SectionName::Findings,
    ];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SectionName::System => "system",
            SectionName::Cpu => "cpu",
            SectionName::Memory => "memory",
            SectionName::Storage => "storage",
            SectionName::Network => "network",
            SectionName::Processes => "processes",
            SectionName::Services => "services",
            SectionName::Software => "software",
            SectionName::Logs => "logs",
            SectionName::Hardware => "hardware",
            SectionName::User => "user",
            SectionName::Findings => "findings",
        }
    }
}

impl std::fmt::Display for SectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SectionName {
    type Err = UnknownSection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SectionName::ALL
            .into_iter()
            .find(|name| name.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownSection(s.to_owned()))
    }
}

/// A section name that is not part of the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown section {0:?} (expected one of: system, cpu, memory, storage, network, processes, services, software, logs, hardware, user, findings)"
)]
pub struct UnknownSection(pub String);

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    #[serde(default)]
    pub agent_version: String,
    /// True when user names, host names and addresses were replaced by pseudonyms.
    #[serde(default)]
    pub anonymized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Section<System>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Section<Cpu>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Section<Memory>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Section<Storage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Section<Network>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Section<Processes>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Section<Services>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<Section<Software>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Section<Logs>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Section<Hardware>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Section<User>>,
    /// Rule results, worst first. Recomputable from the sections with [`crate::findings::evaluate`].
    #[serde(default)]
    pub findings: Vec<Finding>,
}

impl Snapshot {
    /// An empty document stamped with `collected_at`; sections are filled in by the collector.
    pub fn empty(collected_at: OffsetDateTime, agent_version: impl Into<String>) -> Self {
        Snapshot {
            schema_version: SCHEMA_VERSION,
            collected_at,
            agent_version: agent_version.into(),
            anonymized: false,
            system: None,
            cpu: None,
            memory: None,
            storage: None,
            network: None,
            processes: None,
            services: None,
            software: None,
            logs: None,
            hardware: None,
            user: None,
            findings: Vec::new(),
        }
    }

    /// The data of a section, if it was collected and produced data.
    fn data<T>(section: &Option<Section<T>>) -> Option<&T> {
        section.as_ref().and_then(|s| s.data.as_ref())
    }

    pub fn system_data(&self) -> Option<&System> {
        Self::data(&self.system)
    }
    pub fn cpu_data(&self) -> Option<&Cpu> {
        Self::data(&self.cpu)
    }
    pub fn memory_data(&self) -> Option<&Memory> {
        Self::data(&self.memory)
    }
    pub fn storage_data(&self) -> Option<&Storage> {
        Self::data(&self.storage)
    }
    pub fn network_data(&self) -> Option<&Network> {
        Self::data(&self.network)
    }
    pub fn processes_data(&self) -> Option<&Processes> {
        Self::data(&self.processes)
    }
    pub fn services_data(&self) -> Option<&Services> {
        Self::data(&self.services)
    }
    pub fn software_data(&self) -> Option<&Software> {
        Self::data(&self.software)
    }
    pub fn logs_data(&self) -> Option<&Logs> {
        Self::data(&self.logs)
    }
    pub fn hardware_data(&self) -> Option<&Hardware> {
        Self::data(&self.hardware)
    }
    pub fn user_data(&self) -> Option<&User> {
        Self::data(&self.user)
    }

    /// Errors and elapsed time of every section, collected or not, in display order.
    fn section_meta(&self) -> [(SectionName, Option<SectionMeta<'_>>); 11] {
        fn meta<T>(s: &Option<Section<T>>) -> Option<SectionMeta<'_>> {
            s.as_ref().map(|s| (&s.errors, s.elapsed_ms))
        }
        [
            (SectionName::System, meta(&self.system)),
            (SectionName::Cpu, meta(&self.cpu)),
            (SectionName::Memory, meta(&self.memory)),
            (SectionName::Storage, meta(&self.storage)),
            (SectionName::Network, meta(&self.network)),
            (SectionName::Processes, meta(&self.processes)),
            (SectionName::Services, meta(&self.services)),
            (SectionName::Software, meta(&self.software)),
            (SectionName::Logs, meta(&self.logs)),
            (SectionName::Hardware, meta(&self.hardware)),
            (SectionName::User, meta(&self.user)),
        ]
    }

    /// Errors of every collected section, as `(section, message)` pairs.
    pub fn section_errors(&self) -> Vec<(SectionName, &str)> {
        self.section_meta()
            .into_iter()
            .flat_map(|(name, meta)| {
                meta.into_iter()
                    .flat_map(|(errors, _)| errors.iter())
                    .map(move |e| (name, e.as_str()))
            })
            .collect()
    }

    /// How long each collected section took, in milliseconds.
    pub fn section_timings(&self) -> Vec<(SectionName, u64)> {
        self.section_meta()
            .into_iter()
            .filter_map(|(name, meta)| meta.map(|(_, ms)| (name, ms)))
            .collect()
    }
}

/// A section's errors and elapsed milliseconds.
type SectionMeta<'a> = (&'a Vec<String>, u64);

/// One section: its data (absent when it failed as a whole), what could not be read, and how long
/// it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section<T> {
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// Human-readable problems: a source that failed, timed out or needed privileges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(default)]
    pub elapsed_ms: u64,
}

impl<T> Section<T> {
    pub fn ok(data: T, errors: Vec<String>, elapsed_ms: u64) -> Self {
        Section {
            data: Some(data),
            errors,
            elapsed_ms,
        }
    }

    pub fn failed(error: impl Into<String>, elapsed_ms: u64) -> Self {
        Section {
            data: None,
            errors: vec![error.into()],
            elapsed_ms,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct System {
    pub hostname: Option<String>,
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub os_pretty_name: Option<String>,
    pub kernel: Option<String>,
    pub architecture: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub boot_time: Option<OffsetDateTime>,
    pub uptime_secs: u64,
    pub time_zone: Option<String>,
    /// Collector clock minus local clock, in milliseconds; known once the agent talks to a collector.
    pub clock_offset_ms: Option<i64>,
    /// Whether the system clock is synchronised (NTP), when the OS says.
    pub clock_synchronized: Option<bool>,
    pub virtualization: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cpu {
    pub model: String,
    pub vendor: String,
    pub physical_cores: Option<u32>,
    pub logical_cores: u32,
    pub frequency_mhz: u64,
    /// Average usage over the sample, 0–100.
    pub usage_percent: f32,
    pub per_core_usage_percent: Vec<f32>,
    pub sample_ms: u64,
    pub load_average: LoadAverage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub free_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub top_consumers: Vec<ProcessSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Storage {
    pub filesystems: Vec<Filesystem>,
    pub block_devices: Vec<BlockDevice>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filesystem {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    pub inodes_total: u64,
    pub inodes_free: u64,
    pub read_only: bool,
    pub removable: bool,
}

impl Filesystem {
    /// Used share of the space an unprivileged user can use, 0–100, as `df` reports it.
    pub fn used_percent(&self) -> f64 {
        let usable = self.used_bytes + self.available_bytes;
        if usable == 0 {
            return 0.0;
        }
        self.used_bytes as f64 * 100.0 / usable as f64
    }

    /// Used share of inodes, 0–100; `None` when the filesystem has no fixed inode table.
    pub fn inodes_used_percent(&self) -> Option<f64> {
        if self.inodes_total == 0 {
            return None;
        }
        let used = self.inodes_total.saturating_sub(self.inodes_free);
        Some(used as f64 * 100.0 / self.inodes_total as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockDevice {
    pub name: String,
    pub size_bytes: u64,
    pub model: Option<String>,
    pub rotational: Option<bool>,
    pub removable: bool,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    pub interfaces: Vec<Interface>,
    pub default_routes: Vec<Route>,
    pub dns_servers: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_checks: Vec<Check>,
    /// Reachability of the collector this agent is enrolled with; absent when not enrolled.
    pub collector_check: Option<Check>,
    pub proxy: Vec<ProxySetting>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// Addresses in CIDR notation.
    pub addresses: Vec<String>,
    /// Kernel operational state: up, down, dormant, unknown...
    pub state: String,
    pub carrier: Option<bool>,
    pub speed_mbps: Option<u32>,
    pub mtu: Option<u32>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub loopback: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Route {
    /// "ipv4" or "ipv6".
    pub family: String,
    pub gateway: String,
    pub interface: String,
}

/// The result of an active check (DNS lookup, TCP connect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Check {
    /// What was checked, e.g. `server 10.0.0.53` or `resolve example.org`.
    pub target: String,
    pub ok: bool,
    pub detail: String,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProxySetting {
    pub variable: String,
    /// Credentials in the value are masked before they are stored here.
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Processes {
    pub total: u32,
    pub running: u32,
    pub sleeping: u32,
    pub zombies: u32,
    pub top_by_cpu: Vec<ProcessSummary>,
    pub top_by_memory: Vec<ProcessSummary>,
    /// Names and parents of zombie processes (bounded).
    pub zombie_list: Vec<ProcessSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessSummary {
    pub pid: u32,
    pub parent_pid: Option<u32>,
    pub name: String,
    pub user: Option<String>,
    pub cpu_percent: f32,
    pub memory_bytes: u64,
    /// The command line with secret-looking values masked, bounded in length.
    pub command: String,
    pub status: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Services {
    /// The init system, e.g. "systemd"; `None` when none could be identified (containers).
    pub init: Option<String>,
    /// `systemctl is-system-running`: running, degraded, starting...
    pub system_state: Option<String>,
    pub failed_units: Vec<Unit>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Unit {
    pub name: String,
    pub description: String,
    pub load: String,
    pub active: String,
    pub sub: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Software {
    /// "dpkg", "rpm", or both joined by "+".
    pub package_manager: Option<String>,
    pub package_count: u32,
    pub packages: Vec<Package>,
    /// Upgradable packages, when that could be determined.
    pub pending_updates: Option<u32>,
    pub pending_security_updates: Option<u32>,
    pub reboot_required: bool,
    /// Packages that asked for the reboot, when the OS records them.
    pub reboot_required_by: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Logs {
    /// Where lines came from: "journal", "dmesg" or "none".
    pub source: String,
    /// Kernel OOM kills since boot (from `/proc/vmstat`).
    pub oom_kills_since_boot: Option<u64>,
    pub oom_kill_lines: u32,
    pub io_error_lines: u32,
    pub segfault_lines: u32,
    /// Recent error-level lines, newest last, bounded.
    pub lines: Vec<LogLine>,
    /// True when more lines matched than are kept.
    pub truncated: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogLine {
    pub time: Option<String>,
    /// The unit or program that logged it, or "kernel".
    pub source: String,
    pub message: String,
    pub kind: LogKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    OomKill,
    IoError,
    Segfault,
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hardware {
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub bios_version: Option<String>,
    pub board: Option<String>,
    pub chassis: Option<String>,
    pub batteries: Vec<Battery>,
    pub temperatures: Vec<Temperature>,
    pub gpus: Vec<Gpu>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Battery {
    pub name: String,
    pub status: Option<String>,
    pub charge_percent: Option<f64>,
    /// Full-charge capacity against design capacity, 0–100.
    pub health_percent: Option<f64>,
    pub cycle_count: Option<u32>,
    pub technology: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Temperature {
    pub label: String,
    pub celsius: Option<f32>,
    pub max_celsius: Option<f32>,
    pub critical_celsius: Option<f32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gpu {
    pub card: String,
    pub vendor: Option<String>,
    pub vendor_id: Option<String>,
    pub device_id: Option<String>,
    pub driver: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// The user the agent runs as.
    pub current_user: Option<String>,
    pub uid: Option<u32>,
    /// Logged-in sessions from the login records.
    pub sessions: Vec<Session>,
    /// x11, wayland or tty.
    pub session_type: Option<String>,
    pub desktop: Option<String>,
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    pub user: String,
    pub line: String,
    pub host: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub login_time: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_from_a_newer_agent_with_unknown_fields_still_parses() {
        let json = r#"{
            "schema_version": 1,
            "collected_at": "2026-11-23T09:00:00Z",
            "agent_version": "9.9.9",
            "quantum_flux": {"level": 3},
            "storage": {
                "data": {"filesystems": [{"mount_point": "/", "total_bytes": 100, "used_bytes": 50,
                          "available_bytes": 50, "future_field": true}],
                         "optical_drives": []},
                "elapsed_ms": 3,
                "retries": 2
            },
            "logs": {"data": {"lines": [{"message": "x", "kind": "new_kind_of_error"}]}},
            "findings": [{"id": "new.rule", "severity": "warning", "title": "t", "evidence": "e",
                          "confidence": 0.9}]
        }"#;
        let snap: Snapshot = serde_json::from_str(json).unwrap();
        let fs = &snap.storage_data().unwrap().filesystems[0];
        assert_eq!(fs.mount_point, "/");
        assert_eq!(fs.used_percent(), 50.0);
        assert_eq!(snap.logs_data().unwrap().lines[0].kind, LogKind::Other);
        assert_eq!(snap.findings[0].id, "new.rule");
    }

    #[test]
    fn section_names_parse_case_insensitively_and_reject_unknown_ones() {
        assert_eq!("Storage".parse::<SectionName>(), Ok(SectionName::Storage));
        let err = "disks".parse::<SectionName>().unwrap_err();
        assert!(err.to_string().contains("unknown section \"disks\""));
    }

    #[test]
    fn round_trips_through_json() {
        let mut snap = Snapshot::empty(time::macros::datetime!(2026-11-23 09:00 UTC), "0.1.0");
        snap.memory = Some(Section::ok(
            Memory {
                total_bytes: 8,
                ..Memory::default()
            },
            vec!["swap: not readable".into()],
            4,
        ));
        snap.logs = Some(Section::failed("journalctl timed out after 2000 ms", 2000));
        let text = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, snap);
    }
}
