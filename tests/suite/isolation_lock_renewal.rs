//! A summarize batch that runs longer than the queue's lock keeps its messages: the locks are
//! renewed while the batch works, so no other receiver gets them and each is settled once.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::app::{App, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::domain::series::SeriesId;
use eventide::domain::stats::SummaryRow;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{PortResult, SummarySink};
use tokio::sync::{Notify, Semaphore};

fn start() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

/// A STAND-IN for a sink that takes long to answer: each upsert waits until the test lets it
/// through, and says when it is waiting.
struct Slow {
    inner: Arc<dyn SummarySink>,
    entered: Notify,
    gate: Semaphore,
}

#[async_trait]
impl SummarySink for Slow {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        self.entered.notify_one();
        self.gate.acquire().await.unwrap().forget();
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

/// Lets the renewal (which watches the clock) see where the clock is now.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
}

#[tokio::test]
async fn locks_of_a_long_batch_are_renewed_until_it_is_settled() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = eventide_testkit::settings(dir.path().join("eventide.db"));
    config.embedded.lock_duration = Duration::seconds(60);
    let clock = Arc::new(ManualClock::new(start()));
    let mut app = App::build(&config, Driver::Local, clock.clone())
        .await
        .unwrap();
    let slow = Arc::new(Slow {
        inner: app.pipeline.ports.sink.clone(),
        entered: Notify::new(),
        gate: Semaphore::new(0),
    });
    app.pipeline.ports.sink = slow.clone();
    let embedded = app.embedded.clone().unwrap();

    let body: String = ["a", "b", "c"]
        .iter()
        .map(|s| format!("{{\"series\":\"{s}\",\"ts\":\"2026-11-18T10:00:00Z\",\"value\":2}}\n"))
        .collect();
    let pipeline = &app.pipeline;
    pipeline
        .ingest(BodyFormat::Ndjson, body.as_bytes())
        .await
        .unwrap();
    let received = eventide::pipeline::ports::MessageReceiver::receive(&embedded.observations, 10)
        .await
        .unwrap();
    let batch: Vec<_> = received.iter().map(Into::into).collect();
    pipeline.process(&batch).await.unwrap();
    clock.advance(Duration::minutes(6));

    let tick = tokio::spawn({
        let pipeline = pipeline.clone();
        async move {
            pipeline
                .summarize_tick(std::time::Duration::from_secs(600))
                .await
        }
    });
    slow.entered.notified().await;
    // Twice past the half of the lock, then beyond the end of the first lock.
    for _ in 0..3 {
        clock.advance(Duration::seconds(35));
        settle().await;
    }
    let depth = embedded.summaries.depth().await.unwrap();
    assert_eq!(
        (depth.active, depth.deferred),
        (0, 3),
        "all three messages are still locked by the batch working on them"
    );

    slow.gate.add_permits(1);
    let report = tick.await.unwrap();
    assert_eq!(report.error, None, "{report:?}");
    assert_eq!(
        (report.received, report.written, report.abandoned),
        (3, 3, 0),
        "{report:?}"
    );
    let depth = embedded.summaries.depth().await.unwrap();
    assert_eq!(
        (depth.active, depth.deferred),
        (0, 0),
        "every message settled"
    );
    let counters = pipeline.metrics.snapshot();
    assert!(counters["locks_renewed"] >= 3, "{counters:?}");
}
