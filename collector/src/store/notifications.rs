//! PostgreSQL notifications between collectors sharing one database: long-poll wake-ups and
//! machine-identity cache invalidation, through `LISTEN`/`NOTIFY` (no protocol of our own).
//!
//! - Channel [`WAKEUP_CHANNEL`]: payload `INSTANCE KEY`. The publisher task sends the keys this
//!   process wakes (batched, one round trip per batch); the listener wakes this process's
//!   waiters for keys other instances sent (its own are skipped: they were woken locally).
//! - Channel [`MACHINES_CHANNEL`]: sent inside the transaction of every machine status or
//!   certificate change, so it is delivered exactly when the change commits; the listener then
//!   clears the identity cache.
//!
//! Notifications sent while the listener's connection is down are lost. So the cache is not
//! used while the listener is not listening, and after every reconnection (once `LISTEN` is in
//! place again) the cache is cleared and every local waiter is woken once to re-check the
//! database. Reconnection backs off from [`BACKOFF_MIN`] to [`BACKOFF_MAX`].
//!
//! A connection can also die silently (a firewall or NAT forgets it, a host vanishes): no error
//! arrives, and neither do the notifications. sqlx offers no TCP keepalive on its connections,
//! so the listener checks its own: after [`Health::every`] without a notification it sends
//! `SELECT 1` on the listening connection and counts the connection as lost when no answer comes
//! within [`Health::timeout`] (which also catches a server that hangs, as keepalive would not).
//! And no cache entry is used past [`IDENTITY_MAX_AGE`], whatever the listener believes, so a
//! revocation reaches every collector within that time even if all else fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{Notify, mpsc};

use super::sqlite::IdentityCache;
use crate::wakeup::Wakeups;

/// Long-poll wake-ups between collectors.
pub const WAKEUP_CHANNEL: &str = "lifeline_wakeup";
/// Machine status or certificate changed: identity caches start over.
pub const MACHINES_CHANNEL: &str = "lifeline_machines";
/// Wake-ups waiting to be published before [`Wakeups::wake`] starts dropping them (with a log).
const PUBLISH_QUEUE: usize = 4096;
/// Keys sent in one `pg_notify` round trip at most.
const PUBLISH_BATCH: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Oldest machine identity the cache hands out; older entries are read again.
pub const IDENTITY_MAX_AGE: Duration = Duration::from_secs(30);

/// How the listener checks that its connection still answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Health {
    /// Quiet time after which the connection is checked.
    pub every: Duration,
    /// How long the check may take before the connection counts as lost.
    pub timeout: Duration,
}

impl Health {
    pub(super) const DEFAULT: Health = Health {
        every: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
    };
}

/// What the listener task shares with the store.
#[derive(Debug)]
pub(super) struct Notifications {
    /// Tells this process's notifications from the others'.
    instance: String,
    pub(super) identities: IdentityCache,
    /// True while `LISTEN` is in place: only then may the identity cache be used.
    listening: AtomicBool,
    wakeups: OnceLock<Weak<Wakeups>>,
}

/// Stops the listener when the last clone of the store is dropped.
#[derive(Debug)]
pub(super) struct StopOnDrop(Arc<Notify>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl Notifications {
    /// Starts the listener on `pool`; it runs until the returned guard is dropped.
    pub(super) fn start(pool: &PgPool) -> (Arc<Notifications>, StopOnDrop) {
        Notifications::start_with(pool, Health::DEFAULT)
    }

    /// [`Notifications::start`] with the connection checked as `health` says.
    pub(super) fn start_with(pool: &PgPool, health: Health) -> (Arc<Notifications>, StopOnDrop) {
        let instance = crate::secret::random_bytes::<8>()
            .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            .unwrap_or_else(|_| format!("pid{}", std::process::id()));
        let shared = Arc::new(Notifications {
            instance,
            identities: IdentityCache::with_max_age(IDENTITY_MAX_AGE),
            listening: AtomicBool::new(false),
            wakeups: OnceLock::new(),
        });
        let stop = Arc::new(Notify::new());
        tokio::spawn(listen_loop(
            pool.clone(),
            Arc::clone(&shared),
            Arc::clone(&stop),
            health,
        ));
        (shared, StopOnDrop(stop))
    }

    /// Whether the identity cache may be trusted right now.
    pub(super) fn cache_usable(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// Publishes `wakeups`' wake-ups to the other collectors and wakes its waiters for theirs.
    pub(super) fn bridge(&self, pool: &PgPool, wakeups: &Arc<Wakeups>) -> bool {
        if self.wakeups.set(Arc::downgrade(wakeups)).is_err() {
            return false;
        }
        let (sender, keys) = mpsc::channel(PUBLISH_QUEUE);
        if !wakeups.publish_to(sender) {
            return false;
        }
        tokio::spawn(publish_loop(pool.clone(), self.instance.clone(), keys));
        true
    }

    fn local_wakeups(&self) -> Option<Arc<Wakeups>> {
        self.wakeups.get().and_then(Weak::upgrade)
    }

    fn received(&self, channel: &str, payload: &str) {
        if channel == MACHINES_CHANNEL {
            self.identities.invalidate();
            return;
        }
        let Some((instance, key)) = payload.split_once(' ') else {
            return;
        };
        if instance != self.instance
            && let Some(wakeups) = self.local_wakeups()
        {
            wakeups.wake_local(key);
        }
    }
}

/// Sends queued keys with `pg_notify`, batching whatever is queued; ends with the `Wakeups`.
async fn publish_loop(pool: PgPool, instance: String, mut keys: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while keys.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        batch.sort_unstable();
        batch.dedup();
        let payloads: Vec<String> = batch.drain(..).map(|k| format!("{instance} {k}")).collect();
        let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
            .bind(WAKEUP_CHANNEL)
            .bind(&payloads)
            .execute(&pool)
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, keys = payloads.len(), "cannot publish wake-ups to the other collectors");
        }
    }
}

async fn listen_loop(pool: PgPool, shared: Arc<Notifications>, stop: Arc<Notify>, health: Health) {
    let mut backoff = BACKOFF_MIN;
    let mut connected_before = false;
    loop {
        if pool.is_closed() {
            return;
        }
        let listener = tokio::select! {
            () = stop.notified() => return,
            listener = connect(&pool) => listener,
        };
        let mut listener = match listener {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "cannot listen for other collectors' notifications");
                tokio::select! {
                    () = stop.notified() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        // LISTEN is in place: whatever was missed before this point is re-read from the database.
        shared.identities.invalidate();
        shared.listening.store(true, Ordering::Release);
        if connected_before {
            tracing::info!(
                "listening again for other collectors' notifications; waking every local waiter once"
            );
            if let Some(wakeups) = shared.local_wakeups() {
                wakeups.wake_everyone();
            }
        }
        connected_before = true;
        loop {
            let next = tokio::select! {
                () = stop.notified() => return,
                next = tokio::time::timeout(health.every, listener.try_recv()) => next,
            };
            let Ok(next) = next else {
                // Quiet for a while: make sure the connection still answers.
                let check = tokio::select! {
                    () = stop.notified() => return,
                    check = tokio::time::timeout(
                        health.timeout,
                        sqlx::query("SELECT 1").execute(&mut listener),
                    ) => check,
                };
                match check {
                    Ok(Ok(_)) => continue,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "the connection listening for other collectors' notifications failed its check");
                    }
                    Err(_) => tracing::warn!(
                        timeout = ?health.timeout,
                        "the connection listening for other collectors' notifications did not answer its check"
                    ),
                }
                break;
            };
            match next {
                Ok(Some(notification)) => {
                    shared.received(notification.channel(), notification.payload());
                }
                Ok(None) => {
                    tracing::warn!(
                        "lost the connection listening for other collectors' notifications"
                    );
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "lost the connection listening for other collectors' notifications");
                    break;
                }
            }
        }
        shared.listening.store(false, Ordering::Release);
        shared.identities.invalidate();
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(false);
    listener
        .listen_all([WAKEUP_CHANNEL, MACHINES_CHANNEL])
        .await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{Health, Notifications};
    use crate::store::postgres::PostgresStore;
    use crate::testing::PgCluster;
    use crate::wakeup::Wakeups;

    async fn waits_for(wakeups: &Wakeups, key: &str, wake: impl FnOnce()) -> bool {
        let sub = wakeups.subscribe(key.to_owned());
        let notified = sub.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        wake();
        tokio::time::timeout(Duration::from_secs(1), notified)
            .await
            .is_ok()
    }

    /// A TCP proxy on 127.0.0.1 to `port` that, once `frozen`, still reads but forwards
    /// nothing: a connection that died silently, as a lost NAT entry leaves it.
    fn freezable_proxy(port: u16, frozen: Arc<AtomicBool>) -> u16 {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_port = listener.local_addr().unwrap().port();
        let pipe = |mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    // Frozen: swallowed, so nothing reaches the other side and nothing closes.
                    if !frozen.load(Ordering::Acquire) && to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        };
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    Arc::clone(&frozen),
                );
                pipe(server, client, Arc::clone(&frozen));
            }
        });
        proxy_port
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_connection_that_goes_silent_stops_the_identity_cache() {
        let cluster = PgCluster::start().unwrap();
        let url = cluster.create_database("silent").unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let proxy = freezable_proxy(cluster.port(), Arc::clone(&frozen));
        let proxied = url.replace(
            &format!("127.0.0.1:{}/", cluster.port()),
            &format!("127.0.0.1:{proxy}/"),
        );
        assert_ne!(proxied, url);
        let pool = sqlx::PgPool::connect(&proxied).await.unwrap();
        let health = Health {
            every: Duration::from_millis(200),
            timeout: Duration::from_millis(500),
        };
        let (notifications, _stop) = Notifications::start_with(&pool, health);
        let listening = tokio::time::timeout(Duration::from_secs(10), async {
            while !notifications.cache_usable() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(listening.is_ok(), "the listener never listened");
        // Quiet but healthy: the checks pass and the cache stays in use.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(notifications.cache_usable());

        // The connection goes silent: no error, no notification, no answer.
        frozen.store(true, Ordering::Release);
        let started = std::time::Instant::now();
        let stopped = tokio::time::timeout(Duration::from_secs(5), async {
            while notifications.cache_usable() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            stopped.is_ok(),
            "the cache is still trusted after 5 s of a silent listener connection"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wake_on_one_collector_reaches_waiters_on_another_within_a_second() {
        let cluster = PgCluster::start().unwrap();
        let url = cluster.create_database("wake").unwrap();
        let a = PostgresStore::open(&url).await.unwrap();
        let b = PostgresStore::open(&url).await.unwrap();
        let (wa, wb) = (
            std::sync::Arc::new(Wakeups::default()),
            std::sync::Arc::new(Wakeups::default()),
        );
        assert!(a.bridge_wakeups(&wa));
        assert!(b.bridge_wakeups(&wb));
        assert!(!b.bridge_wakeups(&wb), "bridged once");
        // The listeners need a moment to LISTEN after open.
        let key = Wakeups::machine("m1");
        let mut reached = false;
        for _ in 0..50 {
            if waits_for(&wb, &key, || wa.wake(&key)).await {
                reached = true;
                break;
            }
        }
        assert!(reached, "B's waiter was not woken by A");
        assert!(
            waits_for(&wa, &Wakeups::run(7), || wb.wake(&Wakeups::run(7))).await,
            "and the other way round"
        );
        assert!(
            !waits_for(&wb, &Wakeups::run(8), || wa.wake(&Wakeups::run(9))).await,
            "only the key that was woken"
        );

        // A lost listener connection: B reconnects and wakes every local waiter once.
        let sub = wb.subscribe(Wakeups::work(3));
        let notified = sub.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .execute(&admin)
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(10), notified)
            .await
            .expect("waiters are woken after the listener reconnects");
    }
}
