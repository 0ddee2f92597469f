//! Signed files as they arrive from outside: a signed catalog (`catalog publish`, and what an
//! agent is relayed), a single signed action, a key endorsement, and PEM key files. Each is
//! parsed, written back and parsed again (the same value), and verified against a trusted key;
//! the seed corpus is signed by that key, so mutations reach the signature checks themselves.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use lifeline_shared::v1::catalog::{
    KeyEndorsement, PublicKey, SignedAction, SignedCatalog, SigningKey, accept_endorsed_key,
};

/// The public key that signed the seeds (`fuzz/keys/seed-signing.pub`).
static TRUSTED: LazyLock<PublicKey> = LazyLock::new(|| {
    PublicKey::from_pem(include_str!("../keys/seed-signing.pub")).expect("the seed key parses")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let trusted = [*TRUSTED];
    if let Ok(signed) = SignedCatalog::from_json(text) {
        let again = SignedCatalog::from_json(&signed.to_json().expect("serializes"))
            .expect("a written signed catalog parses");
        assert_eq!(again, signed);
        if let Ok(verified) = signed.verify(&trusted) {
            // Every action of a verified catalog verifies on its own, as the agent checks it.
            assert_eq!(verified.catalog().version(), signed.catalog_version());
            for action in signed.actions() {
                action
                    .verify(&trusted)
                    .expect("an action of a verified catalog verifies");
            }
        }
        assert!(
            signed.verify(&[]).is_err(),
            "verified without a trusted key"
        );
    }
    if let Ok(signed) = SignedAction::from_json(text) {
        let again = SignedAction::from_json(&signed.to_json().expect("serializes"))
            .expect("a written signed action parses");
        assert_eq!(again, signed);
        if let Ok(verified) = signed.verify(&trusted) {
            assert_eq!(verified.action(), signed.unverified_action());
        }
        assert!(
            signed.verify(&[]).is_err(),
            "verified without a trusted key"
        );
    }
    if let Ok(endorsement) = KeyEndorsement::from_json(text) {
        let again = KeyEndorsement::from_json(&endorsement.to_json().expect("serializes"))
            .expect("a written endorsement parses");
        assert_eq!(again, endorsement);
        if let Ok(key) = accept_endorsed_key(&trusted, &endorsement) {
            assert_eq!(&key, endorsement.new_key());
        }
        assert!(accept_endorsed_key(&[], &endorsement).is_err());
    }
    if let Ok(key) = PublicKey::from_pem(text) {
        assert_eq!(PublicKey::from_pem(&key.to_pem()).ok(), Some(key));
    }
    if let Ok(key) = SigningKey::from_pem(text) {
        let public = key.public_key();
        let back = SigningKey::from_pem(&key.to_pem()).expect("a written key parses");
        assert_eq!(back.public_key(), public);
    }
});
