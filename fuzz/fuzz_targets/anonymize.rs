//! The anonymisation pass (`snapshot --anonymize`): user and host names, IP and MAC addresses
//! replaced with stable pseudonyms.
//!
//! Input starting with `{`: a snapshot as JSON; its identities are gathered and the whole
//! snapshot anonymised, which must always succeed and keep its findings computable. Otherwise:
//! user names, a NUL byte, host names, a NUL byte, a text (names one per line); the text is
//! anonymised twice with one anonymiser and must read the same both times (one pseudonym per
//! real value).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeline_agent::anonymize::{Anonymizer, Identities};
use lifeline_shared::findings;
use lifeline_shared::v1::snapshot::Snapshot;

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'{') {
        let Ok(snapshot) = serde_json::from_slice::<Snapshot>(data) else {
            return;
        };
        let ids = Identities::from_snapshot(&snapshot);
        let mut anonymizer = Anonymizer::new(&ids);
        let out = anonymizer
            .snapshot(&snapshot)
            .expect("an anonymised snapshot is still a snapshot");
        assert!(out.anonymized);
        let _ = findings::evaluate(&out);
        return;
    }
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let names = |part: Option<&str>| -> Vec<String> {
        part.unwrap_or("").lines().map(str::to_owned).collect()
    };
    let users = names(parts.next());
    let hosts = names(parts.next());
    let body = parts.next().unwrap_or("");
    let mut anonymizer = Anonymizer::new(&Identities { users, hosts });
    for names_only in [false, true] {
        let first = anonymizer.text(body, names_only);
        let second = anonymizer.text(body, names_only);
        assert_eq!(first, second, "the same text anonymised two ways");
    }
});
