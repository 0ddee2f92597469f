//! Cross-site request forgery defences for console forms.
//!
//! Two independent checks on every console POST, before any handler runs:
//! - the form carries the session's CSRF token in the hidden field [`FIELD`] (a random 256-bit
//!   value made at sign-in, compared in constant time);
//! - the browser's `Sec-Fetch-Site` and `Origin` headers, when sent, say this collector's own
//!   pages sent it ([`same_origin`]).
//!
//! The session cookie is also `SameSite=Strict`, and a cookie never authenticates an API call
//! (the API only takes bearer tokens and client certificates), so these checks guard the
//! console's own forms.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::PageError;
use crate::secret::{RandomError, hex, random_bytes};

/// Name of the hidden form field that carries the token.
pub const FIELD: &str = "csrf";
/// Largest console form body.
const FORM_LIMIT: usize = 64 * 1024;

/// A fresh token for a new session.
pub fn new_token() -> Result<String, RandomError> {
    Ok(hex(&random_bytes::<32>()?))
}

/// Whether the request comes from a page of this collector, as far as the browser says:
/// `Sec-Fetch-Site`, when sent, must be `same-origin` (or `none`: typed by the user), and an
/// `Origin` other than `null` must be `https://` plus the host the request was sent to. (Our
/// `Referrer-Policy: no-referrer` makes browsers send `Origin: null` on form posts, so the
/// fetch metadata header is the one that speaks for modern browsers.)
pub fn same_origin(request_authority: Option<&str>, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if origin.as_bytes() == b"null" {
        return true;
    }
    let Some(authority) = request_authority else {
        return false;
    };
    origin
        .to_str()
        .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("https://{authority}")))
}

/// The host (and port) a request was sent to: the URI's authority (HTTP/2) or `Host`.
pub fn authority(request: &Request) -> Option<String> {
    request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
}

fn refused(message: &str) -> Response {
    PageError::new(StatusCode::FORBIDDEN, message).into_response()
}

/// Checks a console POST against the session's token. Returns the request (with its body
/// restored for the handler) or the refusal.
pub async fn check(expected: &str, request: Request) -> Result<Request, Response> {
    if !same_origin(authority(&request).as_deref(), request.headers()) {
        return Err(refused(
            "this form was sent from another site; it was refused",
        ));
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response()
    })?;
    let probe = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    let fields = match axum::Form::<Vec<(String, String)>>::from_request(probe, &()).await {
        Ok(axum::Form(fields)) => fields,
        Err(_) => Vec::new(),
    };
    let presented = fields
        .iter()
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.as_str());
    let valid = presented.is_some_and(|token| {
        !expected.is_empty() && bool::from(token.as_bytes().ct_eq(expected.as_bytes()))
    });
    if !valid {
        return Err(refused(
            "this form has no valid CSRF token (it may be from an old page or another site): \
             reload the page and try again",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origin_must_name_this_host_when_present() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(Some("127.0.0.1:8443"), &headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443"),
        );
        assert!(same_origin(Some("127.0.0.1:8443"), &headers));
        assert!(!same_origin(Some("127.0.0.1:9999"), &headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(Some("127.0.0.1:8443"), &headers));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(Some("127.0.0.1:8443"), &headers));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(Some("127.0.0.1:8443"), &headers));
    }

    #[tokio::test]
    async fn a_form_without_the_token_is_refused_and_with_it_passes_intact() {
        let form = |body: &'static str| {
            Request::builder()
                .method("POST")
                .uri("/tickets/1/comment")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap()
        };
        let missing = check("abc", form("body=hi")).await.unwrap_err();
        assert_eq!(missing.status(), StatusCode::FORBIDDEN);
        let wrong = check("abc", form("body=hi&csrf=abd")).await.unwrap_err();
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
        let ok = check("abc", form("body=hi&csrf=abc")).await.unwrap();
        let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"body=hi&csrf=abc");
    }
}
