//! Secrets in memory: bearer tokens and their hashes, never printed by `Debug`.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret string (a token as typed or generated). `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must show or send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which kind of credential a token is; the prefix makes a pasted token self-describing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A technician's or admin's bearer token.
    User,
    /// A token that lets a machine enroll.
    Enrollment,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::User => "llu_",
            TokenKind::Enrollment => "lle_",
        }
    }

    /// The kind a presented token claims by its prefix.
    pub fn of(token: &str) -> Option<TokenKind> {
        [TokenKind::User, TokenKind::Enrollment]
            .into_iter()
            .find(|kind| token.starts_with(kind.prefix()))
    }
}

/// Random bytes from the operating system's generator (through aws-lc).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(bytes)
}

/// The system random generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// A fresh token: prefix plus 32 random bytes in hex.
pub fn generate_token(kind: TokenKind) -> Result<Secret, RandomError> {
    let bytes = random_bytes::<32>()?;
    Ok(Secret(format!("{}{}", kind.prefix(), hex(&bytes))))
}

/// Characters of a token kept in the clear to name it: the 4-character kind prefix and 8 hex
/// digits (32 of its 256 random bits), enough to tell tokens apart in a list, far too few to
/// guess the rest.
pub const TOKEN_PREFIX_LEN: usize = 12;

/// The first [`TOKEN_PREFIX_LEN`] characters of a generated token, which name it.
pub fn token_prefix(token: &Secret) -> String {
    token.0.chars().take(TOKEN_PREFIX_LEN).collect()
}

/// The SHA-256 of a token, hex: what the database stores instead of the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &Secret) -> TokenHash {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.0.as_bytes());
        TokenHash(hex(digest.as_ref()))
    }

    pub fn from_stored(hex: String) -> TokenHash {
        TokenHash(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so response timing tells nothing about how much matched.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(***)")
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// SHA-256 fingerprint (hex) of a DER certificate: how the database names a client certificate.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let token = generate_token(TokenKind::User).unwrap();
        assert_eq!(format!("{token:?}"), "***");
        assert!(!format!("{:?}", TokenHash::of(&token)).contains(TokenHash::of(&token).as_str()));
    }

    #[test]
    fn tokens_carry_their_kind_and_hash_stably() {
        let token = generate_token(TokenKind::Enrollment).unwrap();
        assert_eq!(TokenKind::of(token.expose()), Some(TokenKind::Enrollment));
        assert_eq!(token.expose().len(), 4 + 64);
        assert!(TokenHash::of(&token).matches(&TokenHash::of(&token.clone())));
        let other = generate_token(TokenKind::Enrollment).unwrap();
        assert!(!TokenHash::of(&token).matches(&TokenHash::of(&other)));
        assert_eq!(TokenKind::of("Bearer x"), None);
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
