//! `serve --config FILE`: the collector's settings in TOML. Flags given on the command line win
//! over the file; the file wins over the built-in defaults.
//!
//! ```toml
//! data_dir = "/var/lib/lifeline"      # relative paths are relative to this file
//! listen = "0.0.0.0:8443"
//! san = ["helpdesk.example.org"]      # extra names for the generated server certificate
//! enrollment = "approve"              # open | approve
//! allow_tls12 = false
//! tls_cert = "/etc/lifeline/tls/fullchain.pem"   # both or neither
//! tls_key = "/etc/lifeline/tls/privkey.pem"
//!
//! [sla]                               # service levels (see `crate::sla`); defaults when absent
//! at_risk = "25%"
//! business_hours = { days = "mon-fri", start = "09:00", end = "17:00", utc_offset = "+01:00" }
//! [sla.targets.critical]
//! first_response = "15m"
//! resolution = "4h"
//! ```
//!
//! Unknown keys are errors, so a typo never silently leaves a default in place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::http::enroll::EnrollmentMode;

/// Largest configuration file read.
const CONFIG_MAX_LEN: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The settings a configuration file may hold; every one is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    #[serde(default)]
    pub san: Vec<String>,
    pub enrollment: Option<EnrollmentMode>,
    pub allow_tls12: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    // Service levels (issue 9): `[sla]` targets per priority, at-risk share, business hours.
    #[serde(default)]
    pub sla: Option<crate::sla::Policy>,
}

impl ServerConfig {
    /// Reads and checks `path`; relative paths in it are made relative to its directory.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > CONFIG_MAX_LEN {
            return Err(invalid(format!(
                "{len} bytes; at most {CONFIG_MAX_LEN} are allowed"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let mut config = ServerConfig::parse(&text).map_err(invalid)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for field in [
            &mut config.data_dir,
            &mut config.tls_cert,
            &mut config.tls_key,
        ] {
            if let Some(p) = field.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Parses the TOML text; the error names the line and the key.
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| {
            // toml's message spans several lines (with a caret); one line is enough here.
            e.to_string()
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|'))
                .collect::<Vec<_>>()
                .join(": ")
        })?;
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err("tls_cert and tls_key go together: set both or neither".to_owned());
        }
        Ok(config)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_parses_and_relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        std::fs::write(
            &file,
            "data_dir = \"data\"\nlisten = \"127.0.0.1:9443\"\nsan = [\"a.example\"]\n\
             enrollment = \"approve\"\nallow_tls12 = true\ntls_cert = \"/etc/c.pem\"\n\
             tls_key = \"k.pem\"\n",
        )
        .unwrap();
        let config = ServerConfig::load(&file).unwrap();
        assert_eq!(config.data_dir, Some(dir.path().join("data")));
        assert_eq!(config.listen, Some("127.0.0.1:9443".parse().unwrap()));
        assert_eq!(config.san, ["a.example"]);
        assert_eq!(config.enrollment, Some(EnrollmentMode::Approve));
        assert_eq!(config.allow_tls12, Some(true));
        assert_eq!(config.tls_cert, Some(PathBuf::from("/etc/c.pem")));
        assert_eq!(config.tls_key, Some(dir.path().join("k.pem")));
        assert_eq!(ServerConfig::parse("").unwrap(), ServerConfig::default());
    }

    #[test]
    fn service_levels_come_from_the_sla_section() {
        let config = ServerConfig::parse(
            "[sla]\nat_risk = \"10%\"\n[sla.targets.low]\nresolution = \"2w\"\n",
        )
        .unwrap();
        let sla = config.sla.unwrap();
        assert_eq!(sla.at_risk, crate::sla::AtRisk::Share(10));
        assert_eq!(sla.low.resolution, time::Duration::weeks(2));
        let e = ServerConfig::parse("[sla.targets.high]\nfirst_response = \"soon\"").unwrap_err();
        assert!(e.contains("sla.targets.high.first_response"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        let e = ServerConfig::parse("lisen = \"127.0.0.1:1\"").unwrap_err();
        assert!(
            e.contains("unknown field `lisen`") && e.contains("line 1"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = ServerConfig::parse("listen = \"everywhere\"").unwrap_err();
        assert!(e.contains("listen") || e.contains("line 1"), "{e}");
        let e = ServerConfig::parse("enrollment = \"maybe\"").unwrap_err();
        assert!(e.contains("maybe"), "{e}");
        let e = ServerConfig::parse("tls_cert = \"c.pem\"").unwrap_err();
        assert!(e.contains("set both or neither"), "{e}");
        let e = ServerConfig::load(Path::new("/nonexistent/collector.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/collector.toml"), "{e}");
    }
}
