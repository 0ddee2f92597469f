//! Store methods and helpers whose SQL both databases run exactly as written, kept once:
//! `sql_methods!` expands inside `impl Store for SqliteStore` and `impl Store for
//! PostgresStore`, `sql_functions!` beside them, with each backend's database, pool, connection
//! and row types. Both backends import the same names (records, `sql.rs` helpers and column
//! macros), so the text means the same in each. What differs between the databases stays in
//! `sqlite.rs` and `postgres.rs`; where a method here needs one piece that differs, each
//! backend defines that piece under the same name: `begin_ticket_batch` and `INSERT_TICKET`
//! (how tickets are numbered), `lock_catalogs`, `CLAIM_DUE_DELIVERIES` and `text_position!`.

macro_rules! sql_methods {
    ($db:ty, $pool:ty, $conn:ty, $row:ty) => {
            fn ping(&self) -> StoreFuture<'_, ()> {
                Box::pin(async move {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                })
            }

            fn has_admin(&self) -> StoreFuture<'_, bool> {
                Box::pin(async move {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(row.try_get::<i64, _>("n")? > 0)
                })
            }

            fn add_user<'a>(
                &'a self,
                name: &'a str,
                role: Role,
                token_hash: &'a TokenHash,
                created_by: Option<&'a str>,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    let result = sqlx::query(
                        "INSERT INTO users (name, role, token_hash, created_at, created_by) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(name)
                    .bind(role.as_str())
                    .bind(token_hash.as_str())
                    .bind(millis(now))
                    .bind(created_by)
                    .execute(&self.pool)
                    .await;
                    match result {
                        Ok(_) => Ok(()),
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                            Err(StoreError::UserExists(name.to_owned()))
                        }
                        Err(e) => Err(e.into()),
                    }
                })
            }

            fn user_by_token<'a>(
                &'a self,
                token_hash: &'a TokenHash,
            ) -> StoreFuture<'a, Option<UserRecord>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT name, role, token_hash, revoked_at FROM users WHERE token_hash = $1",
                    )
                    .bind(token_hash.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                    Ok(Some(UserRecord {
                        name: row.try_get("name")?,
                        role: parse::<Role>(row.try_get("role")?)?,
                        token_hash: TokenHash::from_stored(row.try_get("token_hash")?),
                        revoked: revoked_at.is_some(),
                    }))
                })
            }

            fn list_users(&self) -> StoreFuture<'_, Vec<UserSummary>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT name, role, created_at, revoked_at, email, created_by FROM users \
                         ORDER BY name",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(UserSummary {
                                name: row.try_get("name")?,
                                role: parse::<Role>(row.try_get("role")?)?,
                                created_at: from_millis(row.try_get("created_at")?)?,
                                revoked_at: opt_from_millis(row.try_get("revoked_at")?)?,
                                email: row.try_get("email")?,
                                created_by: row.try_get("created_by")?,
                            })
                        })
                        .collect()
                })
            }

            fn revoke_user<'a>(
                &'a self,
                name: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE users SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                    )
                    .bind(millis(now))
                    .bind(name)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn add_enrollment_token<'a>(
                &'a self,
                token: &'a crate::store::EnrollmentTokenRecord,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO enrollment_tokens (token_hash, created_at, expires_at, \
                            max_uses, prefix, created_by) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(token.token_hash.as_str())
                    .bind(millis(now))
                    .bind(token.expires_at.map(millis))
                    .bind(token.max_uses.map(i64::from))
                    .bind(&token.prefix)
                    .bind(&token.created_by)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn list_enrollment_tokens(
                &self,
            ) -> StoreFuture<'_, Vec<lifeline_shared::v1::api::EnrollmentTokenInfo>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT id, prefix, created_by, created_at, expires_at, uses, max_uses, \
                            revoked_at \
                         FROM enrollment_tokens ORDER BY id",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let max_uses: Option<i64> = row.try_get("max_uses")?;
                            Ok(lifeline_shared::v1::api::EnrollmentTokenInfo {
                                id: to_u64(row.try_get("id")?)?,
                                prefix: row.try_get("prefix")?,
                                created_by: row.try_get("created_by")?,
                                created_at: from_millis(row.try_get("created_at")?)?,
                                expires_at: opt_from_millis(row.try_get("expires_at")?)?,
                                uses: to_u64(row.try_get("uses")?)?,
                                max_uses: max_uses
                                    .map(|n| {
                                        u32::try_from(n).map_err(|_| {
                                            StoreError::Corrupt(format!(
                                                "enrollment token max_uses {n}"
                                            ))
                                        })
                                    })
                                    .transpose()?,
                                revoked_at: opt_from_millis(row.try_get("revoked_at")?)?,
                            })
                        })
                        .collect()
                })
            }

            fn revoke_enrollment_token(
                &self,
                id: u64,
                now: OffsetDateTime,
            ) -> StoreFuture<'_, bool> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE enrollment_tokens SET revoked_at = $1 \
                         WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(millis(now))
                    .bind(to_i64(id))
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn check_enrollment_token<'a>(
                &'a self,
                token_hash: &'a TokenHash,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Result<(), EnrollmentRefusal>> {
                Box::pin(async move {
                    let row = sqlx::query(SELECT_ENROLLMENT_TOKEN)
                        .bind(token_hash.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    check_token(row.as_ref(), now)
                })
            }

            fn touch_machine<'a>(
                &'a self,
                id: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    self.telemetry.lock().see(id, millis(now));
                    Ok(())
                })
            }

            fn list_machines(&self) -> StoreFuture<'_, Vec<MachineSummary>> {
                Box::pin(async move {
                    self.telemetry.flush(&self.pool).await?;
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        machine_columns!(),
                        " FROM machines m ORDER BY m.hostname, m.id"
                    ))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(machine_summary).collect()
                })
            }

            fn machine<'a>(
                &'a self,
                id: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Option<MachineDetail>> {
                Box::pin(async move {
                    self.telemetry.flush(&self.pool).await?;
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        machine_columns!(),
                        " FROM machines m WHERE m.id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    let summary = machine_summary(&row)?;
                    let revoked_at = opt_from_millis(row.try_get("revoked_at")?)?;
                    let tickets = self
                        .list_tickets(
                            &TicketFilter {
                                machine: Some(id.to_owned()),
                                ..TicketFilter::default()
                            },
                            now,
                        )
                        .await?;
                    Ok(Some(MachineDetail {
                        summary,
                        revoked_at,
                        tickets,
                        last_vitals: None,
                        recent_vitals: Vec::new(),
                    }))
                })
            }

            fn count_active_machines(&self) -> StoreFuture<'_, u64> {
                Box::pin(async move {
                    let row =
                        sqlx::query("SELECT COUNT(*) AS n FROM machines WHERE status = 'active'")
                            .fetch_one(&self.pool)
                            .await?;
                    to_u64(row.try_get("n")?)
                })
            }

            fn record_ticket<'a>(
                &'a self,
                ticket: &'a TicketRecord,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, RecordedTicket> {
                Box::pin(submit_ticket(&self.ingest, ticket, self.policy(), now))
            }

            fn list_tickets<'a>(
                &'a self,
                filter: &'a TicketFilter,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Vec<TicketSummary>> {
                Box::pin(async move {
                    // Search: a ticket number (`12`, `#12`), a reference (`LL-7KQ2-M9XD`, matched
                    // on the idempotency key it encodes), or text in the description or host name.
                    let search = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
                    let search_number = search
                        .and_then(|q| q.trim_start_matches('#').parse::<i64>().ok())
                        .unwrap_or(-1);
                    let search_key_prefix = search
                        .and_then(reference_key_prefix)
                        .map_or_else(|| "-".to_owned(), |prefix| format!("{prefix}%"));
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        ticket_columns!(),
                        " FROM tickets t JOIN machines m ON m.id = t.machine_id \
                         WHERE ($1 IS NULL OR t.status = $1) AND ($2 IS NULL OR t.machine_id = $2 \
                            OR m.hostname = $2) \
                           AND ($3 IS NULL OR t.priority = $3) AND ($4 IS NULL OR t.tier = $4) \
                           AND ($5 IS NULL OR ($5 = '' AND t.assignee IS NULL) OR t.assignee = $5) \
                           AND ($6 IS NULL OR t.number = $7 OR t.idempotency_key LIKE $8 \
                                OR ",
                        text_position!(),
                        "(lower(t.description), lower($6)) > 0 \
                                OR ",
                        text_position!(),
                        "(lower(m.hostname), lower($6)) > 0) \
                         ORDER BY \
                           CASE WHEN $9 = 'priority' THEN (CASE t.priority WHEN 'critical' THEN 4 \
                                WHEN 'high' THEN 3 WHEN 'normal' THEN 2 ELSE 1 END) ELSE 0 END DESC, \
                           CASE WHEN $9 = 'age' THEN t.number ELSE 0 END ASC, \
                           CASE WHEN $9 = 'due' THEN (CASE WHEN ",
                        next_due!(),
                        " IS NULL THEN 1 ELSE 0 END) ELSE 0 END ASC, \
                           CASE WHEN $9 = 'due' THEN ",
                        next_due!(),
                        " ELSE 0 END ASC, \
                           t.number DESC"
                    ))
                    .bind(filter.status.map(|s| s.as_str()))
                    .bind(filter.machine.as_deref())
                    .bind(filter.priority.map(|p| p.as_str()))
                    .bind(filter.tier.map(|t| i64::from(t.get())))
                    .bind(filter.assignee.as_deref())
                    .bind(search)
                    .bind(search_number)
                    .bind(search_key_prefix)
                    .bind(filter.sort.map(|s| s.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                    let policy = self.policy();
                    rows.iter()
                        .map(|row| ticket_summary(row, &policy, now))
                        .collect()
                })
            }

            fn ticket(
                &self,
                number: u64,
                now: OffsetDateTime,
            ) -> StoreFuture<'_, Option<TicketDetail>> {
                Box::pin(async move {
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        ticket_columns!(),
                        ", t.os_user, t.findings \
                         FROM tickets t JOIN machines m ON m.id = t.machine_id WHERE t.number = $1"
                    ))
                    .bind(to_i64(number))
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    let summary = ticket_summary(&row, &self.policy(), now)?;
                    let findings: Vec<Finding> =
                        serde_json::from_str(row.try_get::<&str, _>("findings")?).map_err(|e| {
                            StoreError::Corrupt(format!("findings of #{number}: {e}"))
                        })?;
                    let comments = sqlx::query(
                        "SELECT author, body, created_at, public FROM comments WHERE ticket_number = $1 \
                         ORDER BY id",
                    )
                    .bind(to_i64(number))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(comment)
                    .collect::<Result<Vec<_>, StoreError>>()?;
                    let snapshots = sqlx::query(
                        "SELECT id, received_at, document FROM snapshots WHERE ticket_number = $1 \
                         ORDER BY id",
                    )
                    .bind(to_i64(number))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|s| {
                        let snapshot: Snapshot = serde_json::from_str(
                            s.try_get::<&str, _>("document")?,
                        )
                        .map_err(|e| StoreError::Corrupt(format!("snapshot of #{number}: {e}")))?;
                        Ok(AttachedSnapshot {
                            id: to_u64(s.try_get("id")?)?,
                            received_at: from_millis(s.try_get("received_at")?)?,
                            snapshot,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                    let has_screenshot =
                        sqlx::query("SELECT 1 AS one FROM screenshots WHERE ticket_number = $1")
                            .bind(to_i64(number))
                            .fetch_optional(&self.pool)
                            .await?
                            .is_some();
                    let (resolution_note, fingerprints) =
                        knowledge::knowledge_of(&self.pool, to_i64(number)).await?;
                    let feedback = ticket_feedback(&self.pool, number).await?;
                    Ok(Some(TicketDetail {
                        summary,
                        os_user: row.try_get("os_user")?,
                        first_response_at: opt_from_millis(row.try_get("first_response_at")?)?,
                        resolved_at: opt_from_millis(row.try_get("resolved_at")?)?,
                        findings,
                        comments,
                        snapshots,
                        has_screenshot,
                        resolution_note,
                        fingerprints,
                        feedback,
                    }))
                })
            }

            fn update_ticket<'a>(
                &'a self,
                number: u64,
                update: &'a TicketUpdate,
                by: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Option<()>> {
                Box::pin(async move {
                    let policy = self.policy();
                    let Some(mut tx) = begin_ticket_change(&self.pool, number, now).await? else {
                        return Ok(None);
                    };
                    let (mut clocks, assignee) = load_clocks(&mut tx, number)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt(format!("ticket #{number} vanished")))?;
                    let before = TicketFields {
                        status: clocks.status,
                        priority: clocks.priority,
                        tier: clocks.tier,
                        assignee,
                    };
                    // A status change is a response and stops or restarts the clocks; resolved_at
                    // is set when moving to resolved/closed (kept if already set) and cleared on
                    // reopening.
                    if let Some(status) = update.status {
                        clocks.set_status(status, &policy.calendar, now);
                    }
                    if let Some(priority) = update.priority {
                        clocks.priority = priority;
                    }
                    if let Some(tier) = update.tier {
                        clocks.tier = tier;
                    }
                    let after = TicketFields {
                        status: clocks.status,
                        priority: clocks.priority,
                        tier: clocks.tier,
                        assignee: match update.assignee.as_deref() {
                            Some("") => None,
                            Some(name) => Some(name.to_owned()),
                            None => before.assignee.clone(),
                        },
                    };
                    let schedule = policy.schedule(&mut clocks, now);
                    sqlx::query(
                        "UPDATE tickets SET status = $1, priority = $2, tier = $3, assignee = $4 \
                         WHERE number = $5",
                    )
                    .bind(after.status.as_str())
                    .bind(after.priority.as_str())
                    .bind(i64::from(after.tier.get()))
                    .bind(after.assignee.as_deref())
                    .bind(to_i64(number))
                    .execute(&mut *tx)
                    .await?;
                    save_clocks(&mut tx, number, &clocks, &schedule).await?;
                    if let Some(note) = super::change_note(by, &before, &after) {
                        add_note(&mut tx, to_i64(number), &note, now).await?;
                    }
                    tx.commit().await?;
                    Ok(Some(()))
                })
            }

            fn add_comment<'a>(
                &'a self,
                number: u64,
                author: &'a str,
                body: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, bool> {
                Box::pin(insert_comment(
                    &self.pool,
                    number,
                    author,
                    body,
                    false,
                    self.policy(),
                    now,
                ))
            }

            fn record_heartbeat<'a>(
                &'a self,
                machine_id: &'a str,
                vitals_json: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, ()> {
                Box::pin(
                    self.telemetry
                        .record(&self.pool, machine_id, vitals_json, millis(now)),
                )
            }

            fn vitals<'a>(
                &'a self,
                machine_id: &'a str,
                limit: u32,
            ) -> StoreFuture<'a, Vec<(OffsetDateTime, String)>> {
                Box::pin(async move {
                    self.telemetry.flush(&self.pool).await?;
                    let rows = sqlx::query(
                        "SELECT received_at, document FROM vitals WHERE machine_id = $1 \
                         ORDER BY id DESC LIMIT $2",
                    )
                    .bind(machine_id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok((
                                from_millis(r.try_get("received_at")?)?,
                                r.try_get("document")?,
                            ))
                        })
                        .collect()
                })
            }

            fn queue_work<'a>(
                &'a self,
                machine_id: &'a str,
                kind: &'a str,
                ticket: Option<u64>,
                expires_at: OffsetDateTime,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, u64> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "INSERT INTO work (machine_id, kind, state, ticket_number, created_at, expires_at) \
                         VALUES ($1, $2, 'queued', $3, $4, $5) RETURNING id",
                    )
                    .bind(machine_id)
                    .bind(kind)
                    .bind(ticket.map(to_i64))
                    .bind(millis(now))
                    .bind(millis(expires_at))
                    .fetch_one(&self.pool)
                    .await?;
                    to_u64(row.try_get("id")?)
                })
            }

            fn work(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<WorkRecord>> {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE work SET state = 'expired', finished_at = $2 \
                         WHERE id = $1 AND state = 'queued' AND expires_at <= $2",
                    )
                    .bind(to_i64(id))
                    .bind(millis(now))
                    .execute(&self.pool)
                    .await?;
                    load_work(&self.pool, id).await
                })
            }

            fn finish_work<'a>(
                &'a self,
                machine_id: &'a str,
                id: u64,
                outcome: &'a WorkOutcome,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Option<WorkRecord>> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    let (state, error, snapshot) = match outcome {
                        WorkOutcome::Snapshot(json) => ("done", None, Some(json.as_str())),
                        WorkOutcome::Failed(error) => ("failed", Some(error.as_str()), None),
                    };
                    let row = sqlx::query(
                        "UPDATE work SET state = $3, finished_at = $4, error = $5, snapshot = $6 \
                         WHERE id = $1 AND machine_id = $2 AND state IN ('queued', 'delivered') \
                         RETURNING ticket_number",
                    )
                    .bind(to_i64(id))
                    .bind(machine_id)
                    .bind(state)
                    .bind(millis(now))
                    .bind(error)
                    .bind(snapshot)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    let ticket: Option<i64> = row.try_get("ticket_number")?;
                    if let Some(number) = ticket {
                        let note = match outcome {
                            WorkOutcome::Snapshot(json) => {
                                sqlx::query(
                                    "INSERT INTO snapshots (ticket_number, machine_id, received_at, \
                                        document) VALUES ($1, $2, $3, $4)",
                                )
                                .bind(number)
                                .bind(machine_id)
                                .bind(millis(now))
                                .bind(json)
                                .execute(&mut *tx)
                                .await?;
                                format!("live inspection {id}: fresh snapshot attached")
                            }
                            WorkOutcome::Failed(error) => {
                                format!("live inspection {id} failed: {error}")
                            }
                        };
                        add_note(&mut tx, number, &note, now).await?;
                    }
                    tx.commit().await?;
                    load_work(&self.pool, id).await
                })
            }

            fn trust_catalog_key<'a>(&'a self, key: &'a CatalogKeyRecord) -> StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "INSERT INTO catalog_keys (key_id, public_key, endorsement, added_by, added_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id) DO NOTHING",
                    )
                    .bind(&key.key_id)
                    .bind(&key.public_key)
                    .bind(key.endorsement.as_deref())
                    .bind(&key.added_by)
                    .bind(millis(key.added_at))
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn catalog_keys(&self) -> StoreFuture<'_, Vec<CatalogKeyRecord>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT key_id, public_key, endorsement, added_by, added_at FROM catalog_keys \
                         ORDER BY added_at, key_id",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(CatalogKeyRecord {
                                key_id: r.try_get("key_id")?,
                                public_key: r.try_get("public_key")?,
                                endorsement: r.try_get("endorsement")?,
                                added_by: r.try_get("added_by")?,
                                added_at: from_millis(r.try_get("added_at")?)?,
                            })
                        })
                        .collect()
                })
            }

            fn current_catalog(&self) -> StoreFuture<'_, Option<CatalogRecord>> {
                Box::pin(async move { current_catalog(&self.pool).await })
            }

            fn publish_catalog<'a>(
                &'a self,
                catalog: &'a NewCatalog,
                by: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, PublishOutcome> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    // Take the lock first, so the version check below cannot race another publish.
                    lock_catalogs(&mut tx).await?;
                    let current = sqlx::query(
                        "SELECT version, digest FROM catalogs ORDER BY version DESC LIMIT 1",
                    )
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = current {
                        let version = to_u64(row.try_get("version")?)?;
                        let digest: String = row.try_get("digest")?;
                        if catalog.version < version {
                            tx.rollback().await?;
                            return Ok(PublishOutcome::Rollback { current: version });
                        }
                        if catalog.version == version {
                            tx.rollback().await?;
                            if digest == catalog.digest {
                                let record =
                                    current_catalog(&self.pool).await?.ok_or_else(|| {
                                        StoreError::Corrupt("catalog vanished".to_owned())
                                    })?;
                                return Ok(PublishOutcome::Unchanged(record));
                            }
                            return Ok(PublishOutcome::VersionReused { version });
                        }
                    }
                    let count = catalog.actions.len() as u64;
                    sqlx::query(
                        "INSERT INTO catalogs (version, digest, key_id, document, action_count, \
                            published_by, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(to_i64(catalog.version))
                    .bind(&catalog.digest)
                    .bind(&catalog.key_id)
                    .bind(&catalog.document)
                    .bind(to_i64(count))
                    .bind(by)
                    .bind(millis(now))
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM catalog_actions")
                        .execute(&mut *tx)
                        .await?;
                    for (id, signed) in &catalog.actions {
                        sqlx::query(
                            "INSERT INTO catalog_actions (action_id, catalog_version, signed) \
                             VALUES ($1, $2, $3)",
                        )
                        .bind(id)
                        .bind(to_i64(catalog.version))
                        .bind(signed)
                        .execute(&mut *tx)
                        .await?;
                    }
                    let expired = expire_older_runs(&mut tx, catalog.version, now).await?;
                    tx.commit().await?;
                    Ok(PublishOutcome::Published {
                        catalog: CatalogRecord {
                            version: catalog.version,
                            digest: catalog.digest.clone(),
                            key_id: catalog.key_id.clone(),
                            action_count: count,
                            published_by: by.to_owned(),
                            published_at: now,
                        },
                        expired,
                    })
                })
            }

            fn catalog_actions(&self) -> StoreFuture<'_, Vec<StoredAction>> {
                Box::pin(async move {
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        stored_action_columns!(),
                        " ORDER BY a.action_id"
                    ))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(stored_action).collect()
                })
            }

            fn catalog_action<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredAction>> {
                Box::pin(async move {
                    let row = sqlx::query(concat!(
                        "SELECT ",
                        stored_action_columns!(),
                        " WHERE a.action_id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(stored_action).transpose()
                })
            }

            fn set_action_approval<'a>(
                &'a self,
                id: &'a str,
                required: bool,
                by: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO action_settings (action_id, require_approval, set_by, set_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (action_id) DO UPDATE SET \
                            require_approval = excluded.require_approval, set_by = excluded.set_by, \
                            set_at = excluded.set_at",
                    )
                    .bind(id)
                    .bind(i64::from(required))
                    .bind(by)
                    .bind(millis(now))
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn create_run<'a>(
                &'a self,
                run: &'a NewRunRecord,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, RunRecord> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    // Under the catalog lock, so a publish cannot slip between this check and
                    // the insert: a run is never queued from a catalog that was just replaced.
                    lock_catalogs(&mut tx).await?;
                    if let Some(current) = current_version(&mut tx).await?
                        && current > run.catalog_version
                    {
                        tx.rollback().await?;
                        return Err(StoreError::CatalogReplaced {
                            version: run.catalog_version,
                            current,
                        });
                    }
                    let approval = if run.approval_expires_at.is_some() {
                        "pending"
                    } else {
                        "not_needed"
                    };
                    let row = sqlx::query(
                        "INSERT INTO runs (run_id, machine_id, action_id, signed_action, params, \
                            requested_by, reason, ticket_number, risk, approval, approval_expires_at, \
                            created_at, timeout_secs, catalog_version) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                         RETURNING id",
                    )
                    .bind(&run.run_id)
                    .bind(&run.machine_id)
                    .bind(&run.action_id)
                    .bind(&run.signed_action)
                    .bind(&run.params_json)
                    .bind(&run.requested_by)
                    .bind(run.reason.as_deref())
                    .bind(run.ticket.map(to_i64))
                    .bind(&run.risk)
                    .bind(approval)
                    .bind(run.approval_expires_at.map(millis))
                    .bind(millis(now))
                    .bind(to_i64(run.timeout_secs))
                    .bind(to_i64(run.catalog_version))
                    .fetch_one(&mut *tx)
                    .await?;
                    let id: i64 = row.try_get("id")?;
                    if run.approval_expires_at.is_none() {
                        dispatch(&mut tx, id, run.dispatch_expires_at, now).await?;
                    }
                    tx.commit().await?;
                    load_run(&self.pool, "r.id = $1", id)
                        .await?
                        .ok_or_else(|| StoreError::Corrupt(format!("run {id} vanished")))
                })
            }

            fn run(&self, id: u64, now: OffsetDateTime) -> StoreFuture<'_, Option<RunRecord>> {
                Box::pin(async move {
                    expire_runs(&self.pool, now).await?;
                    load_run(&self.pool, "r.id = $1", to_i64(id)).await
                })
            }

            fn runs<'a>(
                &'a self,
                filter: &'a RunFilter,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Vec<RunRecord>> {
                Box::pin(async move {
                    expire_runs(&self.pool, now).await?;
                    let rows = sqlx::query(concat!(
                        "SELECT ",
                        run_columns!(),
                        " WHERE (NOT $1 OR r.approval = 'pending') AND ($2 IS NULL OR r.machine_id = $2) \
                          ORDER BY r.id DESC LIMIT $3"
                    ))
                    .bind(filter.awaiting_approval)
                    .bind(filter.machine_id.as_deref())
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(run_record).collect()
                })
            }

            fn run_by_work(&self, work_id: u64) -> StoreFuture<'_, Option<RunRecord>> {
                Box::pin(
                    async move { load_run(&self.pool, "r.work_id = $1", to_i64(work_id)).await },
                )
            }

            fn decide_run<'a>(
                &'a self,
                id: u64,
                approve: bool,
                by: &'a str,
                reason: Option<&'a str>,
                dispatch_expires_at: OffsetDateTime,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Option<RunRecord>> {
                Box::pin(async move {
                    expire_runs(&self.pool, now).await?;
                    let mut tx = self.pool.begin().await?;
                    // Serialised with publishing: a request a newer catalog expired is no longer
                    // pending here, and one approved first is expired by that publish if it is
                    // still queued.
                    lock_catalogs(&mut tx).await?;
                    let done = sqlx::query(
                        "UPDATE runs SET approval = $2, decided_by = $3, decided_at = $4, \
                            decision_reason = $5 \
                         WHERE id = $1 AND approval = 'pending' AND approval_expires_at > $4",
                    )
                    .bind(to_i64(id))
                    .bind(if approve { "approved" } else { "denied" })
                    .bind(by)
                    .bind(millis(now))
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                    if approve {
                        dispatch(&mut tx, to_i64(id), dispatch_expires_at, now).await?;
                    }
                    tx.commit().await?;
                    load_run(&self.pool, "r.id = $1", to_i64(id)).await
                })
            }

            fn run_progress<'a>(
                &'a self,
                machine_id: &'a str,
                work_id: u64,
                stage: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE runs SET stage = $3, \
                            started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $4) \
                                              ELSE started_at END \
                         WHERE work_id = $1 AND machine_id = $2 AND EXISTS \
                            (SELECT 1 FROM work w WHERE w.id = $1 AND w.state = 'delivered')",
                    )
                    .bind(to_i64(work_id))
                    .bind(machine_id)
                    .bind(stage)
                    .bind(millis(now))
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn finish_run<'a>(
                &'a self,
                machine_id: &'a str,
                work_id: u64,
                finish: &'a RunFinish,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, Option<RunRecord>> {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    let state = if finish.result.is_some() {
                        "done"
                    } else {
                        "failed"
                    };
                    let row = sqlx::query(
                        "UPDATE work SET state = $3, finished_at = $4, error = $5 \
                         WHERE id = $1 AND machine_id = $2 AND kind = 'run' \
                            AND state IN ('queued', 'delivered') \
                         RETURNING ticket_number",
                    )
                    .bind(to_i64(work_id))
                    .bind(machine_id)
                    .bind(state)
                    .bind(millis(now))
                    .bind(finish.work_error.as_deref())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row else {
                        tx.rollback().await?;
                        return Ok(None);
                    };
                    sqlx::query("UPDATE runs SET result = $2, recheck = $3 WHERE work_id = $1")
                        .bind(to_i64(work_id))
                        .bind(finish.result.as_deref())
                        .bind(finish.recheck.as_deref())
                        .execute(&mut *tx)
                        .await?;
                    let ticket: Option<i64> = row.try_get("ticket_number")?;
                    if let Some(number) = ticket {
                        add_note(&mut tx, number, &finish.note, now).await?;
                    }
                    tx.commit().await?;
                    load_run(&self.pool, "r.work_id = $1", to_i64(work_id)).await
                })
            }

            fn list_audit<'a>(
                &'a self,
                filter: &'a AuditFilter,
            ) -> StoreFuture<'a, Vec<AuditEntry>> {
                Box::pin(async move {
                    // `seq > $1` always, so paging seeks by the primary key instead of scanning
                    // from the start.
                    let rows = sqlx::query(
                        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log \
                         WHERE seq > $1 AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR actor = $3) \
                         ORDER BY seq LIMIT $4",
                    )
                    .bind(filter.after_seq.map_or(i64::MIN, to_i64))
                    .bind(filter.since.map(millis))
                    .bind(filter.actor.as_deref())
                    .bind(i64::from(filter.limit))
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.iter().map(audit_entry).collect())
                })
            }

            fn add_public_comment<'a>(
                &'a self,
                number: u64,
                author: &'a str,
                body: &'a str,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, bool> {
                Box::pin(insert_comment(
                    &self.pool,
                    number,
                    author,
                    body,
                    true,
                    self.policy(),
                    now,
                ))
            }

            fn machine_tickets<'a>(
                &'a self,
                machine_id: &'a str,
                limit: u32,
            ) -> StoreFuture<'a, Vec<MachineTicket>> {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT number, description, status, created_at, updated_at, \
                            CAST(CASE WHEN status = 'resolved' AND resolved_at IS NOT NULL AND NOT EXISTS ( \
                                SELECT 1 FROM ticket_feedback f WHERE f.ticket_number = tickets.number \
                                AND f.resolved_at = tickets.resolved_at) THEN 1 ELSE 0 END AS BIGINT) \
                                AS feedback_wanted \
                         FROM tickets WHERE machine_id = $1 ORDER BY number DESC LIMIT $2",
                    )
                    .bind(machine_id)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    let mut tickets = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let number: i64 = row.try_get("number")?;
                        let replies = sqlx::query(
                            "SELECT author, body, created_at FROM comments \
                             WHERE ticket_number = $1 AND public = 1 ORDER BY id",
                        )
                        .bind(number)
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(reply)
                        .collect::<Result<Vec<_>, StoreError>>()?;
                        tickets.push(MachineTicket {
                            number: to_u64(number)?,
                            description: row.try_get("description")?,
                            status: parse::<TicketStatus>(row.try_get("status")?)?,
                            created_at: from_millis(row.try_get("created_at")?)?,
                            updated_at: from_millis(row.try_get("updated_at")?)?,
                            replies,
                            feedback_wanted: row.try_get::<i64, _>("feedback_wanted")? == 1,
                        });
                    }
                    Ok(tickets)
                })
            }

            fn create_web_session<'a>(&'a self, session: &'a NewWebSession) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO web_sessions (id_hash, user_name, csrf_token, created_at, \
                            last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
                    )
                    .bind(session.id_hash.as_str())
                    .bind(&session.user)
                    .bind(&session.csrf_token)
                    .bind(millis(session.created_at))
                    .bind(millis(session.expires_at))
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                })
            }

            fn web_session<'a>(
                &'a self,
                id_hash: &'a TokenHash,
            ) -> StoreFuture<'a, Option<WebSessionRecord>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT s.user_name, u.role, u.revoked_at, s.csrf_token, s.created_at, \
                            s.last_seen_at, s.expires_at \
                         FROM web_sessions s JOIN users u ON u.name = s.user_name WHERE s.id_hash = $1",
                    )
                    .bind(id_hash.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                    Ok(Some(WebSessionRecord {
                        user: row.try_get("user_name")?,
                        role: parse::<Role>(row.try_get("role")?)?,
                        user_revoked: revoked_at.is_some(),
                        csrf_token: row.try_get("csrf_token")?,
                        created_at: from_millis(row.try_get("created_at")?)?,
                        last_seen_at: from_millis(row.try_get("last_seen_at")?)?,
                        expires_at: from_millis(row.try_get("expires_at")?)?,
                    }))
                })
            }

            fn touch_web_session<'a>(
                &'a self,
                id_hash: &'a TokenHash,
                now: OffsetDateTime,
            ) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id_hash = $2")
                        .bind(millis(now))
                        .bind(id_hash.as_str())
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                })
            }

            fn delete_web_session<'a>(&'a self, id_hash: &'a TokenHash) -> StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
                        .bind(id_hash.as_str())
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() > 0)
                })
            }

            fn delete_stale_web_sessions(
                &self,
                now: OffsetDateTime,
                idle_before: OffsetDateTime,
            ) -> StoreFuture<'_, u64> {
                Box::pin(async move {
                    let done = sqlx::query(
                        "DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
                    )
                    .bind(millis(now))
                    .bind(millis(idle_before))
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected())
                })
            }

            fn ticket_status_counts(&self) -> StoreFuture<'_, Vec<(TicketStatus, u64)>> {
                Box::pin(async move {
                    let rows =
                        sqlx::query("SELECT status, COUNT(*) AS n FROM tickets GROUP BY status")
                            .fetch_all(&self.pool)
                            .await?;
                    let mut counts = rows
                        .iter()
                        .map(|r| {
                            Ok((
                                parse::<TicketStatus>(r.try_get("status")?)?,
                                to_u64(r.try_get("n")?)?,
                            ))
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?;
                    counts.sort_by_key(|(status, _)| *status);
                    Ok(counts)
                })
            }

            fn latest_snapshot<'a>(
                &'a self,
                machine_id: &'a str,
            ) -> StoreFuture<'a, Option<(OffsetDateTime, String)>> {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT at, document FROM ( \
                           SELECT received_at AS at, document FROM snapshots WHERE machine_id = $1 \
                           UNION ALL \
                           SELECT finished_at AS at, snapshot AS document FROM work \
                           WHERE machine_id = $1 AND snapshot IS NOT NULL AND finished_at IS NOT NULL) \
                           AS received \
                         ORDER BY at DESC LIMIT 1",
                    )
                    .bind(machine_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|r| Ok((from_millis(r.try_get("at")?)?, r.try_get("document")?)))
                        .transpose()
                })
            }

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
                    // read-to-write upgrade); the unique (ticket, resolution) pair allows one
                    // answer.
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
                        let row = sqlx::query(
                            "SELECT status FROM tickets WHERE number = $1 AND machine_id = $2",
                        )
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
                    let row = sqlx::query(
                        "SELECT email FROM users WHERE name = $1 AND revoked_at IS NULL",
                    )
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
                    // One statement, so choosing and claiming cannot be split by another deliverer.
                    let rows = sqlx::query(CLAIM_DUE_DELIVERIES)
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

            // Recurring problems, knowledge and reports (issue 9): queries in
            // `sqlite/knowledge.rs` and `postgres/knowledge.rs`.
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
                    // Runs at start, before the collector answers requests: nothing writes
                    // meanwhile.
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
                            resolution_risk_at: opt_from_millis(
                                row.try_get("resolution_risk_at")?,
                            )?,
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
                    let refused =
                        if matches!(clocks.status, TicketStatus::Resolved | TicketStatus::Closed) {
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
                        let marks = |which| {
                            clocks.escalated(which) || targets.iter().any(|t| t.target == which)
                        };
                        let mut tx = self.pool.begin().await?;
                        // Moves only if nobody (another collector, a technician) changed it
                        // meanwhile.
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
    ($db:ty, $pool:ty, $conn:ty, $row:ty) => {
        impl TicketBatchWriter for $pool {
            fn write_batch<'a>(
                &'a self,
                batch: &'a [IngestJob],
            ) -> StoreFuture<'a, Vec<Result<RecordedTicket, StoreError>>> {
                Box::pin(write_batch(self, batch))
            }
        }

        /// Each ticket is in its own savepoint, so one failing ticket does not fail its neighbours.
        async fn write_batch(
            pool: &$pool,
            batch: &[IngestJob],
        ) -> Result<Vec<Result<RecordedTicket, StoreError>>, StoreError> {
            let mut tx = begin_ticket_batch(pool).await?;
            let mut results = Vec::with_capacity(batch.len());
            for job in batch {
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                match insert_ticket(&mut savepoint, &job.ticket, &job.sla, job.now).await {
                    Ok(recorded) => {
                        savepoint.commit().await?;
                        results.push(Ok(recorded));
                    }
                    Err(error) => {
                        savepoint.rollback().await?;
                        results.push(Err(error));
                    }
                }
            }
            tx.commit().await?;
            Ok(results)
        }

        /// Inserts one ticket and its snapshot with the backend's `INSERT_TICKET`, or finds the
        /// ticket its idempotency key already made, in the transaction `begin_ticket_batch` began
        /// (on PostgreSQL, holding `TICKET_LOCK`).
        async fn insert_ticket(
            conn: &mut $conn,
            ticket: &TicketRecord,
            sla: &Policy,
            now: OffsetDateTime,
        ) -> Result<RecordedTicket, StoreError> {
            let findings = serde_json::to_string(&ticket.findings)
                .map_err(|e| StoreError::Corrupt(format!("findings: {e}")))?;
            let priority = Priority::initial(ticket.urgency, ticket.worst_finding);
            // Look before inserting: on SQLite a conflicting INSERT would still consume a number.
            let existing = sqlx::query(
                "SELECT number FROM tickets WHERE machine_id = $1 AND idempotency_key = $2",
            )
            .bind(&ticket.machine_id)
            .bind(&ticket.idempotency_key)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(existing) = existing {
                return Ok(RecordedTicket {
                    number: to_u64(existing.try_get("number")?)?,
                    created: false,
                });
            }
            let schedule = sla.schedule(&mut SlaRecord::new(now, priority), now);
            let opt = |t: Option<OffsetDateTime>| t.map(millis);
            let row = sqlx::query(INSERT_TICKET)
                .bind(&ticket.machine_id)
                .bind(&ticket.idempotency_key)
                .bind(&ticket.os_user)
                .bind(&ticket.description)
                .bind(ticket.urgency.as_str())
                .bind(priority.as_str())
                .bind(ticket.worst_finding.map(|s| s.as_str()))
                .bind(findings)
                .bind(millis(now))
                .bind(opt(schedule.first_response_due_at))
                .bind(opt(schedule.first_response_risk_at))
                .bind(opt(schedule.resolution_due_at))
                .bind(opt(schedule.resolution_risk_at))
                .fetch_one(&mut *conn)
                .await?;
            let number: i64 = row.try_get("number")?;
            if let Some(snapshot) = &ticket.snapshot_json {
                sqlx::query(
                    "INSERT INTO snapshots (ticket_number, machine_id, received_at, document) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(number)
                .bind(&ticket.machine_id)
                .bind(millis(now))
                .bind(snapshot)
                .execute(&mut *conn)
                .await?;
            }
            if let Some(png) = &ticket.screenshot_png {
                sqlx::query(
                    "INSERT INTO screenshots (ticket_number, png, received_at) VALUES ($1, $2, $3)",
                )
                .bind(number)
                .bind(png)
                .bind(millis(now))
                .execute(&mut *conn)
                .await?;
            }
            knowledge::insert_fingerprints(conn, number, &ticket.findings).await?;
            Ok(RecordedTicket {
                number: to_u64(number)?,
                created: true,
            })
        }

        /// Loads ticket `number`'s clocks and assignee inside a transaction.
        async fn load_clocks(
            conn: &mut $conn,
            number: u64,
        ) -> Result<Option<(SlaRecord, Option<String>)>, StoreError> {
            let row = sqlx::query(concat!(
                "SELECT ",
                clock_columns!(),
                " FROM tickets WHERE number = $1"
            ))
            .bind(to_i64(number))
            .fetch_optional(&mut *conn)
            .await?;
            row.map(|row| Ok((sla_record(&row)?, row.try_get("assignee")?)))
                .transpose()
        }

        /// Writes a ticket's clocks and the schedule computed from them.
        async fn save_clocks(
            conn: &mut $conn,
            number: u64,
            record: &SlaRecord,
            schedule: &Schedule,
        ) -> Result<(), StoreError> {
            let opt = |t: Option<OffsetDateTime>| t.map(millis);
            sqlx::query(
                "UPDATE tickets SET first_response_at = $1, resolved_at = $2, sla_paused_at = $3, \
                    sla_paused_ms = $4, first_response_due_at = $5, first_response_risk_at = $6, \
                    resolution_due_at = $7, resolution_risk_at = $8 \
                 WHERE number = $9",
            )
            .bind(opt(record.first_response_at))
            .bind(opt(record.resolved_at))
            .bind(opt(record.paused_at))
            .bind(i64::try_from(record.paused.whole_milliseconds()).unwrap_or(i64::MAX))
            .bind(opt(schedule.first_response_due_at))
            .bind(opt(schedule.first_response_risk_at))
            .bind(opt(schedule.resolution_due_at))
            .bind(opt(schedule.resolution_risk_at))
            .bind(to_i64(number))
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Starts a ticket transaction with a write, so SQLite takes the write lock before anything
        /// is read (a read-then-write transaction could fail on a concurrent writer instead of
        /// waiting) and PostgreSQL locks the ticket's row (concurrent changes of one ticket take
        /// turns). `None` (rolled back) when no such ticket exists.
        async fn begin_ticket_change(
            pool: &$pool,
            number: u64,
            now: OffsetDateTime,
        ) -> Result<Option<sqlx::Transaction<'static, $db>>, StoreError> {
            let mut tx = pool.begin().await?;
            let touched = sqlx::query("UPDATE tickets SET updated_at = $1 WHERE number = $2")
                .bind(millis(now))
                .bind(to_i64(number))
                .execute(&mut *tx)
                .await?;
            if touched.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            Ok(Some(tx))
        }

        /// Adds a timeline entry by the collector to a ticket.
        async fn add_note(
            tx: &mut $conn,
            number: i64,
            note: &str,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO comments (ticket_number, author, body, created_at) \
                 VALUES ($1, 'lifeline', $2, $3)",
            )
            .bind(number)
            .bind(note)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE tickets SET updated_at = $1 WHERE number = $2")
                .bind(millis(now))
                .bind(number)
                .execute(&mut *tx)
                .await?;
            Ok(())
        }

        /// One run chosen by `condition` on `$1` (a fixed SQL fragment, never user text).
        async fn load_run(
            pool: &$pool,
            condition: &'static str,
            value: i64,
        ) -> Result<Option<RunRecord>, StoreError> {
            let query = match condition {
                "r.id = $1" => concat!("SELECT ", run_columns!(), " WHERE r.id = $1"),
                _ => concat!("SELECT ", run_columns!(), " WHERE r.work_id = $1"),
            };
            let row = sqlx::query(query).bind(value).fetch_optional(pool).await?;
            row.as_ref().map(run_record).transpose()
        }

        /// Adds a comment to ticket `number` and counts it as the first response; false when no
        /// such ticket exists.
        async fn insert_comment(
            pool: &$pool,
            number: u64,
            author: &str,
            body: &str,
            public: bool,
            sla: std::sync::Arc<Policy>,
            now: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let Some(mut tx) = begin_ticket_change(pool, number, now).await? else {
                return Ok(false);
            };
            let (mut clocks, _) = load_clocks(&mut tx, number)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("ticket #{number} vanished")))?;
            clocks.respond(now);
            let schedule = sla.schedule(&mut clocks, now);
            save_clocks(&mut tx, number, &clocks, &schedule).await?;
            sqlx::query(
                "INSERT INTO comments (ticket_number, author, body, public, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(to_i64(number))
            .bind(author)
            .bind(body)
            .bind(i64::from(public))
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn load_work(pool: &$pool, id: u64) -> Result<Option<WorkRecord>, StoreError> {
            let row = sqlx::query(SELECT_WORK)
                .bind(to_i64(id))
                .fetch_optional(pool)
                .await?;
            row.as_ref().map(work_record).transpose()
        }

        /// `entry` as the audit log's next entry: numbered and chained after the current head.
        /// The caller keeps other appenders out until it has inserted it (`append_audit`).
        async fn next_audit_entry<'e>(
            executor: impl sqlx::Executor<'e, Database = $db>,
            entry: &NewAuditEntry,
            now: OffsetDateTime,
        ) -> Result<AuditEntry, StoreError> {
            let head = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(executor)
                .await?;
            let (seq, prev_hash) = match head {
                Some(row) => (
                    to_u64(row.try_get("seq")?)? + 1,
                    row.try_get::<String, _>("hash")?,
                ),
                None => (1, GENESIS_HASH.to_owned()),
            };
            let mut stored = AuditEntry {
                seq,
                at: now,
                actor: entry.actor.clone(),
                action: entry.action.clone(),
                subject: entry.subject.clone(),
                detail: entry.detail.clone(),
                prev_hash,
                hash: String::new(),
            };
            stored.hash = stored.compute_hash();
            Ok(stored)
        }

        /// Appends `stored` (from `next_audit_entry`) to the audit log, in one statement.
        async fn insert_audit_entry<'e>(
            executor: impl sqlx::Executor<'e, Database = $db>,
            stored: &AuditEntry,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(to_i64(stored.seq))
            .bind(millis(stored.at))
            .bind(&stored.actor)
            .bind(&stored.action)
            .bind(stored.subject.as_deref())
            .bind(audit::canonical_json(&stored.detail))
            .bind(&stored.prev_hash)
            .bind(&stored.hash)
            .execute(executor)
            .await?;
            Ok(())
        }

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

        /// The published catalog's version, if any.
        async fn current_version(tx: &mut $conn) -> Result<Option<u64>, StoreError> {
            let row = sqlx::query("SELECT MAX(version) AS version FROM catalogs")
                .fetch_one(&mut *tx)
                .await?;
            row.try_get::<Option<i64>, _>("version")?
                .map(to_u64)
                .transpose()
        }

        /// Ends the requests still waiting for an approval and the runs still queued (not yet
        /// delivered) whose action comes from a catalog older than `version`; runs recorded
        /// before versions were kept count as older. Called by `publish_catalog` in its
        /// transaction, under the catalog lock. Delivered runs are left to the agent, which
        /// refuses an action older than the newest catalog it has verified.
        async fn expire_older_runs(
            tx: &mut $conn,
            version: u64,
            now: OffsetDateTime,
        ) -> Result<Vec<ExpiredRun>, StoreError> {
            // Requests and work whose time is up are left to `expire_runs`, as if it had run.
            let rows = sqlx::query(
                "SELECT r.id, r.machine_id, r.action_id, r.catalog_version, r.approval, r.work_id \
                 FROM runs r LEFT JOIN work w ON w.id = r.work_id \
                 WHERE (r.catalog_version IS NULL OR r.catalog_version < $1) \
                    AND ((r.approval = 'pending' AND r.approval_expires_at > $2) \
                         OR (w.state = 'queued' AND w.expires_at > $2)) \
                 ORDER BY r.id",
            )
            .bind(to_i64(version))
            .bind(millis(now))
            .fetch_all(&mut *tx)
            .await?;
            let mut expired = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                let old = row
                    .try_get::<Option<i64>, _>("catalog_version")?
                    .map(to_u64)
                    .transpose()?;
                let reason = crate::store::catalog_replaced(old, version);
                let approval: String = row.try_get("approval")?;
                let pending = approval == "pending";
                // Each change is conditional, so a run delivered meanwhile is left alone.
                let done = if pending {
                    sqlx::query(
                        "UPDATE runs SET approval = 'expired', expired_reason = $2 \
                         WHERE id = $1 AND approval = 'pending'",
                    )
                    .bind(id)
                    .bind(&reason)
                    .execute(&mut *tx)
                    .await?
                } else {
                    let work_id: Option<i64> = row.try_get("work_id")?;
                    sqlx::query(
                        "UPDATE work SET state = 'expired', finished_at = $2 \
                         WHERE id = $1 AND state = 'queued'",
                    )
                    .bind(work_id)
                    .bind(millis(now))
                    .execute(&mut *tx)
                    .await?
                };
                if done.rows_affected() == 0 {
                    continue;
                }
                if !pending {
                    sqlx::query("UPDATE runs SET expired_reason = $2 WHERE id = $1")
                        .bind(id)
                        .bind(&reason)
                        .execute(&mut *tx)
                        .await?;
                }
                expired.push(ExpiredRun {
                    id: to_u64(id)?,
                    machine_id: row.try_get("machine_id")?,
                    action_id: row.try_get("action_id")?,
                    catalog_version: old,
                    was_awaiting_approval: pending,
                    reason,
                });
            }
            Ok(expired)
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
