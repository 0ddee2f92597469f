//! Time as a parameter: handlers and the store ask a `Clock`, tests can pin it.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

/// Where "now" comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock, in UTC, truncated to whole milliseconds so stored times round-trip.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.millisecond() as u32 * 1_000_000)
            .unwrap_or(now)
    }
}

/// A shareable clock.
pub type SharedClock = Arc<dyn Clock>;
