//! `lifeline-agent enroll`: trade an enrollment token and a CSR for a client certificate.
//!
//! The key pair is generated here and only its public half leaves the machine (inside the CSR).
//! When this agent is already enrolled with an unexpired certificate, it presents that
//! certificate during enrollment, so the collector keeps its machine id and only replaces the
//! certificate.

use std::path::Path;

use lifeline_shared::v1::api::{EnrollRequest, EnrollResponse, MachineStatus, RenewRequest, paths};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use time::OffsetDateTime;

use lifeline_shared::v1::catalog::PublicKey;

use crate::config::{AgentConfig, AgentDir, ConfigError};
use crate::transport::{self, Collector, Identity, TransportError};
use crate::trust::TrustStore;

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot create the agent's key pair or signing request: {0}")]
    Key(#[from] rcgen::Error),
    #[error("the collector sent a certificate that does not work: {0}")]
    BadCertificate(String),
    #[error("the enrollment token is empty")]
    EmptyToken,
    #[error("this agent's certificate expired on {0}: enroll again with a new enrollment token")]
    Expired(OffsetDateTime),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

/// What the user asked for.
#[derive(Clone)]
pub struct EnrollOptions<'a> {
    pub server: &'a str,
    pub token: &'a str,
    pub ca: &'a Path,
    pub hostname: String,
}

impl std::fmt::Debug for EnrollOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollOptions")
            .field("server", &self.server)
            .field("token", &"***")
            .field("ca", &self.ca)
            .field("hostname", &self.hostname)
            .finish()
    }
}

/// Enrolls and saves the result in `dir`.
/// What an enrollment gave: the saved configuration, the machine's status, and the catalog keys
/// the collector trusts (for trust on first use).
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub config: AgentConfig,
    pub status: MachineStatus,
    pub catalog_keys: Vec<PublicKey>,
}

pub fn enroll(
    dir: &AgentDir,
    options: &EnrollOptions<'_>,
    now: OffsetDateTime,
) -> Result<Enrolled, EnrollError> {
    let token = options.token.trim();
    if token.is_empty() {
        return Err(EnrollError::EmptyToken);
    }
    let ca_pem = std::fs::read(options.ca).map_err(|source| ConfigError::Io {
        path: options.ca.to_owned(),
        source,
    })?;
    let ca = transport::read_certs(options.ca)?;

    // Present the current certificate only when it is ours for the same collector and unexpired.
    let current = dir
        .load_if_enrolled()?
        .filter(|c| c.certificate_not_after > now)
        .filter(|c| c.server.trim_end_matches('/') == options.server.trim_end_matches('/'));
    let identity = match &current {
        Some(_) => Some(Identity::load(&dir.cert_path(), &dir.key_path())?),
        None => None,
    };

    let (key, csr_pem) = new_key_and_csr(&options.hostname)?;

    let collector = Collector::new(options.server, &ca, identity.as_ref())?;
    let url = collector.url(paths::ENROLL);
    let response = collector
        .post(paths::ENROLL)
        .header("authorization", format!("Bearer {token}"))
        .send_json(&EnrollRequest {
            csr_pem,
            hostname: options.hostname.clone(),
        });
    let answer: EnrollResponse = transport::finish(&url, response)?;

    let key_pem = key.serialize_pem();
    // Check what we got before replacing a working enrollment with it.
    check_issued(&answer.certificate_pem, &key_pem)?;
    let config = AgentConfig {
        server: options.server.trim_end_matches('/').to_owned(),
        machine_id: answer.machine_id,
        certificate_not_after: answer.not_after,
        enrolled_at: now,
    };
    dir.save(&config, &key_pem, &answer.certificate_pem, &ca_pem)?;
    Ok(Enrolled {
        config,
        status: answer.status,
        catalog_keys: answer.catalog_keys,
    })
}

/// A fresh ECDSA P-256 key pair and a CSR for it.
fn new_key_and_csr(common_name: &str) -> Result<(KeyPair, String), EnrollError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let csr_pem = params.serialize_request(&key)?.pem()?;
    Ok((key, csr_pem))
}

/// Renew when less than this much validity is left.
pub const RENEW_BEFORE: time::Duration = time::Duration::days(30);

/// Renews the client certificate when it expires within [`RENEW_BEFORE`]: a new key pair, a
/// CSR signed with it, sent over a connection authenticated by the current certificate.
/// Returns the new configuration when it renewed, `None` when nothing was due.
pub fn renew_if_due(
    dir: &AgentDir,
    now: OffsetDateTime,
) -> Result<Option<AgentConfig>, EnrollError> {
    let config = dir.load()?;
    if config.certificate_not_after - now > RENEW_BEFORE {
        return Ok(None);
    }
    if config.certificate_not_after <= now {
        return Err(EnrollError::Expired(config.certificate_not_after));
    }
    let ca_pem = std::fs::read(dir.ca_path()).map_err(|source| ConfigError::Io {
        path: dir.ca_path(),
        source,
    })?;
    let ca = transport::read_certs(&dir.ca_path())?;
    let identity = Identity::load(&dir.cert_path(), &dir.key_path())?;
    let collector = Collector::new(&config.server, &ca, Some(&identity))?;
    let (key, csr_pem) = new_key_and_csr(&config.machine_id)?;
    let url = collector.url(paths::AGENT_RENEW);
    let response = collector
        .post(paths::AGENT_RENEW)
        .send_json(&RenewRequest { csr_pem });
    let answer: EnrollResponse = transport::finish(&url, response)?;
    let key_pem = key.serialize_pem();
    check_issued(&answer.certificate_pem, &key_pem)?;
    let renewed = AgentConfig {
        certificate_not_after: answer.not_after,
        ..config
    };
    dir.save(&renewed, &key_pem, &answer.certificate_pem, &ca_pem)?;
    Ok(Some(renewed))
}

/// Checks that the issued certificate parses and fits our key, without touching the disk.
fn check_issued(cert_pem: &str, key_pem: &str) -> Result<(), EnrollError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EnrollError::BadCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(EnrollError::BadCertificate(
            "no certificate in the answer".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| EnrollError::BadCertificate(e.to_string()))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EnrollError::BadCertificate(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain, key)
        .map(|_| ())
        .map_err(|e| EnrollError::BadCertificate(e.to_string()))
}

/// `lifeline-agent enroll` flags.
#[derive(Clone, clap::Args)]
pub struct EnrollArgs {
    /// Collector URL, e.g. https://collector.example:8443
    #[arg(long)]
    pub server: String,
    /// Enrollment token from the collector's admin
    #[arg(long, env = "LIFELINE_ENROLLMENT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The collector's CA certificate (its ca.pem); pinned from now on
    #[arg(long)]
    pub ca: std::path::PathBuf,
    /// The admins' catalog signing key (lifeline-catalog.pub) to pin (recommended). Without it,
    /// the agent trusts the keys the collector offers now, once, and prints their fingerprints.
    #[arg(long, value_name = "KEY.pub")]
    pub catalog_key: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for EnrollArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollArgs")
            .field("server", &self.server)
            .field("token", &"***")
            .field("ca", &self.ca)
            .field("catalog_key", &self.catalog_key)
            .finish()
    }
}

/// Runs `lifeline-agent enroll` and prints the outcome.
pub fn run(args: &EnrollArgs) -> Result<(), EnrollError> {
    let dir = AgentDir::from_env()?;
    // Read the key to pin before anything is sent, so a wrong path fails fast and changes nothing.
    let pinned = match &args.catalog_key {
        Some(path) => Some(read_catalog_key(path)?),
        None => None,
    };
    let hostname = sysinfo::System::host_name()
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    let now = OffsetDateTime::now_utc();
    let enrolled = enroll(
        &dir,
        &EnrollOptions {
            server: &args.server,
            token: &args.token,
            ca: &args.ca,
            hostname,
        },
        now,
    )?;
    let config = &enrolled.config;
    println!(
        "Enrolled with {} as machine {} (certificate valid until {}). Files: {}",
        config.server,
        config.machine_id,
        config.certificate_not_after.date(),
        dir.root.display()
    );
    if enrolled.status == MachineStatus::Pending {
        println!(
            "The collector's administrator must approve this machine before it can file tickets."
        );
    }
    let trust = TrustStore::open(&dir)?;
    for line in catalog_trust(&trust, pinned, &enrolled.catalog_keys, now)? {
        println!("{line}");
    }
    Ok(())
}

fn read_catalog_key(path: &Path) -> Result<PublicKey, EnrollError> {
    let io = |source| crate::trust::TrustError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // A little more than any key file, so an oversized one is reported as such.
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, 128 * 1024), &mut text)
        .map_err(io)?;
    PublicKey::from_pem(&text).map_err(|source| {
        crate::trust::TrustError::KeyFile {
            path: path.to_owned(),
            source,
        }
        .into()
    })
}

/// Pins `pinned`, or trusts the collector's `offered` keys on first use; returns what to tell
/// the person enrolling.
pub fn catalog_trust(
    trust: &TrustStore,
    pinned: Option<PublicKey>,
    offered: &[PublicKey],
    now: OffsetDateTime,
) -> Result<Vec<String>, EnrollError> {
    let mut lines = Vec::new();
    if let Some(key) = pinned {
        let result = trust.pin(&[key], now)?;
        lines.push(format!("Pinned catalog signing key {}.", key.id()));
        lines.extend(crate::trust::untrusted_lines(&result.untrusted));
        if !offered.is_empty() && !offered.contains(&key) {
            lines.push(
                "Note: the collector does not trust this key yet; actions signed with it run \
                 once an admin publishes a catalog signed with it."
                    .to_owned(),
            );
        }
        return Ok(lines);
    }
    if offered.is_empty() {
        if trust.keys()?.is_empty() {
            lines.push(
                "No catalog signing key is trusted yet, so remote actions stay off on this \
                 machine. Enroll again with --catalog-key lifeline-catalog.pub (recommended), or \
                 after an admin has trusted a key on the collector."
                    .to_owned(),
            );
        }
        return Ok(lines);
    }
    match trust.trust_on_first_use(offered, now) {
        Ok(ids) => {
            lines.push(
                "Trusting the collector's catalog signing key(s) on first use. Compare these \
                 fingerprints with the admins' lifeline-catalog.pub (or enroll with \
                 --catalog-key to pin the key yourself):"
                    .to_owned(),
            );
            lines.extend(ids.iter().map(|id| format!("  {id}")));
        }
        Err(crate::trust::TrustError::AlreadyPinned { trusted, offered }) => {
            lines.push(format!(
                "Warning: the collector offers catalog key(s) {offered}, but this machine already \
                 trusts {trusted}; the trusted keys stay, and the collector cannot change them."
            ));
        }
        Err(other) => return Err(other.into()),
    }
    Ok(lines)
}
