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

use crate::config::{AgentConfig, AgentDir, ConfigError};
use crate::transport::{self, Collector, Identity, TransportError};

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
pub fn enroll(
    dir: &AgentDir,
    options: &EnrollOptions<'_>,
    now: OffsetDateTime,
) -> Result<(AgentConfig, MachineStatus), EnrollError> {
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
    Ok((config, answer.status))
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
}

impl std::fmt::Debug for EnrollArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollArgs")
            .field("server", &self.server)
            .field("token", &"***")
            .field("ca", &self.ca)
            .finish()
    }
}

/// Runs `lifeline-agent enroll` and prints the outcome.
pub fn run(args: &EnrollArgs) -> Result<(), EnrollError> {
    let dir = AgentDir::from_env()?;
    let hostname = sysinfo::System::host_name()
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    let now = OffsetDateTime::now_utc();
    let (config, status) = enroll(
        &dir,
        &EnrollOptions {
            server: &args.server,
            token: &args.token,
            ca: &args.ca,
            hostname,
        },
        now,
    )?;
    println!(
        "Enrolled with {} as machine {} (certificate valid until {}). Files: {}",
        config.server,
        config.machine_id,
        config.certificate_not_after.date(),
        dir.root.display()
    );
    if status == MachineStatus::Pending {
        println!(
            "The collector's administrator must approve this machine before it can file tickets."
        );
    }
    Ok(())
}
