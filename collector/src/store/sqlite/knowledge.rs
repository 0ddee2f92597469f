//! SQLite's expansion of the knowledge queries (`store/knowledge_sql.rs`).

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
