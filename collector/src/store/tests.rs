//! The store's behaviour, checked once and run against every backend: each scenario is an
//! `async fn(&Backend)` and [`on_every_backend!`] makes one test of it per database
//! (`store::tests::sqlite::NAME`, `store::tests::postgres::NAME`). The PostgreSQL tests start a
//! throwaway cluster each ([`crate::testing::PgCluster`]) and fail, never skip, without
//! PostgreSQL. At the end: what only PostgreSQL promises, several collectors on one database.

use std::sync::Arc;
use std::time::Duration;

use lifeline_shared::findings::{Finding, Severity};
use lifeline_shared::v1::api::{
    MachineStatus, Priority, Role, TicketFilter, TicketSort, TicketStatus, TicketSummary,
    TicketUpdate, Tier, Urgency,
};
use lifeline_shared::v1::audit::{self, ChainVerifier, UNREADABLE_PREFIX};
use lifeline_shared::v1::integrations::{DeliveryKind, DeliveryState};
use lifeline_shared::v1::snapshot::Snapshot;
use lifeline_shared::v1::work::WorkState;
use sqlx::Row;
use time::OffsetDateTime;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::*;
use crate::secret::{Secret, TokenHash};
use crate::testing::PgCluster;

/// A store under test, with a second connection for what the store itself never does
/// (peeking at rows, tampering with them) and whatever keeps its database alive.
pub(super) struct Backend {
    store: Arc<dyn Store>,
    raw: Raw,
    keep: Keep,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

enum Keep {
    Dir(tempfile::TempDir),
    Cluster(PgCluster),
}

impl std::ops::Deref for Backend {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        self.store.as_ref()
    }
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = SqliteStore::open(&path).await.unwrap();
        let raw = sqlx::SqlitePool::connect_with(
            sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
        )
        .await
        .unwrap();
        Backend {
            store: Arc::new(store),
            raw: Raw::Sqlite(raw),
            keep: Keep::Dir(dir),
        }
    }

    async fn postgres() -> Backend {
        let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
        let url = cluster.url("postgres");
        let store = PostgresStore::open(&url).await.unwrap();
        let raw = sqlx::PgPool::connect(&url).await.unwrap();
        Backend {
            store: Arc::new(store),
            raw: Raw::Postgres(raw),
            keep: Keep::Cluster(cluster),
        }
    }

    /// Runs a statement behind the store's back, in each backend's dialect.
    async fn execute(&self, sqlite: &'static str, postgres: &'static str) {
        match &self.raw {
            Raw::Sqlite(pool) => sqlx::raw_sql(sqlite).execute(pool).await.map(drop),
            Raw::Postgres(pool) => sqlx::raw_sql(postgres).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    /// Another store on the same database, as the collector opens it at its next start.
    async fn reopen(&self) -> Arc<dyn Store> {
        match &self.keep {
            Keep::Dir(dir) => Arc::new(
                SqliteStore::open(&dir.path().join("db.sqlite"))
                    .await
                    .unwrap(),
            ),
            Keep::Cluster(cluster) => {
                Arc::new(PostgresStore::open(&cluster.url("postgres")).await.unwrap())
            }
        }
    }

    /// One 64-bit integer read behind the store's back (the same SQL on both).
    async fn scalar(&self, sql: &'static str) -> i64 {
        match &self.raw {
            Raw::Sqlite(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().get(0),
            Raw::Postgres(pool) => sqlx::query(sql).fetch_one(pool).await.unwrap().get(0),
        }
    }
}

/// One `#[tokio::test]` per backend for each scenario.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario(&super::Backend::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    super::$scenario(&super::Backend::postgres().await).await;
                }
            )*
        }
    };
}

on_every_backend!(
    a_screenshot_is_stored_with_its_ticket,
    enrollment_token_expires_and_runs_out_of_uses,
    enrollment_tokens_list_by_prefix_and_a_revoked_one_enrolls_nobody,
    a_user_remembers_who_created_the_account,
    the_queue_filters_searches_and_sorts,
    same_idempotency_key_gives_the_same_ticket_and_numbers_are_sequential,
    concurrent_reports_get_distinct_numbers_and_retries_share_one,
    pending_machine_is_approved_once_and_revoked_stays_revoked,
    a_machine_sees_its_own_tickets_with_public_comments_only,
    resolving_sets_and_reopening_clears_resolved_at,
    work_is_delivered_once_expires_lazily_and_only_its_machine_may_answer,
    telemetry_is_written_within_a_flush_interval_and_readers_see_it_at_once,
    an_identity_never_outlives_a_revocation_or_a_new_certificate,
    vitals_history_is_bounded_per_machine,
    audit_entries_list_in_order_and_filter_and_page,
    a_tampered_audit_row_lists_as_an_altered_entry_instead_of_failing,
    a_changed_audit_detail_that_is_still_json_is_an_alteration,
    users_are_unique_and_revoked_users_stay_known,
    catalogs_only_move_forward_and_actions_can_need_approval,
    runs_wait_for_approval_dispatch_once_and_end_on_their_ticket,
    web_sessions_follow_their_user_and_end_when_stale,
    the_latest_snapshot_is_the_newest_of_tickets_and_inspections,
    due_times_follow_comments_pauses_and_priority_changes,
    sorting_by_due_puts_the_soonest_first_and_paused_tickets_last,
    at_risk_tickets_escalate_one_tier_once_per_target,
    escalation_goes_up_only_and_not_for_finished_tickets,
    a_new_policy_moves_running_due_times_andkeeps_met_ones,
    a_similar_earlier_ticket_is_found_with_its_resolution_note,
    knowledge_words_are_literal_text_not_like_patterns,
    tickets_stored_before_fingerprints_get_them_once_at_the_next_start,
    report_facts_cover_the_window_with_keys_and_the_latest_answer,
    a_feedback_answer_is_taken_once_and_a_no_reopens_the_ticket,
    users_have_an_email_address_until_revoked,
    an_outbox_delivery_is_claimed_once_and_retried_after_its_back_off,
    a_redelivered_delivery_starts_over_andkeeps_its_history,
);

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

/// An enrollment token record named `lle_x` by `admin`.
fn token_record(
    hash: &TokenHash,
    expires_at: Option<OffsetDateTime>,
    max_uses: Option<u32>,
) -> EnrollmentTokenRecord {
    EnrollmentTokenRecord {
        token_hash: hash.clone(),
        prefix: "lle_x".to_owned(),
        created_by: "admin".to_owned(),
        expires_at,
        max_uses,
    }
}

/// Enrolls machine `m1` (certificate `fp1`), at t=1000.
async fn with_machine(store: &dyn Store) {
    let token = TokenHash::of(&Secret::new("lle_x"));
    store
        .add_enrollment_token(&token_record(&token, None, None), at(1_000))
        .await
        .unwrap();
    store
        .enroll(&token, &enrollment("m1", "fp1"), at(1_000))
        .await
        .unwrap();
}

fn enrollment(id: &str, fp: &str) -> Enrollment {
    Enrollment {
        machine_id: id.into(),
        hostname: "ws-1".into(),
        cert_fingerprint: fp.into(),
        cert_not_after: at(2_000_000_000),
        initial_status: MachineStatus::Active,
    }
}

fn ticket(key: &str) -> TicketRecord {
    TicketRecord {
        machine_id: "m1".into(),
        idempotency_key: key.into(),
        description: "Outlook won't start".into(),
        urgency: Urgency::Normal,
        os_user: Some("alice".into()),
        findings: vec![],
        worst_finding: Some(Severity::Critical),
        snapshot_json: Some(serde_json::to_string(&Snapshot::empty(at(1_000), "test")).unwrap()),
        screenshot_png: None,
    }
}

async fn a_screenshot_is_stored_with_its_ticket(store: &Backend) {
    with_machine(&**store).await;
    let png = [&lifeline_shared::v1::api::PNG_SIGNATURE[..], b"rest"].concat();
    let with = TicketRecord {
        screenshot_png: Some(png.clone()),
        ..ticket("k1")
    };
    store.record_ticket(&with, at(1_100)).await.unwrap();
    store.record_ticket(&ticket("k2"), at(1_200)).await.unwrap();
    assert!(
        store
            .ticket(1, at(2_000))
            .await
            .unwrap()
            .unwrap()
            .has_screenshot
    );
    assert_eq!(store.ticket_screenshot(1).await.unwrap(), Some(png));
    assert!(
        !store
            .ticket(2, at(2_000))
            .await
            .unwrap()
            .unwrap()
            .has_screenshot
    );
    assert_eq!(store.ticket_screenshot(2).await.unwrap(), None);
}

async fn enrollment_token_expires_and_runs_out_of_uses(store: &Backend) {
    let token = TokenHash::of(&Secret::new("lle_x"));
    store
        .add_enrollment_token(&token_record(&token, Some(at(2_000)), Some(1)), at(1_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .check_enrollment_token(&token, at(1_500))
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        store
            .check_enrollment_token(&token, at(2_000))
            .await
            .unwrap(),
        Err(EnrollmentRefusal::Expired)
    );
    store
        .enroll(&token, &enrollment("m1", "fp1"), at(1_500))
        .await
        .unwrap();
    assert!(matches!(
        store
            .enroll(&token, &enrollment("m2", "fp2"), at(1_500))
            .await,
        Err(StoreError::Enrollment(EnrollmentRefusal::UsedUp))
    ));
    let unknown = TokenHash::of(&Secret::new("lle_y"));
    assert_eq!(
        store
            .check_enrollment_token(&unknown, at(1_500))
            .await
            .unwrap(),
        Err(EnrollmentRefusal::Unknown)
    );
    assert_eq!(store.count_active_machines().await.unwrap(), 1);
}

async fn enrollment_tokens_list_by_prefix_and_a_revoked_one_enrolls_nobody(store: &Backend) {
    let first = TokenHash::of(&Secret::new("lle_first"));
    let second = TokenHash::of(&Secret::new("lle_second"));
    store
        .add_enrollment_token(&token_record(&first, None, Some(5)), at(1_000))
        .await
        .unwrap();
    let named = EnrollmentTokenRecord {
        prefix: "lle_0123abcd".to_owned(),
        created_by: "root".to_owned(),
        ..token_record(&second, Some(at(9_000)), None)
    };
    store.add_enrollment_token(&named, at(1_100)).await.unwrap();
    store
        .enroll(&second, &enrollment("m1", "fp1"), at(1_200))
        .await
        .unwrap();
    let listed = store.list_enrollment_tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    let two = &listed[1];
    assert_eq!(two.prefix.as_deref(), Some("lle_0123abcd"));
    assert_eq!(two.created_by.as_deref(), Some("root"));
    assert_eq!(
        (two.created_at, two.expires_at, two.uses, two.max_uses),
        (at(1_100), Some(at(9_000)), 1, None)
    );
    assert_eq!((listed[0].max_uses, listed[0].uses), (Some(5), 0));
    assert_eq!(listed[0].revoked_at, None);

    assert!(
        store
            .revoke_enrollment_token(two.id, at(1_300))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_enrollment_token(two.id, at(1_400))
            .await
            .unwrap()
    );
    assert!(!store.revoke_enrollment_token(999, at(1_400)).await.unwrap());
    assert_eq!(
        store
            .check_enrollment_token(&second, at(1_500))
            .await
            .unwrap(),
        Err(EnrollmentRefusal::Revoked)
    );
    assert!(matches!(
        store
            .enroll(&second, &enrollment("m2", "fp2"), at(1_500))
            .await,
        Err(StoreError::Enrollment(EnrollmentRefusal::Revoked))
    ));
    // The other token still works; the machine it enrolled stays enrolled.
    assert_eq!(
        store
            .check_enrollment_token(&first, at(1_500))
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(store.count_active_machines().await.unwrap(), 1);
    let listed = store.list_enrollment_tokens().await.unwrap();
    assert_eq!(listed[1].revoked_at, Some(at(1_300)));
    assert_eq!(listed[0].revoked_at, None);
}

async fn a_user_remembers_who_created_the_account(store: &Backend) {
    for (name, by) in [
        ("root", None),
        ("alice", Some("root")),
        ("mallory", Some("alice")),
    ] {
        let token = TokenHash::of(&Secret::new(format!("llu_{name}")));
        store
            .add_user(name, Role::Admin, &token, by, at(1_000))
            .await
            .unwrap();
    }
    let users = store.list_users().await.unwrap();
    let created: Vec<(&str, Option<&str>)> = users
        .iter()
        .map(|u| (u.name.as_str(), u.created_by.as_deref()))
        .collect();
    assert_eq!(
        created,
        [
            ("alice", Some("root")),
            ("mallory", Some("alice")),
            ("root", None)
        ]
    );
}

async fn the_queue_filters_searches_and_sorts(store: &Backend) {
    with_machine(&**store).await;
    let mut low = ticket("0123456789abcdef0123456789abcdef");
    low.description = "Printer jams".into();
    low.worst_finding = None;
    store.record_ticket(&low, at(1_100)).await.unwrap();
    store.record_ticket(&ticket("k2"), at(1_200)).await.unwrap();
    let numbers = |list: Vec<TicketSummary>| list.iter().map(|t| t.number).collect::<Vec<_>>();
    let find = |filter: TicketFilter| async move {
        numbers(store.list_tickets(&filter, at(2_000)).await.unwrap())
    };
    assert_eq!(find(TicketFilter::default()).await, [2, 1]);
    let q = |text: &str| TicketFilter {
        q: Some(text.into()),
        ..TicketFilter::default()
    };
    assert_eq!(find(q("printer")).await, [1]);
    assert_eq!(find(q("WS-1")).await, [2, 1]);
    assert_eq!(find(q("#2")).await, [2]);
    assert_eq!(find(q("LL-04HM-ASW9")).await, [1]);
    assert_eq!(find(q("nothing like it")).await, Vec::<u64>::new());
    let sorted = |sort| TicketFilter {
        sort: Some(sort),
        ..TicketFilter::default()
    };
    assert_eq!(find(sorted(TicketSort::Age)).await, [1, 2]);
    assert_eq!(find(sorted(TicketSort::Priority)).await, [2, 1]);
    let high = TicketFilter {
        priority: Some(Priority::High),
        assignee: Some(String::new()),
        tier: Some(Tier::FIRST),
        ..TicketFilter::default()
    };
    assert_eq!(find(high).await, [2]);
    let by_machine = TicketFilter {
        status: Some(TicketStatus::New),
        machine: Some("ws-1".into()),
        ..TicketFilter::default()
    };
    assert_eq!(find(by_machine).await, [2, 1]);
    let counts = store.ticket_status_counts().await.unwrap();
    assert_eq!(counts, [(TicketStatus::New, 2)]);
}

async fn same_idempotency_key_gives_the_same_ticket_and_numbers_are_sequential(store: &Backend) {
    with_machine(&**store).await;
    let first = store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
    let again = store.record_ticket(&ticket("k1"), at(1_200)).await.unwrap();
    let second = store.record_ticket(&ticket("k2"), at(1_300)).await.unwrap();
    assert_eq!((first.number, first.created), (1, true));
    assert_eq!((again.number, again.created), (1, false));
    assert_eq!(second.number, 2);
    let detail = store.ticket(1, at(2_000)).await.unwrap().unwrap();
    assert_eq!(detail.snapshots.len(), 1);
    assert_eq!(detail.summary.priority, Priority::High);
    assert_eq!(detail.summary.status, TicketStatus::New);
    assert_eq!(detail.os_user.as_deref(), Some("alice"));
    // A ticket that cannot be stored (unknown machine) fails alone and takes no number.
    let stranger = TicketRecord {
        machine_id: "nobody".into(),
        ..ticket("k3")
    };
    assert!(store.record_ticket(&stranger, at(1_400)).await.is_err());
    let third = store.record_ticket(&ticket("k4"), at(1_500)).await.unwrap();
    assert_eq!(third.number, 3);
}

/// 40 reports at once, every fourth a retry of one key, spread over `stores` (one store, or
/// several collectors on one database): distinct numbers 1..=31, one ticket for the retries.
async fn report_concurrently(stores: &[Arc<dyn Store>]) {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = Arc::clone(&stores[i % stores.len()]);
        let key = if i % 4 == 0 {
            "retry".to_owned()
        } else {
            format!("k{i}")
        };
        tasks.push(tokio::spawn(async move {
            store.record_ticket(&ticket(&key), at(2_000)).await.unwrap()
        }));
    }
    let mut numbers = Vec::new();
    let mut retried = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let recorded = task.await.unwrap();
        if i % 4 == 0 {
            retried.push(recorded.number);
        } else {
            numbers.push(recorded.number);
        }
    }
    retried.dedup();
    assert_eq!(retried.len(), 1, "one ticket for one idempotency key");
    numbers.push(retried[0]);
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=31).collect::<Vec<u64>>());
    let all = stores[0]
        .list_tickets(&TicketFilter::default(), at(2_000))
        .await
        .unwrap();
    assert_eq!(all.len(), 31);
}

async fn concurrent_reports_get_distinct_numbers_and_retries_share_one(b: &Backend) {
    with_machine(&**b).await;
    report_concurrently(&[Arc::clone(&b.store)]).await;
}

async fn pending_machine_is_approved_once_and_revoked_stays_revoked(store: &Backend) {
    let token = TokenHash::of(&Secret::new("lle_x"));
    store
        .add_enrollment_token(&token_record(&token, None, None), at(1_000))
        .await
        .unwrap();
    let pending = Enrollment {
        initial_status: MachineStatus::Pending,
        ..enrollment("m1", "fp1")
    };
    assert_eq!(
        store.enroll(&token, &pending, at(1_000)).await.unwrap(),
        MachineStatus::Pending
    );
    assert_eq!(store.count_active_machines().await.unwrap(), 0);
    // Re-enrolling keeps the status it had, whatever the mode says now.
    let again = Enrollment {
        cert_fingerprint: "fp2".into(),
        ..enrollment("m1", "fp2")
    };
    assert_eq!(
        store.enroll(&token, &again, at(1_100)).await.unwrap(),
        MachineStatus::Pending
    );
    assert_eq!(
        store.approve_machine("m1").await.unwrap(),
        Some(MachineStatus::Pending)
    );
    assert_eq!(
        store.approve_machine("m1").await.unwrap(),
        Some(MachineStatus::Active)
    );
    assert!(store.revoke_machine("m1", at(1_200)).await.unwrap());
    assert_eq!(
        store.approve_machine("m1").await.unwrap(),
        Some(MachineStatus::Revoked)
    );
    let record = store.machine_by_fingerprint("fp2").await.unwrap().unwrap();
    assert_eq!(record.status, MachineStatus::Revoked);
    assert_eq!(store.machine_by_fingerprint("fp1").await.unwrap(), None);
    assert_eq!(store.approve_machine("nope").await.unwrap(), None);
    assert!(!store.revoke_machine("nope", at(1_300)).await.unwrap());
    let detail = store.machine("m1", at(2_000)).await.unwrap().unwrap();
    assert_eq!(detail.revoked_at, Some(at(1_200)));
    assert_eq!(store.list_machines().await.unwrap().len(), 1);
}

async fn a_machine_sees_its_own_tickets_with_public_comments_only(store: &Backend) {
    with_machine(&**store).await;
    let token = TokenHash::of(&Secret::new("lle_x"));
    store
        .enroll(&token, &enrollment("m2", "fp2"), at(1_000))
        .await
        .unwrap();
    store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
    let theirs = TicketRecord {
        machine_id: "m2".into(),
        ..ticket("k2")
    };
    store.record_ticket(&theirs, at(1_150)).await.unwrap();
    assert!(
        store
            .add_comment(1, "bob", "internal note", at(1_200))
            .await
            .unwrap()
    );
    assert!(
        store
            .add_public_comment(1, "bob", "Please reboot", at(1_300))
            .await
            .unwrap()
    );
    assert!(
        !store
            .add_public_comment(9, "bob", "x", at(1_300))
            .await
            .unwrap()
    );

    let mine = store.machine_tickets("m1", 20).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].number, 1);
    assert_eq!(mine[0].replies.len(), 1);
    assert_eq!(mine[0].replies[0].body, "Please reboot");
    assert_eq!(store.machine_tickets("m2", 20).await.unwrap()[0].number, 2);
    assert!(store.machine_tickets("m3", 20).await.unwrap().is_empty());

    // Technicians see both comments, each marked.
    let detail = store.ticket(1, at(2_000)).await.unwrap().unwrap();
    let public: Vec<bool> = detail.comments.iter().map(|c| c.public).collect();
    assert_eq!(public, [false, true]);
    assert_eq!(detail.first_response_at, Some(at(1_200)));
}

async fn resolving_sets_and_reopening_clears_resolved_at(store: &Backend) {
    with_machine(&**store).await;
    store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
    let resolve = TicketUpdate {
        status: Some(TicketStatus::Resolved),
        assignee: Some("bob".into()),
        tier: Some(Tier::new(2).unwrap()),
        ..TicketUpdate::default()
    };
    store
        .update_ticket(1, &resolve, "bob", at(1_200))
        .await
        .unwrap()
        .unwrap();
    let t = store.ticket(1, at(2_000)).await.unwrap().unwrap();
    assert_eq!(t.resolved_at, Some(at(1_200)));
    assert_eq!(t.first_response_at, Some(at(1_200)));
    assert_eq!(t.summary.assignee.as_deref(), Some("bob"));
    assert_eq!(t.summary.tier.get(), 2);
    let reopen = TicketUpdate {
        status: Some(TicketStatus::Open),
        assignee: Some(String::new()),
        ..TicketUpdate::default()
    };
    store
        .update_ticket(1, &reopen, "bob", at(1_300))
        .await
        .unwrap()
        .unwrap();
    let t = store.ticket(1, at(2_000)).await.unwrap().unwrap();
    assert_eq!(t.resolved_at, None);
    assert_eq!(t.first_response_at, Some(at(1_200)));
    assert_eq!(t.summary.assignee, None);
    assert_eq!(
        store
            .update_ticket(9, &reopen, "bob", at(1_300))
            .await
            .unwrap(),
        None
    );
}

/// Enrolls `m1` (`f1`) and `m2` (`f2`) at t=0.
async fn with_two_machines(store: &dyn Store) {
    let grant = TokenHash::of(&Secret::new("lle_w"));
    store
        .add_enrollment_token(&token_record(&grant, None, None), at(0))
        .await
        .unwrap();
    for (id, fp) in [("m1", "f1"), ("m2", "f2")] {
        store
            .enroll(&grant, &enrollment(id, fp), at(0))
            .await
            .unwrap();
    }
}

async fn work_is_delivered_once_expires_lazily_and_only_its_machine_may_answer(store: &Backend) {
    with_two_machines(&**store).await;
    let live = store
        .queue_work("m1", "inspect", None, at(100), at(1))
        .await
        .unwrap();
    let stale = store
        .queue_work("m1", "inspect", None, at(5), at(1))
        .await
        .unwrap();
    assert!(store.take_work("m2", at(10)).await.unwrap().is_empty());
    let taken = store.take_work("m1", at(10)).await.unwrap();
    assert_eq!(taken, vec![(live, "inspect".to_owned())]);
    assert!(store.take_work("m1", at(11)).await.unwrap().is_empty());
    assert_eq!(
        store.work(stale, at(12)).await.unwrap().unwrap().state,
        WorkState::Expired
    );
    let outcome = WorkOutcome::Failed("no".into());
    assert!(
        store
            .finish_work("m2", live, &outcome, at(12))
            .await
            .unwrap()
            .is_none()
    );
    let done = store
        .finish_work("m1", live, &outcome, at(12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.state, WorkState::Failed);
    assert_eq!(done.error.as_deref(), Some("no"));
    assert_eq!(done.hostname, "ws-1");
    assert!(
        store
            .finish_work("m1", live, &outcome, at(13))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.work(999, at(13)).await.unwrap(), None);
}

async fn telemetry_is_written_within_a_flush_interval_and_readers_see_it_at_once(b: &Backend) {
    with_machine(&**b).await;
    b.touch_machine("m1", at(5_000)).await.unwrap();
    b.record_heartbeat("m1", "{\"n\":1}", at(4_000))
        .await
        .unwrap();
    // Nobody reads through the store: the flusher writes it by itself.
    tokio::time::sleep(sql::FLUSH_INTERVAL + Duration::from_millis(500)).await;
    assert_eq!(
        b.scalar("SELECT last_seen_at FROM machines WHERE id = 'm1'")
            .await,
        5_000_000
    );
    assert_eq!(b.scalar("SELECT COUNT(*) FROM vitals").await, 1);

    // A reader flushes first: what was acknowledged is what it sees.
    b.record_heartbeat("m1", "{\"n\":2}", at(6_000))
        .await
        .unwrap();
    let machine = b.machine("m1", at(2_000)).await.unwrap().unwrap();
    assert_eq!(machine.summary.last_seen_at, at(6_000));
    assert_eq!(b.vitals("m1", 10).await.unwrap()[0].1, "{\"n\":2}");
    // Last seen never moves back.
    b.touch_machine("m1", at(5_500)).await.unwrap();
    let machine = b.machine("m1", at(2_000)).await.unwrap().unwrap();
    assert_eq!(machine.summary.last_seen_at, at(6_000));
}

async fn an_identity_never_outlives_a_revocation_or_a_new_certificate(store: &Backend) {
    with_two_machines(&**store).await;
    let seen = store.machine_by_fingerprint("f1").await.unwrap().unwrap();
    assert_eq!(seen.status, MachineStatus::Active);
    assert!(store.revoke_machine("m1", at(2_000)).await.unwrap());
    let seen = store.machine_by_fingerprint("f1").await.unwrap().unwrap();
    assert_eq!(seen.status, MachineStatus::Revoked);

    store.machine_by_fingerprint("f2").await.unwrap().unwrap();
    assert!(
        store
            .renew_certificate("m2", "f3", at(3_000_000_000), at(2_000))
            .await
            .unwrap()
    );
    assert_eq!(store.machine_by_fingerprint("f2").await.unwrap(), None);
    assert_eq!(
        store
            .machine_by_fingerprint("f3")
            .await
            .unwrap()
            .unwrap()
            .id,
        "m2"
    );
    // Only an active machine renews.
    assert!(
        !store
            .renew_certificate("m1", "f4", at(3_000_000_000), at(2_000))
            .await
            .unwrap()
    );
}

async fn vitals_history_is_bounded_per_machine(store: &Backend) {
    with_two_machines(&**store).await;
    for i in 0..(VITALS_HISTORY + 5) {
        store
            .record_heartbeat("m1", &format!("{{\"n\":{i}}}"), at(i))
            .await
            .unwrap();
    }
    store.record_heartbeat("m2", "{}", at(1)).await.unwrap();
    let rows = store.vitals("m1", 5000).await.unwrap();
    assert_eq!(rows.len() as i64, VITALS_HISTORY);
    assert!(rows[0].1.contains(&format!("{}", VITALS_HISTORY + 4)));
    assert_eq!(rows[0].0, at(VITALS_HISTORY + 4));
    assert_eq!(store.vitals("m2", 10).await.unwrap().len(), 1);
    assert_eq!(store.vitals("m1", 3).await.unwrap().len(), 3);
}

fn event(actor: &str, action: &str) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.into(),
        action: action.into(),
        subject: Some(format!("user:{actor}")),
        detail: serde_json::json!({"z": 1, "a": [1, 2]}),
    }
}

fn all() -> AuditFilter {
    AuditFilter {
        since: None,
        actor: None,
        after_seq: None,
        limit: 1000,
    }
}

/// Five audit entries at t = 10..=14 s, by admin, bob, admin, bob, admin.
async fn with_audit(store: &dyn Store) {
    for i in 0..5 {
        let actor = if i % 2 == 0 { "admin" } else { "bob" };
        store
            .append_audit(&event(actor, "user.add"), at(10 + i))
            .await
            .unwrap();
    }
}

async fn audit_entries_list_in_order_and_filter_and_page(store: &Backend) {
    with_audit(&**store).await;
    let listed = store.list_audit(&all()).await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let summary = audit::verify_chain(listed.clone(), None).unwrap();
    assert_eq!(summary.entries, 5);
    assert_eq!(summary.head, listed[4].hash);

    let by_bob = AuditFilter {
        actor: Some("bob".into()),
        ..all()
    };
    let bob: Vec<u64> = store
        .list_audit(&by_bob)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(bob, [2, 4]);
    let since = AuditFilter {
        since: Some(at(13)),
        ..all()
    };
    assert_eq!(store.list_audit(&since).await.unwrap().len(), 2);
    let page = AuditFilter {
        after_seq: Some(2),
        limit: 2,
        ..all()
    };
    let page: Vec<u64> = store
        .list_audit(&page)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(page, [3, 4]);
}

async fn a_tampered_audit_row_lists_as_an_altered_entry_instead_of_failing(b: &Backend) {
    with_audit(&**b).await;
    b.execute(
        "UPDATE audit_log SET detail = 'not json' WHERE seq = 3",
        "UPDATE audit_log SET detail = 'not json' WHERE seq = 3",
    )
    .await;
    // Each database lets a tamperer break a row its own way: SQLite stores any type anywhere,
    // PostgreSQL needs a constraint dropped first.
    b.execute(
        "UPDATE audit_log SET at = 'yesterday', subject = x'00ff' WHERE seq = 4",
        "ALTER TABLE audit_log ALTER COLUMN hash DROP NOT NULL; \
         UPDATE audit_log SET at = 9223372036854775807, hash = NULL WHERE seq = 4",
    )
    .await;
    let listed = b.list_audit(&all()).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[2].detail, serde_json::json!("not json"));
    assert_eq!(listed[2].hash, format!("{UNREADABLE_PREFIX}detail"));
    assert!(
        listed[3].hash.starts_with(UNREADABLE_PREFIX),
        "{}",
        listed[3].hash
    );
    let err = audit::verify_chain(listed, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry 3 was altered: its stored detail cannot be read"
    );
}

async fn a_changed_audit_detail_that_is_still_json_is_an_alteration(b: &Backend) {
    with_audit(&**b).await;
    let change = "UPDATE audit_log SET detail = '{\"a\":[1,2],\"z\":2}' WHERE seq = 2";
    b.execute(change, change).await;
    let err = audit::verify_chain(b.list_audit(&all()).await.unwrap(), None).unwrap_err();
    assert_eq!(
        err,
        audit::ChainBreak::Altered {
            seq: 2,
            unreadable: None
        }
    );
}

async fn users_are_unique_and_revoked_users_stay_known(store: &Backend) {
    assert!(!store.has_admin().await.unwrap());
    let alice = TokenHash::of(&Secret::new("llu_alice"));
    store
        .add_user("alice", Role::Admin, &alice, None, at(1_000))
        .await
        .unwrap();
    let bob = TokenHash::of(&Secret::new("llu_bob"));
    store
        .add_user("bob", Role::Technician, &bob, None, at(1_100))
        .await
        .unwrap();
    assert!(store.has_admin().await.unwrap());
    let other = TokenHash::of(&Secret::new("llu_other"));
    assert!(matches!(
        store
            .add_user("alice", Role::Technician, &other, None, at(1_200))
            .await,
        Err(StoreError::UserExists(name)) if name == "alice"
    ));
    let found = store.user_by_token(&bob).await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.role), ("bob", Role::Technician));
    assert!(!found.revoked);
    assert!(store.revoke_user("bob", at(1_300)).await.unwrap());
    assert!(!store.revoke_user("bob", at(1_400)).await.unwrap());
    assert!(store.user_by_token(&bob).await.unwrap().unwrap().revoked);
    assert_eq!(store.user_by_token(&other).await.unwrap(), None);
    let users = store.list_users().await.unwrap();
    let listed: Vec<(&str, Option<OffsetDateTime>)> = users
        .iter()
        .map(|u| (u.name.as_str(), u.revoked_at))
        .collect();
    assert_eq!(listed, [("alice", None), ("bob", Some(at(1_300)))]);
}

fn catalog(version: u64, digest: &str) -> NewCatalog {
    NewCatalog {
        version,
        digest: digest.into(),
        key_id: "key1".into(),
        document: "{\"signed\":true}".into(),
        actions: vec![
            (
                "restart-service".into(),
                "{\"id\":\"restart-service\"}".into(),
            ),
            ("flush-dns".into(), "{\"id\":\"flush-dns\"}".into()),
        ],
    }
}

async fn catalogs_only_move_forward_and_actions_can_need_approval(store: &Backend) {
    let key = CatalogKeyRecord {
        key_id: "key1".into(),
        public_key: "lifeline-catalog-key AAAA".into(),
        endorsement: None,
        added_by: "admin".into(),
        added_at: at(1_000),
    };
    assert!(store.trust_catalog_key(&key).await.unwrap());
    assert!(!store.trust_catalog_key(&key).await.unwrap());
    assert_eq!(store.catalog_keys().await.unwrap(), [key]);
    assert_eq!(store.current_catalog().await.unwrap(), None);

    let published = store
        .publish_catalog(&catalog(2, "d2"), "admin", at(1_100))
        .await
        .unwrap();
    assert!(matches!(published, PublishOutcome::Published(ref c) if c.action_count == 2));
    assert!(matches!(
        store
            .publish_catalog(&catalog(2, "d2"), "admin", at(1_200))
            .await
            .unwrap(),
        PublishOutcome::Unchanged(ref c) if c.published_at == at(1_100)
    ));
    assert_eq!(
        store
            .publish_catalog(&catalog(2, "other"), "admin", at(1_200))
            .await
            .unwrap(),
        PublishOutcome::VersionReused { version: 2 }
    );
    assert_eq!(
        store
            .publish_catalog(&catalog(1, "d1"), "admin", at(1_200))
            .await
            .unwrap(),
        PublishOutcome::Rollback { current: 2 }
    );
    let current = store.current_catalog().await.unwrap().unwrap();
    assert_eq!((current.version, current.digest.as_str()), (2, "d2"));

    let actions = store.catalog_actions().await.unwrap();
    let ids: Vec<&str> = actions.iter().map(|a| a.action_id.as_str()).collect();
    assert_eq!(ids, ["flush-dns", "restart-service"]);
    assert!(
        actions
            .iter()
            .all(|a| !a.require_approval && a.catalog_version == 2)
    );
    store
        .set_action_approval("restart-service", true, "admin", at(1_300))
        .await
        .unwrap();
    let action = store
        .catalog_action("restart-service")
        .await
        .unwrap()
        .unwrap();
    assert!(action.require_approval);
    assert_eq!(action.signed, "{\"id\":\"restart-service\"}");
    store
        .set_action_approval("restart-service", false, "admin", at(1_400))
        .await
        .unwrap();
    assert!(
        !store
            .catalog_action("restart-service")
            .await
            .unwrap()
            .unwrap()
            .require_approval
    );
    assert_eq!(store.catalog_action("nope").await.unwrap(), None);

    // A newer catalog replaces the actions.
    let mut v3 = catalog(3, "d3");
    v3.actions.truncate(1);
    store
        .publish_catalog(&v3, "admin", at(1_500))
        .await
        .unwrap();
    assert_eq!(store.catalog_actions().await.unwrap().len(), 1);
    assert_eq!(store.catalog_action("flush-dns").await.unwrap(), None);
}

fn run_request(run_id: &str, approval_until: Option<OffsetDateTime>) -> NewRunRecord {
    NewRunRecord {
        run_id: run_id.into(),
        machine_id: "m1".into(),
        action_id: "restart-service".into(),
        signed_action: "{\"id\":\"restart-service\"}".into(),
        params_json: "{\"unit\":\"cups.service\"}".into(),
        requested_by: "bob".into(),
        reason: Some("printing hangs".into()),
        ticket: Some(1),
        risk: "high".into(),
        timeout_secs: 60,
        approval_expires_at: approval_until,
        dispatch_expires_at: at(5_000),
    }
}

async fn runs_wait_for_approval_dispatch_once_and_end_on_their_ticket(store: &Backend) {
    with_machine(&**store).await;
    store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
    let direct = store
        .create_run(&run_request("r1", None), at(2_000))
        .await
        .unwrap();
    assert_eq!(direct.approval, "not_needed");
    assert_eq!(direct.work_state, Some(WorkState::Queued));
    assert_eq!(direct.hostname, "ws-1");
    let pending = store
        .create_run(&run_request("r2", Some(at(3_000))), at(2_000))
        .await
        .unwrap();
    assert_eq!(
        (pending.approval.as_str(), pending.work_id),
        ("pending", None)
    );

    let filter = |awaiting_approval, machine: Option<&str>| RunFilter {
        awaiting_approval,
        machine_id: machine.map(str::to_owned),
        limit: 10,
    };
    let ids = |runs: Vec<RunRecord>| runs.iter().map(|r| r.id).collect::<Vec<_>>();
    let waiting = store.runs(&filter(true, None), at(2_100)).await.unwrap();
    assert_eq!(ids(waiting), [pending.id]);
    let every = store
        .runs(&filter(false, Some("m1")), at(2_100))
        .await
        .unwrap();
    assert_eq!(ids(every), [pending.id, direct.id]);
    assert!(
        store
            .runs(&filter(false, Some("m2")), at(2_100))
            .await
            .unwrap()
            .is_empty()
    );

    let approved = store
        .decide_run(pending.id, true, "admin", Some("ok"), at(5_000), at(2_200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approved.approval, "approved");
    assert_eq!(approved.decided_by.as_deref(), Some("admin"));
    let approved_work = approved.work_id.unwrap();
    assert_eq!(
        store
            .decide_run(pending.id, false, "admin", None, at(5_000), at(2_200))
            .await
            .unwrap(),
        None
    );

    let delivered = store.take_work("m1", at(2_300)).await.unwrap();
    assert_eq!(delivered.len(), 2);
    assert!(delivered.iter().all(|(_, kind)| kind == "run"));

    let work_id = direct.work_id.unwrap();
    assert!(
        store
            .run_progress("m1", work_id, "running", at(2_400))
            .await
            .unwrap()
    );
    assert!(
        !store
            .run_progress("m2", work_id, "running", at(2_400))
            .await
            .unwrap()
    );
    let running = store.run(direct.id, at(2_400)).await.unwrap().unwrap();
    assert_eq!(running.stage.as_deref(), Some("running"));
    assert_eq!(running.started_at, Some(at(2_400)));

    let finish = RunFinish {
        result: Some("{\"exit_code\":0}".into()),
        work_error: None,
        recheck: Some("{\"resolved\":[]}".into()),
        note: "restart-service on ws-1: done".into(),
    };
    let ended = store
        .finish_run("m1", work_id, &finish, at(2_500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.work_state, Some(WorkState::Done));
    assert_eq!(ended.result.as_deref(), Some("{\"exit_code\":0}"));
    assert!(
        store
            .finish_run("m1", work_id, &finish, at(2_600))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.run_by_work(work_id).await.unwrap().unwrap().id,
        direct.id
    );
    let timeline = store.ticket(1, at(2_000)).await.unwrap().unwrap().comments;
    let last = timeline.last().unwrap();
    assert_eq!(
        (last.author.as_str(), last.body.as_str()),
        ("lifeline", "restart-service on ws-1: done")
    );

    // A request nobody answers expires; a delivered run whose agent stays silent past its
    // timeout and the grace period fails.
    let late = store
        .create_run(&run_request("r3", Some(at(2_600))), at(2_500))
        .await
        .unwrap();
    let expired = store.run(late.id, at(2_700)).await.unwrap().unwrap();
    assert_eq!(expired.approval, "expired");
    let silent_at = 2_300 + 60 + RUN_REPORT_GRACE_SECS;
    let silent = store
        .run(approved.id, at(silent_at))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(silent.work_state, Some(WorkState::Failed));
    assert_eq!(silent.work_error.as_deref(), Some(RUN_SILENT_AGENT));
    assert_eq!(silent.work_id, Some(approved_work));
}

async fn web_sessions_follow_their_user_and_end_when_stale(store: &Backend) {
    let alice = TokenHash::of(&Secret::new("llu_alice"));
    store
        .add_user("alice", Role::Technician, &alice, None, at(1_000))
        .await
        .unwrap();
    let session = |id: &str, expires| NewWebSession {
        id_hash: TokenHash::of(&Secret::new(id)),
        user: "alice".into(),
        csrf_token: format!("csrf-{id}"),
        created_at: at(1_000),
        expires_at: expires,
    };
    let short = session("s1", at(2_000));
    let long = session("s2", at(9_000));
    store.create_web_session(&short).await.unwrap();
    store.create_web_session(&long).await.unwrap();
    store
        .touch_web_session(&long.id_hash, at(1_500))
        .await
        .unwrap();
    let found = store.web_session(&long.id_hash).await.unwrap().unwrap();
    assert_eq!(
        (found.user.as_str(), found.role, found.csrf_token.as_str()),
        ("alice", Role::Technician, "csrf-s2")
    );
    assert_eq!(found.last_seen_at, at(1_500));
    assert!(!found.user_revoked);
    store.revoke_user("alice", at(1_600)).await.unwrap();
    assert!(
        store
            .web_session(&long.id_hash)
            .await
            .unwrap()
            .unwrap()
            .user_revoked
    );
    // At t=2000 the short one is past its end; nothing was idle before t=1200.
    assert_eq!(
        store
            .delete_stale_web_sessions(at(2_000), at(1_200))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.web_session(&short.id_hash).await.unwrap(), None);
    assert!(store.delete_web_session(&long.id_hash).await.unwrap());
    assert!(!store.delete_web_session(&long.id_hash).await.unwrap());
}

async fn the_latest_snapshot_is_the_newest_of_tickets_and_inspections(store: &Backend) {
    with_machine(&**store).await;
    assert_eq!(store.latest_snapshot("m1").await.unwrap(), None);
    store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
    let (when, _) = store.latest_snapshot("m1").await.unwrap().unwrap();
    assert_eq!(when, at(1_100));
    let inspection = store
        .queue_work("m1", "inspect", Some(1), at(3_000), at(1_200))
        .await
        .unwrap();
    store.take_work("m1", at(1_300)).await.unwrap();
    let fresh = serde_json::to_string(&Snapshot::empty(at(1_400), "fresh")).unwrap();
    let done = store
        .finish_work(
            "m1",
            inspection,
            &WorkOutcome::Snapshot(fresh.clone()),
            at(1_400),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.snapshot_json.as_deref(), Some(fresh.as_str()));
    assert_eq!(done.ticket, Some(1));
    let (when, document) = store.latest_snapshot("m1").await.unwrap().unwrap();
    assert_eq!((when, document), (at(1_400), fresh));
    // The inspection's snapshot is attached to its ticket, with a note.
    let detail = store.ticket(1, at(2_000)).await.unwrap().unwrap();
    assert_eq!(detail.snapshots.len(), 2);
    assert!(detail.comments[0].body.contains("fresh snapshot attached"));
}

// Recurring problems, knowledge and reports (issue 9).

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

/// A ticket from `m1` with `description` and `findings` (whose fingerprints it gets).
fn ticket_with(key: &str, description: &str, findings: Vec<Finding>) -> TicketRecord {
    TicketRecord {
        description: description.into(),
        findings,
        snapshot_json: None,
        ..ticket(key)
    }
}

/// Resolves ticket `number` at `secs` with `note` as its resolution note (by "tina").
async fn resolve_with_note(store: &dyn Store, number: u64, note: &str, secs: i64) {
    resolve(store, number, secs).await;
    assert!(
        store
            .set_resolution_note(number, "tina", note, at(secs))
            .await
            .unwrap()
    );
}

async fn resolve(store: &dyn Store, number: u64, secs: i64) {
    let update = TicketUpdate {
        status: Some(TicketStatus::Resolved),
        ..TicketUpdate::default()
    };
    store
        .update_ticket(number, &update, "bob", at(secs))
        .await
        .unwrap()
        .expect("the ticket exists");
}

async fn a_similar_earlier_ticket_is_found_with_its_resolution_note(store: &Backend) {
    with_machine(&**store).await;
    let token = TokenHash::of(&Secret::new("lle_x"));
    store
        .enroll(&token, &enrollment("m2", "fp2"), at(1_000))
        .await
        .unwrap();
    let disk = || finding("disk.full", Severity::Critical, Some("/"));
    let updates = || finding("software.updates_pending", Severity::Warning, None);
    store
        .record_ticket(
            &ticket_with("k1", "Disk full", vec![disk(), updates()]),
            at(1_100),
        )
        .await
        .unwrap();
    store
        .record_ticket(&ticket_with("k2", "Printer jam", vec![]), at(1_200))
        .await
        .unwrap();
    let theirs = TicketRecord {
        machine_id: "m2".into(),
        ..ticket_with("k3", "No space left", vec![disk()])
    };
    store.record_ticket(&theirs, at(1_300)).await.unwrap();
    resolve_with_note(&**store, 1, "Removed old ISOs from C:", 1_400).await;

    let detail = store.ticket(1, at(2_000)).await.unwrap().unwrap();
    assert_eq!(
        detail.fingerprints,
        ["disk.full:/", "software.updates_pending"]
    );
    assert_eq!(
        detail.resolution_note.as_deref(),
        Some("Removed old ISOs from C:")
    );
    let last = detail.comments.last().unwrap();
    assert_eq!(
        (last.author.as_str(), last.public),
        ("tina", false),
        "the note is an internal comment"
    );

    let answer = store
        .similar_tickets(3, 10, at(2_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.keys, ["disk.full:/"]);
    assert_eq!(
        answer.similar.len(),
        1,
        "only earlier tickets, only shared keys"
    );
    let similar = &answer.similar[0];
    assert_eq!(similar.summary.number, 1);
    assert_eq!(similar.summary.status, TicketStatus::Resolved);
    assert_eq!(similar.resolved_at, Some(at(1_400)));
    assert_eq!(
        similar.resolution_note.as_deref(),
        Some("Removed old ISOs from C:")
    );
    assert_eq!(similar.shared_keys, ["disk.full:/"]);
    assert!(
        store
            .similar_tickets(1, 10, at(2_000))
            .await
            .unwrap()
            .unwrap()
            .similar
            .is_empty(),
        "nothing came before #1"
    );
    assert!(
        store
            .similar_tickets(9, 10, at(2_000))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .set_resolution_note(9, "tina", "x", at(2_000))
            .await
            .unwrap()
    );

    let recurring = store
        .recurring_problems(at(1_000), at(2_000), 10)
        .await
        .unwrap();
    let keys: Vec<&str> = recurring.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["disk.full:/", "software.updates_pending"]);
    let disk = &recurring[0];
    assert_eq!((disk.tickets, disk.machines, disk.open), (2, 2, 1));
    assert_eq!((disk.first_seen, disk.last_seen), (at(1_100), at(1_300)));
    assert_eq!(
        disk.example,
        Some((1, "Removed old ISOs from C:".to_owned()))
    );
    assert!(
        store
            .recurring_problems(at(1_150), at(1_250), 10)
            .await
            .unwrap()
            .is_empty(),
        "the window counts tickets by when they came"
    );
}

async fn knowledge_words_are_literal_text_not_like_patterns(store: &Backend) {
    with_machine(&**store).await;
    for key in ["k1", "k2", "k3"] {
        store
            .record_ticket(&ticket_with(key, "Disk trouble", vec![]), at(1_100))
            .await
            .unwrap();
    }
    resolve_with_note(&**store, 1, "Disk was 100% full; removed old ISOs", 1_200).await;
    resolve_with_note(&**store, 2, "Replaced the cable", 1_300).await;
    // #3 stays open: never a candidate.
    let numbers =
        |c: Vec<crate::knowledge::Candidate>| c.iter().map(|c| c.number).collect::<Vec<_>>();
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
    let found = store
        .knowledge_candidates(&words(&["100%", "isos", "disk"]))
        .await
        .unwrap();
    assert_eq!(numbers(found.clone()), [1]);
    assert_eq!(
        found[0].resolution_note,
        "Disk was 100% full; removed old ISOs"
    );
    assert_eq!(found[0].hostname, "ws-1");
}

/// Ticket #1's fingerprint keys.
async fn fingerprints(store: &dyn Store) -> Vec<String> {
    store
        .ticket(1, at(100_000))
        .await
        .unwrap()
        .unwrap()
        .fingerprints
}

async fn tickets_stored_before_fingerprints_get_them_once_at_the_next_start(b: &Backend) {
    with_machine(&**b).await;
    let findings = vec![
        finding("disk.full", Severity::Critical, Some("/")),
        finding("software.updates_pending", Severity::Info, None),
    ];
    b.record_ticket(&ticket_with("k1", "full", findings), at(1_100))
        .await
        .unwrap();
    assert_eq!(
        fingerprints(&**b).await,
        ["disk.full:/"],
        "warnings and worse only"
    );
    // What a database from before the migration looks like after it.
    b.execute(
        "DELETE FROM ticket_fingerprints; \
         INSERT INTO fingerprint_backfill (ticket_number) VALUES (1)",
        "DELETE FROM ticket_fingerprints; \
         INSERT INTO fingerprint_backfill (ticket_number) VALUES (1)",
    )
    .await;
    assert!(fingerprints(&**b).await.is_empty());

    let reopened = b.reopen().await;
    assert_eq!(fingerprints(reopened.as_ref()).await, ["disk.full:/"]);
    assert_eq!(
        b.scalar("SELECT COUNT(*) FROM fingerprint_backfill").await,
        0
    );
    let again = b.reopen().await;
    assert_eq!(fingerprints(again.as_ref()).await, ["disk.full:/"]);
    assert_eq!(
        b.scalar("SELECT COUNT(*) FROM ticket_fingerprints").await,
        1,
        "once"
    );
}

async fn report_facts_cover_the_window_with_keys_and_the_latest_answer(store: &Backend) {
    with_machine(&**store).await;
    let disk = || finding("disk.full", Severity::Critical, Some("/"));
    store
        .record_ticket(&ticket_with("k1", "Disk full", vec![disk()]), at(1_100))
        .await
        .unwrap();
    store
        .record_ticket(&ticket_with("k2", "Printer jam", vec![]), at(1_200))
        .await
        .unwrap();
    store
        .record_ticket(&ticket_with("k3", "Later", vec![]), at(5_000))
        .await
        .unwrap();
    resolve(&**store, 1, 1_300).await;
    answer(&**store, "m1", 1, false, 1_400).await.unwrap();
    resolve(&**store, 1, 1_500).await;
    answer(&**store, "m1", 1, true, 1_600).await.unwrap();
    resolve(&**store, 2, 1_700).await;

    let facts = store.report_facts(at(1_000), at(2_000)).await.unwrap();
    let tickets: Vec<(u64, Option<bool>)> =
        facts.tickets.iter().map(|t| (t.number, t.fixed)).collect();
    assert_eq!(
        tickets,
        [(1, Some(true)), (2, None)],
        "the newest answer counts; #3 came after the window"
    );
    let first = &facts.tickets[0];
    assert_eq!(first.machine_id, "m1");
    assert_eq!(first.keys, ["disk.full:/"]);
    assert_eq!(first.created_at, at(1_100));
    assert_eq!(first.resolved_at, Some(at(1_500)));
    assert!(facts.tickets[1].keys.is_empty());
    assert!(facts.runs.is_empty());
    // A ticket resolved before the window is not in it.
    let later = store.report_facts(at(1_800), at(6_000)).await.unwrap();
    let numbers: Vec<u64> = later.tickets.iter().map(|t| t.number).collect();
    assert_eq!(numbers, [3]);
}

// Satisfaction, webhooks and e-mail (issue 9).

/// The end user of `machine` answers "Did this fix it?" for ticket `number` at `secs`.
async fn answer(
    store: &dyn Store,
    machine: &str,
    number: u64,
    fixed: bool,
    secs: i64,
) -> Result<FeedbackOutcome, FeedbackRefusal> {
    let note = if fixed { "Fixed" } else { "Not fixed" };
    store
        .record_feedback(machine, number, fixed, None, note, at(secs))
        .await
        .unwrap()
}

/// Whether `m1`'s end user is asked about each of its tickets, newest first.
async fn feedback_wanted(store: &dyn Store) -> Vec<(u64, bool)> {
    let tickets = store.machine_tickets("m1", 10).await.unwrap();
    tickets
        .iter()
        .map(|t| (t.number, t.feedback_wanted))
        .collect()
}

async fn a_feedback_answer_is_taken_once_and_a_no_reopens_the_ticket(store: &Backend) {
    const KEPT: Result<FeedbackOutcome, FeedbackRefusal> = Ok(FeedbackOutcome {
        status: TicketStatus::Resolved,
        reopened: false,
    });
    const REOPENED: Result<FeedbackOutcome, FeedbackRefusal> = Ok(FeedbackOutcome {
        status: TicketStatus::Open,
        reopened: true,
    });
    let store = &**store;
    with_machine(store).await;
    let token = TokenHash::of(&Secret::new("lle_x"));
    store
        .enroll(&token, &enrollment("m2", "fp2"), at(1_000))
        .await
        .unwrap();
    store.record_ticket(&ticket("k1"), at(1_100)).await.unwrap();
    store.record_ticket(&ticket("k2"), at(1_200)).await.unwrap();

    assert_eq!(
        answer(store, "m1", 1, true, 1_300).await,
        Err(FeedbackRefusal::NotResolved(TicketStatus::New))
    );
    resolve(store, 1, 1_400).await;
    resolve(store, 2, 1_400).await;
    assert_eq!(feedback_wanted(store).await, [(2, true), (1, true)]);
    assert_eq!(
        answer(store, "m2", 1, true, 1_500).await,
        Err(FeedbackRefusal::NoSuchTicket),
        "another machine's ticket"
    );
    assert_eq!(
        answer(store, "m1", 9, true, 1_500).await,
        Err(FeedbackRefusal::NoSuchTicket)
    );

    // Yes: the ticket stays resolved; a second answer is refused.
    assert_eq!(
        store
            .record_feedback("m1", 1, true, Some("thanks"), "Fixed", at(1_500))
            .await
            .unwrap(),
        KEPT
    );
    assert_eq!(
        answer(store, "m1", 1, false, 1_600).await,
        Err(FeedbackRefusal::AlreadyAnswered)
    );
    let detail = store.ticket(1, at(2_000)).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, TicketStatus::Resolved);
    assert_eq!(detail.feedback.len(), 1);
    assert!(detail.feedback[0].fixed);
    assert_eq!(detail.feedback[0].comment.as_deref(), Some("thanks"));
    assert_eq!(detail.feedback[0].resolved_at, at(1_400));
    assert_eq!(detail.feedback[0].created_at, at(1_500));
    assert_eq!(detail.comments.last().unwrap().body, "Fixed");

    // No: the ticket is open again, and answerable again once resolved again.
    assert_eq!(answer(store, "m1", 2, false, 1_500).await, REOPENED);
    let detail = store.ticket(2, at(2_000)).await.unwrap().unwrap();
    assert_eq!(detail.summary.status, TicketStatus::Open);
    assert_eq!(detail.resolved_at, None);
    assert_eq!(detail.comments.last().unwrap().body, "Not fixed");
    assert_eq!(feedback_wanted(store).await, [(2, false), (1, false)]);
    assert_eq!(
        answer(store, "m1", 2, true, 1_600).await,
        Err(FeedbackRefusal::NotResolved(TicketStatus::Open))
    );
    resolve(store, 2, 1_700).await;
    assert_eq!(feedback_wanted(store).await, [(2, true), (1, false)]);
    assert_eq!(answer(store, "m1", 2, true, 1_800).await, KEPT);
    let answers: Vec<(bool, OffsetDateTime)> = store
        .ticket(2, at(2_000))
        .await
        .unwrap()
        .unwrap()
        .feedback
        .iter()
        .map(|f| (f.fixed, f.resolved_at))
        .collect();
    assert_eq!(answers, [(false, at(1_400)), (true, at(1_700))]);
}

async fn users_have_an_email_address_until_revoked(store: &Backend) {
    let token = TokenHash::of(&Secret::new("llt_a"));
    store
        .add_user("alice", Role::Technician, &token, None, at(1))
        .await
        .unwrap();
    assert_eq!(store.user_email("alice").await.unwrap(), None);
    assert!(
        store
            .set_user_email("alice", Some("alice@example.org"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.user_email("alice").await.unwrap().as_deref(),
        Some("alice@example.org")
    );
    assert!(!store.set_user_email("nobody", Some("x@y.z")).await.unwrap());
    assert!(store.revoke_user("alice", at(2)).await.unwrap());
    assert_eq!(store.user_email("alice").await.unwrap(), None);
}

fn delivery(delivery_id: &str, ticket: Option<u64>) -> NewDelivery {
    NewDelivery {
        delivery_id: delivery_id.into(),
        kind: DeliveryKind::Webhook,
        target: "chat".into(),
        event: "ticket.created".into(),
        ticket,
        payload: format!("{{\"delivery\":\"{delivery_id}\"}}"),
    }
}

fn attempt_at(secs: i64, error: Option<&str>) -> AttemptRecord {
    AttemptRecord {
        at: at(secs),
        status: Some(if error.is_some() { 503 } else { 200 }),
        error: error.map(str::to_owned),
        duration_ms: 12,
    }
}

/// What the deliverer claims at `secs`, for the next 300 s.
async fn claim(store: &dyn Store, secs: i64) -> Vec<DueDelivery> {
    store
        .claim_due_deliveries(at(secs), at(secs + 300), 10)
        .await
        .unwrap()
}

fn delivery_ids(due: &[DueDelivery]) -> Vec<&str> {
    due.iter().map(|d| d.delivery_id.as_str()).collect()
}

async fn an_outbox_delivery_is_claimed_once_and_retried_after_its_back_off(store: &Backend) {
    with_machine(&**store).await;
    store.record_ticket(&ticket("k1"), at(90)).await.unwrap();
    store
        .queue_deliveries(&[delivery("d1", Some(1)), delivery("d2", None)], at(100))
        .await
        .unwrap();
    assert!(
        claim(&**store, 99).await.is_empty(),
        "not due before it was queued"
    );
    let claimed = claim(&**store, 100).await;
    assert_eq!(delivery_ids(&claimed), ["d1", "d2"]);
    assert_eq!(claimed[0].ticket, Some(1));
    assert_eq!(claimed[0].kind, DeliveryKind::Webhook);
    assert_eq!(claimed[0].target, "chat");
    assert_eq!(claimed[0].payload, "{\"delivery\":\"d1\"}");
    assert_eq!(claimed[0].attempts, 0);
    assert!(
        claim(&**store, 100).await.is_empty(),
        "a claimed delivery is not claimed again"
    );
    let (d1, d2) = (claimed[0].id, claimed[1].id);

    store
        .finish_delivery_attempt(d1, &attempt_at(101, None), AttemptOutcome::Delivered)
        .await
        .unwrap();
    store
        .finish_delivery_attempt(
            d2,
            &attempt_at(101, Some("503 Service Unavailable")),
            AttemptOutcome::RetryAt(at(111)),
        )
        .await
        .unwrap();
    assert!(
        claim(&**store, 110).await.is_empty(),
        "not before its back-off"
    );
    let retried = claim(&**store, 111).await;
    assert_eq!(delivery_ids(&retried), ["d2"]);
    assert_eq!(retried[0].attempts, 1);

    // A claim that is never finished (its collector died) runs out with its lease.
    assert!(claim(&**store, 410).await.is_empty());
    let again = claim(&**store, 411).await;
    assert_eq!(delivery_ids(&again), ["d2"]);
    assert_eq!(again[0].attempts, 1);
    store
        .finish_delivery_attempt(
            d2,
            &attempt_at(412, Some("timed out")),
            AttemptOutcome::GaveUp,
        )
        .await
        .unwrap();
    assert!(
        claim(&**store, 100_000).await.is_empty(),
        "a failed delivery is not tried again"
    );

    let all = store.deliveries(false, 10).await.unwrap();
    let listed: Vec<(&str, DeliveryState, u32)> = all
        .iter()
        .map(|d| (d.delivery_id.as_str(), d.state, d.attempts))
        .collect();
    assert_eq!(
        listed,
        [
            ("d2", DeliveryState::Failed, 2),
            ("d1", DeliveryState::Delivered, 1)
        ],
        "newest first"
    );
    assert_eq!(all[0].next_attempt_at, None);
    assert_eq!(all[0].created_at, at(100));
    let history: Vec<(OffsetDateTime, Option<&str>)> = all[0]
        .history
        .iter()
        .map(|a| (a.at, a.error.as_deref()))
        .collect();
    assert_eq!(
        history,
        [
            (at(101), Some("503 Service Unavailable")),
            (at(412), Some("timed out"))
        ]
    );
    assert_eq!(all[0].history[0].status, Some(503));
    assert_eq!(all[0].history[0].duration_ms, 12);
    assert_eq!(all[1].history.len(), 1);
    let failed = store.deliveries(true, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, d2);
}

async fn a_redelivered_delivery_starts_over_andkeeps_its_history(store: &Backend) {
    store
        .queue_deliveries(&[delivery("d1", None)], at(100))
        .await
        .unwrap();
    let id = claim(&**store, 100).await[0].id;
    store
        .finish_delivery_attempt(
            id,
            &attempt_at(101, Some("refused")),
            AttemptOutcome::GaveUp,
        )
        .await
        .unwrap();
    assert!(store.redeliver(id + 1, at(200)).await.unwrap().is_none());
    let again = store.redeliver(id, at(200)).await.unwrap().unwrap();
    assert_eq!(again.state, DeliveryState::Pending);
    assert_eq!(again.attempts, 0);
    assert_eq!(again.next_attempt_at, Some(at(200)));
    assert_eq!(again.history.len(), 1, "the failed attempt stays on record");
    assert!(store.deliveries(true, 10).await.unwrap().is_empty());
    let claimed = claim(&**store, 200).await;
    assert_eq!(delivery_ids(&claimed), ["d1"]);
    assert_eq!(claimed[0].attempts, 0);
}

// Several collectors on one PostgreSQL database: what only the PostgreSQL store promises.

/// A cluster and `n` stores on its `postgres` database, as `n` collector processes would be.
async fn collectors_sharing_one_database(n: usize) -> (PgCluster, Vec<Arc<dyn Store>>) {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..n {
        let store = PostgresStore::open(&cluster.url("postgres")).await.unwrap();
        stores.push(Arc::new(store));
    }
    (cluster, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_number_tickets_sequentially_without_gaps_or_duplicates() {
    let (_cluster, stores) = collectors_sharing_one_database(2).await;
    with_machine(stores[0].as_ref()).await;
    report_concurrently(&stores).await;
    // Both see the same queue.
    let seen = stores[1]
        .list_tickets(&TicketFilter::default(), at(2_000))
        .await
        .unwrap();
    assert_eq!(seen.len(), 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_collectors_append_to_one_audit_chain() {
    let (_cluster, stores) = collectors_sharing_one_database(2).await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = Arc::clone(&stores[i % 2]);
        tasks.push(tokio::spawn(async move {
            let actor = format!("collector-{}", i % 2);
            store
                .append_audit(&event(&actor, "user.add"), at(100 + i as i64))
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let listed = stores[1].list_audit(&all()).await.unwrap();
    assert_eq!(
        listed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=60).collect::<Vec<u64>>()
    );
    let mut verifier = ChainVerifier::new(None);
    for entry in &listed {
        verifier.push(entry);
    }
    let summary = verifier.finish().unwrap();
    assert_eq!(summary.entries, 60);
    assert_eq!(summary.head, listed[59].hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn work_polled_from_two_collectors_is_delivered_exactly_once() {
    let (_cluster, stores) = collectors_sharing_one_database(2).await;
    with_machine(stores[0].as_ref()).await;
    let mut queued = Vec::new();
    for i in 0..30 {
        let id = stores[i % 2]
            .queue_work("m1", "inspect", None, at(10_000), at(1))
            .await
            .unwrap();
        queued.push(id);
    }
    // Twelve long-polls at once, six through each collector, while work is still queued.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = Arc::clone(&stores[i % 2]);
        tasks.push(tokio::spawn(async move {
            store.take_work("m1", at(2)).await.unwrap()
        }));
    }
    let mut delivered = Vec::new();
    for task in tasks {
        delivered.extend(task.await.unwrap().into_iter().map(|(id, _)| id));
    }
    delivered.sort_unstable();
    queued.sort_unstable();
    assert_eq!(delivered, queued, "every piece of work delivered once");
    assert!(stores[0].take_work("m1", at(3)).await.unwrap().is_empty());
    assert!(stores[1].take_work("m1", at(3)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_another_collector_is_claiming_is_skipped_not_sent_twice() {
    let b = Backend::postgres().await;
    let Raw::Postgres(raw) = &b.raw else {
        unreachable!("a PostgreSQL backend")
    };
    b.queue_deliveries(&[delivery("d1", None), delivery("d2", None)], at(100))
        .await
        .unwrap();
    // Another collector is claiming d1 and has not committed yet.
    let mut other = raw.begin().await.unwrap();
    sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE delivery_id = 'd1'")
        .bind(400_000_i64)
        .execute(&mut *other)
        .await
        .unwrap();
    let claimed = tokio::time::timeout(Duration::from_secs(10), claim(&*b, 100))
        .await
        .expect("a claim does not wait for another collector's");
    assert_eq!(delivery_ids(&claimed), ["d2"]);
    other.commit().await.unwrap();
    assert!(
        claim(&*b, 100).await.is_empty(),
        "d1 is the other collector's to send"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_on_one_collector_reaches_the_other_within_a_moment() {
    let (_cluster, stores) = collectors_sharing_one_database(2).await;
    with_machine(stores[0].as_ref()).await;
    let before = stores[1]
        .machine_by_fingerprint("fp1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.status, MachineStatus::Active);
    assert!(stores[0].revoke_machine("m1", at(2_000)).await.unwrap());
    // The other collector's cache is cleared by the NOTIFY that follows the commit: a moment
    // later, not in the same instant (allowed a second here).
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let after = stores[1]
            .machine_by_fingerprint("fp1")
            .await
            .unwrap()
            .unwrap();
        if after.status == MachineStatus::Revoked {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {:?}",
            after.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Service levels and escalation (issue 9).

fn sla_of(detail: &TicketDetail) -> lifeline_shared::v1::sla::TicketSla {
    detail.summary.sla.clone().unwrap()
}

fn update(status: Option<TicketStatus>, priority: Option<Priority>) -> TicketUpdate {
    TicketUpdate {
        status,
        priority,
        ..TicketUpdate::default()
    }
}

async fn due_times_follow_comments_pauses_and_priority_changes(store: &Backend) {
    use lifeline_shared::v1::sla::SlaState;
    with_machine(&**store).await;
    // Priority high (normal urgency, critical finding): 1 h / 8 h around the clock.
    store
        .record_ticket(&ticket("k1"), at(10_000))
        .await
        .unwrap();
    let sla = sla_of(&store.ticket(1, at(10_600)).await.unwrap().unwrap());
    assert_eq!(sla.first_response.due_at, Some(at(10_000 + 3600)));
    assert_eq!(sla.first_response.left_secs, 3000);
    assert_eq!(sla.resolution.due_at, Some(at(10_000 + 8 * 3600)));
    assert_eq!(sla.first_response.state, SlaState::Ok);

    // A priority change is not a response; the due times follow it.
    let to_normal = update(None, Some(Priority::Normal));
    store
        .update_ticket(1, &to_normal, "bob", at(10_060))
        .await
        .unwrap();
    let detail = store.ticket(1, at(10_060)).await.unwrap().unwrap();
    assert_eq!(detail.first_response_at, None);
    assert_eq!(
        sla_of(&detail).first_response.due_at,
        Some(at(10_000 + 4 * 3600))
    );
    assert_eq!(detail.comments[0].author, "lifeline");
    assert_eq!(
        detail.comments[0].body,
        "bob changed priority high → normal (due times follow)"
    );

    // A technician's comment is the first response and freezes that target.
    store
        .add_comment(1, "bob", "looking", at(10_600))
        .await
        .unwrap();
    let sla = sla_of(&store.ticket(1, at(20_000)).await.unwrap().unwrap());
    assert_eq!(sla.first_response.done_at, Some(at(10_600)));
    assert_eq!(sla.first_response.state, SlaState::Met);

    // Waiting on the user pauses; the due time moves later by the time paused.
    let waiting = update(Some(TicketStatus::WaitingOnUser), None);
    store
        .update_ticket(1, &waiting, "bob", at(11_000))
        .await
        .unwrap();
    let detail = store.ticket(1, at(50_000)).await.unwrap().unwrap();
    let sla = sla_of(&detail);
    assert_eq!(sla.resolution.state, SlaState::Paused);
    assert_eq!(sla.resolution.due_at, None);
    assert_eq!(sla.paused_since, Some(at(11_000)));
    assert!(
        detail
            .comments
            .last()
            .unwrap()
            .body
            .contains("service-level clocks paused"),
        "{:?}",
        detail.comments
    );
    let back = update(Some(TicketStatus::InProgress), None);
    store
        .update_ticket(1, &back, "bob", at(14_600))
        .await
        .unwrap();
    let sla = sla_of(&store.ticket(1, at(14_600)).await.unwrap().unwrap());
    assert_eq!(
        sla.resolution.due_at,
        Some(at(10_000 + 48 * 3600 + 3600)),
        "normal: 2 d, plus the hour it waited"
    );
}

async fn sorting_by_due_puts_the_soonest_first_and_paused_tickets_last(store: &Backend) {
    with_machine(&**store).await;
    let mut low = ticket("k1");
    low.urgency = Urgency::Low;
    low.worst_finding = None;
    store.record_ticket(&low, at(10_000)).await.unwrap(); // low: due in 1 d
    store
        .record_ticket(&ticket("k2"), at(10_100))
        .await
        .unwrap(); // high: 1 h
    store
        .record_ticket(&ticket("k3"), at(10_200))
        .await
        .unwrap(); // high: 1 h
    let waiting = update(Some(TicketStatus::WaitingOnUser), None);
    store
        .update_ticket(2, &waiting, "bob", at(10_300))
        .await
        .unwrap();
    let by_due = TicketFilter {
        sort: Some(TicketSort::Due),
        ..TicketFilter::default()
    };
    let list = store.list_tickets(&by_due, at(10_400)).await.unwrap();
    let order: Vec<u64> = list.iter().map(|t| t.number).collect();
    // #2 answered (first response met) and paused: nothing due, so last.
    assert_eq!(order, [3, 1, 2]);
}

async fn at_risk_tickets_escalate_one_tier_once_per_target(store: &Backend) {
    with_machine(&**store).await;
    store
        .record_ticket(&ticket("k1"), at(10_000))
        .await
        .unwrap(); // high: 1 h / 8 h
    assert!(
        store
            .auto_escalate(at(10_000 + 44 * 60))
            .await
            .unwrap()
            .is_empty()
    );
    let moved = store.auto_escalate(at(10_000 + 46 * 60)).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!((moved[0].from.get(), moved[0].to.get()), (1, 2));
    assert_eq!(
        moved[0].note(),
        "Automatically escalated to tier 2: first response due in 14m"
    );
    assert!(
        store
            .auto_escalate(at(10_000 + 50 * 60))
            .await
            .unwrap()
            .is_empty()
    );
    let detail = store
        .ticket(1, at(10_000 + 50 * 60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.summary.tier.get(), 2);
    assert!(sla_of(&detail).first_response.auto_escalated);
    assert_eq!(detail.comments.len(), 1);
    // The resolution target escalates on its own, later; tier 3 is the top.
    let moved = store.auto_escalate(at(10_000 + 7 * 3600)).await.unwrap();
    assert_eq!(moved[0].to.get(), 3);
    assert!(
        store
            .auto_escalate(at(10_000 + 9 * 3600))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn escalation_goes_up_only_and_not_for_finished_tickets(store: &Backend) {
    with_machine(&**store).await;
    store
        .record_ticket(&ticket("k1"), at(10_000))
        .await
        .unwrap();
    let to = |tier| Escalation {
        to_tier: Tier::new(tier).unwrap(),
        by: "bob".into(),
        reason: "needs the network team".into(),
        assignee: None,
    };
    assert_eq!(
        store.escalate_ticket(1, &to(2), at(10_100)).await.unwrap(),
        EscalateOutcome::Escalated { from: Tier::FIRST }
    );
    let detail = store.ticket(1, at(10_100)).await.unwrap().unwrap();
    assert_eq!(detail.summary.tier.get(), 2);
    assert_eq!(detail.summary.assignee, None);
    assert_eq!(
        detail.first_response_at, None,
        "an escalation is not a response"
    );
    assert_eq!(
        detail.comments[0].body,
        "Escalated from tier 1 to tier 2 by bob (in the tier 2 queue): needs the network team"
    );
    assert_eq!(
        store.escalate_ticket(1, &to(2), at(10_200)).await.unwrap(),
        EscalateOutcome::NotHigher {
            current: Tier::new(2).unwrap()
        }
    );
    assert_eq!(
        store.escalate_ticket(9, &to(2), at(10_200)).await.unwrap(),
        EscalateOutcome::NotFound
    );
    let resolve = update(Some(TicketStatus::Resolved), None);
    store
        .update_ticket(1, &resolve, "bob", at(10_300))
        .await
        .unwrap();
    assert_eq!(
        store.escalate_ticket(1, &to(3), at(10_400)).await.unwrap(),
        EscalateOutcome::Finished {
            status: TicketStatus::Resolved
        }
    );
}

async fn a_new_policy_moves_running_due_times_andkeeps_met_ones(store: &Backend) {
    with_machine(&**store).await;
    store
        .record_ticket(&ticket("k1"), at(10_000))
        .await
        .unwrap();
    store
        .record_ticket(&ticket("k2"), at(10_000))
        .await
        .unwrap();
    store
        .add_comment(2, "bob", "on it", at(10_060))
        .await
        .unwrap();
    let policy = crate::sla::Policy {
        high: crate::sla::Targets {
            first_response: time::Duration::hours(2),
            resolution: time::Duration::hours(10),
        },
        ..crate::sla::Policy::default()
    };
    let changed = store
        .apply_sla_policy(std::sync::Arc::new(policy), at(10_100))
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let one = sla_of(&store.ticket(1, at(10_100)).await.unwrap().unwrap());
    assert_eq!(one.first_response.due_at, Some(at(10_000 + 2 * 3600)));
    assert_eq!(one.resolution.due_at, Some(at(10_000 + 10 * 3600)));
    let two = sla_of(&store.ticket(2, at(10_100)).await.unwrap().unwrap());
    assert_eq!(
        two.first_response.due_at,
        Some(at(10_000 + 3600)),
        "met: frozen"
    );
    assert_eq!(
        store
            .apply_sla_policy(
                std::sync::Arc::new(crate::sla::Policy::default()),
                at(10_200)
            )
            .await
            .unwrap(),
        2
    );
}
