//! The Cosmos DB series-day store against the SDK's in-memory emulator (throttling on,
//! provisioned throughput): setup, CRUD, TTL on written documents, etag races, split buckets,
//! the day log: appends of pending days, compaction into segments, an interrupted compaction
//! redone, a damaged log entry failing its series-day alone; and states read as pending
//! standing in for header reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_data_cosmos::fault_injection::{
    FaultInjectionConditionBuilder, FaultInjectionErrorType, FaultInjectionResultBuilder,
    FaultInjectionRule, FaultInjectionRuleBuilder, FaultOperationType,
};
use chrono::{NaiveDate, TimeZone, Utc};
use eventide::adapters::cosmos::CosmosStore;
use eventide::adapters::cosmos::codec;
use eventide::adapters::cosmos::layout::{
    HOUR_NS, MAX_HOUR_POINTS, Part, log_partition, log_shard,
};
use eventide::adapters::cosmos::stats::Operation;
use eventide::domain::calendar::Calendar;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::{DayState, Point, SeriesDayKey, merge_into, normalize};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{DayPoints, ErrorKind, SeriesDayStore, StateWrite, WriteOutcome};
use eventide_testkit::cosmos::{Emulator, settings};
use futures::TryStreamExt;

const SECOND: i64 = 1_000_000_000;

fn day() -> NaiveDate {
    "2026-11-24".parse().unwrap()
}

/// The key of `series` on the test day.
fn key_of(series: &str) -> SeriesDayKey {
    SeriesDayKey::new(SeriesId::parse(series).unwrap(), day())
}

/// A write of `state` that expects the stored state to have `expected_version`.
fn state_write(
    key: &SeriesDayKey,
    expected_version: Option<String>,
    state: DayState,
) -> StateWrite {
    StateWrite {
        key: key.clone(),
        expected_version,
        state,
    }
}

fn day_start() -> i64 {
    Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

fn points(from_s: i64, n: i64, step_s: i64, stamp: i64) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            ts: day_start() + (from_s + i * step_s) * SECOND,
            value: 20.0 + (i % 97) as f64 * 0.01,
            stamp,
        })
        .collect()
}

fn state(epoch: u32) -> DayState {
    DayState {
        epoch,
        pending: true,
        due_at: Utc.with_ymd_and_hms(2026, 11, 25, 0, 10, 0).unwrap(),
        touched: 0,
        summarized_revision: None,
    }
}

/// Merges until written, as `pipeline::process` does (bounded).
async fn merge(store: &CosmosStore, key: &SeriesDayKey, pts: Vec<Point>) {
    let mut pts = pts;
    normalize(&mut pts);
    let days = [DayPoints {
        key: key.clone(),
        points: pts,
    }];
    for _ in 0..8 {
        let prepared = store.prepare(&days).await.unwrap();
        if !prepared[0].changed {
            return;
        }
        if store.commit(&prepared).await.unwrap() == [WriteOutcome::Written] {
            return;
        }
    }
    panic!("merge kept conflicting");
}

/// A store whose merges all rewrite buckets (no day log): most tests here are about buckets.
async fn opened(ttl_s: u64) -> (Emulator, azure_data_cosmos::CosmosClient, CosmosStore) {
    opened_with(ttl_s, 0, vec![]).await
}

async fn opened_with(
    ttl_s: u64,
    log_shards: u32,
    rules: Vec<Arc<FaultInjectionRule>>,
) -> (Emulator, azure_data_cosmos::CosmosClient, CosmosStore) {
    let emulator = Emulator::new();
    let mut s = settings(400.0);
    s.create_if_missing = true;
    s.provisioned_throughput = Some(400);
    s.ttl = std::time::Duration::from_secs(ttl_s);
    s.log_shards = log_shards;
    let (client, store) = emulator.open(&s, rules).await;
    (emulator, client, store)
}

/// Every document of one partition, sorted by id.
async fn partition_docs(
    client: &azure_data_cosmos::CosmosClient,
    partition: &str,
) -> Vec<serde_json::Value> {
    let container = client
        .database_client("eventide")
        .container_client("series_days", None)
        .await
        .unwrap();
    let mut docs: Vec<serde_json::Value> = container
        .query_items(
            azure_data_cosmos::Query::from("SELECT * FROM c"),
            azure_data_cosmos::FeedScope::partition(partition.to_string()),
            None,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.sort_by_key(|d| d["id"].as_str().unwrap().to_string());
    docs
}

/// Requests the store sent of one operation.
fn requests(store: &CosmosStore, operation: Operation) -> u64 {
    store
        .stats()
        .by_operation()
        .into_iter()
        .find(|o| o.operation == operation)
        .unwrap()
        .requests
}

#[tokio::test]
async fn setup_creates_the_container_with_partition_key_ttl_and_indexing_policy() {
    let (_emulator, client, _store) = opened(7200).await;
    let container = client
        .database_client("eventide")
        .container_client("series_days", None)
        .await
        .unwrap();
    let props = container.read(None).await.unwrap().into_model().unwrap();
    let json = serde_json::to_value(&props).unwrap();
    assert_eq!(json["partitionKey"]["paths"][0], "/seriesId", "{json}");
    assert_eq!(json["defaultTtl"], 7200, "{json}");
    let excluded = json["indexingPolicy"]["excludedPaths"].to_string();
    assert!(excluded.contains("\"/*\""), "{json}");
    let included = json["indexingPolicy"]["includedPaths"].to_string();
    assert!(
        included.contains("/pending/?") && !included.contains("/p/"),
        "{json}"
    );

    // Opening again (another instance starting) finds everything in place.
    let emulator_settings = {
        let mut s = settings(400.0);
        s.create_if_missing = true;
        s
    };
    eventide::adapters::cosmos::client::open_container(&client, &emulator_settings)
        .await
        .unwrap();
}

#[tokio::test]
async fn states_are_created_once_and_replaced_only_at_their_version() {
    let (_emulator, _client, store) = opened(3600).await;
    let key = key_of("plant-1/temp");
    assert_eq!(
        store.read_states(std::slice::from_ref(&key)).await.unwrap(),
        vec![None]
    );
    let w = [state_write(&key, None, state(1))];
    assert_eq!(
        store.write_states(&w).await.unwrap(),
        [WriteOutcome::Written]
    );
    assert_eq!(
        store.write_states(&w).await.unwrap(),
        [WriteOutcome::Conflict]
    );

    let read = store.read_states(std::slice::from_ref(&key)).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(read.value, state(1));
    let next = [state_write(&key, Some(read.version.clone()), state(2))];
    assert_eq!(
        store.write_states(&next).await.unwrap(),
        [WriteOutcome::Written]
    );
    // The version read before is stale now: 412, reported as a conflict.
    assert_eq!(
        store.write_states(&next).await.unwrap(),
        [WriteOutcome::Conflict]
    );
    let read = store.read_states(std::slice::from_ref(&key)).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(read.value.epoch, 2);

    let other = key_of("other");
    assert_eq!(
        store
            .pending_due_before(Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(), 10)
            .await
            .unwrap(),
        vec![key.clone()]
    );
    assert!(
        store
            .pending_due_before(Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .write_states(&[state_write(&other, None, state(1))])
        .await
        .unwrap();
    assert_eq!(store.series_of_day(day()).await.unwrap(), vec![other, key]);
}

#[tokio::test]
async fn points_merge_read_back_and_carry_the_ttl() {
    let (_emulator, client, store) = opened(3600).await;
    let key = key_of("plant-1/temp");
    assert!(store.read_days(std::slice::from_ref(&key)).await.unwrap()[0].is_none());

    // Two hours of minute data in 10-point chunks, then a correction and a duplicate.
    let mut truth = Vec::new();
    for chunk in 0..12 {
        let pts = points(chunk * 600, 10, 60, 100);
        merge_into(&mut truth, &pts);
        merge(&store, &key, pts).await;
    }
    let correction = vec![Point {
        ts: day_start() + 600 * SECOND,
        value: -4.25,
        stamp: 200,
    }];
    merge_into(&mut truth, &correction);
    merge(&store, &key, correction.clone()).await;
    // A stale value with an older stamp changes nothing: prepare says so.
    let stale = [DayPoints {
        key: key.clone(),
        points: vec![Point {
            stamp: 150,
            value: 9.0,
            ..correction[0]
        }],
    }];
    assert!(!store.prepare(&stale).await.unwrap()[0].changed);

    let stored = store.read_days(std::slice::from_ref(&key)).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(stored.points, truth);
    assert!(stored.state.is_none());

    // Buckets are written while a summary is pending and never expire until the day is
    // summarized (tests/lateness_cosmos_ttl.rs); ordinary merges wrote one bucket per hour and
    // no header.
    let container = client
        .database_client("eventide")
        .container_client("series_days", None)
        .await
        .unwrap();
    let hour = (day_start() / HOUR_NS).to_string();
    let doc: serde_json::Value = container
        .read_item("plant-1/temp", &format!("2026-11-24_{hour}"), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(doc["ttl"], -1);
    assert!(
        doc.to_string().len() < 1024,
        "an hour of minute data stays under 1 KB: {doc}"
    );
    store
        .write_states(&[state_write(&key, None, state(1))])
        .await
        .unwrap();
    let header: serde_json::Value = container
        .read_item("plant-1/temp", "2026-11-24", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(header["ttl"], -1, "a pending day never expires");
}

#[tokio::test]
async fn two_writers_on_one_series_day_lose_no_update() {
    let (_emulator, _client, store) = opened(3600).await;
    let key = key_of("s-5");
    merge(&store, &key, points(0, 5, 60, 1)).await;

    // Both prepare against the same stored hour, then both commit.
    let a = [DayPoints {
        key: key.clone(),
        points: points(300, 5, 60, 2),
    }];
    let b = [DayPoints {
        key: key.clone(),
        points: points(600, 5, 60, 3),
    }];
    let (pa, pb) = (
        store.prepare(&a).await.unwrap(),
        store.prepare(&b).await.unwrap(),
    );
    let first = store.commit(&pa).await.unwrap();
    let second = store.commit(&pb).await.unwrap();
    assert_eq!(first, [WriteOutcome::Written]);
    assert_eq!(second, [WriteOutcome::Conflict], "the etag caught the race");
    // The loser redoes from a fresh read.
    merge(&store, &key, b[0].points.clone()).await;

    // And many writers at once, each retrying on conflict.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(
                async move { merge(&store, &key, points(900 + w * 60, 1, 60, 10 + w)).await },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stored = store.read_days(&[key]).await.unwrap()[0].clone().unwrap();
    let mut truth = points(0, 5, 60, 1);
    merge_into(&mut truth, &points(300, 5, 60, 2));
    merge_into(&mut truth, &points(600, 5, 60, 3));
    for w in 0..8 {
        merge_into(&mut truth, &points(900 + w * 60, 1, 60, 10 + w));
    }
    assert_eq!(stored.points, truth);
}

#[tokio::test]
async fn a_series_reporting_every_second_splits_into_small_slot_buckets() {
    let (_emulator, client, store) = opened(3600).await;
    let key = key_of("fast");
    let mut truth = Vec::new();
    // Two hours of 1 s data: the first hour in 60-point chunks (it outgrows the hour bucket
    // and is split on the way), the second delivered whole (split at once).
    for chunk in 0..60 {
        let pts = points(chunk * 60, 60, 1, 5);
        merge_into(&mut truth, &pts);
        merge(&store, &key, pts).await;
    }
    let whole = points(3600, 3600, 1, 6);
    merge_into(&mut truth, &whole);
    merge(&store, &key, whole).await;
    let stored = store.read_days(std::slice::from_ref(&key)).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(stored.points.len(), 7200);
    assert_eq!(stored.points, truth);

    let container = client
        .database_client("eventide")
        .container_client("series_days", None)
        .await
        .unwrap();
    let docs: Vec<serde_json::Value> = {
        use futures::TryStreamExt;
        container
            .query_items::<serde_json::Value>(
                azure_data_cosmos::Query::from("SELECT * FROM c WHERE c.seriesId = @s")
                    .with_parameter("@s", "fast")
                    .unwrap(),
                azure_data_cosmos::FeedScope::partition("fast"),
                None,
            )
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    let mut sizes = BTreeMap::new();
    for doc in &docs {
        sizes.insert(
            doc["id"].as_str().unwrap().to_string(),
            doc.to_string().len(),
        );
    }
    let markers = docs.iter().filter(|d| d["split"] == true).count();
    assert_eq!(markers, 2, "both hours are split: {sizes:?}");
    assert_eq!(
        docs.len(),
        2 + 60,
        "two markers and 30 two-minute slots per hour"
    );
    let largest = sizes.values().max().unwrap();
    assert!(*largest < 1500, "every document stays small: {sizes:?}");
    const { assert!(MAX_HOUR_POINTS < 3600) };
}

/// Thirty pending series-days, three batches of ten points each: what the batches wrote and
/// what the day's log held.
async fn three_logged_batches(store: &CosmosStore) -> (Vec<SeriesDayKey>, Vec<Vec<Point>>) {
    let keys: Vec<SeriesDayKey> = (0..30).map(|i| key_of(&format!("dev-{i:02}"))).collect();
    let opened: Vec<StateWrite> = keys
        .iter()
        .map(|key| state_write(key, None, state(1)))
        .collect();
    store.write_states(&opened).await.unwrap();
    let mut truth = vec![Vec::new(); keys.len()];
    for batch in 0..3 {
        let days: Vec<DayPoints> = keys
            .iter()
            .map(|key| DayPoints {
                key: key.clone(),
                points: points(batch * 600, 10, 60, 1),
            })
            .collect();
        for (truth, day) in truth.iter_mut().zip(&days) {
            merge_into(truth, &day.points);
        }
        let prepared = store.prepare(&days).await.unwrap();
        assert!(prepared.iter().all(|m| m.changed));
        let outcomes = store.commit(&prepared).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == WriteOutcome::Written));
    }
    (keys, truth)
}

#[tokio::test]
async fn pending_days_append_to_the_day_log_and_a_read_compacts_it_into_segments() {
    let (_emulator, client, store) = opened_with(3600, 4, vec![]).await;
    let (keys, truth) = three_logged_batches(&store).await;
    // Each batch wrote a log document or two to each of the 4 shards (about 110 bytes per
    // series-day), and no bucket: nothing was replaced, and the series' partitions hold their
    // headers alone.
    assert_eq!(requests(&store, Operation::Replace), 0);
    let day_log = |shard| log_partition(day(), shard);
    let mut logged = 0;
    for shard in 0..4 {
        logged += partition_docs(&client, &day_log(shard)).await.len();
    }
    assert!((3 * 4..=3 * 8).contains(&logged), "{logged} log documents");
    assert_eq!(
        partition_docs(&client, "dev-07").await.len(),
        1,
        "the header alone"
    );

    // Reading compacts every shard the days write to: one segment per series, and the log is
    // gone.
    let days = store.read_days(&keys).await.unwrap();
    for (day, truth) in days.iter().zip(&truth) {
        assert_eq!(&day.as_ref().unwrap().points, truth);
    }
    for shard in 0..4 {
        assert!(partition_docs(&client, &day_log(shard)).await.is_empty());
    }
    let docs = partition_docs(&client, "dev-07").await;
    assert_eq!(docs.len(), 2, "the header and one segment: {docs:?}");
    assert!(docs[1]["id"].as_str().unwrap().starts_with("2026-11-24_s"));
    assert_eq!(docs[1]["ttl"], -1, "pinned while the summary is pending");

    // A read finds the log empty: nothing is written again, and the day reads the same.
    let written = requests(&store, Operation::Create);
    let again = store.read_days(&keys).await.unwrap();
    for (day, truth) in again.iter().zip(&truth) {
        assert_eq!(&day.as_ref().unwrap().points, truth);
    }
    assert_eq!(requests(&store, Operation::Create), written);
}

#[tokio::test]
async fn a_compaction_stopped_before_deleting_the_log_writes_the_same_segments_again() {
    // Every delete fails for good while the rule is on: the compaction stops after writing
    // the segments, as a crash between the two steps would.
    let deletes_fail = Arc::new(
        FaultInjectionRuleBuilder::new(
            "deletes fail",
            FaultInjectionResultBuilder::new()
                .with_error(FaultInjectionErrorType::ServiceUnavailable)
                .with_probability(1.0)
                .build(),
        )
        .with_condition(
            FaultInjectionConditionBuilder::new()
                .with_operation_type(FaultOperationType::DeleteItem)
                .build(),
        )
        .build(),
    );
    let (_emulator, client, store) = opened_with(3600, 1, vec![deletes_fail.clone()]).await;
    let (keys, truth) = three_logged_batches(&store).await;
    let logged = partition_docs(&client, &log_partition(day(), 0))
        .await
        .len();
    assert!(store.read_days(&keys).await.is_err());
    let segments = partition_docs(&client, "dev-03").await;
    assert_eq!(
        segments.len(),
        2,
        "the header and the segment written before the stop"
    );
    assert_eq!(
        partition_docs(&client, &log_partition(day(), 0))
            .await
            .len(),
        logged
    );

    // The next read compacts the same log documents into the same segments (their creates
    // conflict and change nothing), then deletes the log.
    deletes_fail.disable();
    let days = store.read_days(&keys).await.unwrap();
    for (day, truth) in days.iter().zip(&truth) {
        assert_eq!(&day.as_ref().unwrap().points, truth);
    }
    assert_eq!(partition_docs(&client, "dev-03").await, segments);
    assert!(
        partition_docs(&client, &log_partition(day(), 0))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn points_logged_under_another_shard_count_are_compacted_all_the_same() {
    let (emulator, client, store) = opened_with(3600, 4, vec![]).await;
    let (keys, truth) = three_logged_batches(&store).await;
    // The same container read by a store with the log turned off: the shards are found by
    // query, not by the count configured now.
    let mut s = settings(400.0);
    s.log_shards = 0;
    let (_client, reader) = emulator.open(&s, vec![]).await;
    let days = reader.read_days(&keys).await.unwrap();
    for (day, truth) in days.iter().zip(&truth) {
        assert_eq!(&day.as_ref().unwrap().points, truth);
    }
    for shard in 0..4 {
        assert!(
            partition_docs(&client, &log_partition(day(), shard))
                .await
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_state_read_as_pending_stands_in_for_header_reads_until_near_its_due_time() {
    let (_emulator, _client, store) = opened_with(3600, 4, vec![]).await;
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap(),
    ));
    let store = store
        .with_expiry(Calendar::default(), clock.clone())
        .remembering_pending(chrono::Duration::minutes(1));
    let key = key_of("dev-01");
    // Due at 00:10 the next day (see `state`).
    store
        .write_states(&[state_write(&key, None, state(1))])
        .await
        .unwrap();
    let reads = || requests(&store, Operation::Read);
    let prepared_state = |from_s| {
        let store = &store;
        let key = &key;
        async move {
            let days = [DayPoints {
                key: key.clone(),
                points: points(from_s, 10, 60, 1),
            }];
            let prepared = store.prepare(&days).await.unwrap();
            assert_eq!(
                store.commit(&prepared).await.unwrap(),
                [WriteOutcome::Written]
            );
            prepared[0].state.clone().unwrap()
        }
    };

    // The first merge reads the header; the next ones go by what it read.
    let first = prepared_state(0).await;
    assert_eq!(reads(), 1);
    assert_eq!(prepared_state(600).await, first);
    assert_eq!(prepared_state(1200).await, first);
    assert_eq!(
        reads(),
        1,
        "no header read while the state is known pending"
    );

    // A state this store writes is read afresh by the next merge.
    let mut touched = first.value.clone();
    touched.touched += 1;
    store
        .write_states(&[state_write(
            &key,
            Some(first.version.clone()),
            touched.clone(),
        )])
        .await
        .unwrap();
    let after_touch = prepared_state(1800).await;
    assert_eq!(after_touch.value, touched);
    assert_eq!(reads(), 2);
    assert_eq!(prepared_state(2400).await, after_touch);
    assert_eq!(reads(), 2);

    // Within the margin of its due time the state may be changing: every merge reads it.
    clock.set(Utc.with_ymd_and_hms(2026, 11, 25, 0, 9, 30).unwrap());
    prepared_state(3000).await;
    prepared_state(3600).await;
    assert_eq!(reads(), 4);
}

#[tokio::test]
async fn a_log_entry_that_cannot_be_decoded_fails_its_series_day_alone() {
    let (_emulator, client, store) = opened_with(3600, 4, vec![]).await;
    let (keys, mut truth) = three_logged_batches(&store).await;
    // A document in dev-07's shard written by something else: dev-07's entry is garbage; the
    // entry of another series of that shard is sound and must still be read.
    let shard = log_shard(&keys[7].series, 4);
    let neighbour = (0..keys.len())
        .find(|&i| i != 7 && log_shard(&keys[i].series, 4) == shard)
        .expect("30 series over 4 shards share one");
    let extra = points(3000, 3, 60, 2);
    let hour = Part::Hour(Part::hour_of(extra[0].ts));
    merge_into(&mut truth[neighbour], &extra);
    let partition = log_partition(day(), shard);
    let damaged = serde_json::json!({
        "id": "written-by-something-else",
        "seriesId": partition,
        "kind": "l",
        "day": "2026-11-24",
        "s": [
            {"k": "dev-07", "h": hour.number(), "p": "not a payload!"},
            {"k": keys[neighbour].series.as_str(), "h": hour.number(), "p": codec::encode(hour.base(), &extra)},
        ],
        "ttl": -1,
    });
    client
        .database_client("eventide")
        .container_client("series_days", None)
        .await
        .unwrap()
        .create_item(
            partition.clone(),
            "written-by-something-else",
            &damaged,
            None,
        )
        .await
        .unwrap();

    // Together, the read fails for good (so the summary reads its days one by one)...
    let together = store.read_days(&keys).await.unwrap_err();
    assert_eq!(together.kind, ErrorKind::Permanent);
    assert!(together.to_string().contains("dev-07"), "{together}");
    // ...and one by one, dev-07 alone fails, naming the document; every other day reads whole.
    for (i, key) in keys.iter().enumerate() {
        let read = store.read_days(std::slice::from_ref(key)).await;
        if i == 7 {
            let error = read.unwrap_err();
            assert_eq!(error.kind, ErrorKind::Permanent);
            assert!(
                error.to_string().contains("written-by-something-else"),
                "{error}"
            );
        } else {
            let day = read.unwrap().pop().flatten().unwrap();
            assert_eq!(day.points, truth[i], "{}", key.series);
        }
    }
    // The damaged document stays in the log, for an operator; the sound ones are gone.
    let left = partition_docs(&client, &partition).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], "written-by-something-else");
}
