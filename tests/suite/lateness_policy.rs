//! The lateness policy end to end on the embedded default: a day takes data until
//! `EVENTIDE_MAX_LATENESS` after its end; later data is refused at ingest or quarantined from
//! the queue with the reason, never merged into a day the store may have forgotten; the store
//! keeps every day until it closed and while its summary is pending; start-up refuses a
//! lateness the store's retention does not cover; and a deliberate restatement of a closed day
//! replaces its row.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::adapters::embedded::store::Expiry;
use eventide::app::config::StoreBackend;
use eventide::app::{App, Config, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::SeriesDayKey;
use eventide::domain::stats::SummaryRow;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{Clock, OutgoingMessage};
use eventide::pipeline::process::InboundMessage;
use serde_json::json;

const BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// The embedded application on a manual clock, driven by hand: ingest, the queue trigger, the
/// end of day.
struct Harness {
    app: App,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(start: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::on_file(dir.path().join("eventide.db"));
        let clock = Arc::new(ManualClock::new(at(start)));
        let app = App::build(&config, Driver::Local, clock.clone())
            .await
            .unwrap();
        Self {
            app,
            clock,
            _dir: dir,
        }
    }

    fn body(points: &[(&str, f64)]) -> String {
        points
            .iter()
            .map(|(ts, value)| json!({"series": "s", "ts": ts, "value": value}).to_string() + "\n")
            .collect()
    }

    /// Ingests NDJSON observations of series `s` and plays the queue trigger until it is empty.
    async fn ingest(&self, points: &[(&str, f64)]) -> serde_json::Value {
        let body = Self::body(points);
        let pipeline = &self.app.pipeline;
        let report = pipeline
            .ingest(BodyFormat::Ndjson, body.as_bytes())
            .await
            .unwrap();
        self.drain().await;
        serde_json::to_value(report).unwrap()
    }

    async fn drain(&self) {
        let queue = &self.app.observations.receiver;
        loop {
            let received = queue.receive(100).await.unwrap();
            if received.is_empty() {
                return;
            }
            let batch: Vec<InboundMessage> = received.iter().map(InboundMessage::from).collect();
            self.app.pipeline.process(&batch).await.unwrap();
            let locks: Vec<String> = received.into_iter().map(|m| m.lock_token).collect();
            queue.complete(&locks).await.unwrap();
        }
    }

    /// Moves the clock to `when` and runs the end of day there (reconcile, summarize, expiry).
    async fn end_of_day_at(&self, when: &str) {
        self.clock.set(at(when));
        let tick = self.app.end_of_day(BUDGET).await;
        assert_eq!(tick.error, None);
    }

    async fn row(&self, of: &str) -> Option<SummaryRow> {
        let rows = self.app.pipeline.ports.sink.read(None, Some(day(of))).await;
        rows.unwrap().into_iter().next()
    }

    async fn stored_points(&self, of: &str) -> Option<usize> {
        let key = SeriesDayKey::new(SeriesId::parse("s").unwrap(), day(of));
        let stored = self.app.pipeline.ports.store.read_days(&[key]).await;
        stored.unwrap()[0].as_ref().map(|d| d.points.len())
    }
}

#[tokio::test]
async fn ingest_refuses_data_for_a_closed_day_with_the_reason() {
    // 2026-11-18 closed at 2026-11-20T00:00Z (one day after its end); 2026-11-19 is open.
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    let report = h
        .ingest(&[("2026-11-18T23:59:59Z", 1.0), ("2026-11-19T00:00:00Z", 2.0)])
        .await;
    assert_eq!(report["accepted"], 1, "{report}");
    let rejected = &report["rejected"][0];
    assert_eq!(rejected["index"], 0);
    assert_eq!(rejected["line"], 1);
    let reason = rejected["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("day 2026-11-18 closed at 2026-11-20T00:00:00Z"),
        "{reason}"
    );
    assert_eq!(h.stored_points("2026-11-18").await, None);
    assert_eq!(h.stored_points("2026-11-19").await, Some(1));
}

#[tokio::test]
async fn the_queue_quarantines_data_for_a_closed_day_with_the_reason() {
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    // Another producer's message, in a public form, straight onto the queue.
    let body = json!([
        {"series": "s", "ts": "2026-11-18T10:00:00Z", "value": 1.0},
        {"series": "s", "ts": "2026-11-18T11:00:00Z", "value": 2.0},
        {"series": "s", "ts": "2026-11-19T10:00:00Z", "value": 3.0},
    ]);
    let message = OutgoingMessage {
        message_id: "producer-7".into(),
        session_id: None,
        body: body.to_string().into_bytes(),
        scheduled_at: None,
        trace_context: None,
    };
    h.app.observations.sender.send(vec![message]).await.unwrap();
    h.drain().await;

    assert_eq!(h.stored_points("2026-11-18").await, None, "never merged");
    assert_eq!(h.stored_points("2026-11-19").await, Some(1));
    let entries = h.app.pipeline.ports.quarantine.list(10).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.id, "process:producer-7#s@2026-11-18");
    assert!(
        entry.reason.starts_with("day 2026-11-18 closed"),
        "{}",
        entry.reason
    );
    // The refused points, in the public form `eventide backfill` takes.
    let kept: serde_json::Value = serde_json::from_slice(&entry.body).unwrap();
    assert_eq!(kept.as_array().unwrap().len(), 2, "{kept}");
    assert_eq!(kept[0]["ts"], "2026-11-18T10:00:00Z");
}

#[tokio::test]
async fn late_data_never_rebuilds_a_day_the_store_forgot() {
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    let full_day: Vec<(String, f64)> = (0..24)
        .map(|hour| (format!("2026-11-20T{hour:02}:00:00Z"), 20.0))
        .collect();
    let full_day: Vec<(&str, f64)> = full_day.iter().map(|(ts, v)| (ts.as_str(), *v)).collect();
    h.ingest(&full_day).await;
    h.end_of_day_at("2026-11-21T00:15:00Z").await;
    assert_eq!(h.row("2026-11-20").await.unwrap().stats.count, 24);

    // Days go by: the day closes (2026-11-22T00:00Z) and the store forgets it (two days after
    // its end and its last write).
    h.end_of_day_at("2026-11-23T00:30:00Z").await;
    assert_eq!(h.stored_points("2026-11-20").await, None, "expired");

    // A late point for it — through ingest, and from the queue — changes nothing.
    let report = h.ingest(&[("2026-11-20T05:30:00Z", 99.0)]).await;
    assert_eq!(report["accepted"], 0, "{report}");
    let body = json!({"series": "s", "ts": "2026-11-20T05:45:00Z", "value": 98.0});
    let message = OutgoingMessage {
        message_id: "late-1".into(),
        session_id: None,
        body: body.to_string().into_bytes(),
        scheduled_at: None,
        trace_context: None,
    };
    h.app.observations.sender.send(vec![message]).await.unwrap();
    h.drain().await;
    h.end_of_day_at("2026-11-23T01:30:00Z").await;
    assert_eq!(h.stored_points("2026-11-20").await, None, "not rebuilt");
    let row = h.row("2026-11-20").await.unwrap();
    assert_eq!((row.stats.count, row.stats.max), (24, 20.0));
}

#[tokio::test]
async fn a_day_written_early_is_kept_until_it_closed() {
    // A forecast for 2026-11-24, written four days ahead.
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    h.ingest(&[
        ("2026-11-24T06:00:00Z", 1.0),
        ("2026-11-24T12:00:00Z", 2.0),
        ("2026-11-24T18:00:00Z", 3.0),
    ])
    .await;
    h.end_of_day_at("2026-11-25T00:15:00Z").await;
    assert_eq!(h.row("2026-11-24").await.unwrap().stats.count, 3);

    // Two days after the last write, but the day is still open: nothing may be forgotten.
    h.end_of_day_at("2026-11-25T12:00:00Z").await;
    assert_eq!(h.stored_points("2026-11-24").await, Some(3));
    // So a correction joins the whole day.
    h.clock.advance(Duration::seconds(1));
    h.ingest(&[("2026-11-24T12:00:00Z", 5.0)]).await;
    h.end_of_day_at("2026-11-25T12:10:00Z").await;
    let row = h.row("2026-11-24").await.unwrap();
    assert_eq!((row.stats.count, row.stats.sum), (3, Some(9.0)));

    // Once closed and past the retention, the day goes.
    h.end_of_day_at("2026-11-28T00:30:00Z").await;
    assert_eq!(h.stored_points("2026-11-24").await, None);
}

#[tokio::test]
async fn a_pending_day_is_never_forgotten() {
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    h.ingest(&[("2026-11-20T10:00:00Z", 1.0)]).await;
    // No summary has run; the store's expiry alone, long after the day closed.
    let embedded = h.app.embedded.as_ref().unwrap();
    let calendar = h.app.pipeline.settings.calendar;
    let much_later = at("2027-01-01T00:00:00Z");
    embedded
        .housekeeping(Expiry::at(much_later, Duration::days(2), &calendar))
        .await;
    assert_eq!(h.stored_points("2026-11-20").await, Some(1));
}

#[tokio::test]
async fn start_up_refuses_a_lateness_the_retention_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(at("2026-11-20T12:00:00Z")));
    let mut config = Config::on_file(dir.path().join("eventide.db"));
    config.pipeline.max_lateness = Duration::days(2);
    let error = App::build(&config, Driver::Local, clock.clone())
        .await
        .err()
        .expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("EVENTIDE_MAX_LATENESS") && text.contains("EVENTIDE_RETENTION_DAYS"),
        "{text}"
    );
    config.embedded.retention_days = 3;
    App::build(&config, Driver::Local, clock.clone())
        .await
        .unwrap();

    // The Cosmos DB store's TTL bounds the lateness the same way (checked before connecting).
    config.backends.series_day_store = Some(StoreBackend::Cosmos);
    config.backends.cosmos.ttl_seconds = Some(86_400);
    let error = App::build(&config, Driver::Local, clock)
        .await
        .err()
        .expect("refused");
    let text = error.to_string();
    assert!(text.contains("EVENTIDE_COSMOS_TTL_SECONDS"), "{text}");
}

#[tokio::test]
async fn a_restatement_replaces_the_row_of_a_closed_day() {
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    let full_day: Vec<(String, f64)> = (0..24)
        .map(|hour| (format!("2026-11-20T{hour:02}:00:00Z"), 20.0))
        .collect();
    let full_day: Vec<(&str, f64)> = full_day.iter().map(|(ts, v)| (ts.as_str(), *v)).collect();
    h.ingest(&full_day).await;
    h.end_of_day_at("2026-11-21T00:15:00Z").await;
    let before = h.row("2026-11-20").await.unwrap();

    // After the close: the whole day again, now two points — fewer than before, so the sum of
    // their stamps alone would not beat the stored revision. 2026-11-22 is open: refused.
    h.clock.set(at("2026-11-22T06:00:00Z"));
    let file = Harness::body(&[
        ("2026-11-20T00:00:00Z", 7.0),
        ("2026-11-20T12:00:00Z", 9.0),
        ("2026-11-22T01:00:00Z", 1.0),
    ]);
    let pipeline = &h.app.pipeline;
    let report = pipeline
        .restate(BodyFormat::Ndjson, file.as_bytes())
        .await
        .unwrap();
    assert_eq!((report.restated, report.written), (1, 1));
    assert_eq!(report.refused.len(), 1);
    assert!(
        report.refused[0].reason.contains("is open"),
        "{:?}",
        report.refused
    );
    let after = h.row("2026-11-20").await.unwrap();
    assert_eq!((after.stats.count, after.stats.sum), (2, Some(16.0)));
    assert!(after.revision > before.revision);

    // The stored day's own summary, should it run again, does not put the old figures back.
    let summary = pipeline.summarize_day(day("2026-11-20")).await.unwrap();
    assert_eq!(summary.written, 0);
    assert_eq!(h.row("2026-11-20").await.unwrap().stats.count, 2);

    // And a second restatement replaces the first.
    h.clock.advance(Duration::minutes(1));
    let again = Harness::body(&[("2026-11-20T00:00:00Z", 1.0)]);
    let report = pipeline
        .restate(BodyFormat::Ndjson, again.as_bytes())
        .await
        .unwrap();
    assert_eq!(report.written, 1);
    assert_eq!(h.row("2026-11-20").await.unwrap().stats.sum, Some(1.0));
}

#[test]
fn eventide_backfill_restates_the_days_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("day.csv");
    std::fs::write(
        &file,
        "series,ts,value\ns,2020-03-01T10:00:00Z,4\ns,2020-03-01T11:00:00Z,6\ns,bad,1\n",
    )
    .unwrap();
    let output = eventide_testkit::command(env!("CARGO_BIN_EXE_eventide"))
        .arg("backfill")
        .arg(&file)
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["restated"], 1, "{report}");
    assert_eq!(report["written"], 1, "{report}");
    assert_eq!(report["rejected"][0]["line"], 4, "{report}");

    let check = eventide_testkit::command(env!("CARGO_BIN_EXE_eventide"))
        .args(["summarize", "--day", "2020-03-01"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(check.status.success());
    let config = Config::on_file(dir.path().join("eventide.db"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows = runtime.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(eventide::pipeline::clock::SystemClock);
        let app = App::build(&config, Driver::Local, clock).await.unwrap();
        app.pipeline
            .ports
            .sink
            .read(None, Some(day("2020-03-01")))
            .await
            .unwrap()
    });
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].stats.count, rows[0].stats.sum), (2, Some(10.0)));
}
