//! The Cosmos DB store never lets a day expire while it may still change or be summarized,
//! against the SDK's in-memory emulator: while a summary is pending, the header and every
//! bucket carry `ttl = -1` (Cosmos DB's "never"); once summarized, all of them carry the time
//! left until the retention has passed after the later of the day's end and now; reopened by
//! late data, they are pinned again. With the day log, logged points are never expired either:
//! their log documents are pinned until compacted, and the segments they become follow the
//! header like buckets.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use eventide::adapters::cosmos::CosmosStore;
use eventide::adapters::cosmos::layout::{log_partition, log_shard};
use eventide::adapters::cosmos::settings::DEFAULT_LOG_SHARDS;
use eventide::domain::calendar::Calendar;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::{DayState, Point, Revision, SeriesDayKey};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{DayPoints, SeriesDayStore, StateWrite, WriteOutcome};
use eventide_testkit::cosmos::{Emulator, settings};
use futures::TryStreamExt;

const TTL: i64 = 7_200;
const HOUR_NS: i64 = 3_600_000_000_000;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn key(day: &str) -> SeriesDayKey {
    SeriesDayKey::new(SeriesId::parse("s").unwrap(), day.parse().unwrap())
}

/// Three points in three hours of `day` (three bucket documents).
fn points(day: NaiveDate, stamp: i64) -> Vec<Point> {
    let start = Utc
        .from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .timestamp_nanos_opt()
        .unwrap();
    (0..3)
        .map(|h| Point {
            ts: start + h * 5 * HOUR_NS,
            value: h as f64,
            stamp,
        })
        .collect()
}

struct Fixture {
    _emulator: Emulator,
    store: CosmosStore,
    container: azure_data_cosmos::clients::ContainerClient,
    clock: Arc<ManualClock>,
}

impl Fixture {
    /// A store with `log_shards` shards of the day log (0: merges rewrite buckets).
    async fn new(now: &str, log_shards: u32) -> Self {
        let emulator = Emulator::new();
        let mut s = settings(10_000.0);
        s.create_if_missing = true;
        s.provisioned_throughput = Some(10_000);
        s.ttl = std::time::Duration::from_secs(TTL as u64);
        s.log_shards = log_shards;
        let (client, store) = emulator.open(&s, vec![]).await;
        let clock = Arc::new(ManualClock::new(at(now)));
        let store = store.with_expiry(Calendar::default(), clock.clone());
        let container = client
            .database_client("eventide")
            .container_client("series_days", None)
            .await
            .unwrap();
        Self {
            _emulator: emulator,
            store,
            container,
            clock,
        }
    }

    async fn merge(&self, key: &SeriesDayKey, stamp: i64) {
        let days = [DayPoints {
            key: key.clone(),
            points: points(key.day, stamp),
        }];
        let prepared = self.store.prepare(&days).await.unwrap();
        assert_eq!(
            self.store.commit(&prepared).await.unwrap(),
            [WriteOutcome::Written]
        );
    }

    /// Writes the next state of the day: pending or summarized.
    async fn write_state(&self, key: &SeriesDayKey, pending: bool, summarized: Option<u128>) {
        let read = self
            .store
            .read_states(std::slice::from_ref(key))
            .await
            .unwrap();
        let previous = read[0].clone();
        let state = DayState {
            epoch: previous
                .as_ref()
                .map_or(1, |p| p.value.epoch + u32::from(pending)),
            pending,
            due_at: at("2026-11-25T00:10:00Z"),
            touched: 0,
            summarized_revision: summarized.map(Revision::new),
        };
        let write = StateWrite {
            key: key.clone(),
            expected_version: previous.map(|p| p.version),
            state,
        };
        assert_eq!(
            self.store.write_states(&[write]).await.unwrap(),
            [WriteOutcome::Written]
        );
    }

    /// The `ttl` of every document of the day in its series' partition, header first.
    async fn ttls(&self, key: &SeriesDayKey) -> Vec<i64> {
        let query = azure_data_cosmos::Query::from(
            "SELECT c.id, c.kind, c.ttl FROM c WHERE c.seriesId = @s AND c.day = @d",
        )
        .with_parameter("@s", key.series.as_str())
        .unwrap()
        .with_parameter("@d", key.day.to_string())
        .unwrap();
        let mut docs = self.query(query, key.series.to_string()).await;
        docs.sort_by_key(|d| (d["kind"] != "h", d["id"].as_str().unwrap().to_string()));
        docs.iter().map(|d| d["ttl"].as_i64().unwrap()).collect()
    }

    /// The `ttl` of every document in the day log's shard of the series.
    async fn log_ttls(&self, key: &SeriesDayKey) -> Vec<i64> {
        let partition = log_partition(key.day, log_shard(&key.series, DEFAULT_LOG_SHARDS));
        let docs = self
            .query(
                azure_data_cosmos::Query::from("SELECT c.ttl FROM c"),
                partition,
            )
            .await;
        docs.iter().map(|d| d["ttl"].as_i64().unwrap()).collect()
    }

    async fn query(
        &self,
        query: azure_data_cosmos::Query,
        partition: String,
    ) -> Vec<serde_json::Value> {
        self.container
            .query_items(
                query,
                azure_data_cosmos::FeedScope::partition(partition),
                None,
            )
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Reads the day as a summary does (which compacts its log first); returns its points.
    async fn read(&self, key: &SeriesDayKey) -> usize {
        let days = self
            .store
            .read_days(std::slice::from_ref(key))
            .await
            .unwrap();
        days[0].as_ref().map_or(0, |day| day.points.len())
    }
}

#[tokio::test]
async fn a_pending_day_never_expires_and_a_summarized_one_is_kept_for_the_retention() {
    let f = Fixture::new("2026-11-24T18:00:00Z", 0).await;
    let day = key("2026-11-24");
    // First data: the epoch is recorded, then the points written.
    f.write_state(&day, true, None).await;
    f.merge(&day, 1).await;
    assert_eq!(f.ttls(&day).await, vec![-1; 4], "pending: never");

    // Summarized after the day ended: kept for the retention from now.
    f.clock.set(at("2026-11-25T00:15:00Z"));
    f.write_state(&day, false, Some(3)).await;
    assert_eq!(f.ttls(&day).await, vec![TTL; 4]);

    // Late data reopens the day: pinned again until its next summary.
    f.write_state(&day, true, Some(3)).await;
    f.merge(&day, 2).await;
    assert_eq!(f.ttls(&day).await, vec![-1; 4]);
    f.clock.set(at("2026-11-25T01:00:00Z"));
    f.write_state(&day, false, Some(6)).await;
    assert_eq!(f.ttls(&day).await, vec![TTL; 4]);
}

#[tokio::test]
async fn a_day_summarized_before_it_ended_is_kept_for_the_retention_after_its_end() {
    // A forecast, summarized (say by a manual run) ten hours before the day ends.
    let f = Fixture::new("2026-11-24T14:00:00Z", 0).await;
    let day = key("2026-11-24");
    f.write_state(&day, true, None).await;
    f.merge(&day, 1).await;
    f.write_state(&day, false, Some(3)).await;
    let until_end = (Duration::hours(10)).num_seconds();
    assert_eq!(f.ttls(&day).await, vec![until_end + TTL; 4]);
}

#[tokio::test]
async fn logged_points_are_pinned_until_compacted_and_their_segments_follow_the_header() {
    let f = Fixture::new("2026-11-24T18:00:00Z", DEFAULT_LOG_SHARDS).await;
    let day = key("2026-11-24");
    f.write_state(&day, true, None).await;
    f.merge(&day, 1).await;
    // The pending day's points wait in its log shard, which never expires; nothing else of
    // the day but its header is in the series' partition yet.
    assert_eq!(f.log_ttls(&day).await, vec![-1]);
    assert_eq!(f.ttls(&day).await, vec![-1]);

    // A summary's read compacts them into one segment, pinned like the header, and deletes the
    // log document.
    assert_eq!(f.read(&day).await, 3);
    assert_eq!(f.log_ttls(&day).await, Vec::<i64>::new());
    assert_eq!(f.ttls(&day).await, vec![-1; 2]);

    // Summarized: the segment is kept for the retention, like the header.
    f.clock.set(at("2026-11-25T00:15:00Z"));
    f.write_state(&day, false, Some(3)).await;
    assert_eq!(f.ttls(&day).await, vec![TTL; 2]);

    // Late data for a summarized day is merged into buckets (whether it is new must be known
    // before a new epoch opens), pinned until the next summary; so is the day reopened.
    f.merge(&day, 2).await;
    f.write_state(&day, true, Some(3)).await;
    assert_eq!(f.log_ttls(&day).await, Vec::<i64>::new());
    assert_eq!(
        f.ttls(&day).await,
        vec![-1; 5],
        "the header, the segment and 3 buckets"
    );
    f.clock.set(at("2026-11-25T01:00:00Z"));
    assert_eq!(f.read(&day).await, 3);
    f.write_state(&day, false, Some(6)).await;
    assert_eq!(f.ttls(&day).await, vec![TTL; 5]);
}
