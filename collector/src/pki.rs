//! The collector's private CA: creating it, issuing the server certificate, signing agents' CSRs.
//!
//! The CA key signs two kinds of certificates. The server certificate (ServerAuth) lets agents
//! and technicians who pinned `ca.pem` check they talk to this collector. Client certificates
//! (ClientAuth) are what an enrolled agent proves its identity with. The collector never takes
//! anything from an agent's CSR except its public key and the proof that the agent holds the
//! private key: subject, validity, usages and serial number are ours.
//!
//! The CA is name-constrained (X.509 NameConstraints, critical, permitted subtrees) to the names
//! of the collector that created it: the server certificate's names at that first start
//! (`localhost`, `127.0.0.1`, `::1`, the host name, `--san` values). Whoever trusts `ca.pem` (an
//! agent, a technician's browser for the console) thus trusts it for those names only: the CA
//! key cannot vouch for any other site. DNS constraints cover the name and its subdomains;
//! addresses are single addresses. Agents' client certificates carry no subject alternative
//! name, so the constraints never touch them (their subject is a directory name, which the
//! constraints do not restrict). A CA made before constraints (no extension) permits every
//! name, as it always did.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CidrSubnet,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, NameConstraints, SerialNumber,
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
    #[error("a CA needs at least one DNS name or IP address to be constrained to")]
    NoCaNames,
    #[error("cannot read the name constraints of ca.pem: {0}")]
    CaConstraints(String),
}

/// A CA key pair with its certificate, ready to sign.
#[derive(Debug)]
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// The permitted subtrees of its NameConstraints; `None`: an unconstrained (older) CA.
    permitted: Option<Vec<GeneralSubtree>>,
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
    /// A new CA (ECDSA P-256), valid from now for ten years, name-constrained to `names` (DNS
    /// names or IP addresses: the collector's server names).
    pub fn generate(
        now: OffsetDateTime,
        names: &[String],
    ) -> Result<(CertificateAuthority, GeneratedPair), PkiError> {
        let permitted = permitted_subtrees(names);
        if permitted.is_empty() {
            // No permitted subtree would mean no extension: a CA valid for every name.
            return Err(PkiError::NoCaNames);
        }
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
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: Vec::new(),
        });
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
        let permitted = read_permitted_subtrees(cert_pem)?;
        Ok(CertificateAuthority {
            issuer,
            cert_pem: cert_pem.to_owned(),
            permitted,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Whether a certificate this CA issues may carry `name` (DNS name or IP address): inside
    /// its permitted subtrees, or any name for an unconstrained CA.
    pub fn permits(&self, name: &str) -> bool {
        let Some(permitted) = &self.permitted else {
            return true;
        };
        match name.parse::<IpAddr>() {
            Ok(ip) => permitted.iter().any(|subtree| match subtree {
                GeneralSubtree::IpAddress(subnet) => subnet_contains(subnet, ip),
                _ => false,
            }),
            Err(_) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                permitted.iter().any(|subtree| match subtree {
                    GeneralSubtree::DnsName(base) => {
                        let base = base.trim_start_matches('.').to_ascii_lowercase();
                        name == base || name.ends_with(&format!(".{base}"))
                    }
                    _ => false,
                })
            }
        }
    }

    /// The names the CA is constrained to, for messages; `None`: unconstrained.
    pub fn permitted_names(&self) -> Option<Vec<String>> {
        self.permitted.as_ref().map(|permitted| {
            permitted
                .iter()
                .map(|subtree| match subtree {
                    GeneralSubtree::DnsName(name) => name.clone(),
                    GeneralSubtree::IpAddress(subnet) => subnet_text(subnet),
                    other => format!("{other:?}"),
                })
                .collect()
        })
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

/// The permitted subtrees of the CA certificate's NameConstraints (`None` without the
/// extension). rcgen reads certificates back without their constraints, hence x509-parser.
fn read_permitted_subtrees(cert_pem: &str) -> Result<Option<Vec<GeneralSubtree>>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    use x509_parser::extensions::GeneralName;
    let bad = |detail: String| PkiError::CaConstraints(detail);
    let der =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let Some(constraints) = cert.name_constraints().map_err(|e| bad(e.to_string()))? else {
        return Ok(None);
    };
    let mut permitted = Vec::new();
    for subtree in constraints.value.permitted_subtrees.iter().flatten() {
        match subtree.base {
            GeneralName::DNSName(name) => permitted.push(GeneralSubtree::DnsName(name.to_owned())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                8 => {
                    let (addr, mask) = bytes.split_at(4);
                    if let (Ok(addr), Ok(mask)) = (addr.try_into(), mask.try_into()) {
                        permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V4(addr, mask)));
                    }
                }
                32 => {
                    let (addr, mask) = bytes.split_at(16);
                    if let (Ok(addr), Ok(mask)) = (addr.try_into(), mask.try_into()) {
                        permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V6(addr, mask)));
                    }
                }
                _ => {}
            },
            // Other name forms permit no server name.
            _ => {}
        }
    }
    Ok(Some(permitted))
}

/// The permitted subtrees for a collector's names: each IP address alone (/32, /128), each DNS
/// name (and so its subdomains), lower-cased. Names that are neither (not a valid DNS name) are
/// left out: a malformed constraint would make verifiers refuse every name.
fn permitted_subtrees(names: &[String]) -> Vec<GeneralSubtree> {
    let mut permitted = Vec::new();
    for name in names {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        let subtree = match name.parse::<IpAddr>() {
            Ok(ip) => GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            )),
            Err(_) if rustls_pki_types::DnsName::try_from(name.as_str()).is_ok() => {
                GeneralSubtree::DnsName(name)
            }
            Err(_) => continue,
        };
        if !permitted.contains(&subtree) {
            permitted.push(subtree);
        }
    }
    permitted
}

fn subnet_contains(subnet: &CidrSubnet, ip: IpAddr) -> bool {
    fn within(addr: &[u8], base: &[u8], mask: &[u8]) -> bool {
        addr.iter()
            .zip(base)
            .zip(mask)
            .all(|((a, b), m)| a & m == b & m)
    }
    match (subnet, ip) {
        (CidrSubnet::V4(base, mask), IpAddr::V4(ip)) => within(&ip.octets(), base, mask),
        (CidrSubnet::V6(base, mask), IpAddr::V6(ip)) => within(&ip.octets(), base, mask),
        _ => false,
    }
}

fn subnet_text(subnet: &CidrSubnet) -> String {
    let prefix = |mask: &[u8]| mask.iter().map(|b| b.count_ones()).sum::<u32>();
    match subnet {
        CidrSubnet::V4(base, mask) => {
            format!("{}/{}", std::net::Ipv4Addr::from(*base), prefix(mask))
        }
        CidrSubnet::V6(base, mask) => {
            format!("{}/{}", std::net::Ipv6Addr::from(*base), prefix(mask))
        }
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

    fn loopback() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    fn at() -> rustls_pki_types::UnixTime {
        rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_100))
    }

    /// What an agent or a browser does: trusts `ca_pem` alone and checks `cert_pem` for `name`.
    fn verify_server(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certs_from_pem(ca_pem.as_bytes()).unwrap().remove(0))
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let der = certs_from_pem(cert_pem.as_bytes()).unwrap().remove(0);
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &der,
            &[],
            &server_name,
            &[],
            at(),
        )
        .map(|_| ())
    }

    /// A certificate for `names` signed with the CA's key, as someone holding `ca.key` would
    /// make one, past any check of ours.
    fn forged(ca: &CertificateAuthority, names: &[&str]) -> String {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(self::names(names)).unwrap();
        params.not_before = now() - BACKDATE;
        params.not_after = now() + SERVER_CERT_VALIDITY;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.signed_by(&key, &ca.issuer).unwrap().pem()
    }

    #[test]
    fn the_ca_vouches_for_the_collectors_own_names_only() {
        let own = names(&[
            "localhost",
            "127.0.0.1",
            "::1",
            "ws-collector",
            "helpdesk.example.org",
        ]);
        let (ca, pair) = CertificateAuthority::generate(now(), &own).unwrap();
        // The extension is there, critical, with permitted subtrees only.
        let der = certs_from_pem(pair.cert_pem.as_bytes()).unwrap().remove(0);
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let extension = cert
            .extensions()
            .iter()
            .find(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS)
            .unwrap();
        assert!(extension.critical);
        let constraints = cert.name_constraints().unwrap().unwrap().value;
        assert_eq!(constraints.permitted_subtrees.as_ref().unwrap().len(), 5);
        assert!(constraints.excluded_subtrees.is_none());

        // The collector's own certificate verifies for each of its names.
        let server = ca.issue_server_cert(&own, now()).unwrap();
        for name in &own {
            verify_server(ca.cert_pem(), &server.cert_pem, name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // A certificate for any other site, signed with the same key, does not.
        for other in [
            &["www.bank.example"][..],
            &["example.org"],
            &["10.0.0.1"],
            &["127.0.0.2"],
            &["localhost", "www.bank.example"],
        ] {
            let cert = forged(&ca, other);
            let refused = verify_server(ca.cert_pem(), &cert, other[0]).unwrap_err();
            assert!(
                format!("{refused:?}").contains("NameConstraintViolation"),
                "{other:?}: {refused:?}"
            );
        }
        // Subdomains of a permitted DNS name are inside its subtree (RFC 5280).
        let sub = forged(&ca, &["api.helpdesk.example.org"]);
        verify_server(ca.cert_pem(), &sub, "api.helpdesk.example.org").unwrap();

        // Loaded back from PEM, the CA knows its constraints.
        let loaded = CertificateAuthority::load(&pair.cert_pem, &pair.key_pem).unwrap();
        for name in &own {
            assert!(loaded.permits(name), "{name}");
        }
        assert!(loaded.permits("api.helpdesk.example.org"));
        assert!(loaded.permits("LOCALHOST"));
        for name in [
            "example.org",
            "evilhelpdesk.example.org",
            "10.0.0.1",
            "::2",
            "127.0.0.2",
        ] {
            assert!(!loaded.permits(name), "{name}");
        }
        assert!(
            loaded
                .permitted_names()
                .unwrap()
                .contains(&"127.0.0.1/32".to_owned())
        );
    }

    #[test]
    fn a_ca_from_before_constraints_still_loads_and_permits_every_name() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Lifeline collector CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now() - BACKDATE;
        params.not_after = now() + CA_VALIDITY;
        let cert = params.self_signed(&key).unwrap();
        let ca = CertificateAuthority::load(&cert.pem(), &key.serialize_pem()).unwrap();
        assert!(ca.permits("anything.example") && ca.permitted_names().is_none());
        let server = ca
            .issue_server_cert(&names(&["collector.example"]), now())
            .unwrap();
        verify_server(ca.cert_pem(), &server.cert_pem, "collector.example").unwrap();
    }

    #[test]
    fn a_ca_is_never_made_without_a_name_to_constrain_it_to() {
        assert!(matches!(
            CertificateAuthority::generate(now(), &names(&["not a name!"])),
            Err(PkiError::NoCaNames)
        ));
    }

    #[test]
    fn client_certificate_takes_only_the_public_key_from_the_csr() {
        let (ca, _) = CertificateAuthority::generate(now(), &loopback()).unwrap();
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
        let (ca, _) = CertificateAuthority::generate(now(), &loopback()).unwrap();
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
        let (_, pair) = CertificateAuthority::generate(now(), &loopback()).unwrap();
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
