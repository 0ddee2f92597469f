//! Store methods and helpers whose SQL both databases run exactly as written, kept once:
//! `sql_methods!` expands inside `impl Store for SqliteStore` and `impl Store for
//! PostgresStore`, `sql_functions!` beside them, with each backend's pool, connection and row
//! types. Both backends import the same names (records, `sql.rs` helpers and column macros), so
//! the text means the same in each. What differs between the databases stays in `sqlite.rs` and
//! `postgres.rs`.

macro_rules! sql_methods {
    ($pool:ty, $conn:ty, $row:ty) => {
            fn ticket_screenshot(&self, number: u64) -> StoreFuture<'_, Option<Vec<u8>>> {
                Box::pin(async move {
                    let row = sqlx::query("SELECT png FROM screenshots WHERE ticket_number = $1")
                        .bind(to_i64(number))
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row.map(|r| r.try_get::<Vec<u8>, _>("png")).transpose()?)
                })
            }

            // ---- Satisfaction, webhooks and e-mail (issue 9) ----

            fn record_feedback<'a>(
                &'a self,
                machine_id: &'a str,
                number: u64,
                fixed: bool,
                comment: Option<&'a str>,
                note: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Result<FeedbackOutcome, FeedbackRefusal>> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    // The insert comes first so the transaction writes from its first statement (no
                    // read-to-write upgrade); the unique (ticket, resolution) pair allows one answer.
                    let inserted = sqlx::query(
                        "INSERT INTO ticket_feedback (ticket_number, resolved_at, fixed, comment, \
                            created_at) \
                         SELECT number, resolved_at, $1, $2, $3 FROM tickets \
                         WHERE number = $4 AND machine_id = $5 AND status = 'resolved' \
                            AND resolved_at IS NOT NULL \
                         ON CONFLICT (ticket_number, resolved_at) DO NOTHING",
                    )
                    .bind(i64::from(fixed))
                    .bind(comment)
                    .bind(millis(now))
                    .bind(to_i64(number))
                    .bind(machine_id)
                    .execute(&mut *tx)
                    .await?;
                    if inserted.rows_affected() == 0 {
                        let row =
                            sqlx::query("SELECT status FROM tickets WHERE number = $1 AND machine_id = $2")
                                .bind(to_i64(number))
                                .bind(machine_id)
                                .fetch_optional(&mut *tx)
                                .await?;
                        tx.rollback().await?;
                        return Ok(Err(match row {
                            None => FeedbackRefusal::NoSuchTicket,
                            Some(row) => match parse::<TicketStatus>(row.try_get("status")?)? {
                                TicketStatus::Resolved => FeedbackRefusal::AlreadyAnswered,
                                other => FeedbackRefusal::NotResolved(other),
                            },
                        }));
                    }
                    if !fixed {
                        sqlx::query(
                            "UPDATE tickets SET status = 'open', resolved_at = NULL, updated_at = $1 \
                             WHERE number = $2",
                        )
                        .bind(millis(now))
                        .bind(to_i64(number))
                        .execute(&mut *tx)
                        .await?;
                    }
                    add_note(&mut tx, to_i64(number), note, now).await?;
                    tx.commit().await?;
                    Ok(Ok(FeedbackOutcome {
                        status: if fixed {
                            TicketStatus::Resolved
                        } else {
                            TicketStatus::Open
                        },
                        reopened: !fixed,
                    }))
                })
            }

            fn set_user_email<'a>(
                &'a self,
                name: &'a str,
                email: Option<&'a str>,
            ) -> StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query("UPDATE users SET email = $1 WHERE name = $2")
                        .bind(email)
                        .bind(name)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn user_email<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<String>> {
                Box::pin(async move {
                    let row = sqlx::query("SELECT email FROM users WHERE name = $1 AND revoked_at IS NULL")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                    Ok(row
                        .map(|r| r.try_get::<Option<String>, _>("email"))
                        .transpose()?
                        .flatten())
                })
            }

            fn queue_deliveries<'a>(
                &'a self,
                deliveries: &'a [NewDelivery],
                now: OffsetDateTime,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    for d in deliveries {
                        sqlx::query(
                            "INSERT INTO outbox (delivery_id, kind, target, event, ticket_number, \
                                payload, state, attempts, next_attempt_at, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)",
                        )
                        .bind(&d.delivery_id)
                        .bind(d.kind.as_str())
                        .bind(&d.target)
                        .bind(&d.event)
                        .bind(d.ticket.map(to_i64))
                        .bind(&d.payload)
                        .bind(millis(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn claim_due_deliveries(
                &self,
                now: OffsetDateTime,
                lease_until: OffsetDateTime,
                limit: u32,
            ) -> StoreFuture<'_, Vec<DueDelivery>> {
                Box::pin(async move {
                    // A look first, so an idle outbox costs no write every second.
                    let any_due = sqlx::query(
                        "SELECT 1 AS one FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
                         LIMIT 1",
                    )
                    .bind(millis(now))
                    .fetch_optional(&self.pool)
                    .await?
                    .is_some();
                    if !any_due {
                        return Ok(Vec::new());
                    }
                    // One statement: choosing and claiming cannot be split by another deliverer here.
                    // (PostgreSQL: add FOR UPDATE SKIP LOCKED to the inner SELECT.)
                    let rows = sqlx::query(
                        "UPDATE outbox SET next_attempt_at = $1 \
                         WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' \
                            AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3) \
                         RETURNING id, delivery_id, kind, target, event, ticket_number, payload, attempts",
                    )
                    .bind(millis(lease_until))
                    .bind(millis(now))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    let mut due = rows
                        .iter()
                        .map(|r| {
                            Ok(DueDelivery {
                                id: to_u64(r.try_get("id")?)?,
                                delivery_id: r.try_get("delivery_id")?,
                                kind: parse::<DeliveryKind>(r.try_get("kind")?)?,
                                target: r.try_get("target")?,
                                event: r.try_get("event")?,
                                ticket: r
                                    .try_get::<Option<i64>, _>("ticket_number")?
                                    .map(to_u64)
                                    .transpose()?,
                                payload: r.try_get("payload")?,
                                attempts: u32::try_from(r.try_get::<i64, _>("attempts")?)
                                    .unwrap_or(u32::MAX),
                            })
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    due.sort_by_key(|d| d.id);
                    Ok(due)
                })
            }

            fn finish_delivery_attempt<'a>(
                &'a self,
                id: u64,
                attempt: &'a AttemptRecord,
                outcome: AttemptOutcome,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    let (state, next) = match outcome {
                        AttemptOutcome::Delivered => (DeliveryState::Delivered, attempt.at),
                        AttemptOutcome::RetryAt(at) => (DeliveryState::Pending, at),
                        AttemptOutcome::GaveUp => (DeliveryState::Failed, attempt.at),
                    };
                    let mut tx = self.pool.begin().await?;
                    sqlx::query(
                        "INSERT INTO outbox_attempts (outbox_id, attempted_at, status, error, \
                            duration_ms) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(to_i64(id))
                    .bind(millis(attempt.at))
                    .bind(attempt.status.map(i64::from))
                    .bind(attempt.error.as_deref())
                    .bind(to_i64(attempt.duration_ms))
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, state = $1, next_attempt_at = $2, \
                            updated_at = $3 WHERE id = $4",
                    )
                    .bind(state.as_str())
                    .bind(millis(next))
                    .bind(millis(attempt.at))
                    .bind(to_i64(id))
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(())
                })
            }

            fn deliveries(&self, failed_only: bool, limit: u32) -> StoreFuture<'_, Vec<Delivery>> {
                Box::pin(async move {
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        delivery_columns!(),
                        " FROM outbox WHERE ($1 = 0 OR state = 'failed') ORDER BY id DESC LIMIT $2"
                    ))
                    .bind(i64::from(failed_only))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    deliveries_with_history(&self.pool, &rows).await
                })
            }

            fn redeliver(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<Delivery>> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1, \
                            updated_at = $1 WHERE id = $2",
                    )
                    .bind(millis(now))
                    .bind(to_i64(id))
                    .execute(&self.pool)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(None);
                    }
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        delivery_columns!(),
                        " FROM outbox WHERE id = $1"
                    ))
                    .bind(to_i64(id))
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(deliveries_with_history(&self.pool, &rows).await?.pop())
                })
            }

            // Recurring problems, knowledge and reports (issue 9): queries in `sqlite/knowledge.rs` / `postgres/knowledge.rs`.
            fn similar_tickets(
                &self,
                number: u64,
                limit: u32,
                now: OffsetDateTime,
            ) -> StoreFuture<'_, Option<SimilarAnswer>> {
                Box::pin(async move {
                    let policy = self.policy();
                    knowledge::similar_tickets(&self.pool, number, limit, &policy, now).await
                })
            }

            fn recurring_problems(
                &self,
                since: OffsetDateTime,
                until: OffsetDateTime,
                limit: u32,
            ) -> StoreFuture<'_, Vec<RecurringRecord>> {
                Box::pin(knowledge::recurring_problems(
                    &self.pool, since, until, limit,
                ))
            }

            fn knowledge_candidates<'a>(
                &'a self,
                words: &'a [String],
            ) -> StoreFuture<'a, Vec<crate::knowledge::Candidate>> {
                Box::pin(knowledge::knowledge_candidates(&self.pool, words))
            }

            fn set_resolution_note<'a>(
                &'a self,
                number: u64,
                author: &'a str,
                note: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, bool> {
                Box::pin(knowledge::set_resolution_note(
                    &self.pool, number, author, note, now,
                ))
            }

            fn report_facts(
                &self,
                since: OffsetDateTime,
                until: OffsetDateTime,
            ) -> StoreFuture<'_, WindowFacts> {
                Box::pin(knowledge::report_facts(&self.pool, since, until))
            }

            // Service levels and escalation (issue 9).

            fn apply_sla_policy(
                &self,
                policy: std::sync::Arc<Policy>,
                now: OffsetDateTime,
            ) -> StoreFuture<'_, u64> {
                Box::pin(async move {
                    *self
                        .sla
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        std::sync::Arc::clone(&policy);
                    // Runs at start, before the collector answers requests: nothing writes meanwhile.
                    let mut tx = self.pool.begin().await?;
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        clock_columns!(),
                        " FROM tickets WHERE resolved_at IS NULL OR first_response_due_at IS NULL \
                            OR resolution_due_at IS NULL"
                    ))
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut changed = 0;
                    for row in &rows {
                        let mut clocks = sla_record(row)?;
                        let stored = Schedule {
                            first_response_due_at: clocks.first_response_due_at,
                            first_response_risk_at: opt_from_millis(
                                row.try_get("first_response_risk_at")?,
                            )?,
                            resolution_due_at: clocks.resolution_due_at,
                            resolution_risk_at: opt_from_millis(row.try_get("resolution_risk_at")?)?,
                        };
                        let schedule = policy.schedule(&mut clocks, now);
                        if schedule != stored {
                            let number = to_u64(row.try_get("number")?)?;
                            save_clocks(&mut tx, number, &clocks, &schedule).await?;
                            changed += 1;
                        }
                    }
                    tx.commit().await?;
                    Ok(changed)
                })
            }

            fn escalate_ticket<'a>(
                &'a self,
                number: u64,
                escalation: &'a Escalation,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, EscalateOutcome> {
                Box::pin(async move {
                    let Some(mut tx) = begin_ticket_change(&self.pool, number, now).await? else {
                        return Ok(EscalateOutcome::NotFound);
                    };
                    let (clocks, _) = load_clocks(&mut tx, number)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt(format!("ticket #{number} vanished")))?;
                    let refused = if matches!(clocks.status, TicketStatus::Resolved | TicketStatus::Closed)
                    {
                        Some(EscalateOutcome::Finished {
                            status: clocks.status,
                        })
                    } else if escalation.to_tier <= clocks.tier {
                        Some(EscalateOutcome::NotHigher {
                            current: clocks.tier,
                        })
                    } else {
                        None
                    };
                    if let Some(refused) = refused {
                        tx.rollback().await?;
                        return Ok(refused);
                    }
                    sqlx::query("UPDATE tickets SET tier = $1, assignee = $2 WHERE number = $3")
                        .bind(i64::from(escalation.to_tier.get()))
                        .bind(escalation.assignee.as_deref())
                        .bind(to_i64(number))
                        .execute(&mut *tx)
                        .await?;
                    let note = super::escalation_note(clocks.tier, escalation);
                    add_note(&mut tx, to_i64(number), &note, now).await?;
                    tx.commit().await?;
                    Ok(EscalateOutcome::Escalated { from: clocks.tier })
                })
            }

            fn auto_escalate(&self, now: OffsetDateTime) -> StoreFuture<'_, Vec<AutoEscalation>> {
                Box::pin(async move {
                    let policy = self.policy();
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        clock_columns!(),
                        " FROM tickets WHERE tier < 3 AND sla_paused_at IS NULL AND ( \
                            (first_response_at IS NULL AND first_response_escalated = 0 \
                                AND first_response_risk_at <= $1) \
                            OR (resolved_at IS NULL AND resolution_escalated = 0 \
                                AND resolution_risk_at <= $1)) \
                         ORDER BY number"
                    ))
                    .bind(millis(now))
                    .fetch_all(&self.pool)
                    .await?;
                    let mut done = Vec::new();
                    for row in &rows {
                        let clocks = sla_record(row)?;
                        let targets = policy.escalations(&clocks, now);
                        if targets.is_empty() {
                            continue;
                        }
                        let number = to_u64(row.try_get("number")?)?;
                        let to = lifeline_shared::v1::api::Tier::new(clocks.tier.get() + 1)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        let marks =
                            |which| clocks.escalated(which) || targets.iter().any(|t| t.target == which);
                        let mut tx = self.pool.begin().await?;
                        // Moves only if nobody (another collector, a technician) changed it meanwhile.
                        let moved = sqlx::query(
                            "UPDATE tickets SET tier = $1, first_response_escalated = $2, \
                                resolution_escalated = $3 \
                             WHERE number = $4 AND tier = $5 AND first_response_escalated = $6 \
                                AND resolution_escalated = $7 AND sla_paused_at IS NULL",
                        )
                        .bind(i64::from(to.get()))
                        .bind(i64::from(marks(SlaTarget::FirstResponse)))
                        .bind(i64::from(marks(SlaTarget::Resolution)))
                        .bind(to_i64(number))
                        .bind(i64::from(clocks.tier.get()))
                        .bind(i64::from(clocks.first_response_escalated))
                        .bind(i64::from(clocks.resolution_escalated))
                        .execute(&mut *tx)
                        .await?;
                        if moved.rows_affected() == 0 {
                            tx.rollback().await?;
                            continue;
                        }
                        let escalation = AutoEscalation {
                            number,
                            from: clocks.tier,
                            to,
                            targets,
                        };
                        add_note(&mut tx, to_i64(number), &escalation.note(), now).await?;
                        tx.commit().await?;
                        done.push(escalation);
                    }
                    Ok(done)
                })
            }
    };
}
pub(super) use sql_methods;

macro_rules! sql_functions {
    ($pool:ty, $conn:ty, $row:ty) => {
        // ---- Satisfaction, webhooks and e-mail (issue 9) ----

        /// The end user's answers on ticket `number`, oldest first.
        async fn ticket_feedback(pool: &$pool, number: u64) -> Result<Vec<Feedback>, StoreError> {
            sqlx::query(
                "SELECT fixed, comment, resolved_at, created_at FROM ticket_feedback \
                 WHERE ticket_number = $1 ORDER BY id",
            )
            .bind(to_i64(number))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Feedback {
                    fixed: r.try_get::<i64, _>("fixed")? == 1,
                    comment: r.try_get("comment")?,
                    resolved_at: from_millis(r.try_get("resolved_at")?)?,
                    created_at: from_millis(r.try_get("created_at")?)?,
                })
            })
            .collect()
        }

        /// Columns of an outbox row (a macro so queries stay `&'static str`).
        macro_rules! delivery_columns {
            () => {
                "id, delivery_id, kind, target, event, ticket_number, state, attempts, next_attempt_at, \
                 created_at"
            };
        }
        use delivery_columns;

        /// Outbox rows as deliveries, each with its attempts (one query for all of them).
        async fn deliveries_with_history(
            pool: &$pool,
            rows: &[$row],
        ) -> Result<Vec<Delivery>, StoreError> {
            let mut deliveries = Vec::with_capacity(rows.len());
            for r in rows {
                let state = parse::<DeliveryState>(r.try_get("state")?)?;
                deliveries.push(Delivery {
                    id: to_u64(r.try_get("id")?)?,
                    delivery_id: r.try_get("delivery_id")?,
                    kind: parse::<DeliveryKind>(r.try_get("kind")?)?,
                    target: r.try_get("target")?,
                    event: r.try_get("event")?,
                    ticket: r
                        .try_get::<Option<i64>, _>("ticket_number")?
                        .map(to_u64)
                        .transpose()?,
                    state,
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    next_attempt_at: if state == DeliveryState::Pending {
                        Some(from_millis(r.try_get("next_attempt_at")?)?)
                    } else {
                        None
                    },
                    created_at: from_millis(r.try_get("created_at")?)?,
                    history: Vec::new(),
                });
            }
            let (Some(low), Some(high)) = (
                deliveries.iter().map(|d| d.id).min(),
                deliveries.iter().map(|d| d.id).max(),
            ) else {
                return Ok(deliveries);
            };
            let attempts = sqlx::query(
                "SELECT outbox_id, attempted_at, status, error, duration_ms FROM outbox_attempts \
                 WHERE outbox_id BETWEEN $1 AND $2 ORDER BY id",
            )
            .bind(to_i64(low))
            .bind(to_i64(high))
            .fetch_all(pool)
            .await?;
            let index: std::collections::HashMap<u64, usize> = deliveries
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id, i))
                .collect();
            for a in &attempts {
                let Some(&i) = index.get(&to_u64(a.try_get("outbox_id")?)?) else {
                    continue;
                };
                deliveries[i].history.push(DeliveryAttempt {
                    at: from_millis(a.try_get("attempted_at")?)?,
                    status: a
                        .try_get::<Option<i64>, _>("status")?
                        .and_then(|s| u16::try_from(s).ok()),
                    error: a.try_get("error")?,
                    duration_ms: to_u64(a.try_get("duration_ms")?)?,
                });
            }
            Ok(deliveries)
        }

        async fn current_catalog(pool: &$pool) -> Result<Option<CatalogRecord>, StoreError> {
            let row = sqlx::query(
                "SELECT version, digest, key_id, action_count, published_by, published_at FROM catalogs \
                 ORDER BY version DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(catalog_record).transpose()
        }

        /// Queues run `id` as work for its machine.
        async fn dispatch(
            tx: &mut $conn,
            id: i64,
            expires_at: OffsetDateTime,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let row = sqlx::query(
                "INSERT INTO work (machine_id, kind, state, ticket_number, created_at, expires_at) \
                 SELECT machine_id, 'run', 'queued', ticket_number, $2, $3 FROM runs WHERE id = $1 \
                 RETURNING id",
            )
            .bind(id)
            .bind(millis(now))
            .bind(millis(expires_at))
            .fetch_one(&mut *tx)
            .await?;
            let work_id: i64 = row.try_get("id")?;
            sqlx::query("UPDATE runs SET work_id = $2 WHERE id = $1")
                .bind(id)
                .bind(work_id)
                .execute(&mut *tx)
                .await?;
            Ok(())
        }

        /// Expires approvals and queued runs whose time is up.
        async fn expire_runs(pool: &$pool, now: OffsetDateTime) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE runs SET approval = 'expired' \
                 WHERE approval = 'pending' AND approval_expires_at <= $1",
            )
            .bind(millis(now))
            .execute(pool)
            .await?;
            sqlx::query(
                "UPDATE work SET state = 'expired', finished_at = $1 \
                 WHERE kind = 'run' AND state = 'queued' AND expires_at <= $1",
            )
            .bind(millis(now))
            .execute(pool)
            .await?;
            sqlx::query(
                "UPDATE work SET state = 'failed', finished_at = $1, error = $3 \
                 WHERE kind = 'run' AND state = 'delivered' AND delivered_at + 1000 * \
                    ((SELECT r.timeout_secs FROM runs r WHERE r.work_id = work.id) + $2) <= $1",
            )
            .bind(millis(now))
            .bind(RUN_REPORT_GRACE_SECS)
            .bind(RUN_SILENT_AGENT)
            .execute(pool)
            .await?;
            Ok(())
        }
    };
}
pub(super) use sql_functions;
