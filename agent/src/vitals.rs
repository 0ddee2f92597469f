//! Reads heartbeat vitals cheaply, keeping one `sysinfo::System` between heartbeats.
//!
//! CPU use is the average since the previous reading, so no sampling pause is needed: the service
//! just calls [`VitalsReader::read`] once per heartbeat.

use lifeline_shared::v1::vitals::{DiskUse, Vitals};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::collect::storage;

#[derive(Debug)]
pub struct VitalsReader {
    sys: Option<System>,
}

impl Default for VitalsReader {
    fn default() -> Self {
        Self::new()
    }
}

impl VitalsReader {
    pub fn new() -> Self {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .ok();
        VitalsReader { sys }
    }

    pub fn read(&mut self) -> Vitals {
        let mut vitals = Vitals {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: System::uptime().unwrap_or(0),
            load_one: System::load_average().map(|l| l.one).unwrap_or(0.0),
            busiest_disk: busiest_disk(),
            ..Vitals::default()
        };
        if let Some(sys) = &mut self.sys {
            sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
            sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            vitals.cpu_percent = sys.global_cpu_usage().clamp(0.0, 100.0);
            let total = sys.total_memory();
            if total > 0 {
                let used = total.saturating_sub(sys.available_memory());
                vitals.memory_percent = (used as f64 * 100.0 / total as f64) as f32;
            }
        }
        vitals
    }
}

/// The fullest real, writable filesystem.
fn busiest_disk() -> Option<DiskUse> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    storage::relevant(storage::parse_mountinfo(&text))
        .into_iter()
        .filter(|m| !m.read_only)
        .filter_map(|m| {
            let st = rustix::fs::statvfs(m.mount_point.as_str()).ok()?;
            let used = st.f_blocks.saturating_sub(st.f_bfree);
            let usable = used + st.f_bavail;
            (usable > 0).then(|| DiskUse {
                used_percent: (used as f64 * 100.0 / usable as f64) as f32,
                mount_point: m.mount_point,
            })
        })
        .max_by(|a, b| a.used_percent.total_cmp(&b.used_percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_of_this_machine_are_sane() {
        let mut reader = VitalsReader::new();
        let _ = reader.read();
        let v = reader.read();
        assert_eq!(v.check(), Ok(()));
        assert!(v.memory_percent > 0.0);
        assert!(v.busiest_disk.is_some());
    }
}
