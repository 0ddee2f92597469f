//! `serve --config FILE`: the collector's settings in TOML. Flags given on the command line win
//! over the file; the file wins over the built-in defaults.
//!
//! ```toml
//! data_dir = "/var/lib/lifeline"      # relative paths are relative to this file
//! listen = "0.0.0.0:8443"
//! san = ["helpdesk.example.org"]      # extra names for the generated server certificate
//! enrollment = "approve"              # open | approve
//! first_token_ttl = "24h"             # the first-start enrollment token: e.g. 24h, 7d, never
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
//!
//! # Satisfaction, webhooks and e-mail (issue 9): see docs/integrations.md.
//! public_url = "https://helpdesk.example.org:8443"   # links in webhooks and e-mails
//!
//! [[webhooks]]
//! name = "zammad"                                  # default: the URL's host
//! url = "https://itsm.example.org/lifeline-hook"   # http:// only on loopback or a trusted net
//! secret_file = "hook.secret"                      # the HMAC key; never logged
//! events = ["ticket.created", "ticket.updated", "ticket.resolved"]   # default: all
//! # ca_file = "itsm-ca.pem"                        # pin a private CA instead of the system's
//!
//! [smtp]
//! host = "smtp.example.org"
//! port = 587                                       # default: 25, 587 or 465 by `tls`
//! from = "Lifeline <helpdesk@example.org>"
//! tls = "starttls"                                 # none | starttls | tls
//! username = "lifeline"                            # with password_file, or neither
//! password_file = "smtp.password"
//! ```
//!
//! Unknown keys are errors, so a typo never silently leaves a default in place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::http::enroll::EnrollmentMode;
use lifeline_shared::v1::integrations::TicketEvent;

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
    /// `first_token_ttl = "24h"` (or `"7d"`, `"never"`): the first-start enrollment token's life.
    pub first_token_ttl: Option<crate::bootstrap::FirstTokenTtl>,
    pub allow_tls12: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// `database = "URL"` (PostgreSQL store, issue 8): parsed by [`Database::parse`] on load.
    pub database: Option<Database>,
    // Service levels (issue 9): `[sla]` targets per priority, at-risk share, business hours.
    #[serde(default)]
    pub sla: Option<crate::sla::Policy>,
    // Satisfaction, webhooks and e-mail (issue 9).
    /// The collector's URL as technicians open it; links in webhooks and e-mails.
    pub public_url: Option<String>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    pub smtp: Option<SmtpConfig>,
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
        let mut paths = vec![
            &mut config.data_dir,
            &mut config.tls_cert,
            &mut config.tls_key,
        ];
        for webhook in &mut config.webhooks {
            paths.push(&mut webhook.ca_file);
            paths.push(&mut webhook.secret_file);
        }
        if let Some(smtp) = &mut config.smtp {
            paths.push(&mut smtp.password_file);
            paths.push(&mut smtp.ca_file);
        }
        for field in paths {
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
        let mut config: ServerConfig = toml::from_str(text).map_err(|e| {
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
        config.check_integrations()?;
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

// ---- Satisfaction, webhooks and e-mail (issue 9) ----

/// One `[[webhooks]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// How the delivery log names it; the URL's host when absent.
    pub name: Option<String>,
    pub url: String,
    /// A file holding the HMAC-SHA256 key (its text, trimmed). Mandatory: `Option` only so the
    /// path can be made relative to the configuration file like the others.
    pub secret_file: Option<PathBuf>,
    /// Which events it gets; all when absent.
    pub events: Option<Vec<TicketEvent>>,
    /// A CA certificate (PEM) to trust for an https URL instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl WebhookConfig {
    /// The name given, or the URL's host.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let rest = self
                .url
                .split_once("://")
                .map_or(self.url.as_str(), |(_, rest)| rest);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            let host = authority.rsplit('@').next().unwrap_or(authority);
            host.to_owned()
        })
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on this machine or a trusted network.
    None,
    /// Plain text first, then STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The `[smtp]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 25 with `tls = "none"`, 587 with `starttls`, 465 with `tls`.
    pub port: Option<u16>,
    /// The sender, `helpdesk@example.org` or `Lifeline <helpdesk@example.org>`.
    pub from: String,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// A file holding the SMTP password (its text, trimmed).
    pub password_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

/// Longest webhook name.
const WEBHOOK_NAME_MAX_LEN: usize = 64;

impl ServerConfig {
    /// What can be checked without reading files: URLs, names, pairs of settings.
    fn check_integrations(&mut self) -> Result<(), String> {
        if let Some(url) = &mut self.public_url {
            let trimmed = url.trim_end_matches('/').to_owned();
            if !(trimmed.starts_with("https://") || trimmed.starts_with("http://"))
                || trimmed.contains(char::is_whitespace)
            {
                return Err(format!(
                    "public_url {url:?} must be an http:// or https:// URL"
                ));
            }
            *url = trimmed;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, webhook) in self.webhooks.iter().enumerate() {
            let which = format!("webhooks[{i}]");
            let uri: ureq::http::Uri = webhook
                .url
                .parse()
                .map_err(|e| format!("{which}: url {:?} is not a URL: {e}", webhook.url))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(format!(
                    "{which}: url {:?} must be http://HOST/... or https://HOST/...",
                    webhook.url
                ));
            }
            if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
                return Err(format!(
                    "{which}: url must not carry credentials (the signature authenticates \
                     Lifeline)"
                ));
            }
            if webhook.secret_file.is_none() {
                return Err(format!(
                    "{which}: secret_file is missing (a file holding the signing key)"
                ));
            }
            if webhook.events.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!(
                    "{which}: events is empty; leave it out to get every event"
                ));
            }
            let name = webhook.name();
            let name_ok = !name.is_empty()
                && name.len() <= WEBHOOK_NAME_MAX_LEN
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
            if !name_ok {
                return Err(format!(
                    "{which}: name {name:?} must be 1 to {WEBHOOK_NAME_MAX_LEN} letters, digits, \
                     '.', '_', '-' or ':'"
                ));
            }
            if !names.insert(name.clone()) {
                return Err(format!(
                    "{which}: another webhook is also named {name:?}; give each a distinct name"
                ));
            }
        }
        if let Some(smtp) = &self.smtp {
            if smtp.host.trim().is_empty() {
                return Err("smtp: host is empty".to_owned());
            }
            if smtp.username.is_some() != smtp.password_file.is_some() {
                return Err(
                    "smtp: username and password_file go together: set both or neither".to_owned(),
                );
            }
            smtp.from
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| format!("smtp: from {:?} is not an e-mail address: {e}", smtp.from))?;
        }
        Ok(())
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
    fn integrations_parse_with_defaults_and_paths_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        std::fs::write(
            &file,
            "public_url = \"https://helpdesk.example.org:8443/\"\n\
             [[webhooks]]\nurl = \"https://itsm.example.org:9000/hook\"\n\
             secret_file = \"hook.secret\"\n\
             [[webhooks]]\nname = \"glpi\"\nurl = \"http://127.0.0.1:8080/\"\n\
             secret_file = \"/etc/glpi.secret\"\nevents = [\"ticket.resolved\"]\n\
             [smtp]\nhost = \"smtp.example.org\"\nfrom = \"Lifeline <helpdesk@example.org>\"\n\
             username = \"u\"\npassword_file = \"smtp.password\"\n",
        )
        .unwrap();
        let config = ServerConfig::load(&file).unwrap();
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://helpdesk.example.org:8443")
        );
        assert_eq!(config.webhooks[0].name(), "itsm.example.org:9000");
        assert_eq!(
            config.webhooks[0].secret_file,
            Some(dir.path().join("hook.secret"))
        );
        assert_eq!(config.webhooks[0].events, None);
        assert_eq!(config.webhooks[1].name(), "glpi");
        assert_eq!(config.webhooks[1].events, Some(vec![TicketEvent::Resolved]));
        let smtp = config.smtp.unwrap();
        assert_eq!((smtp.tls, smtp.port()), (SmtpTls::Starttls, 587));
        assert_eq!(smtp.password_file, Some(dir.path().join("smtp.password")));
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
        for (text, expected) in [
            (
                "[[webhooks]]\nurl = \"ftp://x/\"\nsecret_file = \"s\"",
                "must be http://",
            ),
            (
                "[[webhooks]]\nurl = \"https://x/\"",
                "secret_file is missing",
            ),
            (
                "[[webhooks]]\nurl = \"https://x/\"\nsecret_file = \"s\"\nevents = [\"ticket.gone\"]",
                "ticket.gone",
            ),
            (
                "[[webhooks]]\nurl = \"https://x/a\"\nsecret_file = \"s\"\n\
                 [[webhooks]]\nurl = \"https://x/b\"\nsecret_file = \"s\"",
                "distinct name",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"not an address\"",
                "smtp: from",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\nusername = \"u\"",
                "go together",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\ntls = \"ssl\"",
                "ssl",
            ),
            ("public_url = \"helpdesk\"", "public_url"),
        ] {
            let e = ServerConfig::parse(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
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
