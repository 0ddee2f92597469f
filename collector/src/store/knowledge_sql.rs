//! The queries of recurring problems, the knowledge base and the reports (issue 9), written once
//! for both databases: `knowledge_queries!(Pool, Connection)` expands them in
//! `sqlite/knowledge.rs` and `postgres/knowledge.rs`, which differ only in those two types.
//!
//! Plain SQL that both run (`$N` placeholders, `lower`, `LIKE ... ESCAPE`, correlated
//! subqueries, `ON CONFLICT DO NOTHING`); no JSON functions at request time: the fingerprint
//! keys are rows of `ticket_fingerprints`, computed in Rust when a ticket is stored and, for
//! tickets older than the table, once at start (`backfill_fingerprints`).

macro_rules! knowledge_queries {
    ($pool:ty, $conn:ty) => {
        /// Tickets fingerprinted per transaction by the backfill.
        const BACKFILL_BATCH: i64 = 500;

        /// Records the fingerprint keys of ticket `number` (inside the ticket's own transaction).
        pub(super) async fn insert_fingerprints(
            conn: &mut $conn,
            number: i64,
            findings: &[Finding],
        ) -> Result<(), StoreError> {
            for key in fingerprint_keys(findings) {
                sqlx::query(
                    "INSERT INTO ticket_fingerprints (ticket_number, key) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(number)
                .bind(key)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// Computes the keys of tickets stored before fingerprints existed (listed by the migration in
        /// `fingerprint_backfill`), a batch per transaction, removing each from the list; a restart
        /// in the middle carries on where it stopped. Returns how many tickets it did.
        pub(super) async fn backfill_fingerprints(pool: &$pool) -> Result<u64, StoreError> {
            let mut done = 0u64;
            loop {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(
                    "SELECT b.ticket_number, t.findings FROM fingerprint_backfill b \
                     JOIN tickets t ON t.number = b.ticket_number ORDER BY b.ticket_number LIMIT $1",
                )
                .bind(BACKFILL_BATCH)
                .fetch_all(&mut *tx)
                .await?;
                if rows.is_empty() {
                    // Rows whose ticket is gone, if any.
                    sqlx::query("DELETE FROM fingerprint_backfill")
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    return Ok(done);
                }
                for row in &rows {
                    let number: i64 = row.try_get("ticket_number")?;
                    let findings: Vec<Finding> = serde_json::from_str(row.try_get::<&str, _>("findings")?)
                        .map_err(|e| StoreError::Corrupt(format!("findings of #{number}: {e}")))?;
                    insert_fingerprints(&mut tx, number, &findings).await?;
                    sqlx::query("DELETE FROM fingerprint_backfill WHERE ticket_number = $1")
                        .bind(number)
                        .execute(&mut *tx)
                        .await?;
                    done += 1;
                }
                tx.commit().await?;
            }
        }

        /// The keys of ticket `number`, sorted.
        pub(super) async fn keys_of(pool: &$pool, number: i64) -> Result<Vec<String>, StoreError> {
            let rows =
                sqlx::query("SELECT key FROM ticket_fingerprints WHERE ticket_number = $1 ORDER BY key")
                    .bind(number)
                    .fetch_all(pool)
                    .await?;
            rows.iter()
                .map(|r| Ok(r.try_get::<String, _>("key")?))
                .collect()
        }

        /// Ticket `number`'s resolution note and keys (for `TicketDetail`).
        pub(super) async fn knowledge_of(
            pool: &$pool,
            number: i64,
        ) -> Result<(Option<String>, Vec<String>), StoreError> {
            let note = sqlx::query("SELECT resolution_note FROM tickets WHERE number = $1")
                .bind(number)
                .fetch_optional(pool)
                .await?
                .map(|r| r.try_get::<Option<String>, _>("resolution_note"))
                .transpose()?
                .flatten();
            Ok((note, keys_of(pool, number).await?))
        }

        async fn runs_of_ticket(pool: &$pool, number: i64) -> Result<Vec<RunRecord>, StoreError> {
            let rows = sqlx::query(concat!(
                "SELECT ",
                crate::store::sql::run_columns!(),
                " WHERE r.ticket_number = $1 ORDER BY r.id"
            ))
            .bind(number)
            .fetch_all(pool)
            .await?;
            rows.iter().map(run_record).collect()
        }

        pub(super) async fn similar_tickets(
            pool: &$pool,
            number: u64,
            limit: u32,
            policy: &crate::sla::Policy,
            now: OffsetDateTime,
        ) -> Result<Option<SimilarAnswer>, StoreError> {
            let number = to_i64(number);
            let exists = sqlx::query("SELECT number FROM tickets WHERE number = $1")
                .bind(number)
                .fetch_optional(pool)
                .await?;
            if exists.is_none() {
                return Ok(None);
            }
            let keys = keys_of(pool, number).await?;
            let matches = sqlx::query(
                "SELECT f.ticket_number, COUNT(*) AS shared FROM ticket_fingerprints f \
                 JOIN ticket_fingerprints mine ON mine.key = f.key \
                 WHERE mine.ticket_number = $1 AND f.ticket_number < $1 \
                 GROUP BY f.ticket_number ORDER BY shared DESC, f.ticket_number DESC LIMIT $2",
            )
            .bind(number)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let mut similar = Vec::with_capacity(matches.len());
            for m in &matches {
                let other: i64 = m.try_get("ticket_number")?;
                let row = sqlx::query(concat!(
                    "SELECT ",
                    crate::store::sql::ticket_columns!(),
                    ", t.resolved_at, t.resolution_note \
                     FROM tickets t JOIN machines m ON m.id = t.machine_id WHERE t.number = $1"
                ))
                .bind(other)
                .fetch_one(pool)
                .await?;
                let shared_keys = sqlx::query(
                    "SELECT f.key FROM ticket_fingerprints f \
                     JOIN ticket_fingerprints mine ON mine.key = f.key AND mine.ticket_number = $2 \
                     WHERE f.ticket_number = $1 ORDER BY f.key",
                )
                .bind(other)
                .bind(number)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("key"))
                .collect::<Result<Vec<_>, _>>()?;
                similar.push(SimilarRecord {
                    summary: ticket_summary(&row, policy, now)?,
                    resolved_at: opt_from_millis(row.try_get("resolved_at")?)?,
                    resolution_note: row.try_get("resolution_note")?,
                    shared_keys,
                    runs: runs_of_ticket(pool, other).await?,
                });
            }
            Ok(Some(SimilarAnswer { keys, similar }))
        }

        pub(super) async fn recurring_problems(
            pool: &$pool,
            since: OffsetDateTime,
            until: OffsetDateTime,
            limit: u32,
        ) -> Result<Vec<RecurringRecord>, StoreError> {
            let rows = sqlx::query(
                "SELECT f.key, COUNT(*) AS tickets, COUNT(DISTINCT t.machine_id) AS machines, \
                    SUM(CASE WHEN t.status IN ('resolved', 'closed') THEN 0 ELSE 1 END) AS open_tickets, \
                    MIN(t.created_at) AS first_seen, MAX(t.created_at) AS last_seen, \
                    (SELECT t2.number FROM ticket_fingerprints f2 \
                       JOIN tickets t2 ON t2.number = f2.ticket_number \
                      WHERE f2.key = f.key AND t2.resolution_note IS NOT NULL \
                        AND t2.status IN ('resolved', 'closed') \
                      ORDER BY t2.resolved_at DESC, t2.number DESC LIMIT 1) AS example \
                 FROM ticket_fingerprints f JOIN tickets t ON t.number = f.ticket_number \
                 WHERE t.created_at >= $1 AND t.created_at <= $2 \
                 GROUP BY f.key ORDER BY tickets DESC, machines DESC, f.key LIMIT $3",
            )
            .bind(millis(since))
            .bind(millis(until))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let example = match row.try_get::<Option<i64>, _>("example")? {
                    Some(number) => {
                        let note: Option<String> =
                            sqlx::query("SELECT resolution_note FROM tickets WHERE number = $1")
                                .bind(number)
                                .fetch_one(pool)
                                .await?
                                .try_get("resolution_note")?;
                        note.map(|note| Ok::<_, StoreError>((to_u64(number)?, note)))
                            .transpose()?
                    }
                    None => None,
                };
                out.push(RecurringRecord {
                    key: row.try_get("key")?,
                    tickets: to_u64(row.try_get("tickets")?)?,
                    machines: to_u64(row.try_get("machines")?)?,
                    open: to_u64(row.try_get("open_tickets")?)?,
                    first_seen: from_millis(row.try_get("first_seen")?)?,
                    last_seen: from_millis(row.try_get("last_seen")?)?,
                    example,
                });
            }
            Ok(out)
        }

        /// One word's condition on `$N`: in the description, the note or a key. Unused slots are NULL.
        macro_rules! kb_word {
            ($p:literal) => {
                concat!(
                    " AND (",
                    $p,
                    " IS NULL OR lower(t.description) LIKE ",
                    $p,
                    " ESCAPE '\\' OR lower(t.resolution_note) LIKE ",
                    $p,
                    " ESCAPE '\\' OR EXISTS (SELECT 1 FROM ticket_fingerprints f \
                       WHERE f.ticket_number = t.number AND lower(f.key) LIKE ",
                    $p,
                    " ESCAPE '\\'))"
                )
            };
        }

        /// Word slots of the query below; `KB_QUERY_MAX_WORDS` may not exceed it.
        const KB_WORD_SLOTS: usize = 8;
        const _: () = assert!(lifeline_shared::v1::reports::KB_QUERY_MAX_WORDS <= KB_WORD_SLOTS);

        pub(super) async fn knowledge_candidates(
            pool: &$pool,
            words: &[String],
        ) -> Result<Vec<Candidate>, StoreError> {
            if words.len() > KB_WORD_SLOTS {
                return Err(StoreError::Corrupt(format!(
                    "a knowledge query of {} words (at most {KB_WORD_SLOTS})",
                    words.len()
                )));
            }
            let mut query = sqlx::query(concat!(
                "SELECT t.number, m.hostname, t.description, t.status, t.resolved_at, \
                    t.resolution_note \
                 FROM tickets t JOIN machines m ON m.id = t.machine_id \
                 WHERE t.resolution_note IS NOT NULL AND t.status IN ('resolved', 'closed')",
                kb_word!("$1"),
                kb_word!("$2"),
                kb_word!("$3"),
                kb_word!("$4"),
                kb_word!("$5"),
                kb_word!("$6"),
                kb_word!("$7"),
                kb_word!("$8"),
                " ORDER BY t.resolved_at DESC, t.number DESC LIMIT $9"
            ));
            for slot in 0..KB_WORD_SLOTS {
                query = query.bind(words.get(slot).map(|w| like_pattern(w)));
            }
            let rows = query.bind(i64::from(KB_CANDIDATES)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let number: i64 = row.try_get("number")?;
                out.push(Candidate {
                    number: to_u64(number)?,
                    hostname: row.try_get("hostname")?,
                    description: row.try_get("description")?,
                    status: parse::<TicketStatus>(row.try_get("status")?)?,
                    resolved_at: opt_from_millis(row.try_get("resolved_at")?)?,
                    resolution_note: row.try_get("resolution_note")?,
                    keys: keys_of(pool, number).await?,
                });
            }
            Ok(out)
        }

        pub(super) async fn set_resolution_note(
            pool: &$pool,
            number: u64,
            author: &str,
            note: &str,
            now: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE tickets SET resolution_note = $1, updated_at = $2, \
                    first_response_at = COALESCE(first_response_at, $2) WHERE number = $3",
            )
            .bind(note)
            .bind(millis(now))
            .bind(to_i64(number))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO comments (ticket_number, author, body, public, created_at) \
                 VALUES ($1, $2, $3, 0, $4)",
            )
            .bind(to_i64(number))
            .bind(author)
            .bind(format!("Resolution: {note}"))
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        }

        pub(super) async fn report_facts(
            pool: &$pool,
            since: OffsetDateTime,
            until: OffsetDateTime,
        ) -> Result<WindowFacts, StoreError> {
            let rows = sqlx::query(
                "SELECT t.number, t.machine_id, t.priority, t.tier, t.created_at, t.first_response_at, \
                    t.resolved_at, t.first_response_due_at, t.resolution_due_at, \
                    (SELECT f.fixed FROM ticket_feedback f WHERE f.ticket_number = t.number \
                    ORDER BY f.id DESC LIMIT 1) AS fixed \
                 FROM tickets t \
                 WHERE t.created_at <= $2 AND (t.resolved_at IS NULL OR t.resolved_at >= $1) \
                 ORDER BY t.number",
            )
            .bind(millis(since))
            .bind(millis(until))
            .fetch_all(pool)
            .await?;
            let key_rows = sqlx::query(
                "SELECT f.ticket_number, f.key FROM ticket_fingerprints f \
                 JOIN tickets t ON t.number = f.ticket_number \
                 WHERE t.created_at <= $2 AND (t.resolved_at IS NULL OR t.resolved_at >= $1) \
                 ORDER BY f.ticket_number, f.key",
            )
            .bind(millis(since))
            .bind(millis(until))
            .fetch_all(pool)
            .await?;
            let mut keys: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
            for row in &key_rows {
                keys.entry(row.try_get("ticket_number")?)
                    .or_default()
                    .push(row.try_get("key")?);
            }
            let mut tickets = Vec::with_capacity(rows.len());
            for row in &rows {
                let number: i64 = row.try_get("number")?;
                let tier: i64 = row.try_get("tier")?;
                tickets.push(TicketFacts {
                    number: to_u64(number)?,
                    machine_id: row.try_get("machine_id")?,
                    priority: parse::<Priority>(row.try_get("priority")?)?,
                    tier: u8::try_from(tier)
                        .ok()
                        .and_then(|t| Tier::new(t).ok())
                        .ok_or_else(|| StoreError::Corrupt(format!("tier {tier}")))?,
                    created_at: from_millis(row.try_get("created_at")?)?,
                    first_response_at: opt_from_millis(row.try_get("first_response_at")?)?,
                    resolved_at: opt_from_millis(row.try_get("resolved_at")?)?,
                    first_response_due_at: opt_from_millis(row.try_get("first_response_due_at")?)?,
                    resolution_due_at: opt_from_millis(row.try_get("resolution_due_at")?)?,
                    fixed: row.try_get::<Option<i64>, _>("fixed")?.map(|f| f != 0),
                    keys: keys.remove(&number).unwrap_or_default(),
                });
            }
            let runs = sqlx::query(concat!(
                "SELECT ",
                crate::store::sql::run_columns!(),
                " WHERE w.finished_at >= $1 AND w.finished_at <= $2 ORDER BY r.id"
            ))
            .bind(millis(since))
            .bind(millis(until))
            .fetch_all(pool)
            .await?
            .iter()
            .map(run_record)
            .collect::<Result<Vec<_>, _>>()?;
            Ok(WindowFacts { tickets, runs })
        }
    };
}
pub(super) use knowledge_queries;
