//! A ticket body as `POST /api/v1/agent/tickets` receives it: zstd (when the bytes start with
//! zstd's magic number, as the agent sends it) or plain JSON, then the ticket and its snapshot,
//! then the findings the collector computes and the snapshot JSON it stores.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeline_collector::http::body::{inflate_zstd, parse_json};
use lifeline_shared::findings;
use lifeline_shared::v1::api::{NewTicket, decode_screenshot};
use lifeline_shared::v1::snapshot::Snapshot;

/// zstd frame magic number (RFC 8878), little-endian on the wire.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The decoded-size limit. Production allows 32 MiB for a ticket; the code path is the same, a
/// smaller bound keeps each run fast (the limit check itself is what a bomb hits either way).
const DECODED_LIMIT: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let decoded;
    let json = if data.starts_with(&ZSTD_MAGIC) {
        match inflate_zstd(data, DECODED_LIMIT) {
            Ok(bytes) => {
                assert!(bytes.len() <= DECODED_LIMIT, "inflated past the limit");
                decoded = bytes;
                &decoded[..]
            }
            Err(_) => return,
        }
    } else {
        data
    };
    let Ok(ticket) = parse_json::<NewTicket>(json) else {
        return;
    };
    if let Some(png) = ticket.screenshot_png.as_deref() {
        let _ = decode_screenshot(png);
    }
    if let Some(snapshot) = &ticket.snapshot {
        let mut computed = findings::evaluate(snapshot);
        findings::sort_worst_first(&mut computed);
        for finding in &computed {
            let _ = finding.fingerprint();
        }
        // What the collector stores must read back: ticket views parse it again later.
        let stored = serde_json::to_string(snapshot).expect("a parsed snapshot serializes");
        let back: Snapshot =
            serde_json::from_str(&stored).expect("the stored snapshot JSON parses again");
        assert_eq!(
            findings::evaluate(&back).len(),
            findings::evaluate(snapshot).len(),
            "findings change after the snapshot is stored and read back"
        );
    }
});
