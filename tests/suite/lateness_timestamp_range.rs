//! Every timestamp Eventide accepts — a signed 64-bit count of nanoseconds since the Unix epoch,
//! 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z — is stored and read back by
//! every series-day store, the first and the last hour of that range included: the Cosmos DB
//! store against the SDK's in-memory emulator, the embedded store on a SQLite file.

use std::sync::Arc;

use chrono::NaiveDate;
use eventide::adapters::cosmos::layout::MAX_HOUR_POINTS;
use eventide::adapters::embedded::EmbeddedDb;
use eventide::adapters::embedded::store::EmbeddedStore;
use eventide::domain::calendar::Calendar;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::{Point, SeriesDayKey, normalize};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{DayPoints, SeriesDayStore, WriteOutcome};
use eventide_testkit::cosmos::{Emulator, settings};

const SECOND: i64 = 1_000_000_000;

/// Points every `step` seconds from `from` on, as many as fit before `until` (inclusive).
fn points_from(from: i64, step: i64, count: i64, stamp: i64) -> Vec<Point> {
    (0..count)
        .map_while(|i| {
            let ts = from.checked_add(i.checked_mul(step * SECOND)?)?;
            Some(Point {
                ts,
                value: i as f64 * 0.5,
                stamp,
            })
        })
        .collect()
}

/// The earliest hour holds the first nanosecond and enough points to be split into slots on
/// Cosmos DB; the latest hour holds the last nanosecond.
fn extreme_days() -> Vec<DayPoints> {
    let calendar = Calendar::default();
    let series = SeriesId::parse("extremes").unwrap();
    let mut first = points_from(i64::MIN, 10, MAX_HOUR_POINTS as i64 + 60, 7);
    first.push(Point {
        ts: i64::MIN + 1,
        value: -1.0,
        stamp: 7,
    });
    let mut last = points_from(i64::MAX - 3_000 * SECOND, 10, 300, 7);
    last.push(Point {
        ts: i64::MAX,
        value: 42.0,
        stamp: 7,
    });
    [first, last]
        .into_iter()
        .map(|mut points| {
            normalize(&mut points);
            let day = calendar.day_of(points[0].ts);
            assert!(points.iter().all(|p| calendar.day_of(p.ts) == day));
            DayPoints {
                key: SeriesDayKey::new(series.clone(), day),
                points,
            }
        })
        .collect()
}

async fn store_and_read_back(store: &dyn SeriesDayStore) {
    let days = extreme_days();
    assert_eq!(
        days.iter().map(|d| d.key.day).collect::<Vec<_>>(),
        vec![
            NaiveDate::from_ymd_opt(1677, 9, 21).unwrap(),
            NaiveDate::from_ymd_opt(2262, 4, 11).unwrap()
        ]
    );
    // In two halves, so the second merges into buckets the first wrote.
    for half in [0, 1] {
        let part: Vec<DayPoints> = days
            .iter()
            .map(|d| DayPoints {
                key: d.key.clone(),
                points: d.points.iter().skip(half).step_by(2).copied().collect(),
            })
            .collect();
        let prepared = store.prepare(&part).await.unwrap();
        assert!(prepared.iter().all(|m| m.changed));
        let outcomes = store.commit(&prepared).await.unwrap();
        assert_eq!(outcomes, vec![WriteOutcome::Written; 2]);
    }
    let keys: Vec<SeriesDayKey> = days.iter().map(|d| d.key.clone()).collect();
    let stored = store.read_days(&keys).await.unwrap();
    for (day, stored) in days.iter().zip(stored) {
        let stored = stored.expect("the day is stored");
        assert_eq!(stored.points, day.points, "{}", day.key);
    }
}

#[tokio::test]
async fn the_cosmos_store_keeps_the_first_and_last_hour_of_the_range() {
    let emulator = Emulator::new();
    let mut s = settings(10_000.0);
    s.create_if_missing = true;
    s.provisioned_throughput = Some(10_000);
    let (_client, store) = emulator.open(&s, vec![]).await;
    store_and_read_back(&store).await;
}

#[tokio::test]
async fn the_embedded_store_keeps_the_first_and_last_hour_of_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = EmbeddedDb::open(&dir.path().join("range.db")).unwrap();
    let clock = Arc::new(ManualClock::new("2026-11-25T00:00:00Z".parse().unwrap()));
    store_and_read_back(&EmbeddedStore::new(db, clock)).await;
}

/// Through the whole embedded application: the last instant arrives by ingest (its day is far
/// in the future, so open), the first by a restatement (its day closed long ago); both rows
/// reach the SQLite sink and read back with their exact first and last timestamps.
#[tokio::test]
async fn the_first_and_last_instant_reach_the_summary_table() {
    use eventide::app::{App, Config, Driver};
    use eventide::domain::parse::BodyFormat;
    use eventide::pipeline::process::InboundMessage;

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::on_file(dir.path().join("eventide.db"));
    config.pipeline.time_zone = "America/Los_Angeles".into();
    let clock = Arc::new(ManualClock::new("2026-11-25T00:00:00Z".parse().unwrap()));
    let app = App::build(&config, Driver::Local, clock).await.unwrap();
    let pipeline = &app.pipeline;

    let last = r#"{"series":"s","ts":"2262-04-11T23:47:16.854775807Z","value":2}"#;
    let report = pipeline
        .ingest(BodyFormat::Json, last.as_bytes())
        .await
        .unwrap();
    assert_eq!(report.accepted, 1, "{report:?}");
    let received = app.observations.receiver.receive(10).await.unwrap();
    let batch: Vec<InboundMessage> = received.iter().map(InboundMessage::from).collect();
    pipeline.process(&batch).await.unwrap();
    let last_day = NaiveDate::from_ymd_opt(2262, 4, 11).unwrap();
    assert_eq!(pipeline.summarize_day(last_day).await.unwrap().written, 1);

    let first = r#"{"series":"s","ts":"1677-09-21T00:12:43.145224192Z","value":1}"#;
    let restated = pipeline
        .restate(BodyFormat::Json, first.as_bytes())
        .await
        .unwrap();
    assert_eq!(restated.written, 1, "{restated:?}");

    let rows = pipeline.ports.sink.read(None, None).await.unwrap();
    let days: Vec<String> = rows.iter().map(|r| r.day.to_string()).collect();
    // In Los Angeles the first instant falls on the evening before.
    assert_eq!(days, ["1677-09-20", "2262-04-11"]);
    assert_eq!(
        (rows[0].stats.first_ts, rows[1].stats.last_ts),
        (i64::MIN, i64::MAX)
    );
}
