//! The idempotency keys of ingest requests on the Cosmos DB store, against the SDK's in-memory
//! emulator: the first request under a key is kept, every later one gets it back.

use chrono::{DateTime, Utc};
use eventide::domain::idempotency::IdempotencyKey;
use eventide::pipeline::ports::{IdempotencyKeys, KeyRecord};
use eventide_testkit::cosmos::{Emulator, settings};

fn record(key: &str, fingerprint: &str, stamp: i64) -> KeyRecord {
    let first_seen: DateTime<Utc> = "2026-11-20T12:00:00.123Z".parse().unwrap();
    KeyRecord {
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: fingerprint.into(),
        stamp,
        first_seen: first_seen + chrono::Duration::milliseconds(stamp),
    }
}

#[tokio::test]
async fn the_first_request_under_a_key_is_the_one_kept() {
    let emulator = Emulator::new();
    let mut s = settings(1_000.0);
    s.create_if_missing = true;
    s.provisioned_throughput = Some(1_000);
    let (_client, store) = emulator.open(&s, vec![]).await;

    let first = record("8e03978e-40d5", "aaaa", 10);
    assert_eq!(store.claim(first.clone()).await.unwrap(), first);
    // A retry, and a reuse with another body: both get the first record back.
    assert_eq!(
        store
            .claim(record("8e03978e-40d5", "aaaa", 11))
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        store
            .claim(record("8e03978e-40d5", "bbbb", 12))
            .await
            .unwrap(),
        first
    );
    // Another key is another request.
    let other = record("plant-1", "bbbb", 13);
    assert_eq!(store.claim(other.clone()).await.unwrap(), other);
}
