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
//! database = "postgres://lifeline@db.example/lifeline"   # or sqlite://PATH; default DATA_DIR/lifeline.db
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
    /// `database = "URL"` (PostgreSQL store, issue 8): parsed by [`Database::parse`] on load.
    pub database: Option<Database>,
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
        if let Some(Database::Sqlite(p)) = config.database.as_mut()
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
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
            // toml's message spans several lines (with a caret); one line is enough here. The
            // quoted source line goes too: it may hold a database password.
            e.to_string()
                .lines()
                .filter(|l| !l.trim().is_empty() && !is_source_excerpt(l))
                .collect::<Vec<_>>()
                .join(": ")
        })?;
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err("tls_cert and tls_key go together: set both or neither".to_owned());
        }
        Ok(config)
    }
}

/// A line of toml's error that quotes the file (`  |`, `2 | key = "value"`).
fn is_source_excerpt(line: &str) -> bool {
    line.trim_start()
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start()
        .starts_with('|')
}

// PostgreSQL store (issue 8): where the data lives, from `serve --database URL` or
// `database = "URL"` in the configuration file.

/// Longest database URL accepted.
const DATABASE_URL_MAX_LEN: usize = 4096;

/// Query parameters a PostgreSQL URL may carry (what the driver understands). Anything else is
/// refused: a typo would otherwise be ignored, and the driver's warning about it would log the
/// value, which may be a password.
const POSTGRES_URL_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Where the collector keeps its data. Without one it is the SQLite file `DATA_DIR/lifeline.db`.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// `sqlite://PATH`: an SQLite file.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`: a PostgreSQL database several collectors may share.
    Postgres(PostgresUrl),
}

/// A PostgreSQL URL. `Debug` and `Display` hide its password; [`PostgresUrl::expose`] is for
/// connecting only.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL with its password, to connect with. Never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::postgres::redact_url(&self.0))
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Database::Postgres(url) => url.fmt(f),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

impl Database {
    /// Parses `postgres://`, `postgresql://` or `sqlite://PATH`. The error never repeats the
    /// URL (it may hold a password); the caller names the flag or key.
    pub fn parse(text: &str) -> Result<Database, String> {
        if text.len() > DATABASE_URL_MAX_LEN {
            return Err(format!(
                "the URL is {} bytes long; at most {DATABASE_URL_MAX_LEN} are allowed",
                text.len()
            ));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(
                "expected a URL: postgres://USER@HOST/DATABASE or sqlite://PATH".to_owned(),
            );
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => {
                if let Some((_, query)) = rest.split_once('?') {
                    for pair in query.split('&').filter(|p| !p.is_empty()) {
                        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
                        let known = POSTGRES_URL_PARAMETERS.contains(&key)
                            || (key.starts_with("options[") && key.ends_with(']'));
                        if !known {
                            return Err(format!(
                                "unknown PostgreSQL URL parameter `{key}` (known: {})",
                                POSTGRES_URL_PARAMETERS.join(", ")
                            ));
                        }
                    }
                }
                <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(text)
                    .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
                Ok(Database::Postgres(PostgresUrl(text.to_owned())))
            }
            "sqlite" => {
                if rest.is_empty() {
                    return Err("sqlite:// needs a file path, as in \
                                sqlite:///var/lib/lifeline/lifeline.db"
                        .to_owned());
                }
                if rest.contains('?') {
                    return Err("sqlite:// takes a file path without options".to_owned());
                }
                Ok(Database::Sqlite(PathBuf::from(rest)))
            }
            other => Err(format!(
                "unknown database scheme `{}`: use postgres://, postgresql:// or sqlite://PATH",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Database {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Database::parse(&text).map_err(|e| serde::de::Error::custom(format!("database: {e}")))
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

// PostgreSQL store (issue 8): `database = "URL"` and `--database URL`.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod database_tests {
    use super::*;

    #[test]
    fn each_database_scheme_parses_and_a_relative_sqlite_path_follows_the_file() {
        let pg = Database::parse("postgres://lifeline:pw@db.example:5433/lifeline").unwrap();
        assert!(matches!(&pg, Database::Postgres(url) if url.expose().ends_with("/lifeline")));
        assert_eq!(
            pg.to_string(),
            "postgres://lifeline:***@db.example:5433/lifeline"
        );
        assert!(!format!("{pg:?}").contains("pw"));
        assert!(matches!(
            Database::parse("postgresql://db/ll?sslmode=disable&application_name=x"),
            Ok(Database::Postgres(_))
        ));
        assert_eq!(
            Database::parse("sqlite:///var/lib/lifeline/x.db").unwrap(),
            Database::Sqlite(PathBuf::from("/var/lib/lifeline/x.db"))
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        std::fs::write(&file, "database = \"sqlite://db/lifeline.db\"\n").unwrap();
        let config = ServerConfig::load(&file).unwrap();
        assert_eq!(
            config.database,
            Some(Database::Sqlite(dir.path().join("db/lifeline.db")))
        );
    }

    #[test]
    fn a_bad_database_url_is_named_without_showing_its_password() {
        for (text, expected) in [
            ("mysql://u:hunter2@db/x", "unknown database scheme `mysql`"),
            ("/var/lib/lifeline.db", "expected a URL"),
            ("sqlite://", "needs a file path"),
            ("sqlite://x.db?mode=rwc", "without options"),
            (
                "postgres://u:hunter2@db/x?pasword=hunter2",
                "unknown PostgreSQL URL parameter `pasword`",
            ),
            (
                "postgres://u:hunter2@db:99999/x",
                "not a valid PostgreSQL URL",
            ),
        ] {
            let e = Database::parse(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains("hunter2"), "{text}: {e}");
        }
        let e = ServerConfig::parse("\ndatabase = \"mysql://u:hunter2@db/x\"\n").unwrap_err();
        assert!(
            e.contains("database") && e.contains("line 2") && e.contains("`mysql`"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        assert!(Database::parse(&format!("postgres://db/{}", "x".repeat(5000))).is_err());
    }
}
