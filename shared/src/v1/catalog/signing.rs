//! Ed25519 keys and their files, the canonical encoding, signed actions and catalogs, key
//! endorsements, and the rule that catalog versions only move forward.
//!
//! Everything here takes and returns bytes or text; the binaries read and write the files. The
//! message layouts are documented in the parent module.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::params::quoted;
use super::{Action, ActionId, CATALOG_TEXT_MAX_LEN, Catalog, CatalogError, ParamType};

/// Domain tag of an action signature.
const ACTION_TAG: &[u8] = b"lifeline/catalog-action/v1\0";
/// Domain tag of a catalog signature.
const CATALOG_TAG: &[u8] = b"lifeline/catalog/v1\0";
/// Domain tag of a key endorsement.
const ENDORSEMENT_TAG: &[u8] = b"lifeline/catalog-key-endorsement/v1\0";

/// `format` of a signed catalog file.
pub const SIGNED_CATALOG_FORMAT: &str = "lifeline-signed-catalog/1";
/// `format` of a key endorsement file.
pub const KEY_ENDORSEMENT_FORMAT: &str = "lifeline-catalog-key-endorsement/1";

const PUBLIC_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;
/// DER `SubjectPublicKeyInfo` header of an Ed25519 key (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// Largest key file accepted.
const KEY_TEXT_MAX_LEN: usize = 16 * 1024;
const PUBLIC_LABEL: &str = "PUBLIC KEY";
const PRIVATE_LABEL: &str = "PRIVATE KEY";
const FINGERPRINT_PREFIX: &str = "Fingerprint (SHA-256): ";

// ---------------------------------------------------------------------------------------------
// Canonical encoding

/// Writes the building blocks of the canonical encoding.
struct Encoder(Vec<u8>);

impl Encoder {
    fn new(tag: &[u8]) -> Encoder {
        Encoder(tag.to_vec())
    }

    fn u64(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_be_bytes());
    }

    fn i64(&mut self, n: i64) {
        self.0.extend_from_slice(&n.to_be_bytes());
    }

    fn len(&mut self, n: usize) {
        // usize is at most 64 bits on every target we build for.
        self.u64(n as u64);
    }

    fn bool(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn strs<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a str>) {
        self.len(items.len());
        for item in items {
            self.str(item);
        }
    }
}

/// Appends the canonical encoding of `action` (without tag or version).
fn encode_action(e: &mut Encoder, action: &Action) {
    // Destructured on purpose: a new field must be added here, or this does not compile.
    let Action {
        id,
        title,
        description,
        program,
        args,
        params,
        timeout_secs,
        output_limit_bytes,
        risk,
        consent,
        os,
        recheck,
    } = action;
    e.str(id.as_str());
    e.str(title);
    e.str(description);
    e.str(program);
    e.strs(args.iter().map(|a| a.as_str()));
    e.len(params.len());
    for (name, ty) in params {
        e.str(name.as_str());
        e.str(ty.type_name());
        match ty {
            ParamType::Enum { values } => e.strs(values.iter().map(String::as_str)),
            ParamType::Integer { min, max } => {
                e.i64(*min);
                e.i64(*max);
            }
            ParamType::String {
                pattern, max_len, ..
            } => {
                e.str(pattern);
                e.len(*max_len);
            }
            ParamType::Unit | ParamType::Service | ParamType::Pid => {}
        }
    }
    e.u64(*timeout_secs);
    e.u64(*output_limit_bytes);
    e.str(risk.as_str());
    e.bool(*consent);
    e.strs(os.iter().map(|o| o.as_str()));
    e.strs(recheck.iter().map(|s| s.as_str()));
}

impl Action {
    /// The bytes this action's own signature covers: tag, `catalog_version`, the action.
    pub fn canonical_bytes(&self, catalog_version: u64) -> Vec<u8> {
        let mut e = Encoder::new(ACTION_TAG);
        e.u64(catalog_version);
        encode_action(&mut e, self);
        e.0
    }
}

impl Catalog {
    /// The bytes the catalog signature covers: tag, version, then every action (sorted by id).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new(CATALOG_TAG);
        e.u64(self.version);
        e.len(self.actions.len());
        for action in &self.actions {
            let mut one = Encoder(Vec::new());
            encode_action(&mut one, action);
            e.bytes(&one.0);
        }
        e.0
    }

    /// SHA-256 of the canonical bytes, in hex: tells two catalogs with the same version apart.
    pub fn digest(&self) -> String {
        hex(digest::digest(&digest::SHA256, &self.canonical_bytes()).as_ref())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Checked up front: `from_str_radix` alone would also take a `+` sign.
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Something wrong with a key, a key file, or the crypto library while using a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{what}: the text is {len} bytes; a key file is at most {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: no \"-----BEGIN {label}-----\" line")]
    NoBlock {
        what: &'static str,
        label: &'static str,
    },
    #[error("{what}: found a {found} block where a {label} block was expected{hint}")]
    WrongBlock {
        what: &'static str,
        label: &'static str,
        found: String,
        hint: &'static str,
    },
    #[error("{what}: no \"-----END {label}-----\" line")]
    Unterminated {
        what: &'static str,
        label: &'static str,
    },
    #[error("{what}: the {label} block is not valid base64: {reason}")]
    Base64 {
        what: &'static str,
        label: &'static str,
        reason: String,
    },
    #[error("{what}: not an Ed25519 key: {reason}")]
    NotEd25519 { what: &'static str, reason: String },
    #[error("{what}: the fingerprint line says {claimed}, but the key's fingerprint is {actual}")]
    FingerprintMismatch {
        what: &'static str,
        claimed: String,
        actual: KeyId,
    },
    #[error("signing key: {0} failed in the crypto library")]
    Crypto(&'static str),
}

/// Writes `der` as a PEM block with 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Reads the first PEM block of `text`, which must carry `label`. Lines outside the block are
/// explanatory text (RFC 7468) and ignored here.
fn unpem(text: &str, what: &'static str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    if text.len() > KEY_TEXT_MAX_LEN {
        return Err(KeyError::TooLarge {
            what,
            len: text.len(),
            max: KEY_TEXT_MAX_LEN,
        });
    }
    let mut lines = text.lines().map(str::trim);
    let found = lines
        .by_ref()
        .find_map(|line| line.strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or(KeyError::NoBlock { what, label })?;
    if found != label {
        let hint = match found {
            "PRIVATE KEY" => {
                " (this is a private key: give the .pub file, and keep the .key file offline)"
            }
            "PUBLIC KEY" => " (this is a public key: signing needs the .key file)",
            _ => "",
        };
        return Err(KeyError::WrongBlock {
            what,
            label,
            found: quoted(found),
            hint,
        });
    }
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut terminated = false;
    for line in lines {
        if line == end {
            terminated = true;
            break;
        }
        body.push_str(line);
    }
    if !terminated {
        return Err(KeyError::Unterminated { what, label });
    }
    BASE64
        .decode(body.as_bytes())
        .map_err(|e| KeyError::Base64 {
            what,
            label,
            reason: e.to_string(),
        })
}

/// Checks a `Fingerprint (SHA-256): ...` line, when the text has one, against the key.
fn check_fingerprint_line(text: &str, what: &'static str, key: &PublicKey) -> Result<(), KeyError> {
    let claimed = text
        .lines()
        .find_map(|line| line.trim().strip_prefix(FINGERPRINT_PREFIX));
    match claimed {
        Some(claimed) if claimed.trim() != key.id().to_string() => {
            Err(KeyError::FingerprintMismatch {
                what,
                claimed: quoted(claimed.trim()),
                actual: key.id(),
            })
        }
        _ => Ok(()),
    }
}

/// Fingerprint of a public key: SHA-256 of its 32 raw bytes. Displayed and parsed as 64
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 32]);

impl KeyId {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Text that is not a [`KeyId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} is not a key fingerprint (64 hex digits)")]
pub struct BadKeyId {
    /// Quoted and escaped.
    pub value: String,
}

impl FromStr for KeyId {
    type Err = BadKeyId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        unhex::<32>(&s.to_ascii_lowercase())
            .map(KeyId)
            .ok_or_else(|| BadKeyId { value: quoted(s) })
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 public key that may sign catalogs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// From the 32 raw key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        <[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::NotEd25519 {
                what: "public key",
                reason: format!("{} bytes instead of {PUBLIC_KEY_LEN}", bytes.len()),
            })
    }

    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    pub fn id(&self) -> KeyId {
        let d = digest::digest(&digest::SHA256, &self.0);
        let mut id = [0u8; 32];
        id.copy_from_slice(d.as_ref());
        KeyId(id)
    }

    /// The `lifeline-catalog.pub` file: two lines of explanation (the second gives the
    /// fingerprint), then a standard PEM `PUBLIC KEY` block (DER SubjectPublicKeyInfo, RFC 8410),
    /// which `openssl pkey -pubin` also reads:
    ///
    /// ```text
    /// Lifeline catalog signing key (public). Agents pin it; the collector trusts it.
    /// Fingerprint (SHA-256): 3f1c...e9
    /// -----BEGIN PUBLIC KEY-----
    /// MCowBQYDK2VwAyEA...
    /// -----END PUBLIC KEY-----
    /// ```
    pub fn to_pem(&self) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        format!(
            "Lifeline catalog signing key (public). Agents pin it; the collector trusts it.\n\
             {FINGERPRINT_PREFIX}{}\n{}",
            self.id(),
            pem(PUBLIC_LABEL, &der)
        )
    }

    /// Reads a `lifeline-catalog.pub` file (see [`PublicKey::to_pem`]); any PEM Ed25519 public
    /// key works. A fingerprint line, when present, must match the key.
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        const WHAT: &str = "public key";
        let der = unpem(text, WHAT, PUBLIC_LABEL)?;
        let key = der
            .strip_prefix(&ED25519_SPKI_PREFIX[..])
            .filter(|raw| raw.len() == PUBLIC_KEY_LEN)
            .ok_or_else(|| KeyError::NotEd25519 {
                what: WHAT,
                reason: format!(
                    "expected a {}-byte Ed25519 SubjectPublicKeyInfo, got {} bytes",
                    ED25519_SPKI_PREFIX.len() + PUBLIC_KEY_LEN,
                    der.len()
                ),
            })
            .and_then(PublicKey::from_bytes)?;
        check_fingerprint_line(text, WHAT, &key)?;
        Ok(key)
    }

    /// Whether `signature` is this key's signature of `message`.
    fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, &signature.0)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

/// Base64 of the 32 raw bytes.
impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = BASE64
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("public key is not base64: {e}")))?;
        PublicKey::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 signature. Carried as base64 in files.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    pub fn from_bytes(bytes: &[u8]) -> Option<Signature> {
        <[u8; SIGNATURE_LEN]>::try_from(bytes).ok().map(Signature)
    }

    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", BASE64.encode(self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = BASE64
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("signature is not base64: {e}")))?;
        Signature::from_bytes(&bytes).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "signature is {} bytes; an Ed25519 signature is {SIGNATURE_LEN}",
                bytes.len()
            ))
        })
    }
}

/// An admin's private catalog signing key. Its `Debug` shows only the public key's fingerprint.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &self.public_key().id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key pair.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Crypto("key generation"))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| KeyError::Crypto("key encoding"))?;
        SigningKey::from_pkcs8(pkcs8.as_ref())
    }

    /// From a DER PKCS#8 document (v1, as `openssl genpkey -algorithm ed25519` writes, or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| KeyError::NotEd25519 {
            what: "private key",
            reason: e.to_string(),
        })?;
        Ok(SigningKey {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// The `lifeline-catalog.key` file: two lines of explanation, then a standard PEM
    /// `PRIVATE KEY` block (DER PKCS#8), interchangeable with `openssl genpkey -algorithm ed25519`:
    ///
    /// ```text
    /// Lifeline catalog signing key (PRIVATE). Keep it offline, mode 0600; never send it anywhere.
    /// Fingerprint (SHA-256): 3f1c...e9
    /// -----BEGIN PRIVATE KEY-----
    /// MC4CAQAwBQYDK2VwBCIEI...
    /// -----END PRIVATE KEY-----
    /// ```
    pub fn to_pem(&self) -> String {
        format!(
            "Lifeline catalog signing key (PRIVATE). Keep it offline, mode 0600; never send it \
             anywhere.\n{FINGERPRINT_PREFIX}{}\n{}",
            self.public_key().id(),
            pem(PRIVATE_LABEL, &self.pkcs8)
        )
    }

    /// Reads a `lifeline-catalog.key` file (see [`SigningKey::to_pem`]) or any PEM PKCS#8
    /// Ed25519 private key. A fingerprint line, when present, must match the key.
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        let der = unpem(text, "private key", PRIVATE_LABEL)?;
        let key = SigningKey::from_pkcs8(&der)?;
        check_fingerprint_line(text, "private key", &key.public_key())?;
        Ok(key)
    }

    pub fn public_key(&self) -> PublicKey {
        let mut raw = [0u8; PUBLIC_KEY_LEN];
        let public = self.pair.public_key().as_ref();
        if public.len() == PUBLIC_KEY_LEN {
            raw.copy_from_slice(public);
        }
        PublicKey(raw)
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, KeyError> {
        Signature::from_bytes(self.pair.sign(message).as_ref()).ok_or(KeyError::Crypto("signing"))
    }

    /// Signs one action as part of catalog `catalog_version`.
    pub fn sign_action(
        &self,
        catalog_version: u64,
        action: &Action,
    ) -> Result<SignedAction, KeyError> {
        Ok(SignedAction {
            catalog_version,
            key_id: self.public_key().id(),
            signature: self.sign(&action.canonical_bytes(catalog_version))?,
            action: action.clone(),
        })
    }

    /// Signs a catalog: every action on its own, and the whole.
    pub fn sign_catalog(&self, catalog: &Catalog) -> Result<SignedCatalog, KeyError> {
        let actions = catalog
            .actions()
            .iter()
            .map(|action| self.sign_action(catalog.version(), action))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SignedCatalog {
            format: SIGNED_CATALOG_FORMAT.to_owned(),
            catalog_version: catalog.version(),
            key_id: self.public_key().id(),
            signature: self.sign(&catalog.canonical_bytes())?,
            actions,
        })
    }

    /// Vouches for `new_key`: whoever trusts this key may trust `new_key` too.
    pub fn endorse(&self, new_key: &PublicKey) -> Result<KeyEndorsement, KeyError> {
        Ok(KeyEndorsement {
            format: KEY_ENDORSEMENT_FORMAT.to_owned(),
            new_key: *new_key,
            endorsed_by: self.public_key().id(),
            signature: self.sign(&endorsement_message(new_key))?,
        })
    }
}

fn endorsement_message(new_key: &PublicKey) -> Vec<u8> {
    let mut e = Encoder::new(ENDORSEMENT_TAG);
    e.0.extend_from_slice(&new_key.0);
    e.0
}

// ---------------------------------------------------------------------------------------------
// Signed files and verification

/// Why a signature check failed. Each of these means: do not run, and report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("{what} is signed by key {key_id}, which is not trusted")]
    UntrustedKey { what: String, key_id: KeyId },
    #[error(
        "action {action}: the signature does not match (the action or its catalog version was \
         altered, or another key signed it)"
    )]
    BadActionSignature { action: ActionId },
    #[error(
        "catalog version {version}: the catalog signature does not match (actions were altered, \
         added or removed)"
    )]
    BadCatalogSignature { version: u64 },
    #[error(
        "action {action}: signed for catalog version {action_version}, but the catalog is \
         version {catalog_version}"
    )]
    VersionMismatch {
        action: ActionId,
        action_version: u64,
        catalog_version: u64,
    },
    #[error("action {action}: signed by key {action_key}, but the catalog by key {catalog_key}")]
    KeyMismatch {
        action: ActionId,
        action_key: KeyId,
        catalog_key: KeyId,
    },
    #[error("key endorsement of key {new_key}: the signature does not match")]
    BadEndorsement { new_key: KeyId },
    #[error("unsupported format {found} (expected {expected:?})")]
    Format {
        found: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A signed file that cannot even be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct SignedFileError {
    pub what: &'static str,
    pub message: String,
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
) -> Result<T, SignedFileError> {
    if text.len() > CATALOG_TEXT_MAX_LEN {
        return Err(SignedFileError {
            what,
            message: format!(
                "{} bytes; at most {CATALOG_TEXT_MAX_LEN} are allowed",
                text.len()
            ),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        SignedFileError {
            what,
            message: if path == "." {
                inner.to_string()
            } else {
                format!("{path}: {inner}")
            },
        }
    })?;
    de.end().map_err(|e| SignedFileError {
        what,
        message: e.to_string(),
    })?;
    Ok(value)
}

fn to_json<T: Serialize>(value: &T, what: &'static str) -> Result<String, SignedFileError> {
    serde_json::to_string_pretty(value)
        .map(|mut text| {
            text.push('\n');
            text
        })
        .map_err(|e| SignedFileError {
            what,
            message: e.to_string(),
        })
}

fn trusted_key<'k>(
    trusted: &'k [PublicKey],
    key_id: &KeyId,
    what: impl FnOnce() -> String,
) -> Result<&'k PublicKey, VerifyError> {
    trusted
        .iter()
        .find(|k| k.id() == *key_id)
        .ok_or_else(|| VerifyError::UntrustedKey {
            what: what(),
            key_id: *key_id,
        })
}

/// One action with its own signature: what the collector stores and relays to an agent.
///
/// JSON: `{"catalog_version": 3, "key_id": "<hex>", "action": {<the [[action]] table>},
/// "signature": "<base64>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedAction {
    catalog_version: u64,
    key_id: KeyId,
    action: Action,
    signature: Signature,
}

impl SignedAction {
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The action's id, not yet verified: for routing and messages only.
    pub fn id(&self) -> &ActionId {
        &self.action.id
    }

    /// The action as carried, not yet verified: for display only, never for running.
    pub fn unverified_action(&self) -> &Action {
        &self.action
    }

    /// Checks the signature with the trusted keys; only then is the action fit to run.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<VerifiedAction, VerifyError> {
        let key = trusted_key(trusted, &self.key_id, || {
            format!("action {}", self.action.id)
        })?;
        if !key.verifies(
            &self.action.canonical_bytes(self.catalog_version),
            &self.signature,
        ) {
            return Err(VerifyError::BadActionSignature {
                action: self.action.id.clone(),
            });
        }
        Ok(VerifiedAction {
            catalog_version: self.catalog_version,
            key_id: self.key_id,
            action: self.action.clone(),
        })
    }

    pub fn from_json(text: &str) -> Result<SignedAction, SignedFileError> {
        from_json(text, "signed action")
    }

    pub fn to_json(&self) -> Result<String, SignedFileError> {
        to_json(self, "signed action")
    }
}

/// An action whose signature checked out against a trusted key. Only
/// [`SignedAction::verify`] and [`SignedCatalog::verify`] build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAction {
    catalog_version: u64,
    key_id: KeyId,
    action: Action,
}

impl VerifiedAction {
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn action(&self) -> &Action {
        &self.action
    }
}

/// The `FILE.signed` that `catalog sign` writes and `catalog publish` reads: JSON, pretty-printed.
///
/// ```json
/// {
///   "format": "lifeline-signed-catalog/1",
///   "catalog_version": 3,
///   "key_id": "<SHA-256 of the signing public key, hex>",
///   "signature": "<base64 Ed25519 signature of the whole catalog>",
///   "actions": [ <SignedAction>, ... ]
/// }
/// ```
///
/// Every action is a complete [`SignedAction`], so the collector can store and relay each on its
/// own. The actions' content is plain JSON so an admin can read what was signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCatalog {
    format: String,
    catalog_version: u64,
    key_id: KeyId,
    signature: Signature,
    actions: Vec<SignedAction>,
}

impl SignedCatalog {
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version
    }

    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The signed actions, not yet verified.
    pub fn actions(&self) -> &[SignedAction] {
        &self.actions
    }

    /// Reads a `FILE.signed`. This only parses; [`SignedCatalog::verify`] checks the signatures.
    pub fn from_json(text: &str) -> Result<SignedCatalog, SignedFileError> {
        let signed: SignedCatalog = from_json(text, "signed catalog")?;
        if signed.format != SIGNED_CATALOG_FORMAT {
            return Err(SignedFileError {
                what: "signed catalog",
                message: format!(
                    "format: unsupported format {} (expected {SIGNED_CATALOG_FORMAT:?})",
                    quoted(&signed.format)
                ),
            });
        }
        Ok(signed)
    }

    pub fn to_json(&self) -> Result<String, SignedFileError> {
        to_json(self, "signed catalog")
    }

    /// Checks the whole catalog and every action in it against the trusted keys.
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<VerifiedCatalog, VerifyError> {
        if self.format != SIGNED_CATALOG_FORMAT {
            return Err(VerifyError::Format {
                found: quoted(&self.format),
                expected: SIGNED_CATALOG_FORMAT,
            });
        }
        let key = trusted_key(trusted, &self.key_id, || {
            format!("catalog version {}", self.catalog_version)
        })?;
        for signed in &self.actions {
            if signed.key_id != self.key_id {
                return Err(VerifyError::KeyMismatch {
                    action: signed.action.id.clone(),
                    action_key: signed.key_id,
                    catalog_key: self.key_id,
                });
            }
            if signed.catalog_version != self.catalog_version {
                return Err(VerifyError::VersionMismatch {
                    action: signed.action.id.clone(),
                    action_version: signed.catalog_version,
                    catalog_version: self.catalog_version,
                });
            }
            signed.verify(std::slice::from_ref(key))?;
        }
        let catalog = Catalog::new(
            self.catalog_version,
            self.actions.iter().map(|s| s.action.clone()).collect(),
        )?;
        if !key.verifies(&catalog.canonical_bytes(), &self.signature) {
            return Err(VerifyError::BadCatalogSignature {
                version: self.catalog_version,
            });
        }
        Ok(VerifiedCatalog {
            key_id: self.key_id,
            catalog,
        })
    }
}

/// A catalog whose signatures checked out. Only [`SignedCatalog::verify`] builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCatalog {
    key_id: KeyId,
    catalog: Catalog,
}

impl VerifiedCatalog {
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

/// A trusted key vouching for a new one: the only way an agent or collector that pinned keys
/// accepts another. JSON, pretty-printed:
///
/// ```json
/// {
///   "format": "lifeline-catalog-key-endorsement/1",
///   "new_key": "<base64 of the 32 raw bytes of the new public key>",
///   "endorsed_by": "<key id of the endorsing key>",
///   "signature": "<base64 signature by the endorsing key>"
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEndorsement {
    format: String,
    new_key: PublicKey,
    endorsed_by: KeyId,
    signature: Signature,
}

impl KeyEndorsement {
    /// The key vouched for, not yet verified.
    pub fn new_key(&self) -> &PublicKey {
        &self.new_key
    }

    pub fn endorsed_by(&self) -> &KeyId {
        &self.endorsed_by
    }

    pub fn from_json(text: &str) -> Result<KeyEndorsement, SignedFileError> {
        from_json(text, "key endorsement")
    }

    pub fn to_json(&self) -> Result<String, SignedFileError> {
        to_json(self, "key endorsement")
    }
}

/// The key rotation rule: returns the endorsed key when an already-trusted key signed the
/// endorsement. A collector can relay an endorsement but cannot make one.
pub fn accept_endorsed_key(
    trusted: &[PublicKey],
    endorsement: &KeyEndorsement,
) -> Result<PublicKey, VerifyError> {
    if endorsement.format != KEY_ENDORSEMENT_FORMAT {
        return Err(VerifyError::Format {
            found: quoted(&endorsement.format),
            expected: KEY_ENDORSEMENT_FORMAT,
        });
    }
    let endorser = trusted_key(trusted, &endorsement.endorsed_by, || {
        format!("key endorsement of key {}", endorsement.new_key.id())
    })?;
    if !endorser.verifies(
        &endorsement_message(&endorsement.new_key),
        &endorsement.signature,
    ) {
        return Err(VerifyError::BadEndorsement {
            new_key: endorsement.new_key.id(),
        });
    }
    Ok(endorsement.new_key)
}

// ---------------------------------------------------------------------------------------------
// Versions

/// How a new catalog version relates to the one in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionStep {
    /// No catalog was in use yet.
    First,
    /// The same version again. Whoever stores catalogs should also check that the content is the
    /// same ([`Catalog::digest`]): one version number must never name two catalogs.
    Same,
    /// A newer version.
    Forward,
}

/// A catalog older than the one in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "catalog version {new} is older than version {current}, which is already in use: refusing to \
     roll back"
)]
pub struct RollbackError {
    pub current: u64,
    pub new: u64,
}

/// The version rule: catalogs only move forward. `current` is the highest version accepted so
/// far (the collector's published one, or the highest an agent has verified).
pub fn accept_catalog_version(
    current: Option<u64>,
    new: u64,
) -> Result<VersionStep, RollbackError> {
    match current {
        None => Ok(VersionStep::First),
        Some(current) if new == current => Ok(VersionStep::Same),
        Some(current) if new > current => Ok(VersionStep::Forward),
        Some(current) => Err(RollbackError { current, new }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::super::tests::{EXAMPLE, small};
    use super::super::{Os, Risk};
    use super::*;

    static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().unwrap());
    static OTHER_KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::generate().unwrap());

    fn trusted() -> Vec<PublicKey> {
        vec![KEY.public_key()]
    }

    /// A key pair made with `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
    const OPENSSL_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIBxy7pLGgr+eifYSHXMV2SCMuEz64W2KaPbs9EtH3vZN\n\
        -----END PRIVATE KEY-----\n";
    const OPENSSL_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAq77NriDRWs3tEd5HkJr9X99zt24ARoy6ZF641JsiSqw=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn a_signed_catalog_verifies_and_round_trips_through_its_file() {
        let catalog = small();
        let signed = KEY.sign_catalog(&catalog).unwrap();
        let text = signed.to_json().unwrap();
        let read = SignedCatalog::from_json(&text).unwrap();
        assert_eq!(read, signed);
        let verified = read.verify(&trusted()).unwrap();
        assert_eq!(verified.catalog(), &catalog);
        assert_eq!(verified.key_id(), &KEY.public_key().id());
        for signed_action in read.actions() {
            let verified = signed_action.verify(&trusted()).unwrap();
            assert_eq!(verified.catalog_version(), 2);
            assert_eq!(
                Some(verified.action()),
                catalog.action(signed_action.id().as_str())
            );
            let alone = SignedAction::from_json(&signed_action.to_json().unwrap()).unwrap();
            assert!(alone.verify(&trusted()).is_ok());
        }
        // Signing is deterministic, so the same catalog gives the same file.
        assert_eq!(KEY.sign_catalog(&catalog).unwrap().to_json().unwrap(), text);
    }

    #[test]
    fn the_example_catalog_signs_and_verifies() {
        let catalog = Catalog::from_toml(EXAMPLE).unwrap();
        let signed = KEY.sign_catalog(&catalog).unwrap();
        assert_eq!(signed.verify(&trusted()).unwrap().catalog(), &catalog);
    }

    type Tamper = fn(&mut Action);

    /// Every way of changing one field of one action.
    fn tamperings() -> Vec<(&'static str, Tamper)> {
        vec![
            ("id", |a| a.id = "other".parse().unwrap()),
            ("title", |a| a.title.push('!')),
            ("description", |a| a.description.push('!')),
            ("program", |a| a.program = "/bin/sh".to_owned()),
            ("args: changed", |a| a.args[0] = "-f".parse().unwrap()),
            ("args: added", |a| a.args.push("--all".parse().unwrap())),
            ("args: removed", |a| {
                a.args.pop();
            }),
            ("args: reordered", |a| a.args.swap(0, 1)),
            ("param type", |a| {
                for ty in a.params.values_mut() {
                    *ty = ParamType::string("(?s).*".into(), 1024).unwrap();
                }
            }),
            ("param range", |a| {
                for ty in a.params.values_mut() {
                    if let ParamType::Integer { max, .. } = ty {
                        *max += 1;
                    }
                }
            }),
            ("param name", |a| {
                let (name, ty) = a.params.pop_first().unwrap();
                a.params.insert(format!("{name}x").parse().unwrap(), ty);
            }),
            ("timeout_secs", |a| a.timeout_secs += 1),
            ("output_limit_bytes", |a| a.output_limit_bytes *= 2),
            ("risk", |a| a.risk = Risk::High),
            ("consent", |a| a.consent = !a.consent),
            ("os", |a| a.os = vec![Os::Linux, Os::Windows]),
        ]
    }

    #[test]
    fn altering_any_field_of_an_action_breaks_its_signature() {
        let catalog = small();
        let action = catalog.action("unit-logs").unwrap();
        let signed = KEY.sign_action(catalog.version(), action).unwrap();
        for (what, tamper) in tamperings() {
            let mut altered = signed.clone();
            tamper(&mut altered.action);
            assert_ne!(altered.action, signed.action, "{what}: no change");
            let err = altered.verify(&trusted()).unwrap_err();
            assert!(
                matches!(err, VerifyError::BadActionSignature { .. }),
                "{what}: {err}"
            );

            // The same change inside a signed catalog breaks the action and the catalog.
            let mut whole = KEY.sign_catalog(&catalog).unwrap();
            let at = whole
                .actions
                .iter()
                .position(|s| s.id().as_str() == "unit-logs")
                .unwrap();
            tamper(&mut whole.actions[at].action);
            assert!(whole.verify(&trusted()).is_err(), "{what}");
        }
    }

    #[test]
    fn an_action_altered_in_stored_json_is_refused() {
        let catalog = small();
        let signed = KEY
            .sign_action(catalog.version(), catalog.action("unit-logs").unwrap())
            .unwrap();
        let json = signed.to_json().unwrap();
        for (from, to) in [
            ("\"-n\"", "\"-f\""),
            ("\"max\": 5000", "\"max\": 50000"),
            ("\"risk\": \"low\"", "\"risk\": \"medium\""),
            ("\"timeout_secs\": 30", "\"timeout_secs\": 31"),
            ("\"catalog_version\": 2", "\"catalog_version\": 3"),
        ] {
            assert!(json.contains(from), "{from} not in {json}");
            let altered = SignedAction::from_json(&json.replace(from, to)).unwrap();
            assert!(altered.verify(&trusted()).is_err(), "{to}");
        }
        // A change that makes the action invalid fails before any signature check.
        let err = SignedAction::from_json(&json.replace("/usr/bin/journalctl", "journalctl"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("signed action") && err.contains("not an absolute path"),
            "{err}"
        );
    }

    #[test]
    fn a_changed_version_breaks_the_signatures() {
        let catalog = small();
        let mut signed = KEY.sign_catalog(&catalog).unwrap();
        signed.catalog_version += 1;
        assert!(matches!(
            signed.verify(&trusted()),
            Err(VerifyError::VersionMismatch { .. })
        ));
        for action in &mut signed.actions {
            action.catalog_version += 1;
        }
        assert!(matches!(
            signed.verify(&trusted()),
            Err(VerifyError::BadActionSignature { .. })
        ));
        let mut action = KEY.sign_action(5, &catalog.actions()[0]).unwrap();
        action.catalog_version = 6;
        assert!(action.verify(&trusted()).is_err());
    }

    #[test]
    fn dropping_adding_or_mixing_actions_breaks_the_catalog() {
        let catalog = small();
        let signed = KEY.sign_catalog(&catalog).unwrap();

        let mut dropped = signed.clone();
        dropped.actions.pop();
        assert!(matches!(
            dropped.verify(&trusted()),
            Err(VerifyError::BadCatalogSignature { version: 2 })
        ));

        // An action validly signed for the same version, but not part of this catalog.
        let example = Catalog::from_toml(EXAMPLE).unwrap();
        let mut added = signed.clone();
        added.actions.push(
            KEY.sign_action(2, example.action("reboot").unwrap())
                .unwrap(),
        );
        assert!(matches!(
            added.verify(&trusted()),
            Err(VerifyError::BadCatalogSignature { .. })
        ));

        // An action from another version of the catalog.
        let mut mixed = signed.clone();
        mixed.actions[0] = KEY.sign_action(1, &catalog.actions()[0]).unwrap();
        assert!(matches!(
            mixed.verify(&trusted()),
            Err(VerifyError::VersionMismatch { .. })
        ));

        let mut duplicated = signed;
        duplicated.actions.push(duplicated.actions[0].clone());
        let err = duplicated.verify(&trusted()).unwrap_err().to_string();
        assert!(err.contains("more than one action"), "{err}");
    }

    #[test]
    fn a_signature_by_an_untrusted_key_is_refused() {
        let catalog = small();
        let foreign = OTHER_KEY.sign_catalog(&catalog).unwrap();
        let err = foreign.verify(&trusted()).unwrap_err();
        assert!(matches!(err, VerifyError::UntrustedKey { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&OTHER_KEY.public_key().id().to_string())
        );
        let err = foreign.actions()[0].verify(&trusted()).unwrap_err();
        assert!(matches!(err, VerifyError::UntrustedKey { .. }), "{err}");
        assert!(foreign.verify(&[]).is_err());

        // Claiming a trusted key's id does not help.
        let mut claimed = foreign.actions()[0].clone();
        claimed.key_id = KEY.public_key().id();
        assert!(matches!(
            claimed.verify(&trusted()),
            Err(VerifyError::BadActionSignature { .. })
        ));
        let mut claimed = foreign;
        claimed.key_id = KEY.public_key().id();
        for action in &mut claimed.actions {
            action.key_id = KEY.public_key().id();
        }
        assert!(claimed.verify(&trusted()).is_err());

        // Trusting both keys accepts both.
        let both = [KEY.public_key(), OTHER_KEY.public_key()];
        assert!(
            OTHER_KEY
                .sign_catalog(&catalog)
                .unwrap()
                .verify(&both)
                .is_ok()
        );
    }

    #[test]
    fn truncated_or_garbage_signatures_are_refused() {
        let catalog = small();
        let signed = KEY
            .sign_action(catalog.version(), &catalog.actions()[0])
            .unwrap();
        let json = signed.to_json().unwrap();
        let good = BASE64.encode(signed.signature.0);

        let truncated = BASE64.encode(&signed.signature.0[..63]);
        let err = SignedAction::from_json(&json.replace(&good, &truncated)).unwrap_err();
        assert!(
            err.to_string().contains("signature: signature is 63 bytes"),
            "{err}"
        );

        let err = SignedAction::from_json(&json.replace(&good, "not base64!")).unwrap_err();
        assert!(err.to_string().contains("signature is not base64"), "{err}");

        let err = SignedAction::from_json(&json.replace(&good, "")).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");

        let garbage = BASE64.encode([0x5a; 64]);
        let altered = SignedAction::from_json(&json.replace(&good, &garbage)).unwrap();
        assert!(altered.verify(&trusted()).is_err());
        let zero = BASE64.encode([0; 64]);
        let altered = SignedAction::from_json(&json.replace(&good, &zero)).unwrap();
        assert!(altered.verify(&trusted()).is_err());

        let err = SignedCatalog::from_json("{\"format\": 1}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("signed catalog: format:"), "{err}");
        let err = SignedCatalog::from_json("").unwrap_err().to_string();
        assert!(err.starts_with("signed catalog: "), "{err}");
    }

    #[test]
    fn an_unknown_signed_catalog_format_is_refused() {
        let signed = KEY.sign_catalog(&small()).unwrap();
        let json = signed
            .to_json()
            .unwrap()
            .replace(SIGNED_CATALOG_FORMAT, "lifeline-signed-catalog/9");
        let err = SignedCatalog::from_json(&json).unwrap_err().to_string();
        assert!(err.contains("unsupported format"), "{err}");
        let json = signed
            .to_json()
            .unwrap()
            .replacen('{', "{\"comment\": \"x\",", 1);
        let err = SignedCatalog::from_json(&json).unwrap_err().to_string();
        assert!(err.contains("unknown field `comment`"), "{err}");
    }

    #[test]
    fn signatures_do_not_transfer_between_purposes() {
        let catalog = small();
        let signed = KEY.sign_catalog(&catalog).unwrap();
        // The whole-catalog signature is not an action signature, nor an endorsement.
        let mut action = signed.actions()[0].clone();
        action.signature = signed.signature;
        assert!(action.verify(&trusted()).is_err());
        let endorsement = KeyEndorsement {
            format: KEY_ENDORSEMENT_FORMAT.to_owned(),
            new_key: OTHER_KEY.public_key(),
            endorsed_by: KEY.public_key().id(),
            signature: signed.signature,
        };
        assert!(accept_endorsed_key(&trusted(), &endorsement).is_err());
    }

    #[test]
    fn key_files_round_trip_and_match_openssl() {
        let pem = KEY.public_key().to_pem();
        assert!(pem.contains(&KEY.public_key().id().to_string()));
        assert_eq!(PublicKey::from_pem(&pem).unwrap(), KEY.public_key());
        let private = KEY.to_pem();
        assert!(private.contains("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pem(&private).unwrap();
        assert_eq!(back.public_key(), KEY.public_key());
        assert!(!format!("{back:?}").contains(&BASE64.encode(&back.pkcs8)));

        let from_openssl = SigningKey::from_pem(OPENSSL_PRIVATE).unwrap();
        assert_eq!(
            from_openssl.public_key(),
            PublicKey::from_pem(OPENSSL_PUBLIC).unwrap()
        );
        // And ours is what openssl writes: the public block is byte-for-byte the same.
        assert!(from_openssl.public_key().to_pem().ends_with(OPENSSL_PUBLIC));
        assert!(from_openssl.to_pem().ends_with(OPENSSL_PRIVATE));
    }

    #[test]
    fn bad_key_files_get_clear_errors() {
        let public = KEY.public_key().to_pem();
        let private = KEY.to_pem();
        let cases: Vec<(String, &str)> = vec![
            (
                String::new(),
                "public key: no \"-----BEGIN PUBLIC KEY-----\" line",
            ),
            ("hello".into(), "no \"-----BEGIN PUBLIC KEY-----\" line"),
            (
                private.clone(),
                "found a \"PRIVATE KEY\" block where a PUBLIC KEY block was expected (this is a private key",
            ),
            (
                public.replace("-----END PUBLIC KEY-----", ""),
                "no \"-----END PUBLIC KEY-----\" line",
            ),
            (
                public.replace("MCowBQYDK2Vw", "MCowBQYDK2V*"),
                "not valid base64",
            ),
            (
                OPENSSL_PUBLIC.replace("MCowBQYDK2VwAyEA", "MCowBQYDK2VwAyEB"),
                "not an Ed25519 key",
            ),
            (
                pem(PUBLIC_LABEL, &[1, 2, 3]),
                "not an Ed25519 key: expected a 44-byte",
            ),
            (
                format!(
                    "{FINGERPRINT_PREFIX}{}\n{OPENSSL_PUBLIC}",
                    KEY.public_key().id()
                ),
                "the fingerprint line says",
            ),
            ("x".repeat(20_000), "at most 16384"),
        ];
        for (text, expected) in cases {
            let err = PublicKey::from_pem(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
        let err = SigningKey::from_pem(&public).unwrap_err().to_string();
        assert!(err.contains("this is a public key"), "{err}");
        let err = SigningKey::from_pem(&pem(PRIVATE_LABEL, b"garbage"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("private key: not an Ed25519 key"), "{err}");
    }

    #[test]
    fn key_ids_are_sha256_hex_and_parse_back() {
        let id = KEY.public_key().id();
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(text.parse::<KeyId>().unwrap(), id);
        assert_eq!(text.to_uppercase().parse::<KeyId>().unwrap(), id);
        assert!("abc".parse::<KeyId>().is_err());
        assert!(format!("+{}", &text[1..]).parse::<KeyId>().is_err());
        assert!("é".repeat(32).parse::<KeyId>().is_err());
        // Known answer: SHA-256 of 32 zero bytes.
        assert_eq!(
            PublicKey([0; 32]).id().to_string(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn only_a_trusted_key_can_endorse_a_new_one() {
        let new = SigningKey::generate().unwrap();
        let endorsement = KEY.endorse(&new.public_key()).unwrap();
        let read = KeyEndorsement::from_json(&endorsement.to_json().unwrap()).unwrap();
        assert_eq!(
            accept_endorsed_key(&trusted(), &read).unwrap(),
            new.public_key()
        );

        // Endorsed by a key nobody trusts (say, one the collector made up).
        let forged = OTHER_KEY.endorse(&new.public_key()).unwrap();
        assert!(matches!(
            accept_endorsed_key(&trusted(), &forged),
            Err(VerifyError::UntrustedKey { .. })
        ));
        // A genuine endorsement with the new key swapped for another.
        let mut swapped = endorsement.clone();
        swapped.new_key = OTHER_KEY.public_key();
        assert!(matches!(
            accept_endorsed_key(&trusted(), &swapped),
            Err(VerifyError::BadEndorsement { .. })
        ));
        // The new key can then endorse the next one.
        let next = SigningKey::generate().unwrap();
        let chain = [KEY.public_key(), new.public_key()];
        let endorsement = new.endorse(&next.public_key()).unwrap();
        assert_eq!(
            accept_endorsed_key(&chain, &endorsement).unwrap(),
            next.public_key()
        );
    }

    #[test]
    fn catalog_versions_only_move_forward() {
        assert_eq!(accept_catalog_version(None, 1), Ok(VersionStep::First));
        assert_eq!(accept_catalog_version(Some(3), 3), Ok(VersionStep::Same));
        assert_eq!(accept_catalog_version(Some(3), 4), Ok(VersionStep::Forward));
        assert_eq!(
            accept_catalog_version(Some(3), u64::MAX),
            Ok(VersionStep::Forward)
        );
        let err = accept_catalog_version(Some(3), 2).unwrap_err();
        assert_eq!(err, RollbackError { current: 3, new: 2 });
        assert!(err.to_string().contains("refusing to roll back"));
        assert!(accept_catalog_version(Some(u64::MAX), 0).is_err());
    }

    #[test]
    fn the_digest_tells_catalogs_apart() {
        let a = small();
        let b = Catalog::new(a.version(), a.actions()[1..].to_vec()).unwrap();
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), small().digest());
        assert_eq!(a.digest().len(), 64);
    }

    #[test]
    fn the_canonical_encoding_is_as_documented() {
        // Changing the encoding invalidates every signed catalog in the field: this test spells
        // it out byte by byte so that it never changes by accident.
        fn string(out: &mut Vec<u8>, text: &str) {
            out.extend((text.len() as u64).to_be_bytes());
            out.extend(text.as_bytes());
        }
        let mut expected = b"lifeline/catalog-action/v1\0".to_vec();
        expected.extend(2u64.to_be_bytes());
        for text in ["kill-process", "Stop a process", "SIGTERM.", "/bin/kill"] {
            string(&mut expected, text);
        }
        expected.extend(2u64.to_be_bytes());
        string(&mut expected, "-TERM");
        string(&mut expected, "{pid}");
        expected.extend(1u64.to_be_bytes());
        string(&mut expected, "pid");
        string(&mut expected, "pid");
        expected.extend(10u64.to_be_bytes());
        expected.extend(4096u64.to_be_bytes());
        string(&mut expected, "medium");
        expected.push(0);
        expected.extend(1u64.to_be_bytes());
        string(&mut expected, "linux");
        expected.extend(0u64.to_be_bytes()); // recheck: none

        let catalog = small();
        let kill = catalog.action("kill-process").unwrap();
        assert_eq!(kill.canonical_bytes(2), expected);
        assert_eq!(
            hex(digest::digest(&digest::SHA256, &expected).as_ref()),
            "431087de4f40a90c18b131d815d22768cff68f1b268b41824badd2b837820cc5"
        );

        // A `service` parameter is its own type name, so widening it to `unit` breaks the
        // signature: `..., "unit", "service", <next field>`.
        let example = Catalog::from_toml(EXAMPLE).unwrap();
        let restart = example.action("restart-unit").unwrap().canonical_bytes(1);
        let mut param = Vec::new();
        string(&mut param, "unit");
        string(&mut param, "service");
        param.extend(120u64.to_be_bytes()); // timeout_secs follows directly
        assert!(
            restart.windows(param.len()).any(|w| w == param.as_slice()),
            "the service parameter is encoded as documented"
        );

        let whole = catalog.canonical_bytes();
        let mut prefix = b"lifeline/catalog/v1\0".to_vec();
        prefix.extend(2u64.to_be_bytes());
        prefix.extend(3u64.to_be_bytes());
        assert!(whole.starts_with(&prefix));
        let unit_logs =
            &catalog.action("unit-logs").unwrap().canonical_bytes(2)[ACTION_TAG.len() + 8..];
        let mut last = (unit_logs.len() as u64).to_be_bytes().to_vec();
        last.extend(unit_logs);
        assert!(
            whole.ends_with(&last),
            "actions are encoded sorted by id, length-prefixed"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_change_to_the_canonical_bytes_breaks_verification(
            which in 0usize..4,
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let catalog = small();
            let key = KEY.public_key();
            let (bytes, signature) = if which == 3 {
                let bytes = catalog.canonical_bytes();
                let signature = KEY.sign(&bytes).unwrap();
                (bytes, signature)
            } else {
                let action = &catalog.actions()[which];
                let bytes = action.canonical_bytes(catalog.version());
                (bytes.clone(), KEY.sign(&bytes).unwrap())
            };
            prop_assert!(key.verifies(&bytes, &signature));

            let i = at.index(bytes.len());
            let mut flipped = bytes.clone();
            flipped[i] ^= flip;
            prop_assert!(!key.verifies(&flipped, &signature));

            prop_assert!(!key.verifies(&bytes[..i], &signature));
            let mut longer = bytes.clone();
            longer.insert(i, flip);
            prop_assert!(!key.verifies(&longer, &signature));

            let mut bad_signature = signature;
            bad_signature.0[i % SIGNATURE_LEN] ^= flip;
            prop_assert!(!key.verifies(&bytes, &bad_signature));
        }

        #[test]
        fn signed_catalog_parsing_never_panics(text in any::<String>()) {
            let _ = SignedCatalog::from_json(&text);
        }
    }
}
