//! Long-poll wake-ups inside one collector: a `Notify` per key, created on demand and dropped
//! when its last waiter leaves, so thousands of parked agents cost one small map entry each.
//!
//! Keys name what changed: a machine's work queue ([`Wakeups::machine`]) or one piece of work
//! ([`Wakeups::work`]). Waiters register before they look at the database, so a wake-up between
//! the look and the wait is not lost.
//!
//! Several collectors on one PostgreSQL database: [`Wakeups::publish_to`] hands every
//! [`Wakeups::wake`] to a publisher (`store::notifications`) that sends the key to the other
//! collectors with `pg_notify`; their listeners call [`Wakeups::wake_local`], and after a lost
//! listener connection [`Wakeups::wake_everyone`] (waiters re-check the database).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::{Notify, mpsc};

/// Wake-up points by key.
#[derive(Debug, Default)]
pub struct Wakeups {
    points: Mutex<HashMap<String, Arc<Notify>>>,
    /// Where wake-ups go for other collectors (PostgreSQL only); never blocks a handler.
    remote: OnceLock<mpsc::Sender<String>>,
}

/// A registration on one key; drop it when done waiting.
#[derive(Debug)]
pub struct Subscription<'a> {
    wakeups: &'a Wakeups,
    key: String,
    notify: Arc<Notify>,
}

impl Wakeups {
    pub fn machine(machine_id: &str) -> String {
        format!("m:{machine_id}")
    }

    pub fn work(id: u64) -> String {
        format!("w:{id}")
    }

    /// A run request (approval, dispatch, progress and result).
    pub fn run(id: u64) -> String {
        format!("r:{id}")
    }

    /// Registers interest in `key`.
    pub fn subscribe(&self, key: String) -> Subscription<'_> {
        let notify = {
            let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(points.entry(key.clone()).or_default())
        };
        Subscription {
            wakeups: self,
            key,
            notify,
        }
    }

    /// Wakes everyone waiting on `key` here and, when publishing, on the other collectors.
    pub fn wake(&self, key: &str) {
        self.wake_local(key);
        if let Some(remote) = self.remote.get()
            && let Err(error) = remote.try_send(key.to_owned())
        {
            // Full or closed: the other collectors' waiters see the change at their next
            // long-poll round instead of at once.
            tracing::warn!(key, %error, "cannot publish a wake-up to the other collectors");
        }
    }

    /// Sends every later [`Wakeups::wake`] to `remote` as well; false when already publishing.
    pub fn publish_to(&self, remote: mpsc::Sender<String>) -> bool {
        self.remote.set(remote).is_ok()
    }

    /// Wakes everyone waiting on `key` in this process only (nobody waiting: nothing happens).
    pub fn wake_local(&self, key: &str) {
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = points.get(key) {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter in this process, e.g. after wake-ups from elsewhere may have been lost.
    pub fn wake_everyone(&self) {
        let points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        for notify in points.values() {
            notify.notify_waiters();
        }
    }

    /// How many keys have waiters (for tests and metrics).
    pub fn len(&self) -> usize {
        self.points
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Subscription<'_> {
    /// The notifier to wait on; call `enable()` on the pinned future before checking state.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut points = self
            .wakeups
            .points
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map holds one reference and we hold one: we are the last waiter.
        if Arc::strong_count(&self.notify) <= 2 {
            points.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_before_the_wait_is_not_lost_and_entries_go_away() {
        let wakeups = Wakeups::default();
        {
            let sub = wakeups.subscribe(Wakeups::machine("m1"));
            let notified = sub.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            wakeups.wake(&Wakeups::machine("m1"));
            tokio::time::timeout(std::time::Duration::from_secs(5), notified)
                .await
                .unwrap();
            assert_eq!(wakeups.len(), 1);
        }
        assert!(wakeups.is_empty());
    }

    #[test]
    fn two_waiters_share_one_entry_until_both_leave() {
        let wakeups = Wakeups::default();
        let a = wakeups.subscribe(Wakeups::work(1));
        let b = wakeups.subscribe(Wakeups::work(1));
        assert_eq!(wakeups.len(), 1);
        drop(a);
        assert_eq!(wakeups.len(), 1);
        drop(b);
        assert!(wakeups.is_empty());
    }
}
