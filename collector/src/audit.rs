//! Appending to the tamper-evident audit log (the chain itself is in
//! [`lifeline_shared::v1::audit`], storage in [`crate::store`]).
//!
//! Handlers describe what happened with an [`Event`] and call [`record`] once the change it
//! describes is stored. Details never carry secrets: tokens are named by their owner, never shown.

use std::sync::{Mutex, PoisonError};

use lifeline_shared::v1::audit::AuditEntry;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::http::AppState;
use crate::store::{EnrollmentTokenRecord, NewAuditEntry, Store, StoreError};

/// Actor name for events the collector itself causes.
pub const COLLECTOR: &str = "collector";
/// Actor name for a caller that could not be identified.
pub const ANONYMOUS: &str = "anonymous";

/// Actor name of an enrolled machine.
pub fn machine_actor(machine_id: &str) -> String {
    format!("machine:{machine_id}")
}

/// One thing that happened, about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct Event(NewAuditEntry);

impl Event {
    /// `actor` did `action` (dotted, e.g. `run.request`).
    pub fn new(actor: impl Into<String>, action: &str) -> Event {
        Event(NewAuditEntry {
            actor: actor.into(),
            action: action.to_owned(),
            subject: None,
            detail: json!({}),
        })
    }

    /// What it happened to, e.g. `machine:<id>`.
    pub fn subject(mut self, subject: impl Into<String>) -> Event {
        self.0.subject = Some(subject.into());
        self
    }

    /// Details, as a JSON object.
    pub fn detail(mut self, detail: Value) -> Event {
        self.0.detail = detail;
        self
    }
}

/// The entry of a new enrollment token: named by its prefix, never the token.
pub fn enrollment_token_created(
    actor: &str,
    token: &EnrollmentTokenRecord,
    first_start: bool,
) -> Event {
    let expires_at = token.expires_at.and_then(|at| {
        at.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    let mut detail = json!({
        "prefix": token.prefix,
        "expires_at": expires_at,
        "max_uses": token.max_uses,
    });
    if first_start {
        detail["first_start"] = json!(true);
    }
    Event::new(actor, "enrollment_token.create")
        .subject(format!("enrollment_token:{}", token.prefix))
        .detail(detail)
}

/// Appends `event` to the audit log, stamped with the collector's clock.
pub async fn record(state: &AppState, event: Event) -> Result<AuditEntry, StoreError> {
    record_in(state.store.as_ref(), event, state.clock.now()).await
}

/// Appends `event` through a store directly (first start, before there is an [`AppState`]).
pub async fn record_in(
    store: &dyn Store,
    event: Event,
    now: OffsetDateTime,
) -> Result<AuditEntry, StoreError> {
    let entry = store.append_audit(&event.0, now).await?;
    tracing::debug!(seq = entry.seq, action = %entry.action, actor = %entry.actor, "audited");
    Ok(entry)
}

/// Anonymous refusals (unknown tokens, malformed credentials, certificates no longer
/// registered) audited per minute and per source. Past that, refusals from that source are only
/// counted (and in the `lifeline_auth_failures_total` metric); the count is appended as one
/// `auth.failures_suppressed` entry together with the source's next refusal audited after the
/// minute. A flood of bad tokens thus costs at most this many database writes a minute per
/// source and cannot grow the log without bound, while the log still says that it happened,
/// from where and how often; one noisy source cannot hide another's attempts.
///
/// Refusals that name someone (a revoked user's token, a revoked or pending machine's
/// certificate, a technician calling an admin route) are never limited: each is audited.
pub const REFUSALS_PER_MINUTE: u32 = 60;

/// Sources tracked at once; past that, stale windows are dropped, and if none is stale, new
/// sources share one window (a spread-out flood cannot grow memory without bound).
const SOURCES_TRACKED: usize = 4096;

/// The fixed one-minute window behind [`REFUSALS_PER_MINUTE`], for one source.
#[derive(Debug, Default)]
pub struct RefusalLimiter {
    window_start: Option<OffsetDateTime>,
    recorded: u32,
    suppressed: u64,
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Audit it; first append a summary of `suppressed` refusals that were only counted.
    Record { suppressed: u64 },
    /// Only count it.
    Suppress,
}

impl RefusalLimiter {
    pub const fn new() -> RefusalLimiter {
        RefusalLimiter {
            window_start: None,
            recorded: 0,
            suppressed: 0,
        }
    }

    pub fn admit(&mut self, now: OffsetDateTime) -> Admission {
        if self.is_stale(now) {
            self.window_start = Some(now);
            self.recorded = 1;
            return Admission::Record {
                suppressed: std::mem::take(&mut self.suppressed),
            };
        }
        if self.recorded < REFUSALS_PER_MINUTE {
            self.recorded += 1;
            Admission::Record { suppressed: 0 }
        } else {
            self.suppressed += 1;
            Admission::Suppress
        }
    }

    fn is_stale(&self, now: OffsetDateTime) -> bool {
        self.window_start
            .is_none_or(|start| now - start >= time::Duration::MINUTE || now < start)
    }
}

/// Where a refused request came from, as the limiter keys it: an IPv4 address, or an IPv6
/// address's /64 (one host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(std::net::Ipv4Addr),
    V6Prefix(u64),
    /// Unknown (no peer address), or one of the sources past [`SOURCES_TRACKED`].
    Other,
}

impl Source {
    pub fn of(addr: Option<std::net::IpAddr>) -> Source {
        match addr.map(|a| a.to_canonical()) {
            Some(std::net::IpAddr::V4(v4)) => Source::V4(v4),
            Some(std::net::IpAddr::V6(v6)) => Source::V6Prefix((v6.to_bits() >> 64) as u64),
            None => Source::Other,
        }
    }

    fn describe(self) -> String {
        match self {
            Source::V4(v4) => v4.to_string(),
            Source::V6Prefix(prefix) => {
                format!(
                    "{}/64",
                    std::net::Ipv6Addr::from_bits(u128::from(prefix) << 64)
                )
            }
            Source::Other => "other".to_owned(),
        }
    }
}

/// One [`RefusalLimiter`] per [`Source`].
#[derive(Debug, Default)]
pub struct SourceLimiter {
    windows: std::collections::HashMap<Source, RefusalLimiter>,
}

impl SourceLimiter {
    pub fn admit(&mut self, source: Source, now: OffsetDateTime) -> Admission {
        let mut key = source;
        if !self.windows.contains_key(&key) && self.windows.len() >= SOURCES_TRACKED {
            // Forget windows that are over and hold nothing to report.
            self.windows
                .retain(|_, w| !(w.is_stale(now) && w.suppressed == 0));
            if self.windows.len() >= SOURCES_TRACKED {
                key = Source::Other;
            }
        }
        self.windows.entry(key).or_default().admit(now)
    }
}

/// The windows of the whole collector process.
static REFUSALS: Mutex<Option<SourceLimiter>> = Mutex::new(None);

/// Audits a refused request (`auth.failure`, `auth.forbidden`). `credential` names what was
/// presented (`user token`, ...) for the metric; `source` is the caller's address. An event
/// with a subject (someone named) is always appended; an anonymous one within
/// [`REFUSALS_PER_MINUTE`] for its source, and carries that source. A failure to append is
/// logged: the caller is refused either way.
pub async fn record_refusal(
    state: &AppState,
    credential: &'static str,
    event: Event,
    source: Option<std::net::IpAddr>,
) {
    metrics::counter!("lifeline_auth_failures_total", "credential" => credential).increment(1);
    let mut event = event;
    if let (Some(addr), Some(detail)) = (source, event.0.detail.as_object_mut()) {
        detail.insert("source".to_owned(), json!(addr.to_canonical().to_string()));
    }
    if event.0.subject.is_none() {
        let from = Source::of(source);
        let admission = REFUSALS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(SourceLimiter::default)
            .admit(from, state.clock.now());
        let Admission::Record { suppressed } = admission else {
            return;
        };
        if suppressed > 0 {
            let summary = Event::new(COLLECTOR, "auth.failures_suppressed").detail(json!({
                "count": suppressed,
                "limit_per_minute": REFUSALS_PER_MINUTE,
                "source": from.describe(),
            }));
            if let Err(error) = record(state, summary).await {
                tracing::error!(%error, "cannot audit the count of suppressed refusals");
            }
        }
    }
    if let Err(error) = record(state, event).await {
        tracing::error!(%error, "cannot audit a refused request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_past_the_limit_are_counted_and_summed_up_in_the_next_minute() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let mut limiter = RefusalLimiter::new();
        for _ in 0..REFUSALS_PER_MINUTE {
            assert_eq!(limiter.admit(t0), Admission::Record { suppressed: 0 });
        }
        for _ in 0..5 {
            assert_eq!(
                limiter.admit(t0 + time::Duration::seconds(59)),
                Admission::Suppress
            );
        }
        assert_eq!(
            limiter.admit(t0 + time::Duration::seconds(60)),
            Admission::Record { suppressed: 5 }
        );
        assert_eq!(
            limiter.admit(t0 + time::Duration::seconds(61)),
            Admission::Record { suppressed: 0 }
        );
    }

    #[test]
    fn each_source_has_its_own_window_so_one_flood_hides_no_one_else() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let mut limiter = SourceLimiter::default();
        let noisy = Source::of(Some("192.0.2.7".parse().unwrap()));
        let quiet = Source::of(Some("198.51.100.1".parse().unwrap()));
        for _ in 0..REFUSALS_PER_MINUTE {
            assert_eq!(
                limiter.admit(noisy, t0),
                Admission::Record { suppressed: 0 }
            );
        }
        for _ in 0..100 {
            assert_eq!(limiter.admit(noisy, t0), Admission::Suppress);
        }
        assert_eq!(
            limiter.admit(quiet, t0),
            Admission::Record { suppressed: 0 }
        );
        assert_eq!(
            limiter.admit(noisy, t0 + time::Duration::MINUTE),
            Admission::Record { suppressed: 100 }
        );
        // An IPv6 host is one source for its whole /64; an IPv4-mapped address is its IPv4.
        let a = Source::of(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = Source::of(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        let c = Source::of(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(Source::of(Some("::ffff:192.0.2.7".parse().unwrap())), noisy);
        assert_eq!(a.describe(), "2001:db8:1:2::/64");
    }

    #[test]
    fn tracked_sources_are_bounded() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let mut limiter = SourceLimiter::default();
        for i in 0..(SOURCES_TRACKED as u32 + 500) {
            let source = Source::of(Some(std::net::IpAddr::V4(i.into())));
            limiter.admit(source, t0);
        }
        assert!(limiter.windows.len() <= SOURCES_TRACKED + 1);
        // A minute later the stale windows make room again.
        let late = Source::of(Some("203.0.113.1".parse().unwrap()));
        limiter.admit(late, t0 + time::Duration::MINUTE);
        assert!(limiter.windows.contains_key(&late));
    }
}
