//! The collector's configuration file (`serve --config`), above all its `[sla]` table: parsing
//! and checking every setting, then the service-level arithmetic on the parsed policy (due
//! times, pauses, at-risk and escalation checks, business-hours calendars).
//!
//! Input: 16 bytes that pick a ticket's history (filed at, looked at, priority, status changes),
//! then the TOML text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeline_collector::config::ServerConfig;
use lifeline_collector::sla::{self, SlaRecord};
use lifeline_shared::v1::api::{Priority, TicketStatus};
use time::{Duration, OffsetDateTime};

const HEADER: usize = 16;
/// Tickets are filed between 2020 and about 2120.
const SPAN_MINUTES: u32 = 100 * 365 * 24 * 60;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (head, text) = data.split_at(HEADER);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Ok(d) = sla::parse_duration(text) {
        let _ = sla::human(d.whole_seconds());
        let _ = sla::due_in(d);
    }
    let Ok(config) = ServerConfig::parse(text) else {
        return;
    };
    let Some(policy) = config.sla else {
        return;
    };
    let _ = policy.summary();

    let epoch = time::macros::datetime!(2020-01-01 00:00 UTC);
    let created = epoch + Duration::minutes(i64::from(u32_at(head, 0) % SPAN_MINUTES));
    let priority = Priority::ALL[usize::from(head[8]) % Priority::ALL.len()];
    let mut record = SlaRecord::new(created, priority);
    let mut now = created;
    policy.schedule(&mut record, now);
    for step in 0..3 {
        now += Duration::minutes(i64::from(head[9 + step]) * 97 + i64::from(head[12 + step]));
        let status = TicketStatus::ALL
            [usize::from(head[9 + step] ^ head[12 + step]) % TicketStatus::ALL.len()];
        record.set_status(status, &policy.calendar, now);
        let schedule = policy.schedule(&mut record, now);
        for due in [schedule.first_response_due_at, schedule.resolution_due_at]
            .into_iter()
            .flatten()
        {
            assert!(due >= created, "due before the ticket was filed");
        }
    }
    let later = now + Duration::minutes(i64::from(u32_at(head, 4) % (2 * 365 * 24 * 60)));
    let view = policy.view(&record, later);
    let _ = sla::describe(&view.first_response);
    let _ = sla::describe(&view.resolution);
    let _ = policy.escalations(&record, later);

    // The calendar's two halves agree: the service-level time from `created` to the instant
    // `add` names is exactly what was added.
    let targets = policy.targets(priority);
    for d in [targets.first_response, targets.resolution] {
        let due: OffsetDateTime = policy.calendar.add(created, d);
        assert!(due >= created);
        assert_eq!(
            policy.calendar.between(created, due),
            d,
            "between(created, add(created, d)) != d for {d} in {}",
            policy.summary()
        );
    }
});
