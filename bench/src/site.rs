//! A collector data directory prepared for a benchmark: the real bootstrap (CA, server
//! certificate, admin token) plus any number of enrolled machines with their client certificates,
//! made through the collector's own CA and store, exactly as enrollment makes them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use lifeline_collector::bootstrap::{self, BootstrapOptions, Prepared};
use lifeline_collector::clock::{Clock, SystemClock};
use lifeline_collector::config::Database;
use lifeline_collector::secret::TokenHash;
use lifeline_collector::store::Enrollment;
use lifeline_shared::v1::api::MachineStatus;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// One enrolled machine's identity.
#[derive(Debug)]
pub struct Machine {
    pub id: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Machine {
    pub fn identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (self.chain.clone(), self.key.clone_key())
    }
}

/// A prepared collector site.
pub struct Site {
    pub prepared: Prepared,
    pub roots: Vec<CertificateDer<'static>>,
    pub admin_token: String,
    pub machines: Vec<Machine>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("machines", &self.machines.len())
            .finish_non_exhaustive()
    }
}

/// Bootstraps `data_dir` (with its SQLite database, or on `database` when given, as
/// `serve --database` does) and enrolls `machines` machines, printing progress for large counts.
pub async fn prepare(
    data_dir: &Path,
    database: Option<&Database>,
    machines: usize,
) -> anyhow::Result<Site> {
    let clock = SystemClock;
    let prepared = bootstrap::prepare_with(
        &BootstrapOptions {
            data_dir: data_dir.to_owned(),
            extra_sans: Vec::new(),
            operator_cert: None,
            allow_tls12: false,
            first_token_ttl: bootstrap::FirstTokenTtl::Never,
        },
        database,
        &clock,
    )
    .await
    .context("cannot prepare the collector's data directory and database")?;
    let first = prepared
        .first_start
        .as_ref()
        .context("the database already has an administrator: benchmarks need an empty database")?;
    let admin_token = first.admin_token.expose().to_owned();
    let token_hash = TokenHash::of(&first.enrollment_token);
    let roots = CertificateDer::pem_file_iter(&prepared.ca_cert_path)
        .context("cannot read ca.pem")?
        .collect::<Result<Vec<_>, _>>()
        .context("cannot parse ca.pem")?;

    let mut enrolled = Vec::with_capacity(machines);
    for i in 0..machines {
        if machines >= 1000 && i % 1000 == 0 && i > 0 {
            eprintln!("  enrolled {i} of {machines} machines");
        }
        let id = format!("m-bench{i:06}");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, id.as_str());
        params.distinguished_name = name;
        let csr = params.serialize_request(&key)?.pem()?;
        let now = clock.now();
        let issued = prepared.ca.sign_client_csr(&csr, &id, now)?;
        let status = prepared
            .store
            .enroll(
                &token_hash,
                &Enrollment {
                    machine_id: id.clone(),
                    hostname: format!("bench-{i}"),
                    cert_fingerprint: issued.fingerprint.clone(),
                    cert_not_after: issued.not_after,
                    initial_status: MachineStatus::Active,
                },
                now,
            )
            .await?;
        anyhow::ensure!(status == MachineStatus::Active, "machine {id} is {status}");
        let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?;
        enrolled.push(Machine { id, chain, key });
    }
    Ok(Site {
        prepared,
        roots,
        admin_token,
        machines: enrolled,
    })
}

/// The store and CA as the in-process collector uses them.
pub fn state(site: &Site) -> lifeline_collector::AppState {
    lifeline_collector::AppState {
        store: Arc::clone(&site.prepared.store),
        ca: Arc::clone(&site.prepared.ca),
        clock: Arc::new(SystemClock),
        metrics: None,
        enrollment: Default::default(),
        wakeups: Default::default(),
        integrations: Default::default(),
    }
}
