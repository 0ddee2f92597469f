//! The catalog TOML an admin writes (`catalog sign` reads it): parsing and every validation rule,
//! the canonical encoding the signatures cover, each action's JSON form (what the collector
//! relays), a sign → file → parse → verify round trip, and a technician's parameter values
//! checked and expanded into the argument vector.
//!
//! Input: the TOML text, optionally followed by a NUL byte and `name=value` lines (the `--param`
//! values), which are tried against every action of the catalog.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lifeline_shared::v1::catalog::{
    Action, Catalog, SignedAction, SignedCatalog, SigningKey, split_param,
};

/// One key per fuzzing process: the round trip must hold for any key.
static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate().expect("an Ed25519 key is generated"));

fuzz_target!(|data: &[u8]| {
    let (toml, params) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(toml) else {
        return;
    };
    let Ok(catalog) = Catalog::from_toml(text) else {
        return;
    };
    assert!(catalog.version() >= 1);
    let canonical = catalog.canonical_bytes();
    assert_eq!(
        canonical,
        catalog.canonical_bytes(),
        "canonical bytes are not stable"
    );
    assert_eq!(catalog.digest().len(), 64);
    for action in catalog.actions() {
        assert_eq!(catalog.action(action.id().as_str()), Some(action));
        // The JSON form (inside signed files and run requests) reads back as the same action.
        let json = serde_json::to_string(action).expect("an action serializes");
        let back: Action = serde_json::from_str(&json).expect("an action's JSON parses again");
        assert_eq!(&back, action, "action JSON round trip changed it");
        assert_eq!(
            back.canonical_bytes(catalog.version()),
            action.canonical_bytes(catalog.version())
        );
    }

    // Sign, write the file, read it, verify: the verified catalog is the one that was signed.
    let public = KEY.public_key();
    let signed = KEY.sign_catalog(&catalog).expect("a parsed catalog signs");
    let file = signed.to_json().expect("a signed catalog serializes");
    let read = SignedCatalog::from_json(&file).expect("a signed catalog file parses");
    assert_eq!(read, signed);
    let verified = read
        .verify(&[public])
        .expect("a freshly signed catalog verifies");
    assert_eq!(verified.catalog(), &catalog);
    for one in read.actions() {
        let json = one.to_json().expect("a signed action serializes");
        let back = SignedAction::from_json(&json).expect("a signed action parses");
        back.verify(&[public])
            .expect("a signed action verifies on its own");
    }

    // A technician's values: checked, then expanded. Validated values always expand.
    let Ok(params) = std::str::from_utf8(params) else {
        return;
    };
    let pairs: Vec<(&str, &str)> = params
        .lines()
        .filter_map(|line| split_param(line).ok())
        .collect();
    for action in catalog.actions() {
        if let Ok(valid) = action.validate_params(pairs.iter().copied()) {
            let argv = action
                .argv(&valid)
                .expect("parameters validated for this action expand");
            assert_eq!(argv.len(), action.args().len() + 1);
            assert_eq!(argv[0], action.program());
        }
    }
});
