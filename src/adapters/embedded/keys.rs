//! The idempotency keys of ingest requests in the embedded file: one row per key, inserted only
//! if absent, so the first request under a key decides what its retries must match.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{EmbeddedDb, from_millis, millis};
use crate::pipeline::ports::{IdempotencyKeys, KeyRecord, PortResult};

/// The embedded key store.
#[derive(Clone)]
pub struct EmbeddedKeys {
    db: EmbeddedDb,
}

impl EmbeddedKeys {
    pub fn new(db: EmbeddedDb) -> Self {
        Self { db }
    }

    /// Forgets keys first used before `first_seen_before` (the retention, like the days').
    pub async fn purge_seen_before(&self, first_seen_before: DateTime<Utc>) -> PortResult<usize> {
        let cutoff = millis(first_seen_before);
        self.db
            .call("purging expired idempotency keys", move |c| {
                c.execute(
                    "DELETE FROM idempotency_key WHERE first_seen < ?1",
                    [cutoff],
                )
            })
            .await
    }
}

#[async_trait]
impl IdempotencyKeys for EmbeddedKeys {
    async fn claim(&self, record: KeyRecord) -> PortResult<KeyRecord> {
        let key = record.key.clone();
        let (fingerprint, stamp, first_seen) = self
            .db
            .call("claiming an idempotency key", move |c| {
                let tx = c.transaction()?;
                tx.execute(
                    "INSERT INTO idempotency_key (key, fingerprint, stamp, first_seen)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    params![
                        record.key.as_str(),
                        record.fingerprint,
                        record.stamp,
                        millis(record.first_seen)
                    ],
                )?;
                let kept = tx.query_row(
                    "SELECT fingerprint, stamp, first_seen FROM idempotency_key WHERE key = ?1",
                    [record.key.as_str()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )?;
                tx.commit()?;
                Ok(kept)
            })
            .await?;
        Ok(KeyRecord {
            key,
            fingerprint,
            stamp,
            first_seen: from_millis(first_seen),
        })
    }
}
