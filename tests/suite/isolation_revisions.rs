//! Every change of the stored points reaches the summary table, whatever the stamps: a
//! correction that ties on the stamp replaces the row, and a producer's stamp far in the future
//! (which would win over every later correction) is refused with its reason.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::app::{App, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::domain::series_day::stamp_at;
use eventide::pipeline::Pipeline;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{Clock, MessageReceiver};
use eventide::pipeline::process::InboundMessage;

fn start() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

fn day() -> NaiveDate {
    "2026-11-18".parse().unwrap()
}

async fn app(dir: &std::path::Path) -> (App, Arc<ManualClock>) {
    let config = eventide_testkit::settings(dir.join("eventide.db"));
    let clock = Arc::new(ManualClock::new(start()));
    let app = App::build(&config, Driver::Local, clock.clone())
        .await
        .unwrap();
    (app, clock)
}

/// A message another producer put on the observations queue, stamped by that producer.
fn stamped(id: &str, stamp: i64, value: f64) -> InboundMessage {
    let body = format!(
        r#"{{"stamp":{stamp},"observations":[{{"series":"s","ts":"2026-11-18T10:00:00Z","value":{value}}}]}}"#
    );
    InboundMessage {
        message_id: Some(id.into()),
        body: body.into_bytes(),
        enqueued_at: None,
        trace_context: None,
    }
}

/// Runs the due summaries after the settle time and returns the stored mean of the day.
async fn summarized_mean(pipeline: &Pipeline, clock: &ManualClock) -> f64 {
    clock.advance(Duration::minutes(6));
    let tick = pipeline
        .summarize_tick(std::time::Duration::from_secs(60))
        .await;
    assert_eq!(tick.error, None, "{tick:?}");
    let rows = pipeline.ports.sink.read(None, Some(day())).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].stats.mean
}

#[tokio::test]
async fn a_correction_that_ties_on_the_stamp_replaces_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let (app, clock) = app(dir.path()).await;
    let pipeline = &app.pipeline;
    let stamp = stamp_at(clock.now()) - 1_000;

    pipeline
        .process(&[stamped("first", stamp, 1.0)])
        .await
        .unwrap();
    assert_eq!(summarized_mean(pipeline, &clock).await, 1.0);

    // Same stamp, another value: the tie goes to the greater bits, 2.0.
    let report = pipeline
        .process(&[stamped("second", stamp, 2.0)])
        .await
        .unwrap();
    assert_eq!(report.series_days_changed, 1);
    assert_eq!(summarized_mean(pipeline, &clock).await, 2.0);
}

#[tokio::test]
async fn a_stamp_far_in_the_future_is_refused_and_later_corrections_win() {
    let dir = tempfile::tempdir().unwrap();
    let (app, clock) = app(dir.path()).await;
    let pipeline = &app.pipeline;

    let report = pipeline
        .process(&[stamped("future", i64::MAX - 1, 99.0)])
        .await
        .unwrap();
    assert_eq!((report.quarantined, report.points), (1, 0), "{report:?}");
    let entries = app.quarantines[0].list(10).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].id, "process:future");
    assert!(entries[0].reason.contains("stamp"), "{}", entries[0].reason);

    // A stamp within the tolerance for clock differences is taken as it is.
    let ahead = stamp_at(clock.now() + Duration::minutes(1));
    let report = pipeline
        .process(&[stamped("ahead", ahead, 3.0)])
        .await
        .unwrap();
    assert_eq!((report.quarantined, report.points), (0, 1), "{report:?}");
    assert_eq!(summarized_mean(pipeline, &clock).await, 3.0);

    // A correction ingested later wins, as corrections do.
    let body = r#"{"series":"s","ts":"2026-11-18T10:00:00Z","value":5}"#;
    pipeline
        .ingest(BodyFormat::Ndjson, body.as_bytes())
        .await
        .unwrap();
    let embedded = app.embedded.as_ref().unwrap();
    let received = embedded.observations.receive(10).await.unwrap();
    let batch: Vec<InboundMessage> = received.iter().map(Into::into).collect();
    pipeline.process(&batch).await.unwrap();
    assert_eq!(summarized_mean(pipeline, &clock).await, 5.0);
}
