//! `lifeline-bench`: the collector's performance targets (DESIGN.md), each measured side by side
//! with its floor in the same run, printed as figures and ratios.
//!
//! - `ingest`: tickets with a real snapshot (~100 KB JSON, zstd on the wire) through the real API
//!   over mutual TLS, against a raw loop inserting the same JSON into the same database with the
//!   same durability settings (one durable commit per ticket), in the same process: SQLite (WAL,
//!   `synchronous=FULL`) by default, PostgreSQL (`synchronous_commit=on`, `fsync=on`) with
//!   `--postgres` (a throwaway cluster) or `--database postgres://...`.
//! - `heartbeat`: heartbeats per second through the real API against a bare axum+rustls endpoint
//!   served by the same TLS stack in the same process, with the same client.
//! - `longpoll`: many agents parked on the work long-poll of a real `lifeline-collector serve`
//!   process: its memory per parked agent, and the time from queuing work to the agent receiving
//!   it, against a plain request round trip on the same collector.
//!
//! Build with `cargo build --release -p lifeline-bench -p lifeline-collector` and run
//! `target/release/lifeline-bench <benchmark>` (see BENCHMARKS.md).

mod http;
mod site;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::routing::post;
use clap::{Parser, Subcommand};
use lifeline_collector::config::Database;
use lifeline_collector::testing::PgCluster;
use lifeline_shared::v1::api::{NewTicket, Urgency, paths};
use lifeline_shared::v1::work::{Heartbeat, HeartbeatAck, WorkBatch};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::http::{Conn, client_config};

#[derive(Debug, Parser)]
#[command(
    name = "lifeline-bench",
    about = "Collector benchmarks with in-run floors"
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Ticket ingest per second vs a raw insert loop of the same payloads in the same database
    Ingest {
        /// Tickets to send
        #[arg(long, default_value_t = 400)]
        tickets: usize,
        /// Agents sending at the same time
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Store on a throwaway PostgreSQL cluster started for this run (initdb and pg_ctl from
        /// the `postgresql` package) instead of SQLite
        #[arg(long, conflicts_with = "database")]
        postgres: bool,
        /// Store in this new database instead of a temporary SQLite file: an empty PostgreSQL
        /// database (postgres://USER:PASSWORD@HOST/DB; the run leaves its tables there) or an
        /// SQLite file that does not exist yet (sqlite://PATH, to measure another disk)
        #[arg(long, value_name = "URL", value_parser = Database::parse)]
        database: Option<Database>,
    },
    /// Heartbeats per second vs a bare axum+rustls endpoint
    Heartbeat {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Agents parked on the long-poll: collector memory per agent, and queue-to-agent latency
    Longpoll {
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Work items queued one at a time to measure the latency
        #[arg(long, default_value_t = 200)]
        samples: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("machine: {}", machine_description());
    runtime.block_on(async {
        match cli.bench {
            Bench::Ingest {
                tickets,
                concurrency,
                postgres,
                database,
            } => {
                // Dropped (the server stopped and its directory removed) after the run.
                let cluster = if postgres {
                    println!("starting a throwaway PostgreSQL cluster (initdb, pg_ctl)");
                    Some(PgCluster::start().map_err(anyhow::Error::msg)?)
                } else {
                    None
                };
                let database = match &cluster {
                    Some(cluster) => {
                        let url = cluster
                            .create_database("lifeline_bench")
                            .map_err(anyhow::Error::msg)?;
                        Some(Database::parse(&url).map_err(anyhow::Error::msg)?)
                    }
                    None => database,
                };
                ingest(tickets, concurrency.max(1), database.as_ref()).await
            }
            Bench::Heartbeat {
                seconds,
                concurrency,
            } => heartbeat(Duration::from_secs(seconds.max(1)), concurrency.max(1)).await,
            Bench::Longpoll { agents, samples } => longpoll(agents.max(1), samples).await,
        }
    })
}

fn machine_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cpus} CPUs ({model})")
}

fn ratio_line(what: &str, value: f64, floor: f64, goal: &str) -> String {
    let ratio = if floor > 0.0 { value / floor } else { 0.0 };
    format!("{what}: {ratio:.2}x the floor ({goal})")
}

/// Starts the real API in this process on a port of its own.
fn start_api(site: &site::Site) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let state = site::state(site);
    let tls = Arc::clone(&site.prepared.tls);
    tokio::spawn(async move {
        if let Err(e) =
            lifeline_collector::serve(listener, tls, state, std::future::pending()).await
        {
            eprintln!("collector stopped: {e}");
        }
    });
    Ok(addr)
}

// ---------------------------------------------------------------------------------------------
// Ingest

async fn ingest(
    tickets: usize,
    concurrency: usize,
    database: Option<&Database>,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let site = site::prepare(&tmp.path().join("collector"), database, concurrency).await?;
    let snapshot = tokio::task::spawn_blocking(|| {
        lifeline_agent::collect::take(&lifeline_agent::collect::Options::default())
    })
    .await?;
    let ticket = NewTicket {
        description: "The laptop is slow since this morning and the disk is almost full".into(),
        urgency: Urgency::Normal,
        os_user: Some("alice".into()),
        snapshot: Some(snapshot),
        screenshot_png: None,
    };
    let json = serde_json::to_vec(&ticket)?;
    let body = Arc::new(zstd::encode_all(&json[..], 3)?);
    println!(
        "ingest: {tickets} tickets, a real snapshot of {} KB JSON ({} KB zstd), {concurrency} agents",
        json.len() / 1024,
        body.len() / 1024
    );

    // Floor: the same JSON inserted one durable commit at a time, into the same database.
    let text = String::from_utf8_lossy(&json).into_owned();
    let (floor_name, raw) = match database {
        None => (
            "raw SQLite insert loop",
            raw_sqlite_loop(&tmp.path().join("raw.db"), &text, tickets).await?,
        ),
        Some(Database::Sqlite(path)) => (
            "raw SQLite insert loop",
            raw_sqlite_loop(&path.with_extension("raw.db"), &text, tickets).await?,
        ),
        Some(Database::Postgres(url)) => (
            "raw PostgreSQL insert loop",
            raw_postgres_loop(url.expose(), &text, tickets).await?,
        ),
    };
    println!("  {floor_name}: {raw:.0} tickets/s");

    let addr = start_api(&site)?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for machine in &site.machines {
        let config = client_config(&site.roots, Some(machine.identity()))?;
        let body = Arc::clone(&body);
        let next = Arc::clone(&next);
        let total = tickets as u64;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr, config).await?;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(());
                }
                let key = format!("bench-{n}");
                let answer = conn
                    .request(
                        "POST",
                        paths::AGENT_TICKETS,
                        &[
                            ("content-type", "application/json"),
                            ("content-encoding", "zstd"),
                            ("idempotency-key", &key),
                        ],
                        &body,
                    )
                    .await?;
                anyhow::ensure!(
                    answer.status == 200,
                    "ticket refused: {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let collector = tickets as f64 / started.elapsed().as_secs_f64();
    println!("  collector over HTTPS: {collector:.0} tickets/s");
    println!("  {}", ratio_line("ingest", collector, raw, "goal >= 0.5"));
    Ok(())
}

/// The statement both raw loops run: the ticket's JSON with a key and a time, nothing else.
const RAW_INSERT: &str =
    "INSERT INTO lifeline_bench_raw (idempotency_key, received_at, document) VALUES ($1, $2, $3)";

/// How many times per second `each` completes, called `count` times in a row.
async fn per_second(
    count: usize,
    mut each: impl AsyncFnMut(i64) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for n in 0..count {
        each(i64::try_from(n)?).await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The floor on SQLite: a new file in WAL mode with `synchronous=FULL`, as the collector's.
async fn raw_sqlite_loop(path: &Path, document: &str, tickets: usize) -> anyhow::Result<f64> {
    anyhow::ensure!(!path.exists(), "{} exists already", path.display());
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE lifeline_bench_raw (id INTEGER PRIMARY KEY, idempotency_key TEXT UNIQUE, \
         received_at INTEGER, document TEXT)",
    )
    .execute(&pool)
    .await?;
    let rate = per_second(tickets, async |n| {
        let query = sqlx::query(RAW_INSERT).bind(format!("raw-{n}")).bind(n);
        query.bind(document).execute(&pool).await?;
        Ok(())
    })
    .await;
    pool.close().await;
    let _ = std::fs::remove_file(path);
    rate
}

/// The floor on PostgreSQL: one connection committing every insert with
/// `synchronous_commit=on`, as the collector's connections do, in a table dropped afterwards.
async fn raw_postgres_loop(url: &str, document: &str, tickets: usize) -> anyhow::Result<f64> {
    let mut conn = PgConnection::connect(url)
        .await
        .context("cannot connect to PostgreSQL for the raw insert loop")?;
    sqlx::query("SET synchronous_commit = on")
        .execute(&mut conn)
        .await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut conn)
        .await?;
    if fsync != "on" {
        println!("  warning: the server runs with fsync={fsync}: commits are not durable");
    }
    sqlx::query(
        "CREATE TABLE lifeline_bench_raw (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
         idempotency_key TEXT UNIQUE, received_at BIGINT, document TEXT)",
    )
    .execute(&mut conn)
    .await
    .context("cannot create the table lifeline_bench_raw (left over from an earlier run?)")?;
    let rate = per_second(tickets, async |n| {
        let query = sqlx::query(RAW_INSERT).bind(format!("raw-{n}")).bind(n);
        query.bind(document).execute(&mut conn).await?;
        Ok(())
    })
    .await;
    sqlx::query("DROP TABLE lifeline_bench_raw")
        .execute(&mut conn)
        .await?;
    rate
}

// ---------------------------------------------------------------------------------------------
// Heartbeat

async fn heartbeat(duration: Duration, concurrency: usize) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let site = site::prepare(&tmp.path().join("collector"), None, concurrency).await?;
    let real = start_api(&site)?;

    // The floor: the same TLS configuration (client certificates requested), one route that
    // reads the body and answers the same JSON, nothing else.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let bare = listener.local_addr()?;
    let router = axum::Router::new().route(
        paths::AGENT_HEARTBEAT,
        post(|_body: axum::body::Bytes| async {
            Json(HeartbeatAck {
                server_time: time::OffsetDateTime::now_utc(),
            })
        }),
    );
    let tls = Arc::clone(&site.prepared.tls);
    tokio::spawn(async move {
        let _ =
            lifeline_collector::serve_router(listener, tls, router, std::future::pending()).await;
    });

    let vitals =
        tokio::task::spawn_blocking(|| lifeline_agent::vitals::VitalsReader::new().read()).await?;
    let body = Arc::new(serde_json::to_vec(&Heartbeat { vitals })?);
    println!(
        "heartbeat: {concurrency} agents with keep-alive connections, {} s per round, 2 rounds each",
        duration.as_secs()
    );
    let mut floor = Vec::new();
    let mut api = Vec::new();
    for _ in 0..2 {
        floor.push(hammer(&site, bare, &body, concurrency, duration).await?);
        api.push(hammer(&site, real, &body, concurrency, duration).await?);
    }
    let floor = floor.iter().sum::<f64>() / floor.len() as f64;
    let api = api.iter().sum::<f64>() / api.len() as f64;
    println!("  bare axum+rustls endpoint: {floor:.0} requests/s");
    println!("  collector heartbeat:       {api:.0} requests/s");
    println!("  {}", ratio_line("heartbeat", api, floor, "goal >= 0.5"));
    Ok(())
}

/// Requests per second from `concurrency` agents posting `body` for `duration`.
async fn hammer(
    site: &site::Site,
    addr: SocketAddr,
    body: &Arc<Vec<u8>>,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for machine in site.machines.iter().take(concurrency) {
        let config = client_config(&site.roots, Some(machine.identity()))?;
        let body = Arc::clone(body);
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr, config).await?;
            while Instant::now() < deadline {
                let answer = conn
                    .request(
                        "POST",
                        paths::AGENT_HEARTBEAT,
                        &[("content-type", "application/json")],
                        &body,
                    )
                    .await?;
                anyhow::ensure!(answer.status == 200, "heartbeat refused: {}", answer.status);
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Long-poll

/// Lets this process (and the collector it starts) hold one descriptor per agent.
fn raise_open_files_limit(wanted: u64) -> anyhow::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum;
    let soft = hard.map_or(wanted, |h| wanted.min(h));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: hard,
        },
    )
    .context("cannot raise the open files limit")?;
    Ok(soft)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

fn collector_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("no directory")?
        .join("lifeline-collector");
    anyhow::ensure!(
        path.exists(),
        "{} not found: build it with `cargo build --release -p lifeline-collector`",
        path.display()
    );
    Ok(path)
}

/// The real collector as a child process, killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[allow(clippy::disallowed_methods)] // the benchmark starts the real collector binary
fn spawn_collector(data_dir: &Path, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    let child = std::process::Command::new(collector_binary()?)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("LIFELINE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start lifeline-collector")?;
    Ok(Child(child))
}

async fn longpoll(agents: usize, samples: usize) -> anyhow::Result<()> {
    let limit = raise_open_files_limit(agents as u64 * 2 + 1024)?;
    anyhow::ensure!(
        limit >= agents as u64 + 256,
        "the open files limit is {limit}: too low for {agents} agents"
    );
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("collector");
    println!("longpoll: enrolling {agents} machines (real CA, real store)");
    let site = site::prepare(&data_dir, None, agents).await?;
    let roots = site.roots.clone();
    let admin_token = site.admin_token.clone();
    let machines = site.machines;
    drop(site.prepared);

    let child = spawn_collector(&data_dir, &tmp.path().join("collector.log"))?;
    let pid = child.0.id();
    let listen_file = data_dir.join("listen-addr");
    let started = Instant::now();
    let addr: SocketAddr = loop {
        if let Ok(text) = std::fs::read_to_string(&listen_file)
            && let Ok(addr) = text.trim().parse()
        {
            break addr;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the collector did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let admin_config = client_config(&roots, None)?;
    let mut admin = loop {
        match Conn::connect(addr, Arc::clone(&admin_config)).await {
            Ok(conn) => break conn,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).context("cannot reach the collector"),
        }
    };
    let bearer = format!("Bearer {admin_token}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid)?;

    // Park every agent: connect (a few handshakes at a time), then keep one long-poll open.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let parked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let poll_path = format!("{}?wait_secs=30", paths::AGENT_WORK);
    let connect_started = Instant::now();
    for (index, machine) in machines.iter().enumerate() {
        let config = client_config(&roots, Some(machine.identity()))?;
        let (tx, parked, failed, gate) = (
            tx.clone(),
            Arc::clone(&parked),
            Arc::clone(&failed),
            Arc::clone(&gate),
        );
        let path = poll_path.clone();
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let mut conn = match Conn::connect(addr, config).await {
                Ok(conn) => conn,
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            drop(permit);
            let mut first = true;
            loop {
                if conn.send("GET", &path, &[], &[]).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if first {
                    parked.fetch_add(1, Ordering::Relaxed);
                    first = false;
                }
                match conn.read_response().await {
                    Ok(answer) if answer.status == 200 => {
                        let batch: Result<WorkBatch, _> = serde_json::from_slice(&answer.body);
                        if batch.is_ok_and(|b| !b.items.is_empty()) {
                            let _ = tx.send((index, Instant::now()));
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    while parked.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < agents as u64 {
        anyhow::ensure!(
            connect_started.elapsed() < Duration::from_secs(600),
            "agents did not connect within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every request is written; give the collector time to take them all in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_kib(pid)?;
    let held = parked.load(Ordering::Relaxed);
    println!(
        "  {held} agents parked ({} failed) after {:.1} s of connecting",
        failed.load(Ordering::Relaxed),
        connect_started.elapsed().as_secs_f64()
    );
    println!(
        "  collector RSS: {} MiB idle, {} MiB with the agents parked: {:.1} KiB per parked agent",
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) as f64 / held.max(1) as f64
    );

    // Latency: queue an inspection for one parked agent at a time; the floor is a plain request
    // round trip (GET /healthz) on the same collector and connection.
    let mut latencies = Vec::with_capacity(samples);
    let mut floors = Vec::with_capacity(samples);
    for s in 0..samples {
        let index = (s * 7919) % machines.len();
        let t0 = Instant::now();
        let health = admin.request("GET", paths::HEALTHZ, &[], &[]).await?;
        anyhow::ensure!(health.status == 200, "healthz: {}", health.status);
        floors.push(t0.elapsed());

        let path = paths::MACHINE_INSPECT.replace("{id}", &machines[index].id);
        let t0 = Instant::now();
        let queued = admin
            .request("POST", &path, &[("authorization", &bearer)], &[])
            .await?;
        anyhow::ensure!(
            queued.status == 202,
            "inspect: {} {}",
            queued.status,
            String::from_utf8_lossy(&queued.body)
        );
        let received = loop {
            let (who, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .context("no agent received the work within 30 s")?
                .context("every agent stopped")?;
            if who == index {
                break at;
            }
        };
        latencies.push(received.duration_since(t0));
    }
    latencies.sort();
    floors.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let floor50 = percentile(&floors, 0.5);
    println!(
        "  queue -> agent receives it ({samples} samples): p50 {}, p99 {}, max {}",
        ms(p50),
        ms(p99),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!("  plain request round trip (floor): p50 {}", ms(floor50));
    println!(
        "  {}",
        ratio_line(
            "dispatch p50 vs round trip",
            p50.as_secs_f64(),
            floor50.as_secs_f64(),
            "target: well under 1 s"
        )
    );
    drop(child);
    Ok(())
}
