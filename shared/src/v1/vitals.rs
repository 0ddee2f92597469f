//! Heartbeat vitals: the few figures an agent sends every minute.
//!
//! Small on purpose (well under 1 KiB as JSON): thousands of agents send one a minute, and the
//! collector keeps a bounded history per machine for charts and online/offline state.

use serde::{Deserialize, Serialize};

/// One heartbeat's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vitals {
    /// Average CPU use since the previous heartbeat, 0–100.
    pub cpu_percent: f32,
    /// Memory in use (total minus available), 0–100.
    pub memory_percent: f32,
    /// The fullest real filesystem.
    pub busiest_disk: Option<DiskUse>,
    pub load_one: f64,
    pub uptime_secs: u64,
    pub agent_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskUse {
    pub mount_point: String,
    pub used_percent: f32,
}

impl Vitals {
    /// Checks figures a hostile or broken agent could send, so charts and stores never see
    /// nonsense. Returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let percent = |name: &str, v: f32| {
            if v.is_finite() && (0.0..=100.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} {v} is not a percentage"))
            }
        };
        percent("cpu_percent", self.cpu_percent)?;
        percent("memory_percent", self.memory_percent)?;
        if let Some(disk) = &self.busiest_disk {
            percent("busiest_disk.used_percent", disk.used_percent)?;
            if disk.mount_point.len() > 4096 {
                return Err("busiest_disk.mount_point is too long".to_owned());
            }
        }
        if !self.load_one.is_finite() || self.load_one < 0.0 {
            return Err(format!("load_one {} is not a load average", self.load_one));
        }
        if self.agent_version.len() > 64 {
            return Err("agent_version is too long".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_vitals_pass_and_nonsense_is_named() {
        let mut v = Vitals {
            cpu_percent: 12.5,
            memory_percent: 40.0,
            busiest_disk: Some(DiskUse {
                mount_point: "/".into(),
                used_percent: 71.0,
            }),
            load_one: 0.4,
            uptime_secs: 3600,
            agent_version: "0.1.0".into(),
        };
        assert_eq!(v.check(), Ok(()));
        v.cpu_percent = f32::NAN;
        assert!(v.check().unwrap_err().contains("cpu_percent"));
        v.cpu_percent = 1.0;
        v.memory_percent = 250.0;
        assert!(v.check().unwrap_err().contains("memory_percent"));
    }
}
