//! The offline spool as `Spool::load` reads it from disk (what `report`, the service and
//! `spool list` do on start): a ticket file and the delivery log, each with the input's bytes.
//! Whatever is in them, loading succeeds and every ticket file is either loaded or moved to
//! quarantine, never lost and never fatal; a loaded ticket can be written back.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lifeline_agent::report::Report;
use lifeline_agent::spool::{DEFAULT_MAX_BYTES, Notice, Spool};

/// The name `Spool::push` gives the ticket with this key.
const KEY: &str = "0123456789abcdef0123456789abcdef";

/// A directory on a RAM file system when there is one: the spool fsyncs on every write.
static BASE: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory")
});

fuzz_target!(|data: &[u8]| {
    let dir = BASE.path().join("spool");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("spool directory");
    std::fs::write(dir.join(format!("{KEY}.json")), data).expect("ticket file");
    std::fs::write(dir.join("delivered.log"), data).expect("delivery log");

    let spool = Spool::open(&dir, DEFAULT_MAX_BYTES).expect("the spool opens");
    let _ = spool.delivered();
    let (entries, notices) = spool
        .load::<Report>()
        .expect("loading never fails on content");
    let quarantined = notices
        .iter()
        .filter(|n| matches!(n, Notice::Quarantined { .. }))
        .count();
    assert_eq!(entries.len() + quarantined, 1, "a ticket file was lost");
    if quarantined == 1 {
        assert!(dir.join("quarantine").join(format!("{KEY}.json")).is_file());
    }
    for entry in &entries {
        assert_eq!(entry.key.as_str(), KEY);
        let _ = entry.reference();
        // Written back (as a retry records its failure), it loads again as the same ticket.
        spool.push(entry).expect("a loaded ticket is written back");
        let (again, notices) = spool.load::<Report>().expect("loads again");
        assert!(
            notices.is_empty(),
            "a written-back ticket was quarantined: {notices:?}"
        );
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].key, entry.key);
        assert_eq!(again[0].ticket, entry.ticket);
    }
});
