//! HTTPS to the collector: ureq over rustls (aws-lc-rs), the collector's CA pinned, and our
//! client certificate presented when we have one (that certificate *is* the agent's identity).
//!
//! Certificates and keys are checked with rustls before ureq sees them, because a malformed
//! client certificate makes ureq panic instead of returning an error. Every failure becomes one
//! line saying what went wrong: the collector's `{"error": ...}` or the transport problem.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lifeline_shared::v1::api::ErrorBody;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

/// Longest answer we read from the collector.
const RESPONSE_LIMIT: u64 = 16 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("collector URL {0:?} must start with https://")]
    NotHttps(String),
    #[error("cannot reach the collector at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the collector refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("unexpected answer from the collector at {url}: {message}")]
    Decode { url: String, message: String },
}

impl TransportError {
    /// True when retrying later may succeed (the request may not have reached the collector).
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Unreachable { .. } => true,
            TransportError::Refused { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }
}

/// PEM certificates from a file, checked to be parseable.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let bad = |message: String| TransportError::BadFile {
        path: path.to_owned(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    for cert in &certs {
        webpki_check(cert).map_err(bad)?;
    }
    Ok(certs)
}

/// Parses a certificate the way rustls will, so a broken one fails here with a message.
fn webpki_check(cert: &CertificateDer<'_>) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert.clone())
        .map_err(|e| format!("certificate is not valid: {e}"))
}

/// The client identity: certificate chain plus the private key, PEM.
#[derive(Debug)]
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pem: Vec<u8>,
}

impl Identity {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, TransportError> {
        let chain = read_certs(cert_path)?;
        let key_pem = std::fs::read(key_path).map_err(|e| TransportError::BadFile {
            path: key_path.to_owned(),
            message: e.to_string(),
        })?;
        let identity = Identity { chain, key_pem };
        identity
            .check()
            .map_err(|message| TransportError::BadFile {
                path: key_path.to_owned(),
                message,
            })?;
        Ok(identity)
    }

    /// Checks that rustls accepts certificate and key together (parseable, matching).
    fn check(&self) -> Result<(), String> {
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in &self.chain {
            let _ = roots.add(cert.clone());
        }
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.chain.clone(), key)
            .map(|_| ())
            .map_err(|e| format!("client certificate and key do not fit together: {e}"))
    }

    fn to_ureq(&self) -> Result<ClientCert, String> {
        let key = PrivateKey::from_pem(&self.key_pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        let certs: Vec<Certificate<'static>> = self
            .chain
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        Ok(ClientCert::new_with_certs(&certs, key))
    }
}

/// A connection to one collector.
#[derive(Debug)]
pub struct Collector {
    agent: ureq::Agent,
    base: String,
}

impl Collector {
    /// A client that trusts only `ca` and presents `identity` when given.
    pub fn new(
        server: &str,
        ca: &[CertificateDer<'static>],
        identity: Option<&Identity>,
    ) -> Result<Collector, TransportError> {
        let base = server.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(TransportError::NotHttps(server.to_owned()));
        }
        let roots: Vec<Certificate<'static>> = ca
            .iter()
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        let client_cert = identity
            .map(Identity::to_ureq)
            .transpose()
            .map_err(|message| TransportError::BadFile {
                path: PathBuf::from(crate::config::KEY_FILE),
                message,
            })?;
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(RootCerts::new_with_certs(&roots))
            .client_cert(client_cert)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .user_agent(concat!("lifeline-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Collector { agent, base })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The `host:port` of the collector, for the snapshot's reachability check.
    pub fn authority(&self) -> Option<String> {
        authority_of(&self.base)
    }

    /// A request builder for `method` on `path`.
    pub fn post(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        self.agent.post(&self.url(path))
    }

    pub fn get(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        self.agent.get(&self.url(path))
    }
}

/// The `host:port` of an `https://` collector URL.
pub fn authority_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    Some(rest.split('/').next().unwrap_or(rest).to_owned())
}

/// Turns a ureq result into the decoded answer or a one-line error.
pub fn finish<T: DeserializeOwned>(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, TransportError> {
    let unreachable = |e: &ureq::Error| TransportError::Unreachable {
        url: url.to_owned(),
        message: describe(e),
    };
    let mut response = response.map_err(|e| unreachable(&e))?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(RESPONSE_LIMIT)
        .read_to_vec()
        .map_err(|e| unreachable(&e))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| status.canonical_reason().unwrap_or("error").to_owned());
        return Err(TransportError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(&body).map_err(|e| TransportError::Decode {
        url: url.to_owned(),
        message: e.to_string(),
    })
}

/// A transport error in words a user can act on.
fn describe(error: &ureq::Error) -> String {
    let text = error.to_string();
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!(
            "the collector's certificate is not signed by the pinned CA, so this is not the \
             collector you enrolled with (or --ca is the wrong file) ({text})"
        )
    } else if text.contains("NotValidForName") {
        format!("the collector's certificate does not cover this host name ({text})")
    } else if matches!(error, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
    {
        "connection refused: is the collector running and is the URL right?".to_owned()
    } else {
        text
    }
}
