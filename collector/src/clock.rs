//! Time as a parameter: handlers and the store ask a `Clock`, tests can pin it.

use std::fmt;
use std::path::PathBuf;
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

/// The system clock moved by a number of seconds read from a file at every call (a missing or
/// unreadable file means 0). It lets end-to-end tests move a real collector's time forward —
/// machines going offline, requests expiring — without waiting (`serve --test-clock-file`, a
/// hidden flag). Never needed in production.
#[derive(Debug, Clone)]
pub struct FileOffsetClock {
    path: PathBuf,
}

impl FileOffsetClock {
    pub fn new(path: impl Into<PathBuf>) -> FileOffsetClock {
        FileOffsetClock { path: path.into() }
    }

    fn offset_secs(&self) -> i64 {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Clock for FileOffsetClock {
    fn now(&self) -> OffsetDateTime {
        SystemClock.now() + time::Duration::seconds(self.offset_secs())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_file_moves_time_and_defaults_to_zero() {
        let dir = tempfile::tempdir().unwrap();
        let clock = FileOffsetClock::new(dir.path().join("offset"));
        let before = SystemClock.now();
        assert!((clock.now() - before).whole_seconds().abs() < 5);
        std::fs::write(dir.path().join("offset"), "3600\n").unwrap();
        let moved = clock.now() - SystemClock.now();
        assert!((3595..=3600).contains(&moved.whole_seconds()), "{moved}");
        std::fs::write(dir.path().join("offset"), "soon").unwrap();
        assert!((clock.now() - SystemClock.now()).whole_seconds().abs() < 5);
    }
}
