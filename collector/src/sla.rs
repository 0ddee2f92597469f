//! Service levels: targets per priority, business-time arithmetic, pauses, due times and states.
//!
//! Pure: no I/O and no clock (every function takes `now`). The store persists what the queue
//! sorts and the escalation task searches by ([`Schedule`]), computed here in the same
//! transaction as the change that moves it; handlers show [`Policy::view`].
//!
//! The model, for each of a ticket's two targets (first response, resolution):
//! - *Service-level time* is business hours when configured (a fixed UTC offset: there is no
//!   time-zone database, so no daylight-saving changes), else every millisecond.
//! - The clock stops while the ticket waits on the user, is resolved or closed. `paused` sums
//!   the service-level time of finished pauses; `paused_at` is when the current one began.
//! - A running target is due at `created + target + paused` (in service-level time). It is at
//!   risk once no more than the at-risk share is left, breached once past due.
//! - When a target is met (first response, resolution) its due time is frozen: met in time is
//!   `met`, late is `breached` for good.

use std::fmt;

use lifeline_shared::v1::api::{Priority, TicketStatus, Tier};
use lifeline_shared::v1::sla::{SlaState, SlaTarget, TargetStatus, TicketSla};
use serde::Deserialize;
use time::{Duration, OffsetDateTime, UtcOffset};

const SECOND_MS: i64 = 1000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
const WEEK_MS: i64 = 7 * DAY_MS;
/// Longest target accepted.
const MAX_TARGET_MS: i64 = 365 * DAY_MS;

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms > 0 {
        time::PrimitiveDateTime::MAX.assume_utc()
    } else {
        time::PrimitiveDateTime::MIN.assume_utc()
    })
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.whole_milliseconds()).unwrap_or(i64::MAX)
}

// -------------------------------------------------------------------------------------------
// Parsing the settings

/// Parses `15m`, `4h`, `2d`, `1h30m`, `90s`, `1w` (units s, m, h, d, w; at least one).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (write e.g. 15m, 4h, 2d or 1h30m)");
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => SECOND_MS,
            'm' => MINUTE_MS,
            'h' => HOUR_MS,
            'd' => DAY_MS,
            'w' => WEEK_MS,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::milliseconds(total))
}

/// `1d 4h`, `2h 5m`, `45m`, `30s`: the two largest units of a length of time.
pub fn human(secs: i64) -> String {
    let secs = secs.unsigned_abs();
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// A target length as written in the settings (`4h`, `1d 4h`).
fn target_text(d: Duration) -> String {
    human(d.whole_seconds())
}

/// When a running target counts as at risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtRisk {
    /// No more than this percentage of the target is left.
    Share(u8),
    /// No more than this much is left.
    Left(Duration),
}

impl AtRisk {
    fn parse(text: &str) -> Result<AtRisk, String> {
        if let Some(number) = text.trim().strip_suffix('%') {
            return match number.trim().parse::<u8>() {
                Ok(p @ 1..=99) => Ok(AtRisk::Share(p)),
                _ => Err(format!(
                    "{text:?} is not a share between 1% and 99% (or a duration like 30m)"
                )),
            };
        }
        let left =
            parse_duration(text).map_err(|e| format!("{e}, or a share of the target like 25%"))?;
        if left <= Duration::ZERO {
            return Err(format!("{text:?}: at_risk must be more than nothing"));
        }
        Ok(AtRisk::Left(left))
    }

    /// How much may be left of `target` before it is at risk.
    fn threshold_ms(self, target_ms: i64) -> i64 {
        match self {
            AtRisk::Share(p) => {
                target_ms / 100 * i64::from(p) + target_ms % 100 * i64::from(p) / 100
            }
            AtRisk::Left(d) => duration_ms(d),
        }
    }
}

impl fmt::Display for AtRisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AtRisk::Share(p) => write!(f, "{p}%"),
            AtRisk::Left(d) => f.write_str(&target_text(*d)),
        }
    }
}

/// The hours that count, on the days that count, at a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessHours {
    /// Monday first.
    days: [bool; 7],
    /// Milliseconds after local midnight.
    start_ms: i64,
    end_ms: i64,
    offset: UtcOffset,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_day(name: &str) -> Result<usize, String> {
    let lower = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|d| *d == lower)
        .ok_or_else(|| format!("{name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (parse_day(from)?, parse_day(to)?);
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[parse_day(part)?] = true,
        }
    }
    Ok(days)
}

/// `09:00` → milliseconds after midnight; `24:00` is the end of the day.
fn parse_time_of_day(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a time of day (write HH:MM, e.g. 09:00 or 17:30)");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !((0..24).contains(&h) && (0..60).contains(&m) || h == 24 && m == 0) {
        return Err(bad());
    }
    Ok(h * HOUR_MS + m * MINUTE_MS)
}

/// `+01:00`, `-05:30`, `Z`.
fn parse_offset(text: &str) -> Result<UtcOffset, String> {
    let bad = || format!("{text:?} is not a UTC offset (write e.g. +01:00, -05:30 or Z)");
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(UtcOffset::UTC);
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| bad())
}

impl BusinessHours {
    /// Business time in a whole week.
    fn week_ms(&self) -> i64 {
        let open_days = self.days.iter().filter(|d| **d).count() as i64;
        open_days * (self.end_ms - self.start_ms)
    }

    fn offset_ms(&self) -> i64 {
        i64::from(self.offset.whole_seconds()) * SECOND_MS
    }

    /// Whether local day number `day` (days since 1970-01-01, a Thursday) is a business day.
    fn is_open(&self, day: i64) -> bool {
        let weekday = (day + 3).rem_euclid(7);
        usize::try_from(weekday).is_ok_and(|w| self.days[w])
    }

    /// The instant when `business_ms` of business time have passed after `from_ms`.
    fn add(&self, from_ms: i64, business_ms: i64) -> i64 {
        if business_ms <= 0 {
            return from_ms;
        }
        let offset = self.offset_ms();
        let mut local = from_ms.saturating_add(offset);
        let mut left = business_ms;
        loop {
            let day = local.div_euclid(DAY_MS);
            let day_start = day * DAY_MS;
            // Whole weeks at once: from a day boundary, a week holds exactly `week_ms`.
            if local == day_start && left > self.week_ms() {
                let weeks = (left - 1) / self.week_ms();
                local = local.saturating_add(weeks.saturating_mul(WEEK_MS));
                left -= weeks * self.week_ms();
                continue;
            }
            let (open, close) = (day_start + self.start_ms, day_start + self.end_ms);
            if self.is_open(day) && local < close {
                let from = local.max(open);
                if left <= close - from {
                    return (from + left).saturating_sub(offset);
                }
                left -= close - from;
            }
            local = day_start + DAY_MS;
        }
    }

    /// Business time in `[from_ms, to_ms)`; `from_ms <= to_ms`.
    fn between(&self, from_ms: i64, to_ms: i64) -> i64 {
        let offset = self.offset_ms();
        let (mut local, end) = (from_ms.saturating_add(offset), to_ms.saturating_add(offset));
        let mut total = 0;
        while local < end {
            let day = local.div_euclid(DAY_MS);
            let day_start = day * DAY_MS;
            if local == day_start && end - local >= WEEK_MS {
                let weeks = (end - local) / WEEK_MS;
                total += weeks * self.week_ms();
                local += weeks * WEEK_MS;
                continue;
            }
            if self.is_open(day) {
                let from = local.max(day_start + self.start_ms);
                let to = end.min(day_start + self.end_ms);
                total += (to - from).max(0);
            }
            local = day_start + DAY_MS;
        }
        total
    }
}

impl fmt::Display for BusinessHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = DAY_NAMES
            .iter()
            .zip(self.days)
            .filter(|(_, open)| *open)
            .map(|(name, _)| *name)
            .collect();
        let hm = |t: i64| format!("{:02}:{:02}", t / HOUR_MS, t % HOUR_MS / MINUTE_MS);
        write!(
            f,
            "{} {}-{} UTC{}",
            days.join(","),
            hm(self.start_ms),
            hm(self.end_ms),
            self.offset
                .format(time::macros::format_description!(
                    "[offset_hour sign:mandatory]:[offset_minute]"
                ))
                .unwrap_or_default()
        )
    }
}

/// Which time counts toward a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Calendar {
    /// Every millisecond.
    #[default]
    AroundTheClock,
    Business(BusinessHours),
}

impl Calendar {
    /// The instant when `d` of service-level time have passed after `from`.
    pub fn add(&self, from: OffsetDateTime, d: Duration) -> OffsetDateTime {
        instant(self.add_ms(ms(from), duration_ms(d)))
    }

    fn add_ms(&self, from_ms: i64, d_ms: i64) -> i64 {
        match self {
            Calendar::AroundTheClock => from_ms.saturating_add(d_ms.max(0)),
            Calendar::Business(hours) => hours.add(from_ms, d_ms),
        }
    }

    /// Service-level time from `from` to `to`, negative when `to` is earlier.
    pub fn between(&self, from: OffsetDateTime, to: OffsetDateTime) -> Duration {
        Duration::milliseconds(self.between_ms(ms(from), ms(to)))
    }

    fn between_ms(&self, from_ms: i64, to_ms: i64) -> i64 {
        if to_ms < from_ms {
            return -self.between_ms(to_ms, from_ms);
        }
        match self {
            Calendar::AroundTheClock => to_ms - from_ms,
            Calendar::Business(hours) => hours.between(from_ms, to_ms),
        }
    }
}

/// The two targets of one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub first_response: Duration,
    pub resolution: Duration,
}

impl Targets {
    const fn of(first_response_mins: i64, resolution_mins: i64) -> Targets {
        Targets {
            first_response: Duration::minutes(first_response_mins),
            resolution: Duration::minutes(resolution_mins),
        }
    }

    fn get(&self, which: SlaTarget) -> Duration {
        match which {
            SlaTarget::FirstResponse => self.first_response,
            SlaTarget::Resolution => self.resolution,
        }
    }
}

/// The service-level settings: targets per priority, when a target is at risk, which time counts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SlaConfig")]
pub struct Policy {
    pub critical: Targets,
    pub high: Targets,
    pub normal: Targets,
    pub low: Targets,
    pub at_risk: AtRisk,
    pub calendar: Calendar,
}

impl Default for Policy {
    /// Around the clock: critical 15m / 4h, high 1h / 8h, normal 4h / 2d, low 1d / 5d; at risk
    /// with 25% left.
    fn default() -> Policy {
        Policy {
            critical: Targets::of(15, 4 * 60),
            high: Targets::of(60, 8 * 60),
            normal: Targets::of(4 * 60, 2 * 24 * 60),
            low: Targets::of(24 * 60, 5 * 24 * 60),
            at_risk: AtRisk::Share(25),
            calendar: Calendar::AroundTheClock,
        }
    }
}

/// `[sla]` as written in the configuration file; see [`Policy`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    at_risk: Option<String>,
    business_hours: Option<BusinessHoursConfig>,
    #[serde(default)]
    targets: TargetsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BusinessHoursConfig {
    days: String,
    start: String,
    end: String,
    #[serde(default)]
    utc_offset: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsConfig {
    critical: Option<TargetConfig>,
    high: Option<TargetConfig>,
    normal: Option<TargetConfig>,
    low: Option<TargetConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetConfig {
    first_response: Option<String>,
    resolution: Option<String>,
}

fn targets_from(
    priority: &str,
    written: Option<&TargetConfig>,
    default: Targets,
) -> Result<Targets, String> {
    let Some(written) = written else {
        return Ok(default);
    };
    let one = |key: &str, text: &Option<String>, default: Duration| -> Result<Duration, String> {
        let Some(text) = text else { return Ok(default) };
        let d = parse_duration(text).map_err(|e| format!("sla.targets.{priority}.{key}: {e}"))?;
        if d <= Duration::ZERO || duration_ms(d) > MAX_TARGET_MS {
            return Err(format!(
                "sla.targets.{priority}.{key}: {text:?} must be more than nothing and at most 365d"
            ));
        }
        Ok(d)
    };
    let targets = Targets {
        first_response: one(
            "first_response",
            &written.first_response,
            default.first_response,
        )?,
        resolution: one("resolution", &written.resolution, default.resolution)?,
    };
    if targets.first_response > targets.resolution {
        return Err(format!(
            "sla.targets.{priority}: first_response ({}) is longer than resolution ({})",
            target_text(targets.first_response),
            target_text(targets.resolution)
        ));
    }
    Ok(targets)
}

impl TryFrom<SlaConfig> for Policy {
    type Error = String;

    fn try_from(config: SlaConfig) -> Result<Policy, String> {
        let default = Policy::default();
        let t = &config.targets;
        let calendar = match &config.business_hours {
            None => Calendar::AroundTheClock,
            Some(b) => {
                let field = |key: &str, e: String| format!("sla.business_hours.{key}: {e}");
                let days = parse_days(&b.days).map_err(|e| field("days", e))?;
                let start_ms = parse_time_of_day(&b.start).map_err(|e| field("start", e))?;
                let end_ms = parse_time_of_day(&b.end).map_err(|e| field("end", e))?;
                if end_ms <= start_ms {
                    return Err(format!(
                        "sla.business_hours: end ({}) must be after start ({})",
                        b.end, b.start
                    ));
                }
                let offset = match &b.utc_offset {
                    Some(o) => parse_offset(o).map_err(|e| field("utc_offset", e))?,
                    None => UtcOffset::UTC,
                };
                Calendar::Business(BusinessHours {
                    days,
                    start_ms,
                    end_ms,
                    offset,
                })
            }
        };
        Ok(Policy {
            critical: targets_from("critical", t.critical.as_ref(), default.critical)?,
            high: targets_from("high", t.high.as_ref(), default.high)?,
            normal: targets_from("normal", t.normal.as_ref(), default.normal)?,
            low: targets_from("low", t.low.as_ref(), default.low)?,
            at_risk: match &config.at_risk {
                Some(text) => AtRisk::parse(text).map_err(|e| format!("sla.at_risk: {e}"))?,
                None => default.at_risk,
            },
            calendar,
        })
    }
}

// -------------------------------------------------------------------------------------------
// A ticket's clocks

/// What the store keeps about a ticket's service levels (columns of `tickets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaRecord {
    pub created_at: OffsetDateTime,
    pub priority: Priority,
    pub status: TicketStatus,
    pub tier: Tier,
    /// When the current pause began; `None` while the clock runs.
    pub paused_at: Option<OffsetDateTime>,
    /// Service-level time of the pauses that ended.
    pub paused: Duration,
    pub first_response_at: Option<OffsetDateTime>,
    pub resolved_at: Option<OffsetDateTime>,
    /// Due times as stored: frozen once their target is met.
    pub first_response_due_at: Option<OffsetDateTime>,
    pub resolution_due_at: Option<OffsetDateTime>,
    pub first_response_escalated: bool,
    pub resolution_escalated: bool,
}

impl SlaRecord {
    /// A ticket filed at `now`.
    pub fn new(created_at: OffsetDateTime, priority: Priority) -> SlaRecord {
        SlaRecord {
            created_at,
            priority,
            status: TicketStatus::New,
            tier: Tier::FIRST,
            paused_at: None,
            paused: Duration::ZERO,
            first_response_at: None,
            resolved_at: None,
            first_response_due_at: None,
            resolution_due_at: None,
            first_response_escalated: false,
            resolution_escalated: false,
        }
    }

    fn done_at(&self, which: SlaTarget) -> Option<OffsetDateTime> {
        match which {
            SlaTarget::FirstResponse => self.first_response_at,
            SlaTarget::Resolution => self.resolved_at,
        }
    }

    fn stored_due(&self, which: SlaTarget) -> Option<OffsetDateTime> {
        match which {
            SlaTarget::FirstResponse => self.first_response_due_at,
            SlaTarget::Resolution => self.resolution_due_at,
        }
    }

    pub fn escalated(&self, which: SlaTarget) -> bool {
        match which {
            SlaTarget::FirstResponse => self.first_response_escalated,
            SlaTarget::Resolution => self.resolution_escalated,
        }
    }

    /// A technician answered (a comment, a status change): the first response, if none yet.
    pub fn respond(&mut self, now: OffsetDateTime) {
        self.first_response_at.get_or_insert(now);
    }

    /// A technician moved the ticket to `status` at `now`: the clocks stop or restart, the
    /// resolution is recorded or undone, and it counts as a response.
    pub fn set_status(&mut self, status: TicketStatus, calendar: &Calendar, now: OffsetDateTime) {
        if status == self.status {
            return;
        }
        self.respond(now);
        match (stops_clock(self.status), stops_clock(status)) {
            (false, true) => self.paused_at = Some(now),
            (true, false) => {
                if let Some(since) = self.paused_at.take() {
                    self.paused += calendar.between(since, now).max(Duration::ZERO);
                }
            }
            _ => {}
        }
        if matches!(status, TicketStatus::Resolved | TicketStatus::Closed) {
            self.resolved_at.get_or_insert(now);
        } else {
            self.resolved_at = None;
        }
        self.status = status;
    }

    /// Service-level time paused up to `at`, counting the current pause if it began before.
    fn paused_until(&self, calendar: &Calendar, at: OffsetDateTime) -> Duration {
        let current = self
            .paused_at
            .filter(|since| *since < at)
            .map_or(Duration::ZERO, |since| calendar.between(since, at));
        self.paused + current
    }
}

/// Whether a ticket in `status` has its clocks stopped.
pub fn stops_clock(status: TicketStatus) -> bool {
    matches!(
        status,
        TicketStatus::WaitingOnUser | TicketStatus::Resolved | TicketStatus::Closed
    )
}

/// What the store persists for sorting and for the escalation search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    pub first_response_due_at: Option<OffsetDateTime>,
    pub first_response_risk_at: Option<OffsetDateTime>,
    pub resolution_due_at: Option<OffsetDateTime>,
    pub resolution_risk_at: Option<OffsetDateTime>,
}

/// A target the escalation task should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtRiskTarget {
    pub target: SlaTarget,
    pub due_at: OffsetDateTime,
    /// Service-level time left (negative: overdue).
    pub left: Duration,
}

impl Policy {
    pub fn targets(&self, priority: Priority) -> Targets {
        match priority {
            Priority::Critical => self.critical,
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    fn target_ms(&self, record: &SlaRecord, which: SlaTarget) -> i64 {
        duration_ms(self.targets(record.priority).get(which))
    }

    /// Due time of `which` if the clock runs now (or ran until its target was met at `done`).
    fn due(&self, record: &SlaRecord, which: SlaTarget, done: Option<OffsetDateTime>) -> i64 {
        let paused = match done {
            Some(at) => record.paused_until(&self.calendar, at),
            None => record.paused,
        };
        self.calendar.add_ms(
            ms(record.created_at),
            self.target_ms(record, which)
                .saturating_add(duration_ms(paused)),
        )
    }

    /// The due time a target had (or has): the frozen one once met, else as the clock stands.
    fn due_of(&self, record: &SlaRecord, which: SlaTarget) -> i64 {
        match (record.done_at(which), record.stored_due(which)) {
            (Some(_), Some(frozen)) => ms(frozen),
            (done, _) => self.due(record, which, done),
        }
    }

    /// When a running target becomes at risk.
    fn risk_ms(&self, record: &SlaRecord, which: SlaTarget) -> i64 {
        let target = self.target_ms(record, which);
        let before = (target - self.at_risk.threshold_ms(target)).max(0);
        self.calendar.add_ms(
            ms(record.created_at),
            before.saturating_add(duration_ms(record.paused)),
        )
    }

    /// Recomputes the due times after a change at `now` (stored into `record`: a target met
    /// before `now` keeps its frozen due time) and returns what to persist.
    pub fn schedule(&self, record: &mut SlaRecord, now: OffsetDateTime) -> Schedule {
        let mut schedule = Schedule::default();
        for which in [SlaTarget::FirstResponse, SlaTarget::Resolution] {
            let done = record.done_at(which);
            let frozen = done.filter(|at| *at < now).and(record.stored_due(which));
            let due = match (frozen, done) {
                (Some(frozen), _) => Some(frozen),
                (None, Some(at)) => Some(instant(self.due(record, which, Some(at)))),
                (None, None) if record.paused_at.is_some() => None,
                (None, None) => Some(instant(self.due(record, which, None))),
            };
            let risk = (done.is_none() && record.paused_at.is_none())
                .then(|| instant(self.risk_ms(record, which)));
            match which {
                SlaTarget::FirstResponse => {
                    record.first_response_due_at = due;
                    schedule.first_response_due_at = due;
                    schedule.first_response_risk_at = risk;
                }
                SlaTarget::Resolution => {
                    record.resolution_due_at = due;
                    schedule.resolution_due_at = due;
                    schedule.resolution_risk_at = risk;
                }
            }
        }
        schedule
    }

    fn target_view(
        &self,
        record: &SlaRecord,
        which: SlaTarget,
        now: OffsetDateTime,
    ) -> TargetStatus {
        let target_ms = self.target_ms(record, which);
        let due = self.due_of(record, which);
        let secs = |ms: i64| ms / SECOND_MS;
        let (due_at, left_ms, state) = match (record.done_at(which), record.paused_at) {
            (Some(done), _) => {
                let state = if ms(done) <= due {
                    SlaState::Met
                } else {
                    SlaState::Breached
                };
                (
                    Some(instant(due)),
                    self.calendar.between_ms(ms(done), due),
                    state,
                )
            }
            (None, Some(since)) => {
                let state = if ms(since) > due {
                    SlaState::Breached
                } else {
                    SlaState::Paused
                };
                (None, self.calendar.between_ms(ms(since), due), state)
            }
            (None, None) => {
                let left = self.calendar.between_ms(ms(now), due);
                let state = if ms(now) > due {
                    SlaState::Breached
                } else if left <= self.at_risk.threshold_ms(target_ms) {
                    SlaState::AtRisk
                } else {
                    SlaState::Ok
                };
                (Some(instant(due)), left, state)
            }
        };
        TargetStatus {
            target_secs: u64::try_from(secs(target_ms)).unwrap_or(0),
            due_at,
            done_at: record.done_at(which),
            left_secs: secs(left_ms),
            state,
            auto_escalated: record.escalated(which),
        }
    }

    /// The ticket's service levels as of `now`.
    pub fn view(&self, record: &SlaRecord, now: OffsetDateTime) -> TicketSla {
        let first_response = self.target_view(record, SlaTarget::FirstResponse, now);
        let resolution = self.target_view(record, SlaTarget::Resolution, now);
        let next_due_at = [&first_response, &resolution]
            .into_iter()
            .filter(|t| t.done_at.is_none())
            .filter_map(|t| t.due_at)
            .min();
        TicketSla {
            first_response,
            resolution,
            paused_since: record.paused_at,
            next_due_at,
            business_hours: matches!(self.calendar, Calendar::Business(_)),
        }
    }

    /// Targets at risk (or past due) at `now` that call for an automatic escalation: not met,
    /// clock running, not escalated for before, and a tier left to go to.
    pub fn escalations(&self, record: &SlaRecord, now: OffsetDateTime) -> Vec<AtRiskTarget> {
        if record.tier.get() >= 3 || record.paused_at.is_some() {
            return Vec::new();
        }
        [SlaTarget::FirstResponse, SlaTarget::Resolution]
            .into_iter()
            .filter(|which| record.done_at(*which).is_none() && !record.escalated(*which))
            .filter(|which| ms(now) >= self.risk_ms(record, *which))
            .map(|which| {
                let due = self.due(record, which, None);
                AtRiskTarget {
                    target: which,
                    due_at: instant(due),
                    left: Duration::milliseconds(self.calendar.between_ms(ms(now), due)),
                }
            })
            .collect()
    }

    /// One line for `serve`'s log and the docs: the targets in force.
    pub fn summary(&self) -> String {
        let one = |name: &str, t: Targets| {
            format!(
                "{name} {}/{}",
                target_text(t.first_response),
                target_text(t.resolution)
            )
        };
        format!(
            "{}, {}, {}, {} (first response/resolution); at risk with {} left; {}",
            one("critical", self.critical),
            one("high", self.high),
            one("normal", self.normal),
            one("low", self.low),
            self.at_risk,
            match &self.calendar {
                Calendar::AroundTheClock => "around the clock".to_owned(),
                Calendar::Business(hours) => format!("business hours {hours}"),
            }
        )
    }
}

/// "due in 14m", "overdue by 5m": how a target's time left reads in a note.
pub fn due_in(left: Duration) -> String {
    let secs = left.whole_seconds();
    if secs >= 0 {
        format!("due in {}", human(secs))
    } else {
        format!("overdue by {}", human(secs))
    }
}

/// How a target stands, in words: "2h 5m left", "overdue by 5m", "met with 10m to spare".
pub fn describe(target: &TargetStatus) -> String {
    let amount = human(target.left_secs);
    match (target.state, target.done_at.is_some()) {
        (SlaState::Met, _) => format!("met with {amount} to spare"),
        (SlaState::Breached, true) => format!("met {amount} late"),
        (SlaState::Breached, false) if target.due_at.is_none() => {
            format!("overdue by {amount} (paused)")
        }
        (SlaState::Breached, false) => format!("overdue by {amount}"),
        (SlaState::Paused, _) => format!("{amount} left (paused)"),
        (SlaState::Ok | SlaState::AtRisk, _) => format!("{amount} left"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn policy(toml_text: &str) -> Result<Policy, String> {
        #[derive(Deserialize)]
        struct File {
            sla: Policy,
        }
        toml::from_str::<File>(toml_text)
            .map(|f| f.sla)
            .map_err(|e| e.to_string())
    }

    /// Mon-Fri 09:00-17:00 at UTC+01:00.
    fn office() -> Calendar {
        policy(
            "[sla]\nbusiness_hours = { days = \"mon-fri\", start = \"09:00\", end = \"17:00\", \
             utc_offset = \"+01:00\" }\n",
        )
        .unwrap()
        .calendar
    }

    #[test]
    fn durations_parse_and_read_back() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::minutes(15));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("2d").unwrap(), Duration::days(2));
        assert_eq!(parse_duration("1w").unwrap(), Duration::days(7));
        for bad in ["", "15", "m", "4x", "1.5h", "-3h", "1h 30m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(human(0), "0s");
        assert_eq!(human(45 * 60), "45m");
        assert_eq!(human(2 * 3600 + 5 * 60), "2h 5m");
        assert_eq!(human(-(3 * 86_400 + 4 * 3600 + 59)), "3d 4h");
        assert_eq!(due_in(Duration::minutes(14)), "due in 14m");
        assert_eq!(due_in(Duration::minutes(-5)), "overdue by 5m");
    }

    #[test]
    fn around_the_clock_is_plain_arithmetic() {
        let c = Calendar::AroundTheClock;
        let t = datetime!(2026-11-06 16:00 UTC);
        assert_eq!(
            c.add(t, Duration::hours(4)),
            datetime!(2026-11-06 20:00 UTC)
        );
        assert_eq!(c.between(t, t + Duration::days(3)), Duration::days(3));
        assert_eq!(c.between(t + Duration::hours(1), t), -Duration::hours(1));
    }

    #[test]
    fn business_time_skips_nights_and_weekends() {
        let c = office();
        // Friday 2026-11-06, 15:00 local (14:00 UTC): 2 h left that day, 2 h on Monday.
        let friday = datetime!(2026-11-06 14:00 UTC);
        assert_eq!(
            c.add(friday, Duration::hours(4)),
            datetime!(2026-11-09 10:00 UTC),
            "Monday 11:00 local"
        );
        assert_eq!(
            c.between(friday, datetime!(2026-11-09 10:00 UTC)),
            Duration::hours(4)
        );
        // Ending exactly at closing time stays on that day.
        assert_eq!(
            c.add(friday, Duration::hours(2)),
            datetime!(2026-11-06 16:00 UTC)
        );
        // Before opening: the clock starts at 09:00 local.
        let early = datetime!(2026-11-04 05:00 UTC);
        assert_eq!(
            c.add(early, Duration::minutes(15)),
            datetime!(2026-11-04 08:15 UTC)
        );
        // After closing: the next morning. Saturday evening: Monday morning.
        assert_eq!(
            c.add(datetime!(2026-11-04 19:00 UTC), Duration::hours(1)),
            datetime!(2026-11-05 09:00 UTC)
        );
        assert_eq!(
            c.add(datetime!(2026-11-07 18:00 UTC), Duration::minutes(30)),
            datetime!(2026-11-09 08:30 UTC)
        );
        // Nothing counts over a weekend.
        assert_eq!(
            c.between(
                datetime!(2026-11-07 08:00 UTC),
                datetime!(2026-11-08 20:00 UTC)
            ),
            Duration::ZERO
        );
    }

    #[test]
    fn long_spans_agree_with_day_by_day_counting() {
        let c = office();
        let start = datetime!(2026-11-04 12:34 UTC);
        // 3 weeks and 2 days of business time: 17 business days of 8 h.
        let later = c.add(start, Duration::hours(8 * 17));
        assert_eq!(c.between(start, later), Duration::hours(8 * 17));
        assert_eq!(later, datetime!(2026-11-27 12:34 UTC));
        for hours in [1, 7, 8, 9, 40, 41, 200, 1000] {
            let d = Duration::hours(hours);
            let end = c.add(start, d);
            assert_eq!(c.between(start, end), d, "{hours} h");
            // The earliest instant: a minute before, less had passed.
            assert!(c.between(start, end - Duration::minutes(1)) < d);
        }
    }

    #[test]
    fn settings_parse_with_defaults_for_what_is_left_out() {
        let p = policy(
            "[sla]\nat_risk = \"30m\"\n[sla.targets.critical]\nfirst_response = \"10m\"\n\
             resolution = \"2h\"\n[sla.targets.low]\nresolution = \"2w\"\n",
        )
        .unwrap();
        assert_eq!(p.critical, Targets::of(10, 120));
        assert_eq!(p.low.resolution, Duration::days(14));
        assert_eq!(p.low.first_response, Policy::default().low.first_response);
        assert_eq!(p.high, Policy::default().high);
        assert_eq!(p.at_risk, AtRisk::Left(Duration::minutes(30)));
        assert_eq!(p.calendar, Calendar::AroundTheClock);
        assert!(Policy::default().summary().contains("critical 15m/4h"));
        assert!(
            policy(
                "[sla]\nbusiness_hours = { days = \"sat-mon\", start = \"08:00\", end = \"24:00\" }"
            )
            .unwrap()
            .summary()
            .contains("mon,sat,sun 08:00-24:00 UTC+00:00")
        );
    }

    #[test]
    fn mistakes_in_the_settings_are_named() {
        for (text, expected) in [
            ("[sla]\nat_risk = \"120%\"", "sla.at_risk"),
            ("[sla]\nat_risk = \"soon\"", "sla.at_risk"),
            (
                "[sla.targets.high]\nresolution = \"4x\"",
                "sla.targets.high.resolution",
            ),
            (
                "[sla.targets.high]\nresolution = \"0m\"",
                "more than nothing",
            ),
            (
                "[sla.targets.normal]\nfirst_response = \"3d\"",
                "first_response (3d) is longer than resolution (2d)",
            ),
            (
                "[sla.targets.urgent]\nresolution = \"1h\"",
                "unknown field `urgent`",
            ),
            (
                "[sla]\nbusiness_hours = { days = \"mon-fry\", start = \"09:00\", end = \"17:00\" }",
                "sla.business_hours.days",
            ),
            (
                "[sla]\nbusiness_hours = { days = \"mon\", start = \"9\", end = \"17:00\" }",
                "sla.business_hours.start",
            ),
            (
                "[sla]\nbusiness_hours = { days = \"mon\", start = \"17:00\", end = \"09:00\" }",
                "end (09:00) must be after start",
            ),
            (
                "[sla]\nbusiness_hours = { days = \"mon\", start = \"09:00\", end = \"17:00\", utc_offset = \"CET\" }",
                "utc_offset",
            ),
        ] {
            let e = policy(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    fn record(created: OffsetDateTime, priority: Priority) -> SlaRecord {
        SlaRecord::new(created, priority)
    }

    #[test]
    fn a_running_target_goes_from_ok_to_at_risk_to_breached() {
        let p = Policy::default(); // high: 1h / 8h, at risk with 25% left
        let t0 = datetime!(2026-11-04 10:00 UTC);
        let mut r = record(t0, Priority::High);
        let s = p.schedule(&mut r, t0);
        assert_eq!(s.first_response_due_at, Some(t0 + Duration::hours(1)));
        assert_eq!(s.first_response_risk_at, Some(t0 + Duration::minutes(45)));
        assert_eq!(s.resolution_due_at, Some(t0 + Duration::hours(8)));
        let at = |mins| p.view(&r, t0 + Duration::minutes(mins));
        assert_eq!(at(10).first_response.state, SlaState::Ok);
        assert_eq!(at(10).first_response.left_secs, 50 * 60);
        assert_eq!(at(10).next_due_at, Some(t0 + Duration::hours(1)));
        assert_eq!(at(45).first_response.state, SlaState::AtRisk);
        assert_eq!(at(60).first_response.state, SlaState::AtRisk);
        assert_eq!(at(61).first_response.state, SlaState::Breached);
        assert_eq!(at(61).first_response.left_secs, -60);
        assert_eq!(at(61).resolution.state, SlaState::Ok);
        assert!(p.escalations(&r, t0 + Duration::minutes(44)).is_empty());
        let due = p.escalations(&r, t0 + Duration::minutes(46));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].target, SlaTarget::FirstResponse);
        assert_eq!(due[0].left, Duration::minutes(14));
    }

    #[test]
    fn a_response_in_time_is_met_and_stays_met() {
        let p = Policy::default();
        let t0 = datetime!(2026-11-04 10:00 UTC);
        let mut r = record(t0, Priority::Critical); // 15m / 4h
        p.schedule(&mut r, t0);
        let answered = t0 + Duration::minutes(5);
        r.respond(answered);
        p.schedule(&mut r, answered);
        let later = p.view(&r, t0 + Duration::hours(1));
        assert_eq!(later.first_response.state, SlaState::Met);
        assert_eq!(later.first_response.left_secs, 10 * 60);
        assert_eq!(later.next_due_at, Some(t0 + Duration::hours(4)));
        // A priority change afterwards does not move a met target.
        r.priority = Priority::Low;
        let s = p.schedule(&mut r, t0 + Duration::hours(1));
        assert_eq!(s.first_response_due_at, Some(t0 + Duration::minutes(15)));
        assert_eq!(s.first_response_risk_at, None);
        assert_eq!(s.resolution_due_at, Some(t0 + Duration::days(5)));
        // A late response is breached for good.
        let mut late = record(t0, Priority::Critical);
        p.schedule(&mut late, t0);
        late.respond(t0 + Duration::minutes(20));
        p.schedule(&mut late, t0 + Duration::minutes(20));
        let v = p.view(&late, t0 + Duration::hours(2));
        assert_eq!(v.first_response.state, SlaState::Breached);
        assert_eq!(v.first_response.left_secs, -5 * 60);
    }

    #[test]
    fn waiting_on_the_user_pauses_and_moves_the_due_time_by_the_pause() {
        let p = Policy::default();
        let c = p.calendar;
        let t0 = datetime!(2026-11-04 10:00 UTC);
        let mut r = record(t0, Priority::High); // resolution 8h
        p.schedule(&mut r, t0);
        let asked = t0 + Duration::hours(1);
        r.set_status(TicketStatus::WaitingOnUser, &c, asked);
        assert_eq!(
            r.first_response_at,
            Some(asked),
            "a status change is a response"
        );
        let s = p.schedule(&mut r, asked);
        assert_eq!(s.resolution_due_at, None, "no due time while paused");
        assert_eq!(s.resolution_risk_at, None);
        let v = p.view(&r, asked + Duration::hours(30));
        assert_eq!(v.resolution.state, SlaState::Paused);
        assert_eq!(v.resolution.left_secs, 7 * 3600);
        assert_eq!(v.paused_since, Some(asked));
        assert_eq!(v.next_due_at, None);
        assert!(p.escalations(&r, asked + Duration::hours(30)).is_empty());
        let back = asked + Duration::hours(3);
        r.set_status(TicketStatus::InProgress, &c, back);
        let s = p.schedule(&mut r, back);
        assert_eq!(s.resolution_due_at, Some(t0 + Duration::hours(11)));
        assert_eq!(p.view(&r, back).resolution.left_secs, 7 * 3600);
        // Resolving in time freezes the due time; reopening later resumes from there.
        let solved = back + Duration::hours(2);
        r.set_status(TicketStatus::Resolved, &c, solved);
        p.schedule(&mut r, solved);
        let v = p.view(&r, solved + Duration::days(2));
        assert_eq!(v.resolution.state, SlaState::Met);
        assert_eq!(v.resolution.left_secs, 5 * 3600);
        let reopened = solved + Duration::days(1);
        r.set_status(TicketStatus::Open, &c, reopened);
        let s = p.schedule(&mut r, reopened);
        assert_eq!(r.resolved_at, None);
        assert_eq!(
            s.resolution_due_at,
            Some(t0 + Duration::hours(11) + Duration::days(1)),
            "the time it stood resolved does not count"
        );
        assert_eq!(p.view(&r, reopened).resolution.left_secs, 5 * 3600);
    }

    #[test]
    fn a_pause_spanning_nights_counts_business_time_only() {
        let p = Policy {
            calendar: office(),
            ..Policy::default()
        };
        // Normal: 4h / 2d of business time. Filed Wednesday 16:00 local.
        let t0 = datetime!(2026-11-04 15:00 UTC);
        let mut r = record(t0, Priority::Normal);
        let s = p.schedule(&mut r, t0);
        assert_eq!(
            s.first_response_due_at,
            Some(datetime!(2026-11-05 11:00 UTC))
        );
        // Asked the user Wednesday 16:30 local, answer Friday 10:00 local: paused for 0.5 h
        // Wednesday, 8 h Thursday and 1 h Friday.
        r.set_status(
            TicketStatus::WaitingOnUser,
            &p.calendar,
            datetime!(2026-11-04 15:30 UTC),
        );
        r.set_status(
            TicketStatus::InProgress,
            &p.calendar,
            datetime!(2026-11-06 09:00 UTC),
        );
        assert_eq!(r.paused, Duration::minutes(9 * 60 + 30));
        let s = p.schedule(&mut r, datetime!(2026-11-06 09:00 UTC));
        // 48 h of business time + 9.5 h paused = 57.5 h after Wednesday 16:00 local.
        assert_eq!(
            p.calendar.between(t0, s.resolution_due_at.unwrap()),
            Duration::minutes(57 * 60 + 30)
        );
        let v = p.view(&r, datetime!(2026-11-06 09:00 UTC));
        assert_eq!(v.resolution.left_secs, (48 * 3600) - 1800);
        assert!(v.business_hours);
    }

    #[test]
    fn a_target_missed_before_the_pause_stays_breached() {
        let p = Policy::default();
        let t0 = datetime!(2026-11-04 10:00 UTC);
        let mut r = record(t0, Priority::Critical); // resolution 4h
        p.schedule(&mut r, t0);
        let late = t0 + Duration::hours(5);
        r.set_status(TicketStatus::WaitingOnUser, &p.calendar, late);
        p.schedule(&mut r, late);
        let v = p.view(&r, late + Duration::hours(1));
        assert_eq!(v.resolution.state, SlaState::Breached);
        assert_eq!(v.resolution.left_secs, -3600);
    }

    #[test]
    fn escalation_happens_once_per_target_and_not_past_tier_three() {
        let p = Policy::default();
        let t0 = datetime!(2026-11-04 10:00 UTC);
        let mut r = record(t0, Priority::Critical);
        p.schedule(&mut r, t0);
        let late = t0 + Duration::hours(4);
        let both: Vec<_> = p.escalations(&r, late).iter().map(|e| e.target).collect();
        assert_eq!(both, [SlaTarget::FirstResponse, SlaTarget::Resolution]);
        r.first_response_escalated = true;
        assert_eq!(p.escalations(&r, late).len(), 1);
        r.resolution_escalated = true;
        assert!(p.escalations(&r, late).is_empty());
        let mut top = record(t0, Priority::Critical);
        top.tier = Tier::new(3).unwrap();
        assert!(p.escalations(&top, late).is_empty());
    }

    #[test]
    fn a_fixed_at_risk_window_and_shares_round_sensibly() {
        assert_eq!(AtRisk::Share(25).threshold_ms(HOUR_MS), 15 * MINUTE_MS);
        assert_eq!(AtRisk::Share(33).threshold_ms(100), 33);
        let p = Policy {
            at_risk: AtRisk::Left(Duration::minutes(30)),
            ..Policy::default()
        };
        let t0 = datetime!(2026-11-04 10:00 UTC);
        let mut r = record(t0, Priority::Critical); // 15 min: at risk from the start
        let s = p.schedule(&mut r, t0);
        assert_eq!(s.first_response_risk_at, Some(t0));
        assert_eq!(p.view(&r, t0).first_response.state, SlaState::AtRisk);
        assert_eq!(s.resolution_risk_at, Some(t0 + Duration::minutes(210)));
    }
}
