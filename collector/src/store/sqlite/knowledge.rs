//! SQLite's expansion of the knowledge queries (`store/knowledge_sql.rs`), and its own tests.

use lifeline_shared::findings::Finding;
use lifeline_shared::v1::api::{Priority, TicketStatus, Tier};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;

use super::{
    from_millis, millis, opt_from_millis, parse, run_record, ticket_summary, to_i64, to_u64,
};
use crate::knowledge::{Candidate, fingerprint_keys, like_pattern};
use crate::reports::TicketFacts;
use crate::store::{
    KB_CANDIDATES, RecurringRecord, RunRecord, SimilarAnswer, SimilarRecord, StoreError,
    WindowFacts,
};

crate::store::knowledge_sql::knowledge_queries!(SqlitePool, SqliteConnection);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use lifeline_shared::findings::Severity;
    use lifeline_shared::v1::api::{MachineStatus, TicketUpdate, Urgency};

    use super::super::SqliteStore;
    use super::*;
    use crate::secret::{Secret, TokenHash};
    use crate::store::{Enrollment, Store, TicketRecord};

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    async fn store_with_machine(path: &std::path::Path) -> SqliteStore {
        let store = SqliteStore::open(path).await.unwrap();
        let token = TokenHash::of(&Secret::new("lle_x"));
        store
            .add_enrollment_token(&token, None, None, at(1_000))
            .await
            .unwrap();
        let enrollment = Enrollment {
            machine_id: "m1".into(),
            hostname: "ws-1".into(),
            cert_fingerprint: "fp1".into(),
            cert_not_after: at(2_000_000_000),
            initial_status: MachineStatus::Active,
        };
        store.enroll(&token, &enrollment, at(1_000)).await.unwrap();
        store
    }

    fn finding(id: &str, severity: Severity, subject: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            severity,
            title: id.into(),
            evidence: String::new(),
            subject: subject.map(str::to_owned),
            suggested_action: None,
        }
    }

    fn ticket(key: &str, description: &str, findings: Vec<Finding>) -> TicketRecord {
        TicketRecord {
            machine_id: "m1".into(),
            idempotency_key: key.into(),
            description: description.into(),
            urgency: Urgency::Normal,
            os_user: None,
            findings,
            worst_finding: None,
            snapshot_json: None,
            screenshot_png: None,
        }
    }

    async fn resolve(store: &SqliteStore, number: u64, note: &str, secs: i64) {
        let update = TicketUpdate {
            status: Some(TicketStatus::Resolved),
            ..TicketUpdate::default()
        };
        store
            .update_ticket(number, &update, "bob", at(secs))
            .await
            .unwrap();
        assert!(
            store
                .set_resolution_note(number, "tina", note, at(secs))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn tickets_stored_before_fingerprints_get_them_once_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = store_with_machine(&path).await;
        let findings = vec![
            finding("disk.full", Severity::Critical, Some("/")),
            finding("software.updates_pending", Severity::Info, None),
        ];
        store
            .record_ticket(&ticket("k1", "full", findings), at(1_100))
            .await
            .unwrap();
        let detail = store.ticket(1, at(100_000)).await.unwrap().unwrap();
        assert_eq!(detail.fingerprints, ["disk.full:/"]);
        // What a database from before the migration looks like after it.
        sqlx::query("DELETE FROM ticket_fingerprints")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO fingerprint_backfill (ticket_number) VALUES (1)")
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(
            store
                .ticket(1, at(100_000))
                .await
                .unwrap()
                .unwrap()
                .fingerprints
                .is_empty()
        );

        let reopened = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            reopened
                .ticket(1, at(100_000))
                .await
                .unwrap()
                .unwrap()
                .fingerprints,
            ["disk.full:/"]
        );
        let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM fingerprint_backfill")
            .fetch_one(&reopened.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(left, 0);
        assert_eq!(backfill_fingerprints(&reopened.pool).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn knowledge_words_are_literal_text_not_like_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_machine(&dir.path().join("db.sqlite")).await;
        for key in ["k1", "k2", "k3"] {
            store
                .record_ticket(&ticket(key, "Disk trouble", vec![]), at(1_100))
                .await
                .unwrap();
        }
        resolve(&store, 1, "Disk was 100% full; removed old ISOs", 1_200).await;
        resolve(&store, 2, "Replaced the cable", 1_300).await;
        // #3 stays open: never a candidate.
        let numbers = |c: Vec<Candidate>| c.iter().map(|c| c.number).collect::<Vec<_>>();
        let words = |w: &[&str]| w.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            numbers(store.knowledge_candidates(&words(&["disk"])).await.unwrap()),
            [2, 1],
            "newest resolution first; the description matches for #2"
        );
        assert_eq!(
            numbers(store.knowledge_candidates(&words(&["%"])).await.unwrap()),
            [1]
        );
        assert_eq!(
            numbers(store.knowledge_candidates(&words(&["_"])).await.unwrap()),
            [] as [u64; 0]
        );
        assert_eq!(
            numbers(
                store
                    .knowledge_candidates(&words(&["100%", "isos", "disk"]))
                    .await
                    .unwrap()
            ),
            [1]
        );
        let detail = store.ticket(1, at(100_000)).await.unwrap().unwrap();
        assert_eq!(
            detail.resolution_note.as_deref(),
            Some("Disk was 100% full; removed old ISOs")
        );
        let last = detail.comments.last().unwrap();
        assert_eq!(last.author, "tina");
        assert!(!last.public);
        assert!(
            !store
                .set_resolution_note(9, "tina", "x", at(1_400))
                .await
                .unwrap()
        );
    }
}
