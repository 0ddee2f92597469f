//! The collector's private CA: creating it, issuing the server certificate, signing agents' CSRs.
//!
//! The CA key signs two kinds of certificates. The server certificate (ServerAuth) lets agents
//! and technicians who pinned `ca.pem` check they talk to this collector. Client certificates
//! (ClientAuth) are what an enrolled agent proves its identity with. The collector never takes
//! anything from an agent's CSR except its public key and the proof that the agent holds the
//! private key: subject, validity, usages and serial number are ours.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::secret::{RandomError, certificate_fingerprint, random_bytes};

/// How long an agent's client certificate is valid. The running agent renews before expiry.
pub const CLIENT_CERT_VALIDITY: Duration = Duration::days(90);
/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long the generated server certificate is valid.
const SERVER_CERT_VALIDITY: Duration = Duration::days(825);
/// Slack for agents whose clock runs a little behind.
const BACKDATE: Duration = Duration::minutes(10);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("cannot load the CA from {what}: {source}")]
    LoadCa {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("certificate signing request is not valid: {0}")]
    BadCsr(#[source] rcgen::Error),
    #[error("{0:?} cannot be a name in the server certificate: {1}")]
    BadSan(String, #[source] rcgen::Error),
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A CA key pair with its certificate, ready to sign.
#[derive(Debug)]
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A freshly generated certificate with its private key, both PEM.
#[derive(Debug)]
pub struct GeneratedPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A client certificate issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedClientCert {
    pub cert_pem: String,
    /// SHA-256 of the DER, hex: what the database records to recognise it in a handshake.
    pub fingerprint: String,
    pub not_after: OffsetDateTime,
}

impl CertificateAuthority {
    /// A new CA (ECDSA P-256), valid from now for ten years.
    pub fn generate(
        now: OffsetDateTime,
    ) -> Result<(CertificateAuthority, GeneratedPair), PkiError> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Lifeline collector CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(PkiError::Generate)?;
        let pair = GeneratedPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let ca = CertificateAuthority::load(&pair.cert_pem, &pair.key_pem)?;
        Ok((ca, pair))
    }

    /// The CA from its certificate and key (PEM), as stored in the data directory.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<CertificateAuthority, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|source| PkiError::LoadCa {
            what: "ca.key",
            source,
        })?;
        let issuer =
            Issuer::from_ca_cert_pem(cert_pem, key).map_err(|source| PkiError::LoadCa {
                what: "ca.pem",
                source,
            })?;
        Ok(CertificateAuthority {
            issuer,
            cert_pem: cert_pem.to_owned(),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `names` (DNS names or IP addresses) with a new key.
    pub fn issue_server_cert(
        &self,
        names: &[String],
        now: OffsetDateTime,
    ) -> Result<GeneratedPair, PkiError> {
        let key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(PkiError::Generate)?;
        let mut params = CertificateParams::default();
        for san in names {
            let one = CertificateParams::new(vec![san.clone()])
                .map_err(|e| PkiError::BadSan(san.clone(), e))?;
            params.subject_alt_names.extend(one.subject_alt_names);
        }
        params.distinguished_name = name("Lifeline collector");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - BACKDATE;
        params.not_after = now + SERVER_CERT_VALIDITY;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(PkiError::Generate)?;
        Ok(GeneratedPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs the public key of an agent's CSR into a client certificate for `machine_id`.
    /// The CSR's own signature is checked (proof that the agent holds the key); everything else
    /// in it is ignored.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        machine_id: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedClientCert, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::BadCsr)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(machine_id);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now - BACKDATE;
        params.not_after = now + CLIENT_CERT_VALIDITY;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(PkiError::Generate)?;
        Ok(IssuedClientCert {
            cert_pem: cert.pem(),
            fingerprint: certificate_fingerprint(cert.der()),
            not_after: params.not_after,
        })
    }
}

/// The DER certificates in a PEM bundle.
pub fn certs_from_pem(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, rustls_pki_types::pem::Error> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).collect()
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// 16 random bytes with the top bit clear, so the DER integer stays positive and 16 bytes long.
fn random_serial() -> Result<SerialNumber, RandomError> {
    let mut bytes = random_bytes::<16>()?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn client_certificate_takes_only_the_public_key_from_the_csr() {
        let (ca, _) = CertificateAuthority::generate(now()).unwrap();
        let agent_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // A hostile CSR asking for a server name and a CA flag.
        let mut asked = CertificateParams::new(vec!["collector.example".to_owned()]).unwrap();
        asked.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = asked.serialize_request(&agent_key).unwrap().pem().unwrap();

        let issued = ca.sign_client_csr(&csr, "m-1", now()).unwrap();
        assert_eq!(issued.not_after, now() + CLIENT_CERT_VALIDITY);
        let der = certs_from_pem(issued.cert_pem.as_bytes())
            .unwrap()
            .remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert!(!cert.is_ca());
        assert!(cert.subject_alternative_name().unwrap().is_none());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let cn = cert.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "m-1");

        // And the TLS stack accepts it as a client certificate issued by our CA.
        let roots = certs_from_pem(ca.cert_pem().as_bytes()).unwrap();
        let mut store = rustls::RootCertStore::empty();
        store.add(roots[0].clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(store.into(), provider)
                .build()
                .unwrap();
        let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            1_800_000_100,
        ));
        verifier.verify_client_cert(&der, &[], at).unwrap();
    }

    #[test]
    fn csr_with_a_broken_signature_is_refused() {
        let (ca, _) = CertificateAuthority::generate(now()).unwrap();
        assert!(matches!(
            ca.sign_client_csr(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                "m",
                now()
            ),
            Err(PkiError::BadCsr(_))
        ));
    }

    #[test]
    fn stored_ca_loads_back_and_signs() {
        let (_, pair) = CertificateAuthority::generate(now()).unwrap();
        let ca = CertificateAuthority::load(&pair.cert_pem, &pair.key_pem).unwrap();
        let server = ca
            .issue_server_cert(
                &["localhost".into(), "127.0.0.1".into(), "::1".into()],
                now(),
            )
            .unwrap();
        assert_eq!(certs_from_pem(server.cert_pem.as_bytes()).unwrap().len(), 1);
    }
}
