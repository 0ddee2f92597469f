//! `lifeline-collector`: the help-desk server (`serve`) and the technician/admin client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lifeline_collector::bootstrap::{
    self, BootstrapOptions, FIRST_ADMIN, FirstTokenTtl, LISTEN_ADDR_FILE,
};
use lifeline_collector::cli::{self, ClientCommand, ConnectionArgs};
use lifeline_collector::clock::{SharedClock, SystemClock};
use lifeline_collector::config::{Database, ServerConfig};
use lifeline_collector::http::enroll::EnrollmentMode;
use lifeline_collector::integrations::Integrations;
use lifeline_collector::sla::Policy;
use lifeline_collector::{AppState, serve};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "lifeline-collector",
    version,
    about = "Lifeline collector: help-desk server and technician client"
)]
struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector (HTTPS API)
    Serve(ServeArgs),
    #[command(flatten)]
    Client(ClientCommand),
    /// Copy a site's data from SQLite into an empty PostgreSQL database, then verify the copy
    Migrate(MigrateArgs),
}

/// `migrate` (several collectors on one database, issue 8).
#[derive(Debug, Args)]
struct MigrateArgs {
    /// The source: sqlite://PATH (the site's lifeline.db; stop its collector first)
    #[arg(long, value_name = "URL")]
    from: String,
    /// The target: postgres://USER@HOST[:PORT]/DATABASE, empty (password: PGPASSWORD or
    /// ~/.pgpass rather than the command line)
    #[arg(long, value_name = "URL")]
    to: String,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Settings in TOML (data_dir, listen, san, enrollment, first_token_ttl, allow_tls12,
    /// tls_cert, tls_key, database, [sla], public_url, [[webhooks]], [smtp]); flags given here
    /// win over the file
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the database, CA and keys live [default: ./lifeline-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the bound address is written to
    /// DATA_DIR/listen-addr) [default: 127.0.0.1:8443]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Extra DNS name or IP address for the generated server certificate (repeatable)
    #[arg(long = "san")]
    sans: Vec<String>,
    /// Use this certificate chain (PEM) instead of the generated one
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Also accept TLS 1.2 (for old load balancers); TLS 1.3 only by default
    #[arg(long)]
    allow_tls12: bool,
    /// Tests only: move the clock by the number of seconds written in this file. Compiled into
    /// debug builds only (the end-to-end tests run those): a release build has no such flag.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    test_clock_file: Option<PathBuf>,
    /// How long the enrollment token printed at first start works: e.g. 24h, 7d, 1h30m, or
    /// never (until `enrollment-tokens revoke`) [default: 24h]
    #[arg(long, value_name = "DURATION")]
    first_token_ttl: Option<FirstTokenTtl>,
    /// `approve` holds newly enrolled machines until an admin runs `machines approve`
    /// [default: open]
    #[arg(long, value_enum)]
    enrollment: Option<EnrollmentMode>,
    /// The database: postgres://USER@HOST[:PORT]/DATABASE (several collectors may share it) or
    /// sqlite://PATH [default: the SQLite file DATA_DIR/lifeline.db]. Keep a password out of the
    /// command line: PGPASSWORD, ~/.pgpass, this variable or the --config file
    #[arg(
        long,
        value_name = "URL",
        env = "LIFELINE_DATABASE",
        hide_env_values = true
    )]
    database: Option<String>,
}

/// The settings `serve` runs with: flags, else the configuration file, else the defaults.
#[derive(Debug)]
struct Settings {
    data_dir: PathBuf,
    listen: SocketAddr,
    sans: Vec<String>,
    operator_cert: Option<(PathBuf, PathBuf)>,
    allow_tls12: bool,
    enrollment: EnrollmentMode,
    first_token_ttl: FirstTokenTtl,
    /// `None`: the SQLite file in the data directory.
    database: Option<Database>,
    /// Service levels (issue 9): `[sla]` of the configuration file, else the defaults.
    sla: Policy,
    /// Webhooks, SMTP and the public URL (issue 9): only in the file.
    integrations: ServerConfig,
}

impl Settings {
    fn of(args: &ServeArgs) -> anyhow::Result<Settings> {
        let file = match &args.config {
            Some(path) => ServerConfig::load(path)?,
            None => ServerConfig::default(),
        };
        let integrations = ServerConfig {
            public_url: file.public_url.clone(),
            webhooks: file.webhooks.clone(),
            smtp: file.smtp.clone(),
            ..ServerConfig::default()
        };
        let mut sans = file.san;
        sans.extend(args.sans.iter().cloned());
        // Parsed here rather than by clap, whose error would repeat the URL and its password.
        let database = match &args.database {
            Some(text) => Some(
                Database::parse(text)
                    .map_err(|message| anyhow::anyhow!("--database: {message}"))?,
            ),
            None => file.database,
        };
        let operator_cert = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            _ => file.tls_cert.zip(file.tls_key),
        };
        Ok(Settings {
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./lifeline-data")),
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            sans,
            operator_cert,
            allow_tls12: args.allow_tls12 || file.allow_tls12.unwrap_or(false),
            enrollment: args.enrollment.or(file.enrollment).unwrap_or_default(),
            first_token_ttl: args
                .first_token_ttl
                .or(file.first_token_ttl)
                .unwrap_or_default(),
            database,
            sla: file.sla.unwrap_or_default(),
            integrations,
        })
    }
}

fn main() -> ExitCode {
    // Before anything touches TLS: the one crypto provider for the whole process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => run_server(args),
        Command::Migrate(args) => run_migrate(&args),
        Command::Client(command) => {
            init_tracing("warn");
            cli::run(&cli.connection, &command).map_err(anyhow::Error::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "lifeline-collector: error: {}",
                lifeline_shared::errors::describe(error.chain())
            );
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(default: &str) {
    let filter =
        EnvFilter::try_from_env("LIFELINE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_main(args))
}

async fn serve_main(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::of(&args)?;
    // Issue 9: read the webhook secrets and the SMTP password before anything starts.
    let integrations = Integrations::load(&settings.integrations).with_context(|| {
        format!(
            "configuration file {}",
            args.config
                .as_deref()
                .unwrap_or(std::path::Path::new("-"))
                .display()
        )
    })?;
    let clock = clock_of(&args);
    let options = BootstrapOptions {
        data_dir: settings.data_dir.clone(),
        extra_sans: settings.sans.clone(),
        operator_cert: settings.operator_cert.clone(),
        allow_tls12: settings.allow_tls12,
        first_token_ttl: settings.first_token_ttl,
    };
    let prepared = bootstrap::prepare_with(&options, settings.database.as_ref(), clock.as_ref())
        .await
        .with_context(|| {
            format!(
                "cannot prepare data directory {}",
                settings.data_dir.display()
            )
        })?;
    let database = settings.database.as_ref().map_or_else(
        || {
            format!(
                "sqlite://{}",
                settings.data_dir.join(bootstrap::DATABASE_FILE).display()
            )
        },
        ToString::to_string,
    );

    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("lifeline_http_request_duration_seconds".to_owned()),
            &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )
        .context("cannot configure metrics")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    // Service levels (issue 9): due times of running tickets follow the policy in force.
    let recomputed = prepared
        .store
        .apply_sla_policy(Arc::new(settings.sla.clone()), clock.now())
        .await
        .context("cannot apply the service-level settings")?;
    tracing::info!(policy = %settings.sla.summary(), recomputed, "service levels");
    let active = prepared.store.count_active_machines().await?;
    metrics::gauge!("lifeline_machines_active").set(active as f64);

    let listen_file = settings.data_dir.join(LISTEN_ADDR_FILE);
    let _ = std::fs::remove_file(&listen_file);
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    bootstrap::write_file(&listen_file, bound.to_string().as_bytes(), 0o644)?;
    let url = format!("https://{bound}");
    tracing::info!(%url, data_dir = %settings.data_dir.display(), %database, "collector listening");

    if let Some(first) = &prepared.first_start {
        let ca = if prepared.operator_cert {
            "CA_THAT_SIGNED_YOUR_TLS_CERT.pem".to_owned()
        } else {
            std::fs::canonicalize(&prepared.ca_cert_path)
                .unwrap_or_else(|_| prepared.ca_cert_path.clone())
                .display()
                .to_string()
        };
        let expiry = match first.enrollment_expires_at {
            Some(at) => format!(
                "This enrollment token expires at {} (serve --first-token-ttl sets another \
                 lifetime on a first start); make more with: lifeline-collector \
                 enrollment-tokens create",
                lifeline_collector::web::when(at)
            ),
            None => "This enrollment token never expires (--first-token-ttl never); revoke it \
                     when done with: lifeline-collector enrollment-tokens revoke PREFIX"
                .to_owned(),
        };
        println!(
            "\nLifeline collector initialised in {dir}. These secrets are shown only once.\n\n\
             Enroll an agent (on the workstation, with a copy of {ca}):\n  \
             lifeline-agent enroll --server {url} --token {enroll} --ca {ca}\n{expiry}\n\n\
             Log in as the admin ({admin_name}) from this machine:\n  \
             export LIFELINE_SERVER={url} LIFELINE_CA={ca} LIFELINE_TOKEN={admin}\n  \
             lifeline-collector tickets list\n",
            dir = settings.data_dir.display(),
            enroll = first.enrollment_token.expose(),
            admin = first.admin_token.expose(),
            admin_name = FIRST_ADMIN,
        );
    }

    tracing::info!(
        webhooks = integrations.webhooks.len(),
        smtp = integrations.smtp.is_some(),
        "notifications configured"
    );
    let wakeups = Arc::new(lifeline_collector::wakeup::Wakeups::default());
    // Several collectors on one database (issue 8): wake-ups reach the other instances.
    if let Some(pg) = &prepared.postgres {
        pg.bridge_wakeups(&wakeups);
    }
    let state = AppState {
        store: prepared.store,
        ca: prepared.ca,
        clock,
        metrics: Some(metrics),
        enrollment: settings.enrollment,
        wakeups,
        integrations: Arc::new(integrations),
    };
    serve(listener, prepared.tls, state, shutdown_signal())
        .await
        .context("server failed")
}

/// The system clock; in a debug build, the test offset file's when `--test-clock-file` is given.
fn clock_of(args: &ServeArgs) -> SharedClock {
    #[cfg(debug_assertions)]
    if let Some(path) = &args.test_clock_file {
        tracing::warn!(file = %path.display(), "the clock follows a test offset file");
        return Arc::new(lifeline_collector::clock::FileOffsetClock::new(path));
    }
    let _ = args;
    Arc::new(SystemClock)
}

fn run_migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    init_tracing("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let json = args.json;
    let summary = runtime.block_on(lifeline_collector::migrate::run(
        &args.from,
        &args.to,
        |table, rows| {
            if !json {
                println!("copied {table}: {rows} rows");
            }
        },
    ))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let rows: i64 = summary.tables.iter().map(|t| t.rows).sum();
        println!(
            "migrated {rows} rows in {} tables from {} to {}; row counts match and the audit \
             log verifies ({} entries, head {})",
            summary.tables.len(),
            summary.from,
            summary.to,
            summary.audit_entries,
            summary.audit_head
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run in both profiles: the test-only clock flag parses in debug builds (what the
    /// end-to-end tests run) and is an unknown argument in release builds.
    #[test]
    fn the_test_clock_flag_exists_only_in_debug_builds() {
        let parsed =
            Cli::try_parse_from(["lifeline-collector", "serve", "--test-clock-file", "offset"]);
        if cfg!(debug_assertions) {
            assert!(parsed.is_ok(), "{parsed:?}");
        } else {
            let error = parsed.expect_err("a release build must refuse --test-clock-file");
            assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        }
    }
}
