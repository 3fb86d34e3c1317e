//! The idempotency keys of ingest requests in the Cosmos DB container: one small document per
//! key, in a logical partition of its own (the key is the partition key value; its fixed id
//! cannot meet a day's documents, whose ids are dates). Created only if absent, so the first
//! request under a key decides what its retries must match; the container's default TTL
//! forgets it.

use async_trait::async_trait;
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use super::client::{CallError, Read, Written};
use super::store::CosmosStore;
use crate::pipeline::ports::{IdempotencyKeys, KeyRecord, PortResult};

/// The id of every key document.
const KEY_DOC_ID: &str = "idempotency-key";

#[derive(Debug, Serialize, Deserialize)]
struct KeyDoc {
    id: String,
    /// The key itself, as the partition key value.
    #[serde(rename = "seriesId")]
    key: String,
    /// Always `"k"`.
    kind: String,
    fingerprint: String,
    stamp: i64,
    /// Milliseconds since the Unix epoch.
    #[serde(rename = "firstSeen")]
    first_seen: i64,
}

impl CosmosStore {
    async fn claim_key(&self, record: &KeyRecord) -> Result<KeyRecord, CallError> {
        let pk = record.key.as_str();
        let doc = KeyDoc {
            id: KEY_DOC_ID.into(),
            key: pk.into(),
            kind: "k".into(),
            fingerprint: record.fingerprint.clone(),
            stamp: record.stamp,
            first_seen: record.first_seen.timestamp_millis(),
        };
        // A key that expires between the create and the read is claimed again.
        for _ in 0..2 {
            if self.gateway().create(pk, KEY_DOC_ID, &doc).await? == Written::Done {
                return Ok(record.clone());
            }
            if let Read::Found { doc: kept, .. } =
                self.gateway().read::<KeyDoc>(pk, KEY_DOC_ID).await?
            {
                return Ok(KeyRecord {
                    key: record.key.clone(),
                    fingerprint: kept.fingerprint,
                    stamp: kept.stamp,
                    first_seen: DateTime::from_timestamp_millis(kept.first_seen).ok_or_else(
                        || CallError::Document(format!("key {pk}: firstSeen out of range")),
                    )?,
                });
            }
        }
        Err(CallError::Document(format!(
            "key {pk}: neither created nor found"
        )))
    }
}

#[async_trait]
impl IdempotencyKeys for CosmosStore {
    async fn claim(&self, record: KeyRecord) -> PortResult<KeyRecord> {
        self.claim_key(&record)
            .await
            .map_err(|e| e.into_port("claiming an idempotency key in Cosmos DB"))
    }
}
