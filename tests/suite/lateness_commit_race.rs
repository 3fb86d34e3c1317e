//! A batch whose commit comes late — throttled, retried, stuck in a conflict loop — while the
//! day's summary runs: the points it commits after the summary read the day must still reach
//! the day's row. A store wrapper holds the commit back, moves the manual clock past the
//! summary's due time and runs a summarize tick before letting the commit through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::app::{App, Config, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::domain::series_day::{DayState, SeriesDayKey};
use eventide::pipeline::Pipeline;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{
    Clock, DayPoints, PortResult, PreparedMerge, SeriesDayStore, StateWrite, StoredDay, Versioned,
    WriteOutcome,
};
use eventide::pipeline::process::InboundMessage;

const BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

/// The real store, except that one armed commit first lets the clock reach `summary_at` and a
/// summarize tick run.
struct LateCommit {
    inner: Arc<dyn SeriesDayStore>,
    clock: Arc<ManualClock>,
    pipeline: OnceLock<Pipeline>,
    armed: AtomicBool,
    /// When the summary runs, and how many messages it must find.
    summary_at: std::sync::Mutex<(DateTime<Utc>, usize)>,
}

impl LateCommit {
    /// Arms the next commit: before it lands, the clock moves to `summary_at` and a summarize
    /// tick runs, which must receive `expect` messages.
    fn arm(&self, summary_at: DateTime<Utc>, expect: usize) {
        *self.summary_at.lock().unwrap() = (summary_at, expect);
        self.armed.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl SeriesDayStore for LateCommit {
    async fn prepare(&self, days: &[DayPoints]) -> PortResult<Vec<PreparedMerge>> {
        self.inner.prepare(days).await
    }
    async fn commit(&self, merges: &[PreparedMerge]) -> PortResult<Vec<WriteOutcome>> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let (summary_at, expect) = *self.summary_at.lock().unwrap();
            self.clock.set(summary_at);
            let pipeline = self.pipeline.get().expect("wired");
            let tick = pipeline.summarize_tick(BUDGET).await;
            assert_eq!(tick.error, None);
            assert_eq!(
                tick.received, expect,
                "the summary ran while the commit waited"
            );
        }
        self.inner.commit(merges).await
    }
    async fn read_states(
        &self,
        keys: &[SeriesDayKey],
    ) -> PortResult<Vec<Option<Versioned<DayState>>>> {
        self.inner.read_states(keys).await
    }
    async fn write_states(&self, writes: &[StateWrite]) -> PortResult<Vec<WriteOutcome>> {
        self.inner.write_states(writes).await
    }
    async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<Option<StoredDay>>> {
        self.inner.read_days(keys).await
    }
    async fn pending_due_before(
        &self,
        due_before: DateTime<Utc>,
        limit: usize,
    ) -> PortResult<Vec<SeriesDayKey>> {
        self.inner.pending_due_before(due_before, limit).await
    }
    async fn series_of_day(&self, day: NaiveDate) -> PortResult<Vec<SeriesDayKey>> {
        self.inner.series_of_day(day).await
    }
}

struct Harness {
    app: App,
    clock: Arc<ManualClock>,
    store: Arc<LateCommit>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(start: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::on_file(dir.path().join("eventide.db"));
        let clock = Arc::new(ManualClock::new(start.parse().unwrap()));
        let mut app = App::build(&config, Driver::Local, clock.clone())
            .await
            .unwrap();
        let store = Arc::new(LateCommit {
            inner: app.pipeline.ports.store.clone(),
            clock: clock.clone(),
            pipeline: OnceLock::new(),
            armed: AtomicBool::new(false),
            summary_at: std::sync::Mutex::new((clock.now(), 0)),
        });
        app.pipeline.ports.store = store.clone();
        let _ = store.pipeline.set(app.pipeline.clone());
        Self {
            app,
            clock,
            store,
            _dir: dir,
        }
    }

    /// Ingests one point and plays the queue trigger until the observations queue is empty.
    async fn ingest(&self, ts: &str, value: f64) {
        let body = format!(r#"{{"series":"s","ts":"{ts}","value":{value}}}"#);
        let pipeline = &self.app.pipeline;
        pipeline
            .ingest(BodyFormat::Json, body.as_bytes())
            .await
            .unwrap();
        let queue = &self.app.observations.receiver;
        loop {
            let received = queue.receive(100).await.unwrap();
            if received.is_empty() {
                return;
            }
            let batch: Vec<InboundMessage> = received.iter().map(InboundMessage::from).collect();
            pipeline.process(&batch).await.unwrap();
            let locks: Vec<String> = received.into_iter().map(|m| m.lock_token).collect();
            queue.complete(&locks).await.unwrap();
        }
    }

    /// The row's point count for `day`, after the clock moved on and the end of day ran.
    async fn count_after_end_of_day(&self, day: &str) -> u64 {
        self.clock.advance(Duration::hours(2));
        let tick = self.app.end_of_day(BUDGET).await;
        assert_eq!(tick.error, None);
        let rows = self
            .app
            .pipeline
            .ports
            .sink
            .read(None, Some(day.parse().unwrap()))
            .await
            .unwrap();
        rows[0].stats.count
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

#[tokio::test]
async fn a_commit_that_lands_after_the_summary_read_the_day_is_summarized() {
    // Today's day; its summary is due at 2026-11-21T00:10.
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    h.ingest("2026-11-20T10:00:00Z", 1.0).await;
    // The next batch starts long before the due time, but its commit only lands after the
    // summary has read the day and recorded it as summarized.
    h.store.arm("2026-11-21T00:11:00Z".parse().unwrap(), 1);
    h.ingest("2026-11-20T11:00:00Z", 2.0).await;
    assert_eq!(h.count_after_end_of_day("2026-11-20").await, 2);
}

#[tokio::test]
async fn a_late_commit_for_a_summarized_day_opens_its_epoch_only_once_it_has_landed() {
    // Yesterday's day, already summarized once. Late data for it is written first and only then
    // given its next epoch, so a summary cannot run between the two and find the day without
    // the data it was opened for: while the commit waits past when that epoch would be due,
    // there is nothing to summarize yet.
    let h = Harness::new("2026-11-20T12:00:00Z").await;
    h.ingest("2026-11-19T10:00:00Z", 1.0).await;
    assert_eq!(h.count_after_end_of_day("2026-11-19").await, 1);
    h.store.arm(h.now() + Duration::minutes(6), 0);
    h.ingest("2026-11-19T11:00:00Z", 2.0).await;
    assert_eq!(h.count_after_end_of_day("2026-11-19").await, 2);
}
