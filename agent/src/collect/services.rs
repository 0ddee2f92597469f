//! The services section: failed and degraded systemd units.

use std::time::Duration;

use lifeline_shared::v1::snapshot::{Services, Unit};

use super::{Options, Problems, read_trimmed};
use crate::exec::runner::{self, Limits};

const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(2);

pub fn collect(_options: &Options) -> (Services, Problems) {
    let mut problems = Vec::new();
    if !std::path::Path::new("/run/systemd/system").exists() {
        let init = read_trimmed("/proc/1/comm");
        problems.push(format!(
            "systemd is not running (process 1 is {}); units cannot be listed",
            init.as_deref().unwrap_or("unknown")
        ));
        return (
            Services {
                init,
                ..Services::default()
            },
            problems,
        );
    }
    let limits = Limits::new(SYSTEMCTL_TIMEOUT, 256 * 1024);
    let failed_units = match runner::run(
        "systemctl",
        &[
            "list-units",
            "--state=failed",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
            "--full",
        ],
        limits,
    ) {
        Ok(out) if out.status.success() => parse_units(&out.stdout_text()),
        Ok(out) => {
            problems.push(format!("systemctl list-units: {}", out.stderr_line()));
            Vec::new()
        }
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    // is-system-running exits non-zero when degraded but still prints the state.
    let system_state = runner::run("systemctl", &["is-system-running"], limits)
        .map_err(|e| problems.push(e.to_string()))
        .ok()
        .map(|out| out.stdout_text().trim().to_owned())
        .filter(|s| !s.is_empty());
    (
        Services {
            init: Some("systemd".to_owned()),
            system_state,
            failed_units,
        },
        problems,
    )
}

/// Parses `systemctl list-units --plain --no-legend` lines: `UNIT LOAD ACTIVE SUB DESCRIPTION`.
pub fn parse_units(text: &str) -> Vec<Unit> {
    text.lines()
        .filter_map(|line| {
            // Older systemd marks failed units with a bullet even in plain mode.
            let line = line.trim_start_matches(['●', '*', ' ']);
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let load = words.next()?;
            let active = words.next()?;
            let sub = words.next()?;
            Some(Unit {
                name: name.to_owned(),
                load: load.to_owned(),
                active: active.to_owned(),
                sub: sub.to_owned(),
                description: words.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failed_units() {
        let units = parse_units(include_str!("../../testdata/systemctl_failed_units.txt"));
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].name, "cups.service");
        assert_eq!(units[0].active, "failed");
        assert_eq!(units[0].description, "CUPS Scheduler");
        assert_eq!(units[1].name, "var-lib-backup.mount");
    }

    #[test]
    fn no_output_means_no_failed_units() {
        assert!(parse_units("").is_empty());
        assert!(parse_units("\n  \n").is_empty());
    }
}
