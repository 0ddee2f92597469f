//! The agent's own files: where they live and the enrollment they record.
//!
//! Directories: `$LIFELINE_AGENT_DIR` for everything when set (several agents on one machine,
//! tests); otherwise configuration in `/etc/lifeline` for root (the system service) and
//! `$XDG_CONFIG_HOME/lifeline` (default `~/.config/lifeline`) for a user, and state (the offline
//! spool) in `/var/lib/lifeline` or `$XDG_STATE_HOME/lifeline` (default `~/.local/state/lifeline`).
//! Configuration files, all written atomically:
//! - `agent.json` (0600): collector URL, machine id, certificate expiry
//! - `ca.pem`: the collector's CA, pinned at enrollment
//! - `client.pem`: our client certificate; `client.key` (0600): its private key, generated here
//!   and never sent anywhere

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const CONFIG_FILE: &str = "agent.json";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "client.pem";
pub const KEY_FILE: &str = "client.key";
/// Environment variable naming the agent directory.
pub const AGENT_DIR_ENV: &str = "LIFELINE_AGENT_DIR";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot find a directory for the agent's files: set {AGENT_DIR_ENV} or HOME")]
    NoDirectory,
    #[error("this agent is not enrolled ({0} is missing): run `lifeline-agent enroll` first")]
    NotEnrolled(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid agent configuration: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What enrollment recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Collector base URL, `https://host:port`.
    pub server: String,
    pub machine_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub certificate_not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
}

/// The agent's directories and the paths inside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentDir {
    /// Configuration: enrollment, certificate, key, pinned CA.
    pub root: PathBuf,
    /// State: the offline spool.
    pub state: PathBuf,
}

impl AgentDir {
    /// The directory from the environment (see the module docs).
    pub fn from_env() -> Result<AgentDir, ConfigError> {
        if let Some(dir) = std::env::var_os(AGENT_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(AgentDir::single(PathBuf::from(dir)));
        }
        #[cfg(unix)]
        if rustix::process::geteuid().is_root() {
            return Ok(AgentDir {
                root: PathBuf::from("/etc/lifeline"),
                state: PathBuf::from("/var/lib/lifeline"),
            });
        }
        let env_dir = |name: &str| {
            std::env::var_os(name)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        };
        let home = env_dir("HOME");
        let config_home = env_dir("XDG_CONFIG_HOME")
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .or_else(|| env_dir("APPDATA"))
            .ok_or(ConfigError::NoDirectory)?;
        let state_home = env_dir("XDG_STATE_HOME")
            .or_else(|| home.as_ref().map(|h| h.join(".local").join("state")))
            .or_else(|| env_dir("LOCALAPPDATA"))
            .ok_or(ConfigError::NoDirectory)?;
        Ok(AgentDir {
            root: config_home.join("lifeline"),
            state: state_home.join("lifeline"),
        })
    }

    /// Everything under one directory (`$LIFELINE_AGENT_DIR`).
    pub fn single(root: PathBuf) -> AgentDir {
        AgentDir {
            state: root.clone(),
            root,
        }
    }

    /// Where tickets wait until the collector has acknowledged them.
    pub fn spool_path(&self) -> PathBuf {
        self.state.join("spool")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    pub fn ca_path(&self) -> PathBuf {
        self.root.join(CA_FILE)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.root.join(CERT_FILE)
    }

    pub fn key_path(&self) -> PathBuf {
        self.root.join(KEY_FILE)
    }

    /// The recorded enrollment, or [`ConfigError::NotEnrolled`].
    pub fn load(&self) -> Result<AgentConfig, ConfigError> {
        let path = self.config_path();
        for needed in [&path, &self.ca_path(), &self.cert_path(), &self.key_path()] {
            if !needed.exists() {
                return Err(ConfigError::NotEnrolled(needed.clone()));
            }
        }
        let text = fs::read_to_string(&path).map_err(io_error(&path))?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Parse { path, source })
    }

    /// The recorded enrollment if there is a complete one.
    pub fn load_if_enrolled(&self) -> Result<Option<AgentConfig>, ConfigError> {
        match self.load() {
            Ok(config) => Ok(Some(config)),
            Err(ConfigError::NotEnrolled(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Creates the directory (0700 on Unix).
    pub fn create(&self) -> Result<(), ConfigError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&self.root).map_err(io_error(&self.root))
    }

    /// Records an enrollment: key first, then certificate and CA, then the config that points
    /// at them, so a crash midway never leaves a config naming a missing key.
    pub fn save(
        &self,
        config: &AgentConfig,
        key_pem: &str,
        cert_pem: &str,
        ca_pem: &[u8],
    ) -> Result<(), ConfigError> {
        self.create()?;
        write_private(&self.key_path(), key_pem.as_bytes())?;
        write_private(&self.cert_path(), cert_pem.as_bytes())?;
        write_private(&self.ca_path(), ca_pem)?;
        let json = serde_json::to_vec_pretty(config).map_err(|source| ConfigError::Parse {
            path: self.config_path(),
            source,
        })?;
        write_private(&self.config_path(), &json)
    }
}

/// Writes a file atomically with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io_error(&tmp))?;
    file.write_all(contents).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_enrollment_loads_back_with_private_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AgentDir::single(tmp.path().join("agent"));
        assert!(matches!(dir.load(), Err(ConfigError::NotEnrolled(_))));
        assert_eq!(dir.load_if_enrolled().unwrap(), None);
        let config = AgentConfig {
            server: "https://127.0.0.1:8443".into(),
            machine_id: "m-1".into(),
            certificate_not_after: OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
            enrolled_at: OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap(),
        };
        dir.save(&config, "KEY", "CERT", b"CA").unwrap();
        assert_eq!(dir.load().unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for path in [dir.key_path(), dir.config_path()] {
                let mode = fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", path.display());
            }
        }
    }
}
