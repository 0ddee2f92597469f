//! Reading request bodies: content type, compression and size limits, then JSON.
//!
//! Limits apply twice for compressed bodies: to the bytes on the wire and to what they inflate
//! to, checked while streaming so a zstd bomb is stopped at the limit instead of eating memory.

use std::borrow::Cow;
use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Size limits for one kind of request body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes accepted on the wire.
    pub wire: usize,
    /// Bytes accepted after decompression.
    pub decoded: usize,
}

impl BodyLimits {
    /// Small JSON bodies from technicians and admins.
    pub const SMALL: BodyLimits = BodyLimits {
        wire: 64 * 1024,
        decoded: 64 * 1024,
    };
    /// A signed action catalog (`catalog publish`).
    pub const CATALOG: BodyLimits = BodyLimits {
        wire: 16 * 1024 * 1024,
        decoded: 16 * 1024 * 1024,
    };
    /// A ticket with its snapshot.
    pub const TICKET: BodyLimits = BodyLimits {
        wire: 8 * 1024 * 1024,
        decoded: 32 * 1024 * 1024,
    };
    /// A work result: a snapshot, or a run's output with its recheck snapshots. The agent
    /// fits what it sends into the same shared limits.
    pub const WORK_RESULT: BodyLimits = BodyLimits {
        wire: lifeline_shared::v1::work::WORK_RESULT_MAX_WIRE_BYTES,
        decoded: lifeline_shared::v1::work::WORK_RESULT_MAX_BYTES,
    };
}

/// How much of an oversize body is read and thrown away before the connection is dropped.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a JSON body (optionally `Content-Encoding: zstd`) within `limits`.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<T, ApiError> {
    check_json_content_type(headers)?;
    let encoding = content_encoding(headers)?;
    let wire = tokio::time::timeout(BODY_TIMEOUT, read_limited(body, limits.wire))
        .await
        .map_err(|_| ApiError::Timeout)??;
    let decoded = match encoding {
        Encoding::Identity => wire,
        Encoding::Zstd => tokio::task::spawn_blocking(move || inflate_zstd(&wire, limits.decoded))
            .await
            .map_err(ApiError::internal)??,
    };
    parse_json(&decoded)
}

/// Parses a decoded body as one JSON object of type `T` and nothing after it; the error names
/// where in the document it went wrong. Public for the fuzz targets in `fuzz/`.
pub fn parse_json<T: DeserializeOwned>(decoded: &[u8]) -> Result<T, ApiError> {
    require_object(decoded)?;
    let decoded = whole_numbers(decoded);
    let mut deserializer = serde_json::Deserializer::from_slice(&decoded);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::BadRequest(format!("invalid JSON body: {}", e.inner()))
        } else {
            ApiError::BadRequest(format!("invalid JSON body at {path}: {}", e.inner()))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// Every JSON body of this API is an object. serde's derived structs also accept an array of the
/// field values (`[null, null]` for two optional fields), which the OpenAPI document does not
/// allow, so anything but an object is refused here, by its first byte: no second parse.
fn require_object(json: &[u8]) -> Result<(), ApiError> {
    let first = json
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    match first {
        Some(b'{') => Ok(()),
        None => Err(ApiError::BadRequest(
            "invalid JSON body: the body is empty; expected a JSON object".to_owned(),
        )),
        Some(_) => Err(ApiError::BadRequest(
            "invalid JSON body: expected a JSON object".to_owned(),
        )),
    }
}

/// Whole numbers written as floats (`343.0`, `1e3`) rewritten as integers. JSON Schema counts
/// them as integers (so the OpenAPI document admits them wherever it says `integer`), but serde
/// refuses a float for an integer field. One pass over the bytes, outside strings; a copy only
/// when there is something to rewrite. Float fields read the rewritten integers the same.
fn whole_numbers(json: &[u8]) -> Cow<'_, [u8]> {
    /// Past this magnitude a float no longer spells one integer.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let token = &json[start..i];
                if !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    continue;
                }
                let whole = std::str::from_utf8(token)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .filter(|v| v.fract() == 0.0 && v.abs() <= EXACT);
                if let Some(value) = whole {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(json.len()));
                    out.extend_from_slice(&json[copied..start]);
                    // Exact: |value| <= 2^53 and whole.
                    #[allow(clippy::cast_possible_truncation)]
                    out.extend_from_slice((value as i64).to_string().as_bytes());
                    copied = i;
                }
            }
            _ => i += 1,
        }
    }
    match out {
        Some(mut out) => {
            out.extend_from_slice(&json[copied.min(json.len())..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(json),
    }
}

/// Reads at most `limit` bytes. A body over the limit is still drained (up to [`DRAIN_LIMIT`])
/// so that the client, which is usually still sending, gets to read our 413 answer instead of a
/// reset connection.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let too_large = || ApiError::PayloadTooLarge(format!("request body exceeds {limit} bytes"));
    let mut body = body;
    let mut data = Vec::new();
    let mut drained: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if drained > 0 || data.len() + chunk.len() > limit {
            drained = drained.saturating_add(chunk.len());
            if drained > DRAIN_LIMIT {
                return Err(too_large());
            }
            continue;
        }
        data.extend_from_slice(&chunk);
    }
    if drained > 0 {
        return Err(too_large());
    }
    Ok(data)
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else if value.is_empty() {
        Err(ApiError::UnsupportedMediaType(
            "missing Content-Type: expected application/json".to_owned(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {value:?} is not supported: expected application/json"
        )))
    }
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Identity,
    Zstd,
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("identity") => Ok(Encoding::Identity),
        Some("zstd") => Ok(Encoding::Zstd),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported: expected zstd or none"
        ))),
    }
}

/// Inflates `compressed`, refusing to produce more than `limit` bytes. Public for the fuzz
/// targets in `fuzz/`.
pub fn inflate_zstd(compressed: &[u8], limit: usize) -> Result<Vec<u8>, ApiError> {
    let decoder = zstd::stream::read::Decoder::new(compressed)
        .map_err(|e| ApiError::BadRequest(format!("invalid zstd body: {e}")))?;
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("invalid zstd body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "decompressed request body exceeds {limit} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let bomb = zstd::encode_all(&zeros[..], 19).unwrap();
        assert!(bomb.len() < 4096);
        assert!(matches!(
            inflate_zstd(&bomb, 1024 * 1024),
            Err(ApiError::PayloadTooLarge(_))
        ));
        assert_eq!(inflate_zstd(&bomb, zeros.len()).unwrap().len(), zeros.len());
    }

    #[test]
    fn garbage_is_not_zstd() {
        assert!(matches!(
            inflate_zstd(b"not zstd at all", 1024),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn only_objects_are_json_bodies() {
        assert!(require_object(b" \r\n\t{\"a\": 1}").is_ok());
        for bad in [&b"[null, null]"[..], b"null", b"42", b"\"x\"", b"", b"  \n"] {
            let Err(ApiError::BadRequest(message)) = require_object(bad) else {
                panic!("{:?} was accepted", String::from_utf8_lossy(bad));
            };
            assert!(message.contains("JSON object"), "{message}");
        }
    }

    #[test]
    fn whole_floats_become_integers_outside_strings_only() {
        let rewritten =
            |json: &str| String::from_utf8(whole_numbers(json.as_bytes()).into_owned()).unwrap();
        assert_eq!(
            rewritten(r#"{"a": 343.0, "b": -2.00, "c": 1e3, "d": 1.5, "e": "7.0", "f": [0.0]}"#),
            r#"{"a": 343, "b": -2, "c": 1000, "d": 1.5, "e": "7.0", "f": [0]}"#
        );
        let escaped = r#"{"s": "a \"1.0\" b", "n": 12}"#;
        assert!(matches!(
            whole_numbers(escaped.as_bytes()),
            Cow::Borrowed(_)
        ));
        assert_eq!(rewritten(r#"{"big": 1e300}"#), r#"{"big": 1e300}"#);
        let token: lifeline_shared::v1::api::NewEnrollmentToken =
            serde_json::from_slice(&whole_numbers(br#"{"max_uses": 343.0}"#)).unwrap();
        assert_eq!(token.max_uses, Some(343));
    }

    #[test]
    fn content_type_must_be_json() {
        let mut headers = HeaderMap::new();
        assert!(check_json_content_type(&headers).is_err());
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(check_json_content_type(&headers).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(check_json_content_type(&headers).is_ok());
    }
}
