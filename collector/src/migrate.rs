//! `lifeline-collector migrate --from sqlite://PATH --to postgres://URL`: moves a site's data
//! from its SQLite database to PostgreSQL, then proves the copy.
//!
//! Both sides get their pending migrations first. A target that already holds data is refused.
//! Every table in [`TABLES`] (foreign-key order) is copied in ONE PostgreSQL transaction: each
//! column is bound by the target column's type from `information_schema` (BIGINT ← i64,
//! TEXT ← String, BYTEA ← bytes, DOUBLE PRECISION ← f64, NULL typed likewise), which works
//! because the PostgreSQL schema mirrors SQLite's column for column (`0001_initial.sql`). The
//! identities then move past the largest copied id. Verification: the row count of every table
//! is equal on both sides, and the target's audit log verifies as one chain
//! ([`ChainVerifier`]) ending at the source's head hash.
//!
//! The source is read through a read-only connection and changed by nothing but its pending
//! migrations. URLs are shown with their password hidden ([`redact_url`]).

use std::path::{Path, PathBuf};

use lifeline_shared::v1::audit::ChainVerifier;
use serde::Serialize;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Arguments, Connection, Row, ValueRef};

use crate::store::postgres::{PostgresStore, redact_url};
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditFilter, Store, StoreError};

/// Every table, parents before children. A unit test fails when the SQLite schema has a table
/// this list lacks, so a new migration cannot be forgotten here.
pub const TABLES: &[&str] = &[
    "users",
    "enrollment_tokens",
    "machines",
    "tickets",
    "snapshots",
    "comments",
    "vitals",
    "work",
    "audit_log",
    "catalog_keys",
    "catalogs",
    "catalog_actions",
    "action_settings",
    "runs",
    "web_sessions",
    "screenshots",
    // Issue 9: knowledge, satisfaction and the notification outbox.
    "ticket_fingerprints",
    "fingerprint_backfill",
    "ticket_feedback",
    "outbox",
    "outbox_attempts",
];

/// Audit entries read per page while verifying.
const AUDIT_PAGE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("--from {0}: expected sqlite://PATH")]
    BadSource(String),
    #[error("--to {0}: expected postgres://USER@HOST[:PORT]/DATABASE")]
    BadTarget(String),
    #[error("--from {}: no such file", .0.display())]
    MissingSource(PathBuf),
    #[error(
        "--to {url}: the target already holds data (table {table} has {rows} rows); migrate only into an empty database"
    )]
    TargetNotEmpty {
        url: String,
        table: String,
        rows: i64,
    },
    #[error(
        "table {table}: column {column} has type {kind} in PostgreSQL, which the copy does not handle"
    )]
    UnknownType {
        table: String,
        column: String,
        kind: String,
    },
    #[error("table {table}: {source_rows} rows in the source but {target_rows} in the target")]
    CountMismatch {
        table: String,
        source_rows: i64,
        target_rows: i64,
    },
    #[error("the copied audit log does not verify: {0}")]
    AuditBroken(String),
    #[error("the copied audit log ends at {target} but the source's ends at {expected}")]
    AuditHead { expected: String, target: String },
    #[error("table {table}: {source}")]
    Table {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What was copied, table by table.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub from: String,
    pub to: String,
    pub tables: Vec<TableCount>,
    pub audit_entries: u64,
    pub audit_head: String,
}

#[derive(Debug, Serialize)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
}

/// Copies `from` (`sqlite://PATH`) into `to` (`postgres://...`) and verifies the copy;
/// `progress` hears about each table as it is copied.
pub async fn run(
    from: &str,
    to: &str,
    mut progress: impl FnMut(&str, i64),
) -> Result<Summary, MigrateError> {
    let path = from
        .strip_prefix("sqlite://")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| MigrateError::BadSource(from.to_owned()))?;
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err(MigrateError::BadTarget(redact_url(to)));
    }
    if !path.is_file() {
        return Err(MigrateError::MissingSource(path));
    }
    // Pending migrations, then nothing but reads.
    let source_store = SqliteStore::open(&path).await?;
    let source_head = audit_head(&source_store).await?;
    drop(source_store);
    let mut source = read_only(&path).await?;
    let target = PostgresStore::open(to).await?;
    let pool = target.pool();
    let to_shown = redact_url(to);

    for table in TABLES {
        let rows = count_pg(pool, table).await?;
        if rows > 0 {
            return Err(MigrateError::TargetNotEmpty {
                url: to_shown,
                table: (*table).to_owned(),
                rows,
            });
        }
    }

    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let mut counts = Vec::new();
    for table in TABLES {
        let columns = pg_columns(&mut tx, table).await?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        let table_error = |source| MigrateError::Table {
            table: (*table).to_owned(),
            source,
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(select))
            .fetch_all(&mut source)
            .await
            .map_err(table_error)?;
        for row in &rows {
            let arguments = bind_row(table, row, &columns)?;
            sqlx::query_with(sqlx::AssertSqlSafe(insert.as_str()), arguments)
                .execute(&mut *tx)
                .await
                .map_err(table_error)?;
        }
        // Move each identity past the largest copied id.
        for (column, _) in columns
            .iter()
            .filter(|(_, kind)| kind.ends_with("identity"))
        {
            let reset = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                    COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            );
            sqlx::query(sqlx::AssertSqlSafe(reset))
                .execute(&mut *tx)
                .await
                .map_err(table_error)?;
        }
        let copied = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        progress(table, copied);
        counts.push(TableCount {
            table: (*table).to_owned(),
            rows: copied,
        });
    }
    tx.commit().await.map_err(StoreError::from)?;

    for count in &counts {
        let source_rows = count_sqlite(&mut source, &count.table).await?;
        let target_rows = count_pg(pool, &count.table).await?;
        if source_rows != target_rows || target_rows != count.rows {
            return Err(MigrateError::CountMismatch {
                table: count.table.clone(),
                source_rows,
                target_rows,
            });
        }
    }
    let (entries, head) = verify_audit(&target).await?;
    if head != source_head {
        return Err(MigrateError::AuditHead {
            expected: source_head,
            target: head,
        });
    }
    let _ = source.close().await;
    Ok(Summary {
        from: format!("sqlite://{}", path.display()),
        to: to_shown,
        tables: counts,
        audit_entries: entries,
        audit_head: head,
    })
}

async fn read_only(path: &Path) -> Result<SqliteConnection, StoreError> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    Ok(SqliteConnection::connect_with(&options).await?)
}

/// The target's columns in order, with their type (`… identity` when it has one).
async fn pg_columns(
    conn: &mut sqlx::PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, MigrateError> {
    let rows = sqlx::query(
        "SELECT column_name::text AS name, data_type::text AS kind, is_identity::text AS ident \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(conn)
    .await
    .map_err(StoreError::from)?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("name").map_err(StoreError::from)?;
            let kind: String = row.try_get("kind").map_err(StoreError::from)?;
            let ident: String = row.try_get("ident").map_err(StoreError::from)?;
            let kind = if ident == "YES" {
                format!("{kind} identity")
            } else {
                kind
            };
            Ok((name, kind))
        })
        .collect()
}

/// One source row as arguments typed by the target's columns.
fn bind_row(
    table: &str,
    row: &SqliteRow,
    columns: &[(String, String)],
) -> Result<PgArguments, MigrateError> {
    let mut arguments = PgArguments::default();
    for (index, (column, kind)) in columns.iter().enumerate() {
        let read_error = |source| MigrateError::Table {
            table: table.to_owned(),
            source,
        };
        let null = row.try_get_raw(index).map_err(read_error)?.is_null();
        let added = match kind.trim_end_matches(" identity") {
            "bigint" => {
                let value: Option<i64> = if null {
                    None
                } else {
                    Some(row.try_get(index).map_err(read_error)?)
                };
                arguments.add(value)
            }
            "text" => {
                let value: Option<String> = if null {
                    None
                } else {
                    Some(row.try_get(index).map_err(read_error)?)
                };
                arguments.add(value)
            }
            "bytea" => {
                let value: Option<Vec<u8>> = if null {
                    None
                } else {
                    Some(row.try_get(index).map_err(read_error)?)
                };
                arguments.add(value)
            }
            "double precision" => {
                let value: Option<f64> = if null {
                    None
                } else {
                    Some(row.try_get(index).map_err(read_error)?)
                };
                arguments.add(value)
            }
            _ => {
                return Err(MigrateError::UnknownType {
                    table: table.to_owned(),
                    column: column.clone(),
                    kind: kind.clone(),
                });
            }
        };
        added.map_err(|e| MigrateError::Table {
            table: table.to_owned(),
            source: sqlx::Error::Encode(e),
        })?;
    }
    Ok(arguments)
}

async fn count_pg(pool: &sqlx::PgPool, table: &str) -> Result<i64, MigrateError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(pool)
    .await
    .map_err(StoreError::from)?;
    Ok(row.try_get("n").map_err(StoreError::from)?)
}

async fn count_sqlite(conn: &mut SqliteConnection, table: &str) -> Result<i64, MigrateError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(conn)
    .await
    .map_err(StoreError::from)?;
    Ok(row.try_get("n").map_err(StoreError::from)?)
}

/// The head hash of a store's audit log, verified on the way.
async fn audit_head(store: &dyn Store) -> Result<String, MigrateError> {
    verify_audit(store).await.map(|(_, head)| head)
}

async fn verify_audit(store: &dyn Store) -> Result<(u64, String), MigrateError> {
    let mut verifier = ChainVerifier::new(None);
    let mut after = None;
    loop {
        let page = store
            .list_audit(&AuditFilter {
                since: None,
                actor: None,
                after_seq: after,
                limit: AUDIT_PAGE,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for entry in &page {
            verifier.push(entry);
        }
    }
    match verifier.finish() {
        Ok(summary) => Ok((summary.entries, summary.head)),
        Err(problem) => Err(MigrateError::AuditBroken(problem.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_sqlite_table_is_in_the_copy_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        drop(SqliteStore::open(&path).await.unwrap());
        let mut conn = read_only(&path).await.unwrap();
        let rows = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let missing: Vec<String> = rows
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .filter(|name| !TABLES.contains(&name.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "add these tables to migrate::TABLES (in foreign-key order): {missing:?}"
        );
    }

    #[tokio::test]
    async fn bad_urls_are_refused_with_the_password_hidden() {
        let err = run("postgres://x", "postgres://a:pw@h/db", |_, _| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("expected sqlite://PATH"), "{err}");
        let err = run(
            "sqlite:///nonexistent/site.db",
            "mysql://a:pw@h/db",
            |_, _| {},
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("--to") && !err.contains("pw@"), "{err}");
        let err = run(
            "sqlite:///nonexistent/site.db",
            "postgres://a:pw@h/db",
            |_, _| {},
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("no such file"), "{err}");
    }
}
