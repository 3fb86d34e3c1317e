//! A summary row the sink refuses for good is that series-day's problem alone: its message is
//! quarantined with the reason and settled, every other row of the batch is written, and
//! nothing keeps coming back. A transient failure still retries the whole batch later.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::app::Driver;
use eventide::domain::series::SeriesId;
use eventide::domain::stats::SummaryRow;
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{PortError, PortResult, SummarySink};

use crate::kit;

fn start() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

fn day() -> NaiveDate {
    "2026-11-18".parse().unwrap()
}

/// A STAND-IN for a sink with a rule of its own (a check constraint, a trigger): any batch
/// holding a row of the series `refused` fails permanently, as the real sinks report a
/// constraint violation. Other calls reach the real sink; transient failures can be injected.
struct Refusing {
    inner: Arc<dyn SummarySink>,
    transient_failures: AtomicUsize,
}

#[async_trait]
impl SummarySink for Refusing {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        if self
            .transient_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PortError::transient(
                "upserting daily summaries",
                "connection reset (injected)",
            ));
        }
        if rows.iter().any(|r| r.series.as_str() == "refused") {
            return Err(PortError::permanent(
                "upserting daily summaries",
                "new row violates check constraint \"daily_summary_series_check\" (injected)",
            ));
        }
        self.inner.upsert(rows).await
    }

    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>> {
        self.inner.read(series, day).await
    }
}

/// A local runtime on a fresh file behind the refusing sink, with the timer left to the test.
async fn serve(dir: &std::path::Path, transient_failures: usize) -> (Server, Arc<ManualClock>) {
    serve_with(dir, transient_failures, |_| {}).await
}

async fn serve_with(
    dir: &std::path::Path,
    transient_failures: usize,
    configure: impl FnOnce(&mut eventide::app::Config),
) -> (Server, Arc<ManualClock>) {
    let mut config = eventide_testkit::settings(dir.join("eventide.db"));
    configure(&mut config);
    config.runtime.summarize_schedule = Some("0 0 0 1 1 *".into());
    let clock = Arc::new(ManualClock::new(start()));
    let server = kit::serve_adjusted(&config, Driver::Local, clock.clone(), |app| {
        app.pipeline.ports.sink = Arc::new(Refusing {
            inner: app.pipeline.ports.sink.clone(),
            transient_failures: AtomicUsize::new(transient_failures),
        });
    })
    .await;
    (server, clock)
}

/// Ingests one point for each series through the HTTP API and waits until it is merged.
async fn ingest(server: &Server, series: &[&str]) {
    let body: String = series
        .iter()
        .map(|s| format!("{{\"series\":\"{s}\",\"ts\":\"2026-11-18T10:00:00Z\",\"value\":2}}\n"))
        .collect();
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let (status, reply) = kit::post_ingest(&client, &base, "application/x-ndjson", body).await;
    assert_eq!(status, 200, "{reply}");
    for _ in 0..500 {
        if server.app.pipeline.metrics.snapshot()["points_merged"] == series.len() as u64 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the observations were not merged");
}

async fn stored_series(server: &Server) -> Vec<String> {
    let sink = &server.app.pipeline.ports.sink;
    let rows = sink.read(None, Some(day())).await.unwrap();
    rows.iter().map(|r| r.series.to_string()).collect()
}

const SERIES: [&str; 6] = ["a", "b", "c", "d", "e", "refused"];

#[tokio::test]
async fn a_row_the_sink_refuses_is_quarantined_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = serve(dir.path(), 0).await;
    ingest(&server, &SERIES).await;
    clock.advance(Duration::minutes(6));

    let tick = server.summarize_now().await;
    assert_eq!(tick.error, None, "{tick:?}");
    assert_eq!(
        (tick.received, tick.written, tick.quarantined),
        (6, 5, 1),
        "{tick:?}"
    );
    assert_eq!(stored_series(&server).await, ["a", "b", "c", "d", "e"]);

    let entries = server.app.quarantines[0].list(10).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.id, "summarize:summarize:refused:2026-11-18:1");
    assert_eq!(entry.function, "summarize");
    assert!(
        entry.reason.contains("check constraint"),
        "{}",
        entry.reason
    );
    let body: serde_json::Value = serde_json::from_slice(&entry.body).unwrap();
    assert_eq!(
        body["series"], "refused",
        "the message itself is kept, for replay"
    );
    let counters = server.app.pipeline.metrics.snapshot();
    assert_eq!(counters["summaries_refused"], 1, "{counters:?}");

    // Settled: neither the queue nor reconcile brings the refused day back.
    clock.advance(Duration::hours(3));
    let later = server.summarize_now().await;
    assert_eq!(
        (later.received, later.quarantined, later.error.as_deref()),
        (0, 0, None),
        "{later:?}"
    );

    // A manual run of the day writes what it can and names what it cannot.
    let manual = server.app.pipeline.summarize_day(day()).await.unwrap();
    assert_eq!((manual.computed, manual.written), (6, 0), "{manual:?}");
    assert_eq!(manual.refused.len(), 1, "{manual:?}");
    assert_eq!(manual.refused[0].key.series.as_str(), "refused");
    assert!(manual.refused[0].reason.contains("check constraint"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_transient_sink_failure_is_waited_out_inside_the_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = serve(dir.path(), 2).await;
    ingest(&server, &SERIES[..5]).await;
    clock.advance(Duration::minutes(6));

    let tick = server.summarize_now().await;
    assert_eq!(tick.error, None, "{tick:?}");
    assert_eq!((tick.written, tick.abandoned), (5, 0), "{tick:?}");
    assert_eq!(stored_series(&server).await, ["a", "b", "c", "d", "e"]);
    let counters = server.app.pipeline.metrics.snapshot();
    assert_eq!(counters["outage_retries"], 2, "{counters:?}");
    assert_eq!(counters["transient_failures"], 0, "{counters:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_sink_failure_that_outlasts_the_patience_retries_the_batch_on_a_later_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = serve_with(dir.path(), 1, |config| {
        config.pipeline.outage_patience = Duration::zero();
    })
    .await;
    ingest(&server, &SERIES[..5]).await;
    clock.advance(Duration::minutes(6));

    let failed = server.summarize_now().await;
    assert!(failed.error.is_some(), "{failed:?}");
    assert_eq!((failed.written, failed.quarantined), (0, 0), "{failed:?}");
    assert_eq!(failed.abandoned, 5, "{failed:?}");
    assert!(stored_series(&server).await.is_empty());

    let retried = server.summarize_now().await;
    assert_eq!(retried.error, None, "{retried:?}");
    assert_eq!(retried.written, 5, "{retried:?}");
    assert_eq!(stored_series(&server).await, ["a", "b", "c", "d", "e"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_day_that_cannot_be_decoded_is_quarantined_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let (server, clock) = serve(dir.path(), 0).await;
    ingest(&server, &SERIES[..5]).await;
    // Bit rot in one stored series-day (or a document written by something else).
    let file = rusqlite::Connection::open(dir.path().join("eventide.db")).unwrap();
    let damaged = file
        .execute(
            "UPDATE day_part SET points = x'00ff00ff' WHERE series = 'c'",
            [],
        )
        .unwrap();
    assert_eq!(damaged, 1);
    clock.advance(Duration::minutes(6));

    let tick = server.summarize_now().await;
    assert_eq!(tick.error, None, "{tick:?}");
    assert_eq!((tick.written, tick.quarantined), (4, 1), "{tick:?}");
    assert_eq!(stored_series(&server).await, ["a", "b", "d", "e"]);
    let entries = server.app.quarantines[0].list(10).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].id, "summarize:summarize:c:2026-11-18:1");
    assert!(
        entries[0].reason.contains("reading"),
        "{}",
        entries[0].reason
    );

    let later = server.summarize_now().await;
    assert_eq!(
        (later.received, later.error.as_deref()),
        (0, None),
        "{later:?}"
    );

    let manual = server.app.pipeline.summarize_day(day()).await.unwrap();
    assert_eq!((manual.computed, manual.written), (4, 0), "{manual:?}");
    assert_eq!(manual.refused.len(), 1, "{manual:?}");
    assert_eq!(manual.refused[0].key.series.as_str(), "c");
    server.shutdown().await;
}
