//! `Path` and `Query` extractors whose refusal is [`ApiError`], so a malformed path or query
//! value gets the documented `{"error": "..."}` body like every other refusal, not axum's text.
//!
//! Handlers of `/api/v1` use these instead of axum's own; JSON bodies go through
//! [`super::body::read_json`], which answers with `ApiError` too.

use axum::extract::FromRequestParts;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Path parameters, deserialized like `axum::extract::Path`.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

/// The query string, deserialized like `axum::extract::Query`.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_error(rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

/// What a type name from serde means to a caller.
fn describe(expected_type: &str) -> &'static str {
    match expected_type {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "whole number",
        "bool" => "true or false",
        _ => "valid value",
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    if rejection.status().is_server_error() {
        // A route declared with the wrong parameter type: our bug, not the caller's.
        return ApiError::internal(rejection);
    }
    if let PathRejection::FailedToDeserializePathParams(failed) = &rejection {
        match failed.kind() {
            ErrorKind::ParseErrorAtKey {
                key,
                value,
                expected_type,
            } => {
                return ApiError::BadRequest(format!(
                    "path parameter {key} = {value:?} is not a {}",
                    describe(expected_type)
                ));
            }
            ErrorKind::ParseError {
                value,
                expected_type,
            } => {
                return ApiError::BadRequest(format!(
                    "path parameter {value:?} is not a {}",
                    describe(expected_type)
                ));
            }
            _ => {}
        }
    }
    ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
}

fn query_error(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let text = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    ApiError::BadRequest(format!("invalid query: {text}"))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use lifeline_shared::v1::api::ErrorBody;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Limit {
        #[serde(default)]
        limit: Option<u32>,
    }

    async fn number(Path(n): Path<u64>) -> String {
        n.to_string()
    }

    async fn limit(Query(q): Query<Limit>) -> String {
        format!("{:?}", q.limit)
    }

    async fn call(uri: &str) -> (StatusCode, Vec<u8>) {
        let app = Router::new()
            .route("/t/{n}", get(number))
            .route("/q", get(limit));
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, body.to_vec())
    }

    async fn error_of(uri: &str) -> String {
        let (status, body) = call(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        let error: ErrorBody = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{uri}: not the JSON error ({e}): {body:?}"));
        error.error
    }

    #[tokio::test]
    async fn malformed_path_values_get_the_json_error_naming_the_parameter() {
        assert_eq!(call("/t/12").await, (StatusCode::OK, b"12".to_vec()));
        for bad in ["abc", "-1", "1.5", "18446744073709551616"] {
            let error = error_of(&format!("/t/{bad}")).await;
            assert!(error.contains("path parameter"), "{error}");
            assert!(error.contains(bad), "{error}");
            assert!(error.contains("whole number"), "{error}");
        }
    }

    #[tokio::test]
    async fn malformed_query_values_get_the_json_error() {
        assert_eq!(
            call("/q?limit=5").await,
            (StatusCode::OK, b"Some(5)".to_vec())
        );
        assert!(error_of("/q?limit=x").await.contains("limit"));
        assert!(error_of("/q?other=1").await.contains("other"));
    }
}
