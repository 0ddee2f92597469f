//! First start and every start: the data directory, the database, the CA, the server
//! certificate, and the first admin and enrollment tokens.
//!
//! Layout of the data directory (created 0700; private keys 0600):
//! - `lifeline.db` (+ `-wal`, `-shm`): the SQLite database, unless `--database` names another
//!   SQLite file or a PostgreSQL database (see [`prepare_with`])
//! - `ca.pem`, `ca.key`: the private CA that signs the server and agent certificates,
//!   name-constrained to the server names of the first start (see `crate::pki`)
//! - `server.pem`, `server.key`, `server.names`: the generated server certificate and its SANs
//! - `listen-addr`: the address the running server bound (written after binding)
//!
//! Secrets are created once: a later start finds an admin in the database and prints nothing.
//! Creating them writes the first audit log entries (actor `collector`).
//!
//! On PostgreSQL (several collectors on one database) the CA lives in the database
//! (`store::secrets`): the first instance to start creates it, or imports the data directory's
//! `ca.pem` and `ca.key` (a site moved from SQLite with `migrate`), under an advisory lock that
//! also covers the first admin, so instances starting together create one of each. Every
//! instance writes only `ca.pem` (public) and its own server certificate into its data
//! directory, issued from the shared CA for its own `--san` names.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifeline_shared::v1::api::Role;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use time::OffsetDateTime;

use crate::audit::{self, Event};
use crate::clock::Clock;
use crate::config::Database;
use crate::pki::{CertificateAuthority, PkiError, certs_from_pem};
use crate::secret::{RandomError, Secret, TokenHash, TokenKind, generate_token, token_prefix};
use crate::store::postgres::PostgresStore;
use crate::store::secrets::SharedCa;
use crate::store::sqlite::SqliteStore;
use crate::store::{EnrollmentTokenRecord, Store, StoreError};
use crate::tls::{TlsError, server_config};

/// File names inside the data directory.
pub const DATABASE_FILE: &str = "lifeline.db";
pub const CA_CERT_FILE: &str = "ca.pem";
pub const CA_KEY_FILE: &str = "ca.key";
pub const SERVER_CERT_FILE: &str = "server.pem";
pub const SERVER_KEY_FILE: &str = "server.key";
pub const SERVER_NAMES_FILE: &str = "server.names";
pub const LISTEN_ADDR_FILE: &str = "listen-addr";
/// Name of the admin created on first start.
pub const FIRST_ADMIN: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no certificate or key found in it: {detail}")]
    Pem { path: PathBuf, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("--tls-cert and --tls-key must be given together")]
    HalfOperatorCert,
    #[error(
        "--san {name} is outside the names the collector's CA is constrained to ({permitted}); \
         those are fixed when the CA is created (the first start): serve {name} with \
         --tls-cert and --tls-key, or name it with --san on the first start of a new data \
         directory"
    )]
    OutsideCaNames { name: String, permitted: String },
    #[error(
        "{path}: this CA differs from the one in the database that other collectors share; \
         remove {CA_CERT_FILE} and {CA_KEY_FILE} from the data directory to use the database's"
    )]
    CaMismatch { path: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What `serve` was asked for, as far as the data directory is concerned.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub data_dir: PathBuf,
    /// Extra names for the generated server certificate.
    pub extra_sans: Vec<String>,
    /// An operator's own certificate chain and key instead of the generated ones.
    pub operator_cert: Option<(PathBuf, PathBuf)>,
    pub allow_tls12: bool,
    /// How long the enrollment token printed at first start stays valid.
    pub first_token_ttl: FirstTokenTtl,
}

/// How long the enrollment token printed at first start works: `24h` unless the admin says
/// otherwise (`serve --first-token-ttl`, `first_token_ttl` in the configuration file). The
/// first-start text is pasted into tickets, chats and shell histories; a token that enrolls
/// machines forever from there is a standing invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstTokenTtl {
    /// Expires this long after the first start.
    For(time::Duration),
    /// `never`: valid until revoked (`enrollment-tokens revoke`).
    Never,
}

impl FirstTokenTtl {
    /// The default: one day.
    pub const DEFAULT: FirstTokenTtl = FirstTokenTtl::For(time::Duration::hours(24));
    /// The longest lifetime written as a duration (as for `enrollment-tokens create`).
    const MAX: time::Duration = time::Duration::days(3650);

    pub fn expires_at(self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            FirstTokenTtl::For(ttl) => Some(now + ttl),
            FirstTokenTtl::Never => None,
        }
    }
}

impl Default for FirstTokenTtl {
    fn default() -> FirstTokenTtl {
        FirstTokenTtl::DEFAULT
    }
}

impl std::str::FromStr for FirstTokenTtl {
    type Err = String;

    /// `24h`, `7d`, `1h30m` (units s, m, h, d, w), or `never`.
    fn from_str(text: &str) -> Result<FirstTokenTtl, String> {
        if text.trim().eq_ignore_ascii_case("never") {
            return Ok(FirstTokenTtl::Never);
        }
        let ttl = crate::sla::parse_duration(text).map_err(|e| format!("{e}, or never"))?;
        if ttl <= time::Duration::ZERO || ttl > FirstTokenTtl::MAX {
            return Err(format!(
                "{text:?}: the first enrollment token must live between 1s and 3650d (or never)"
            ));
        }
        Ok(FirstTokenTtl::For(ttl))
    }
}

impl<'de> serde::Deserialize<'de> for FirstTokenTtl {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Secrets created on first start, to be shown once.
#[derive(Debug)]
pub struct FirstStart {
    pub admin_token: Secret,
    pub enrollment_token: Secret,
    /// When the enrollment token stops working; `None`: never (`--first-token-ttl never`).
    pub enrollment_expires_at: Option<OffsetDateTime>,
}

/// Everything `serve` needs, ready.
#[derive(Debug)]
pub struct Prepared {
    pub store: Arc<dyn Store>,
    /// The same store when it is PostgreSQL, for what only it does (wake-ups between
    /// collectors).
    pub postgres: Option<PostgresStore>,
    pub ca: Arc<CertificateAuthority>,
    pub tls: Arc<rustls::ServerConfig>,
    /// `Some` only on the very first start.
    pub first_start: Option<FirstStart>,
    pub ca_cert_path: PathBuf,
    /// True when the server certificate is the operator's (agents then pin the operator's CA).
    pub operator_cert: bool,
}

/// Prepares the data directory, creating what is missing, with the SQLite database in it.
pub async fn prepare(
    options: &BootstrapOptions,
    clock: &dyn Clock,
) -> Result<Prepared, BootstrapError> {
    prepare_with(options, None, clock).await
}

/// Like [`prepare`], on `database` when given (`serve --database`): an SQLite file elsewhere
/// or a PostgreSQL database. On PostgreSQL the CA is the database's (see the module doc) and the
/// data directory holds `ca.pem` and this instance's server certificate.
pub async fn prepare_with(
    options: &BootstrapOptions,
    database: Option<&Database>,
    clock: &dyn Clock,
) -> Result<Prepared, BootstrapError> {
    let dir = &options.data_dir;
    create_private_dir(dir)?;
    let mut postgres = None;
    let store: Arc<dyn Store> = match database {
        None => Arc::new(SqliteStore::open(&dir.join(DATABASE_FILE)).await?),
        Some(Database::Sqlite(path)) => Arc::new(SqliteStore::open(path).await?),
        Some(Database::Postgres(url)) => {
            let pg = PostgresStore::open(url.expose()).await?;
            postgres = Some(pg.clone());
            Arc::new(pg)
        }
    };
    let now = clock.now();
    // Held until the first admin exists (PostgreSQL only; a dead instance's lock goes with its
    // connection).
    let lock = match &postgres {
        Some(pg) => Some(pg.bootstrap_lock().await?),
        None => None,
    };

    let ca_cert_path = dir.join(CA_CERT_FILE);
    let ca_key_path = dir.join(CA_KEY_FILE);
    let ca = if let Some(pg) = &postgres {
        shared_ca(pg, &ca_cert_path, &ca_key_path, &options.extra_sans, clock).await?
    } else if ca_cert_path.exists() || ca_key_path.exists() {
        let cert = read_string(&ca_cert_path)?;
        let key = read_string(&ca_key_path)?;
        CertificateAuthority::load(&cert, &key)?
    } else {
        let (ca, pair) = CertificateAuthority::generate(now, &server_names(&options.extra_sans))?;
        write_file(&ca_key_path, pair.key_pem.as_bytes(), 0o600)?;
        write_file(&ca_cert_path, pair.cert_pem.as_bytes(), 0o644)?;
        tracing::info!(path = %ca_cert_path.display(), "created the collector CA");
        ca
    };
    let client_ca = certs_from_pem(ca.cert_pem().as_bytes()).map_err(|e| BootstrapError::Pem {
        path: ca_cert_path.clone(),
        detail: e.to_string(),
    })?;

    let (cert_path, key_path, operator_cert) = match &options.operator_cert {
        Some((cert, key)) => (cert.clone(), key.clone(), true),
        None => {
            let cert = dir.join(SERVER_CERT_FILE);
            let key = dir.join(SERVER_KEY_FILE);
            ensure_server_cert(dir, &ca, &options.extra_sans, &cert, &key, clock)?;
            (cert, key, false)
        }
    };
    let chain_pem = fs::read(&cert_path).map_err(io_error(&cert_path))?;
    let chain = certs_from_pem(&chain_pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| BootstrapError::Pem {
            path: cert_path.clone(),
            detail: "expected one or more PEM certificates".to_owned(),
        })?;
    let key_pem = fs::read(&key_path).map_err(io_error(&key_path))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| BootstrapError::Pem {
        path: key_path.clone(),
        detail: e.to_string(),
    })?;
    let tls = server_config(&client_ca, chain, key, options.allow_tls12)?;

    let first_start = if store.has_admin().await? {
        None
    } else {
        let admin_token = generate_token(TokenKind::User)?;
        let enrollment_token = generate_token(TokenKind::Enrollment)?;
        let record = EnrollmentTokenRecord {
            token_hash: TokenHash::of(&enrollment_token),
            prefix: token_prefix(&enrollment_token),
            created_by: audit::COLLECTOR.to_owned(),
            expires_at: options.first_token_ttl.expires_at(now),
            max_uses: None,
        };
        store.add_enrollment_token(&record, now).await?;
        store
            .add_user(
                FIRST_ADMIN,
                Role::Admin,
                &TokenHash::of(&admin_token),
                None,
                now,
            )
            .await?;
        let token_created = audit::enrollment_token_created(audit::COLLECTOR, &record, true);
        audit::record_in(store.as_ref(), token_created, now).await?;
        let admin_added = Event::new(audit::COLLECTOR, "user.add")
            .subject(format!("user:{FIRST_ADMIN}"))
            .detail(json!({ "role": Role::Admin, "first_start": true }));
        audit::record_in(store.as_ref(), admin_added, now).await?;
        Some(FirstStart {
            admin_token,
            enrollment_token,
            enrollment_expires_at: record.expires_at,
        })
    };
    if let Some(lock) = lock {
        lock.release().await?;
    }

    Ok(Prepared {
        store,
        postgres,
        ca: Arc::new(ca),
        tls,
        first_start,
        ca_cert_path,
        operator_cert,
    })
}

/// The CA collectors on one PostgreSQL database share: the database's, else the data
/// directory's (imported), else a new one; `ca.pem` is written for agents and clients.
async fn shared_ca(
    pg: &PostgresStore,
    cert_path: &Path,
    key_path: &Path,
    extra_sans: &[String],
    clock: &dyn Clock,
) -> Result<CertificateAuthority, BootstrapError> {
    let local_cert = match fs::read_to_string(cert_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(cert_path)(e)),
    };
    let shared = match pg.shared_ca().await? {
        Some(shared) => {
            if local_cert
                .as_deref()
                .is_some_and(|local| local.trim() != shared.cert_pem.trim())
            {
                return Err(BootstrapError::CaMismatch {
                    path: cert_path.to_owned(),
                });
            }
            shared
        }
        None => {
            let shared = match local_cert {
                Some(cert_pem) => {
                    let key_pem = read_string(key_path)?;
                    tracing::info!(path = %cert_path.display(), "storing the data directory's CA in the database for all collectors");
                    SharedCa { cert_pem, key_pem }
                }
                None => {
                    // Constrained to this first instance's names: the others' --san values
                    // must be among them (name them all on the first start).
                    let (_, pair) =
                        CertificateAuthority::generate(clock.now(), &server_names(extra_sans))?;
                    tracing::info!("created the collector CA in the database");
                    SharedCa {
                        cert_pem: pair.cert_pem,
                        key_pem: pair.key_pem,
                    }
                }
            };
            pg.put_shared_ca(&shared, clock.now()).await?;
            shared
        }
    };
    let ca = CertificateAuthority::load(&shared.cert_pem, &shared.key_pem)?;
    if !cert_path.exists() {
        write_file(cert_path, shared.cert_pem.as_bytes(), 0o644)?;
    }
    Ok(ca)
}

/// Names the generated server certificate covers: loopback, this host, and extras.
pub fn server_names(extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = host_name() {
        names.push(host);
    }
    for name in extra {
        let name = name.trim().to_owned();
        if !name.is_empty() {
            names.push(name);
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.to_ascii_lowercase()));
    names
}

#[cfg(unix)]
fn host_name() -> Option<String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_str().ok()?.trim().to_owned();
    (!name.is_empty() && name != "localhost").then_some(name)
}

#[cfg(not(unix))]
fn host_name() -> Option<String> {
    None
}

/// Issues a server certificate unless one for the same names exists.
fn ensure_server_cert(
    dir: &Path,
    ca: &CertificateAuthority,
    extra: &[String],
    cert_path: &Path,
    key_path: &Path,
    clock: &dyn Clock,
) -> Result<(), BootstrapError> {
    let names = names_within_ca(ca, extra)?;
    let names_path = dir.join(SERVER_NAMES_FILE);
    let wanted = names.join("\n");
    let current = fs::read_to_string(&names_path).ok();
    if cert_path.exists() && key_path.exists() && current.as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let pair = ca.issue_server_cert(&names, clock.now())?;
    write_file(key_path, pair.key_pem.as_bytes(), 0o600)?;
    write_file(cert_path, pair.cert_pem.as_bytes(), 0o644)?;
    write_file(&names_path, wanted.as_bytes(), 0o644)?;
    tracing::info!(names = %names.join(", "), "issued the server certificate");
    Ok(())
}

/// The server names the CA may vouch for: all of them for an unconstrained (older) CA. A name
/// given with `--san` outside the CA's constraints is an error (a certificate carrying it would
/// fail verification for every name); this host's name is left out with a warning instead, so an
/// instance on another host of a shared database still starts.
fn names_within_ca(
    ca: &CertificateAuthority,
    extra: &[String],
) -> Result<Vec<String>, BootstrapError> {
    let mut names = Vec::new();
    for name in server_names(extra) {
        if ca.permits(&name) {
            names.push(name);
        } else if extra.iter().any(|e| e.trim().eq_ignore_ascii_case(&name)) {
            return Err(BootstrapError::OutsideCaNames {
                name,
                permitted: ca.permitted_names().unwrap_or_default().join(", "),
            });
        } else {
            tracing::warn!(
                %name,
                permitted = %ca.permitted_names().unwrap_or_default().join(", "),
                "this host's name is outside the names the CA is constrained to; the server \
                 certificate leaves it out"
            );
        }
    }
    Ok(names)
}

fn create_private_dir(dir: &Path) -> Result<(), BootstrapError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir))
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir).map_err(io_error(dir))
    }
}

fn read_string(path: &Path) -> Result<String, BootstrapError> {
    fs::read_to_string(path).map_err(io_error(path))
}

/// Writes a file atomically (temporary file, then rename) with the given Unix mode.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), BootstrapError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(io_error(&tmp))?;
    file.write_all(contents).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn options(dir: &Path) -> BootstrapOptions {
        BootstrapOptions {
            data_dir: dir.join("data"),
            extra_sans: vec!["collector.example".into()],
            operator_cert: None,
            allow_tls12: false,
            first_token_ttl: FirstTokenTtl::DEFAULT,
        }
    }

    #[tokio::test]
    async fn first_start_creates_secrets_once_and_keys_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let first = prepare(&options(tmp.path()), &SystemClock).await.unwrap();
        assert!(first.first_start.is_some());
        let ca_before = fs::read(tmp.path().join("data/ca.pem")).unwrap();
        drop(first);
        let second = prepare(&options(tmp.path()), &SystemClock).await.unwrap();
        assert!(second.first_start.is_none());
        let audited = second
            .store
            .list_audit(&crate::store::AuditFilter {
                since: None,
                actor: None,
                after_seq: None,
                limit: 10,
            })
            .await
            .unwrap();
        let actions: Vec<(&str, &str)> = audited
            .iter()
            .map(|e| (e.actor.as_str(), e.action.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("collector", "enrollment_token.create"),
                ("collector", "user.add")
            ]
        );
        assert_eq!(fs::read(tmp.path().join("data/ca.pem")).unwrap(), ca_before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [CA_KEY_FILE, SERVER_KEY_FILE] {
                let mode = fs::metadata(tmp.path().join("data").join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }
        let names = fs::read_to_string(tmp.path().join("data").join(SERVER_NAMES_FILE)).unwrap();
        assert!(names.contains("collector.example") && names.contains("::1"));
    }
}
