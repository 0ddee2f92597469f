//! The audit log for admins: listing with filters and paging, and the collector's own check of
//! the hash chain (for the web console; `audit verify` in the CLI checks client-side).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use lifeline_shared::v1::api::paths;
use lifeline_shared::v1::audit::{
    AuditEntry, ChainReport, ChainVerifier, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, is_hash,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::error::ApiError;
use super::extract::Query;
use crate::store::AuditFilter;

/// Longest actor name accepted in a filter.
pub(crate) const ACTOR_MAX_LEN: usize = 256;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::AUDIT, get(list))
        .route(paths::AUDIT_VERIFY, get(verify))
}

/// `?since=&actor=&after_seq=&limit=` as sent; each value is checked with its own message.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    since: Option<String>,
    actor: Option<String>,
    after_seq: Option<String>,
    limit: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let since = self
            .since
            .as_deref()
            .map(|text| {
                OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "since must be an RFC 3339 time such as 2026-11-01T00:00:00Z, not {text:?}"
                    ))
                })
            })
            .transpose()?;
        let actor = match self.actor.as_deref() {
            Some(actor) if actor.is_empty() || actor.chars().count() > ACTOR_MAX_LEN => {
                return Err(ApiError::BadRequest(format!(
                    "actor must be 1 to {ACTOR_MAX_LEN} characters"
                )));
            }
            other => other.map(str::to_owned),
        };
        let after_seq = self
            .after_seq
            .as_deref()
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "after_seq must be a whole number (the last seq of the previous page), \
                         not {text:?}"
                    ))
                })
            })
            .transpose()?;
        let limit = match self.limit.as_deref() {
            None => LIST_LIMIT_DEFAULT,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=LIST_LIMIT_MAX).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "limit must be a whole number from 1 to {LIST_LIMIT_MAX}, not {text:?}"
                    ))
                })?,
        };
        Ok(AuditFilter {
            since,
            actor,
            after_seq,
            limit,
        })
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    Ok(Json(state.store.list_audit(&query.filter()?).await?))
}

/// `?head=HASH`: a head hash kept from an earlier verification.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    head: Option<String>,
}

pub(crate) async fn verify(
    State(state): State<AppState>,
    Query(query): Query<VerifyQuery>,
) -> Result<Json<ChainReport>, ApiError> {
    if let Some(head) = &query.head
        && !is_hash(head)
    {
        return Err(ApiError::BadRequest(
            "head must be an audit hash: 64 lowercase hexadecimal digits".to_owned(),
        ));
    }
    let mut verifier = ChainVerifier::new(query.head.as_deref());
    let mut read = 0u64;
    let mut after_seq = None;
    // Page by page, so memory stays bounded however long the log is.
    loop {
        let page = state
            .store
            .list_audit(&AuditFilter {
                since: None,
                actor: None,
                after_seq,
                limit: LIST_LIMIT_MAX,
            })
            .await?;
        for entry in &page {
            verifier.push(entry);
            read += 1;
        }
        let last = page.last().map(|e| e.seq);
        if verifier.is_decided() || page.len() < LIST_LIMIT_MAX as usize || last <= after_seq {
            break;
        }
        after_seq = last;
    }
    Ok(Json(ChainReport::new(verifier.finish(), read)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SystemClock;
    use crate::pki::CertificateAuthority;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewAuditEntry, Store};

    fn query(pairs: &[(&str, &str)]) -> ListQuery {
        let mut q = ListQuery::default();
        for (key, value) in pairs {
            let value = Some((*value).to_owned());
            match *key {
                "since" => q.since = value,
                "actor" => q.actor = value,
                "after_seq" => q.after_seq = value,
                "limit" => q.limit = value,
                _ => unreachable!(),
            }
        }
        q
    }

    fn bad_request(q: ListQuery) -> String {
        match q.filter() {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn list_queries_are_parsed_and_bounded() {
        let f = query(&[
            ("since", "2026-11-01T00:00:00Z"),
            ("actor", "admin"),
            ("after_seq", "40"),
            ("limit", "1000"),
        ])
        .filter()
        .unwrap();
        assert_eq!(f.since.unwrap().unix_timestamp(), 1_793_491_200);
        assert_eq!(f.actor.as_deref(), Some("admin"));
        assert_eq!((f.after_seq, f.limit), (Some(40), 1000));
        assert_eq!(query(&[]).filter().unwrap().limit, LIST_LIMIT_DEFAULT);

        assert!(bad_request(query(&[("since", "yesterday")])).contains("RFC 3339"));
        assert!(bad_request(query(&[("limit", "0")])).contains("from 1 to 1000"));
        assert!(bad_request(query(&[("limit", "1001")])).contains("from 1 to 1000"));
        assert!(bad_request(query(&[("after_seq", "-1")])).contains("after_seq"));
        assert!(bad_request(query(&[("actor", "")])).contains("actor"));
    }

    async fn state(dir: &tempfile::TempDir, entries: u64) -> AppState {
        let store = SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        for i in 0..entries {
            store
                .append_audit(
                    &NewAuditEntry {
                        actor: "admin".into(),
                        action: "user.add".into(),
                        subject: None,
                        detail: serde_json::json!({ "i": i }),
                    },
                    now,
                )
                .await
                .unwrap();
        }
        let (ca, _) = CertificateAuthority::generate(now, &["localhost".to_owned()]).unwrap();
        AppState {
            store: Arc::new(store) as Arc<dyn Store>,
            ca: Arc::new(ca),
            clock: Arc::new(SystemClock),
            metrics: None,
            enrollment: Default::default(),
            wakeups: Default::default(),
            integrations: Default::default(),
        }
    }

    #[tokio::test]
    async fn verify_pages_through_a_log_longer_than_one_page() {
        let dir = tempfile::tempdir().unwrap();
        let n = u64::from(LIST_LIMIT_MAX) + 5;
        let state = state(&dir, n).await;
        let Json(report) = verify(State(state.clone()), Query(VerifyQuery::default()))
            .await
            .unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(report.entries, n);
        let head = report.head.clone().unwrap();
        assert!(report.message.ends_with(&head));

        let Json(again) = verify(
            State(state.clone()),
            Query(VerifyQuery {
                head: Some(head.clone()),
            }),
        )
        .await
        .unwrap();
        assert!(again.intact);
        let Json(missing) = verify(
            State(state.clone()),
            Query(VerifyQuery {
                head: Some("ab".repeat(32)),
            }),
        )
        .await
        .unwrap();
        assert!(!missing.intact);
        assert!(
            matches!(
                missing.problem,
                Some(lifeline_shared::v1::audit::ChainBreak::HeadNotFound { .. })
            ),
            "{missing:?}"
        );
        let bad = verify(
            State(state),
            Query(VerifyQuery {
                head: Some("nope".into()),
            }),
        )
        .await
        .unwrap_err();
        assert!(matches!(bad, ApiError::BadRequest(_)), "{bad:?}");
    }

    #[tokio::test]
    async fn list_returns_a_bounded_page_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir, 7).await;
        let Json(page) = list(
            State(state),
            Query(query(&[("after_seq", "2"), ("limit", "3")])),
        )
        .await
        .unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    }
}
