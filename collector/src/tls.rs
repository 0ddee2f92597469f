//! The server's rustls configuration: TLS 1.3 (1.2 only when asked), our CA for client
//! certificates (optional, so technicians and enrolling agents connect without one), h2 + HTTP/1.1.
//! And the client side of the collector's outgoing HTTPS (the CLI, webhooks): ureq on the same
//! rustls + aws-lc-rs.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA certificate is not usable as a trust anchor: {0}")]
    Anchor(#[source] rustls::Error),
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("server certificate or key is not usable: {0}")]
    Config(#[source] rustls::Error),
}

/// The certificates in PEM text, as ureq takes them (blocks that are not certificates are
/// skipped; the caller decides whether none is an error).
pub fn ureq_certificates(pem: &[u8]) -> Vec<Certificate<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect()
}

/// ureq's TLS settings for an outgoing connection that trusts `roots`: rustls on aws-lc-rs.
pub fn ureq_tls(roots: &[Certificate<'static>]) -> TlsConfig {
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::new_with_certs(roots))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build()
}

/// Builds the server configuration.
pub fn server_config(
    client_ca: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    allow_tls12: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in client_ca {
        roots.add(cert.clone()).map_err(TlsError::Anchor)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let versions: &[&rustls::SupportedProtocolVersion] = if allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
