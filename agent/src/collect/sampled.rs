//! CPU, memory and process sections: one `sysinfo::System`, read twice a sample apart.
//!
//! CPU usage (per core and per process) is a difference between two readings, so this is the one
//! part of a snapshot that must take time. Everything else is read during the same pass.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lifeline_shared::v1::snapshot::{
    Cpu, LoadAverage, Memory, ProcessSummary, Processes, Section, SectionName,
};
use sysinfo::{
    CpuRefreshKind, MemoryRefreshKind, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate,
    RefreshKind, System, UpdateKind, Users,
};

use crate::redact;

/// How many processes each top list keeps.
pub const TOP_N: usize = 10;
/// How many zombies are listed by name.
const ZOMBIES_LISTED: usize = 20;

/// The sections this pass produced (only those that were asked for).
#[derive(Debug, Default)]
pub struct Sampled {
    pub cpu: Option<Section<Cpu>>,
    pub memory: Option<Section<Memory>>,
    pub processes: Option<Section<Processes>>,
}

pub fn collect(sample: Duration, wanted: &[SectionName]) -> Sampled {
    let started = Instant::now();
    let want = |s: SectionName| wanted.contains(&s);
    let need_processes = want(SectionName::Processes) || want(SectionName::Memory);

    let mut sys = match System::new_with_specifics(RefreshKind::nothing()) {
        Ok(sys) => sys,
        Err(e) => {
            let ms = elapsed_ms(started);
            let fail = |what: &str| format!("cannot read {what}: {e}");
            return Sampled {
                cpu: want(SectionName::Cpu).then(|| Section::failed(fail("CPU usage"), ms)),
                memory: want(SectionName::Memory).then(|| Section::failed(fail("memory"), ms)),
                processes: want(SectionName::Processes)
                    .then(|| Section::failed(fail("processes"), ms)),
            };
        }
    };
    // First reading: CPU counters, and the process list with the slow-changing details.
    sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage().with_frequency());
    if need_processes {
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_cmd(UpdateKind::OnlyIfNotSet)
                .with_user(UpdateKind::OnlyIfNotSet)
                .without_tasks(),
        );
    }
    // Memory is read while the sample elapses.
    sys.refresh_memory_specifics(MemoryRefreshKind::everything());
    let users = need_processes
        .then(|| Users::new_with_refreshed_list().ok())
        .flatten();
    // The sample runs from the first CPU reading; the work above already used part of it.
    std::thread::sleep(sample.saturating_sub(started.elapsed()));
    // Second reading: the differences give usage.
    sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
    if need_processes {
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .without_tasks(),
        );
    }
    let sample_ms = elapsed_ms(started);

    let summaries = if need_processes {
        summarize(&sys, users.as_ref())
    } else {
        Vec::new()
    };
    let mut out = Sampled::default();
    if want(SectionName::Cpu) {
        out.cpu = Some(cpu(&sys, sample_ms, started));
    }
    if want(SectionName::Memory) {
        out.memory = Some(memory(&sys, &summaries, started));
    }
    if want(SectionName::Processes) {
        out.processes = Some(processes(summaries, started));
    }
    out
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn cpu(sys: &System, sample_ms: u64, started: Instant) -> Section<Cpu> {
    let mut problems = Vec::new();
    let cpus = sys.cpus();
    let first = cpus.first();
    let load = match System::load_average() {
        Ok(l) => LoadAverage {
            one: l.one,
            five: l.five,
            fifteen: l.fifteen,
        },
        Err(e) => {
            problems.push(format!("load average: {e}"));
            LoadAverage::default()
        }
    };
    let data = Cpu {
        model: first
            .map(|c| c.brand().trim().to_owned())
            .unwrap_or_default(),
        vendor: first.map(|c| c.vendor_id().to_owned()).unwrap_or_default(),
        physical_cores: System::physical_core_count()
            .ok()
            .and_then(|n| u32::try_from(n).ok()),
        logical_cores: u32::try_from(cpus.len()).unwrap_or(u32::MAX),
        frequency_mhz: first.map(|c| c.frequency()).unwrap_or_default(),
        usage_percent: sys.global_cpu_usage(),
        per_core_usage_percent: cpus.iter().map(|c| round1(c.usage())).collect(),
        sample_ms,
        load_average: load,
    };
    if cpus.is_empty() {
        problems.push("no CPUs listed in /proc/stat".to_owned());
    }
    Section::ok(data, problems, elapsed_ms(started))
}

fn round1(x: f32) -> f32 {
    (x * 10.0).round() / 10.0
}

fn memory(sys: &System, procs: &[ProcessSummary], started: Instant) -> Section<Memory> {
    let mut top = procs.to_vec();
    top.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes));
    top.truncate(5);
    let data = Memory {
        total_bytes: sys.total_memory(),
        used_bytes: sys.used_memory(),
        available_bytes: sys.available_memory(),
        free_bytes: sys.free_memory(),
        swap_total_bytes: sys.total_swap(),
        swap_used_bytes: sys.used_swap(),
        top_consumers: top,
    };
    let problems = if data.total_bytes == 0 {
        vec!["total memory unknown (/proc/meminfo unreadable)".to_owned()]
    } else {
        Vec::new()
    };
    Section::ok(data, problems, elapsed_ms(started))
}

fn summarize(sys: &System, users: Option<&Users>) -> Vec<ProcessSummary> {
    let names: HashMap<String, String> = users
        .map(|u| {
            u.iter()
                .map(|u| (u.id().to_string(), u.name().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    sys.processes()
        .values()
        .map(|p| {
            let argv: Vec<String> = p
                .cmd()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let name = p.name().to_string_lossy().into_owned();
            ProcessSummary {
                pid: p.pid().as_u32(),
                parent_pid: p.parent().map(|pp| pp.as_u32()),
                user: p.user_id().map(|uid| {
                    let uid = uid.to_string();
                    names.get(&uid).cloned().unwrap_or(uid)
                }),
                cpu_percent: round1(p.cpu_usage()),
                memory_bytes: p.memory(),
                command: if argv.is_empty() {
                    format!("[{name}]")
                } else {
                    redact::redact_command(&argv)
                },
                name,
                status: status_name(p.status()).to_owned(),
            }
        })
        .collect()
}

fn status_name(status: ProcessStatus) -> &'static str {
    match status {
        ProcessStatus::Run => "running",
        ProcessStatus::Sleep | ProcessStatus::Idle => "sleeping",
        ProcessStatus::Zombie => "zombie",
        ProcessStatus::Stop | ProcessStatus::Tracing => "stopped",
        ProcessStatus::UninterruptibleDiskSleep => "disk-sleep",
        ProcessStatus::Dead => "dead",
        _ => "other",
    }
}

fn processes(all: Vec<ProcessSummary>, started: Instant) -> Section<Processes> {
    let count = |s: &str| u32::try_from(all.iter().filter(|p| p.status == s).count()).unwrap_or(0);
    let mut by_cpu = all.clone();
    by_cpu.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    by_cpu.truncate(TOP_N);
    let mut by_mem = all.clone();
    by_mem.sort_by_key(|p| std::cmp::Reverse(p.memory_bytes));
    by_mem.truncate(TOP_N);
    let data = Processes {
        total: u32::try_from(all.len()).unwrap_or(u32::MAX),
        running: count("running"),
        sleeping: count("sleeping"),
        zombies: count("zombie"),
        top_by_cpu: by_cpu,
        top_by_memory: by_mem,
        zombie_list: all
            .into_iter()
            .filter(|p| p.status == "zombie")
            .take(ZOMBIES_LISTED)
            .collect(),
    };
    Section::ok(data, Vec::new(), elapsed_ms(started))
}
