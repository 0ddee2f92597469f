//! Transport: TLS versions, ALPN, and an operator's own server certificate.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::harness::{TestAgent, TestCollector, assert_success, install_crypto};

/// Completes a TLS handshake with the collector using only `versions`; returns the ALPN protocol.
fn handshake(
    collector: &TestCollector,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Option<Vec<u8>>, String> {
    install_crypto();
    let pem = std::fs::read(collector.ca_path()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let addr = collector.url.trim_start_matches("https://");
    let mut socket = TcpStream::connect(addr).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    let _ = conn.writer().flush();
    Ok(conn.alpn_protocol().map(<[u8]>::to_vec))
}

#[test]
fn only_tls_1_3_is_offered_by_default_and_http2_is_negotiated() {
    let collector = TestCollector::spawn();
    let alpn = handshake(&collector, &[&rustls::version::TLS13]).unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let refused = handshake(&collector, &[&rustls::version::TLS12]);
    assert!(
        refused.is_err(),
        "TLS 1.2 was accepted without --allow-tls12"
    );
}

#[test]
fn allow_tls12_accepts_tls_1_2_clients() {
    let collector = TestCollector::spawn_with(&["--allow-tls12"]);
    handshake(&collector, &[&rustls::version::TLS12]).unwrap();
    handshake(&collector, &[&rustls::version::TLS13]).unwrap();
}

#[test]
fn operator_certificate_is_served_and_agents_still_enroll_and_report() {
    // The operator's own CA and server certificate, made the way an operator might.
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Operator CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let ca_path = dir.path().join("operator-ca.pem");
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    std::fs::write(&cert_path, server_cert.pem()).unwrap();
    std::fs::write(&key_path, server_key.serialize_pem()).unwrap();

    let collector = TestCollector::spawn_trusting(
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        Some(&ca_path),
    );
    let agent = TestAgent::enrolled(&collector);
    assert_eq!(
        agent
            .http(&collector)
            .file_ticket("via operator cert", "op-1")
            .status,
        200
    );
    let tickets = collector.cli_json(&["tickets", "list"]);
    assert_eq!(tickets[0]["description"], "via operator cert");

    // The collector's own CA does not vouch for the operator's server certificate.
    let wrong = std::process::Command::new(crate::binaries::collector())
        .args(["tickets", "list"])
        .env("LIFELINE_SERVER", &collector.url)
        .env("LIFELINE_CA", collector.data_dir().join("ca.pem"))
        .env("LIFELINE_TOKEN", &collector.admin_token)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let out = collector.cli(&["machines", "list"]);
    assert_success(&out, "machines list with the operator CA");
}
