//! The secrets collectors sharing one PostgreSQL database share: the CA (table
//! `collector_secrets`, migration `0100`), and the lock under which the first instance to start
//! creates them and the first admin, so two instances starting together create one of each.

use sqlx::Row;
use sqlx::postgres::PgConnection;
use sqlx::{Acquire, Connection};
use time::OffsetDateTime;

use super::StoreError;
use super::postgres::PostgresStore;
use super::sql::millis;

/// Session-level advisory lock held while an instance bootstraps (see [`BootstrapLock`]).
pub const BOOTSTRAP_LOCK: i64 = 0x4c4c_0000_0004;

const CA_CERT: &str = "ca_cert";
const CA_KEY: &str = "ca_key";

/// Held while one instance creates or reads the shared secrets; released by [`release`] or, if
/// the instance dies, by PostgreSQL when the connection closes (it is not a pooled connection).
///
/// [`release`]: BootstrapLock::release
#[derive(Debug)]
pub struct BootstrapLock {
    connection: PgConnection,
}

impl BootstrapLock {
    pub async fn release(self) -> Result<(), StoreError> {
        self.connection.close().await?;
        Ok(())
    }
}

/// The shared CA as PEM: certificate and private key.
#[derive(Debug)]
pub struct SharedCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl PostgresStore {
    /// Waits for, then takes, the bootstrap lock.
    pub async fn bootstrap_lock(&self) -> Result<BootstrapLock, StoreError> {
        let mut connection = self.pool().acquire().await?.detach();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut connection)
            .await?;
        Ok(BootstrapLock { connection })
    }

    /// The CA stored by the first instance, if any.
    pub async fn shared_ca(&self) -> Result<Option<SharedCa>, StoreError> {
        let rows = sqlx::query("SELECT name, value FROM collector_secrets WHERE name IN ($1, $2)")
            .bind(CA_CERT)
            .bind(CA_KEY)
            .fetch_all(self.pool())
            .await?;
        let mut cert_pem = None;
        let mut key_pem = None;
        for row in &rows {
            let name: String = row.try_get("name")?;
            let value: String = row.try_get("value")?;
            match name.as_str() {
                CA_CERT => cert_pem = Some(value),
                _ => key_pem = Some(value),
            }
        }
        Ok(cert_pem
            .zip(key_pem)
            .map(|(cert_pem, key_pem)| SharedCa { cert_pem, key_pem }))
    }

    /// Stores the CA; the caller holds the bootstrap lock and found none.
    pub async fn put_shared_ca(
        &self,
        ca: &SharedCa,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool().acquire().await?;
        let mut tx = conn.begin().await?;
        for (name, value) in [(CA_CERT, &ca.cert_pem), (CA_KEY, &ca.key_pem)] {
            sqlx::query(
                "INSERT INTO collector_secrets (name, value, created_at) VALUES ($1, $2, $3)",
            )
            .bind(name)
            .bind(value)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
