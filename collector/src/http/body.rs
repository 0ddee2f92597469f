//! Reading request bodies: content type, compression and size limits, then JSON.
//!
//! Limits apply twice for compressed bodies: to the bytes on the wire and to what they inflate
//! to, checked while streaming so a zstd bomb is stopped at the limit instead of eating memory.

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

/// Parses a decoded body as one JSON value of type `T` and nothing after it; the error names
/// where in the document it went wrong. Public for the fuzz targets in `fuzz/`.
pub fn parse_json<T: DeserializeOwned>(decoded: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(decoded);
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
