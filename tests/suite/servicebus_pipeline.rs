//! The Azure-mode pipeline over Service Bus — against `FakeServiceBus`, a loopback fake of the
//! documented REST semantics (no Service Bus can run here; see `servicebus_live.rs` for the
//! gated tests against a real namespace):
//!
//! - ten concurrent `process` workers with every observation message delivered one to three
//!   times put exactly one summarize message per (series, day, epoch) on the summaries queue,
//!   with duplicate detection at two days and with a window shorter than the test's span;
//! - `summarize` with a 2-second budget drains 5,000 due messages over several ticks, writing
//!   each row once, and a message whose SQL write failed comes back on a later tick;
//! - a summarize message lost on purpose is found by `reconcile` and the day is summarized.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use eventide::domain::parse::BodyFormat;
use eventide::domain::series::SeriesId;
use eventide::domain::stats::SummaryRow;
use eventide::pipeline::Settings;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{Clock, MessageReceiver, PortError, PortResult, SummarySink};
use eventide::pipeline::process::InboundMessage;
use eventide_testkit::azure_mode::{
    self, AzureMode, OBSERVATIONS, SUMMARIES, Setup, count_visible,
};
use eventide_testkit::fake_service_bus::FakeQueueSettings;
use sha2::{Digest, Sha256};

use crate::kit::{self, Lcg, assert_rows_match, expected, start};

/// Clean data of the test days: `(series, ts) -> value`.
type Clean = BTreeMap<(String, DateTime<Utc>), f64>;

/// `series` series over two past days, a point every 30 minutes, sent as NDJSON requests that
/// each hold `per_request` consecutive points of every series (one queue message per series
/// and request), in shuffled order.
fn requests(series: usize, per_request: usize, rng: &mut Lcg) -> (Vec<String>, Clean) {
    let day0 = Utc.with_ymd_and_hms(2026, 11, 18, 0, 0, 0).unwrap();
    let points = 2 * 48;
    let mut clean = Clean::new();
    let mut bodies = Vec::new();
    for first in (0..points).step_by(per_request) {
        let mut body = String::new();
        for s in 0..series {
            for i in first..(first + per_request).min(points) {
                let ts = day0 + Duration::minutes(30 * i as i64);
                let value = (rng.next() % 100_000) as f64 / 97.0 + s as f64;
                clean.insert((format!("sb-{s:03}"), ts), value);
                body.push_str(&format!(
                    "{{\"series\":\"sb-{s:03}\",\"ts\":\"{}\",\"value\":{value}}}\n",
                    ts.to_rfc3339()
                ));
            }
        }
        bodies.push(body);
    }
    rng.shuffle(&mut bodies);
    (bodies, clean)
}

/// How many times the test delivers a message: 1 to 3, fixed per MessageId.
fn planned_deliveries(message_id: &str) -> u32 {
    1 + u32::from(Sha256::digest(message_id.as_bytes())[0]) % 3
}

/// One `process` worker, as the Functions host's queue trigger would run it: receive a batch,
/// process it, then complete each message on its last planned delivery and leave the others
/// locked (a worker that timed out): the lock expires and the message comes again. Ends when
/// the queue shows nothing visible.
async fn process_worker(app: Arc<AzureMode>, seed: u64) {
    let mut rng = Lcg(seed);
    loop {
        let batch = app.observations.receive(1 + rng.below(8)).await.unwrap();
        if batch.is_empty() {
            return;
        }
        let messages: Vec<_> = batch.iter().map(InboundMessage::from).collect();
        match app.pipeline.process(&messages).await {
            Ok(_) => {
                let done: Vec<String> = batch
                    .iter()
                    .filter(|m| m.delivery_count >= planned_deliveries(&m.message_id))
                    .map(|m| m.lock_token.clone())
                    .collect();
                app.observations.complete(&done).await.unwrap();
            }
            Err(e) => {
                let locks: Vec<String> = batch.into_iter().map(|m| m.lock_token).collect();
                app.observations.abandon(&locks).await.unwrap();
                eprintln!("process failed, batch abandoned: {e}");
            }
        }
    }
}

struct Run {
    summarize_ids: HashMap<String, usize>,
    phases: usize,
    span: Duration,
    races_dropped: u64,
    observation_deliveries: u64,
    observation_messages: u64,
}

/// Ingest, then phases of ten concurrent workers; between phases the clock moves past the
/// observation lock (so unsettled messages come again) and past the summaries queue's
/// duplicate window when it is short. Then the summaries queue is counted on the receive side
/// and the day is summarized.
async fn ten_workers(summaries_window: Duration) -> (Run, Vec<SummaryRow>, Clean) {
    let clock = Arc::new(ManualClock::new(start()));
    let lock = Duration::minutes(5);
    let app = Arc::new(
        azure_mode::start(
            clock.clone(),
            Setup {
                observations: FakeQueueSettings {
                    dedup_window: Duration::minutes(10),
                    lock_duration: lock,
                    max_delivery_count: 10,
                },
                summaries: FakeQueueSettings {
                    dedup_window: summaries_window,
                    ..FakeQueueSettings::default()
                },
                ..Setup::default()
            },
        )
        .await,
    );
    let mut rng = Lcg(2026);
    let (bodies, clean) = requests(24, 6, &mut rng);
    for body in &bodies {
        let report = app
            .pipeline
            .ingest(BodyFormat::Ndjson, body.as_bytes())
            .await
            .unwrap();
        assert!(report.rejected.is_empty());
    }
    let begun = clock.now();
    let mut phases = 0;
    while app.fake.len(OBSERVATIONS) > 0 {
        phases += 1;
        assert!(
            phases <= 4,
            "every message is settled by its third delivery"
        );
        let workers: Vec<_> = (0..10)
            .map(|w| tokio::spawn(process_worker(app.clone(), 100 + w + 10 * phases as u64)))
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        clock.advance(lock + Duration::minutes(1));
    }
    let span = clock.now() - begun;

    // Everything due: count what reached the summaries queue, on the receive side.
    clock.advance(Duration::minutes(30));
    let summarize_ids = count_visible(&app.summaries).await;
    loop {
        let tick = app
            .pipeline
            .summarize_tick(StdDuration::from_secs(30))
            .await;
        assert_eq!(tick.error, None);
        if tick.received == 0 {
            break;
        }
    }
    let rows = app.pipeline.ports.sink.read(None, None).await.unwrap();
    let obs = app.fake.stats(OBSERVATIONS);
    let run = Run {
        summarize_ids,
        phases,
        span,
        races_dropped: app.fake.stats(SUMMARIES).duplicates_dropped,
        observation_deliveries: obs.received,
        observation_messages: obs.enqueued,
    };
    (run, rows, clean)
}

fn assert_exactly_one(run: &Run, series_days: usize) {
    assert_eq!(
        run.summarize_ids.len(),
        series_days,
        "one id per series-day"
    );
    for (id, count) in &run.summarize_ids {
        assert_eq!(*count, 1, "{id} reached the summaries queue {count} times");
        assert!(
            id.starts_with("summarize:sb-") && id.ends_with(":1"),
            "{id}"
        );
    }
    // Deliveries really were repeated, over three phases.
    assert_eq!(run.phases, 3);
    assert!(run.observation_deliveries > run.observation_messages * 3 / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_workers_repeated_deliveries_give_one_summarize_message_per_series_day() {
    let (run, rows, clean) = ten_workers(Duration::days(2)).await;
    let want = expected(&clean);
    assert_exactly_one(&run, want.len());
    let rows: Vec<_> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_rows_match(&rows, &want);
}

/// The duplicate window (1 minute) is far shorter than the test's span (three phases, 18
/// minutes of queue time): every redelivery after the first phase arrives after the window has
/// closed, so only the series-day's recorded state keeps it from scheduling again. Within a
/// phase, two workers that race on a series-day's very first data both send before either
/// records (send-before-record); those sends happen at the same queue instant and the window
/// drops the copy — `races_dropped` reports how many such races this run had. A window of
/// zero would let such a race through; the README says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_recorded_state_keeps_it_exact_past_a_short_duplicate_window() {
    let window = Duration::minutes(1);
    let (run, rows, clean) = ten_workers(window).await;
    assert!(
        run.span > window * 10,
        "span {} vs window {window}",
        run.span
    );
    let want = expected(&clean);
    assert_exactly_one(&run, want.len());
    eprintln!(
        "short window: {} series-days, {} concurrent first sends dropped by the window, span {} min",
        want.len(),
        run.races_dropped,
        run.span.num_minutes()
    );
    let rows: Vec<_> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_rows_match(&rows, &want);
}

/// Counts rows per key on successful upserts and fails the first upsert holding one series.
struct FlakySink {
    inner: Arc<dyn SummarySink>,
    fail_series: String,
    failed: AtomicBool,
    upserted: Mutex<HashMap<(String, NaiveDate), usize>>,
}

#[async_trait]
impl SummarySink for FlakySink {
    async fn upsert(&self, rows: &[SummaryRow]) -> PortResult<usize> {
        if rows.iter().any(|r| r.series.as_str() == self.fail_series)
            && !self.failed.swap(true, Ordering::SeqCst)
        {
            return Err(PortError::transient(
                "writing summaries",
                "injected: the SQL write failed",
            ));
        }
        let written = self.inner.upsert(rows).await?;
        let mut upserted = self.upserted.lock().unwrap();
        for row in rows {
            *upserted
                .entry((row.series.to_string(), row.day))
                .or_insert(0) += 1;
        }
        Ok(written)
    }

    async fn read(
        &self,
        series: Option<&SeriesId>,
        day: Option<NaiveDate>,
    ) -> PortResult<Vec<SummaryRow>> {
        self.inner.read(series, day).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn summarize_drains_5000_due_messages_over_several_ticks_under_a_2s_budget() {
    // The heaviest test of the suite (seconds of both cores).
    let _exclusive = kit::exclusive().await;
    const SERIES: usize = 5_000;
    let clock = Arc::new(ManualClock::new(start()));
    let flaky: Arc<Mutex<Option<Arc<FlakySink>>>> = Arc::default();
    let slot = flaky.clone();
    let app = azure_mode::start(
        clock.clone(),
        Setup {
            settings: Settings {
                summarize_batch: 50,
                ..eventide_testkit::pipeline_settings()
            },
            wrap_sink: Box::new(move |inner| {
                let sink = Arc::new(FlakySink {
                    inner,
                    fail_series: "due-04321".into(),
                    failed: AtomicBool::new(false),
                    upserted: Mutex::default(),
                });
                *slot.lock().unwrap() = Some(sink.clone());
                sink
            }),
            ..Setup::default()
        },
    )
    .await;
    let flaky = flaky.lock().unwrap().clone().unwrap();

    // 5,000 series with two points each on a past day, through ingest and process.
    let body: String = (0..SERIES)
        .flat_map(|s| {
            [1.5, 4.0].into_iter().enumerate().map(move |(i, v)| {
                format!(
                    "{{\"series\":\"due-{s:05}\",\"ts\":\"2026-11-19T0{i}:00:00Z\",\"value\":{}}}\n",
                    v + s as f64
                )
            })
        })
        .collect();
    app.pipeline
        .ingest(BodyFormat::Ndjson, body.as_bytes())
        .await
        .unwrap();
    app.drain_observations(256).await;
    assert_eq!(app.fake.stats(SUMMARIES).enqueued, SERIES as u64);
    clock.advance(Duration::minutes(10));

    // A round trip of 20 ms per call: a tick cannot do 5,000 messages (two calls each, at most
    // 4 × 16 in flight) in 2 s, so the drain must span ticks however fast this machine is.
    app.fake.set_latency(StdDuration::from_millis(20));
    let mut ticks = Vec::new();
    loop {
        let tick = app.pipeline.summarize_tick(StdDuration::from_secs(2)).await;
        let received = tick.received;
        ticks.push(tick);
        if received == 0 {
            break;
        }
        assert!(ticks.len() < 40, "no progress: {ticks:?}");
    }
    let with_work: Vec<_> = ticks.iter().filter(|t| t.received > 0).collect();
    eprintln!(
        "2 s budget: ticks (received, written, abandoned, error?) = {:?}",
        with_work
            .iter()
            .map(|t| (t.received, t.written, t.abandoned, t.error.is_some()))
            .collect::<Vec<_>>()
    );
    assert!(with_work.len() >= 3, "{with_work:?}");
    assert!(with_work.iter().all(|t| t.received < SERIES));
    // The injected SQL failure was waited out inside its batch (the patience) when the tick's
    // 2 s budget left room for it, or else ended that tick and its batch came back on a later
    // one: which of the two depends on when the failure fell within the tick…
    let waited = app.pipeline.metrics.snapshot()["outage_retries"];
    let failed = ticks.iter().filter(|t| t.error.is_some()).count() as u64;
    assert_eq!(waited + failed, 1, "{ticks:?}");
    // …and either way every row was written exactly once, nothing left, nothing lost.
    let written: usize = ticks.iter().map(|t| t.written).sum();
    assert_eq!(written, SERIES);
    let upserted = flaky.upserted.lock().unwrap().clone();
    assert_eq!(upserted.len(), SERIES);
    assert!(
        upserted.values().all(|n| *n == 1),
        "a row was written twice"
    );
    assert!(upserted.contains_key(&("due-04321".to_string(), "2026-11-19".parse().unwrap())));
    assert_eq!(app.fake.len(SUMMARIES), 0);
    assert!(app.fake.dead_letters(SUMMARIES).is_empty());
    let rows = app.pipeline.ports.sink.read(None, None).await.unwrap();
    assert_eq!(rows.len(), SERIES);
    let r = rows
        .iter()
        .find(|r| r.series.as_str() == "due-04321")
        .unwrap();
    assert_eq!(
        (r.stats.count, r.stats.min, r.stats.max),
        (2, 4322.5, 4325.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_summarize_message_is_found_by_reconcile() {
    let clock = Arc::new(ManualClock::new(start()));
    let app = azure_mode::start(clock.clone(), Setup::default()).await;
    let mut rng = Lcg(5);
    let (bodies, clean) = requests(3, 12, &mut rng);
    for body in &bodies {
        app.pipeline
            .ingest(BodyFormat::Ndjson, body.as_bytes())
            .await
            .unwrap();
    }
    app.drain_observations(64).await;
    assert!(app.fake.lose(SUMMARIES, "summarize:sb-001:2026-11-19:1"));

    clock.advance(Duration::minutes(10));
    let tick = app
        .pipeline
        .summarize_tick(StdDuration::from_secs(30))
        .await;
    assert_eq!((tick.received, tick.written, tick.error), (5, 5, None));
    assert_eq!(
        app.pipeline.reconcile().await.unwrap(),
        0,
        "not overdue yet"
    );

    clock.advance(Duration::hours(1));
    assert_eq!(app.pipeline.reconcile().await.unwrap(), 1);
    let due = count_visible(&app.summaries).await;
    assert_eq!(
        due.into_keys().collect::<Vec<_>>(),
        ["summarize:sb-001:2026-11-19:2"]
    );
    let tick = app
        .pipeline
        .summarize_tick(StdDuration::from_secs(30))
        .await;
    assert_eq!((tick.received, tick.written, tick.error), (1, 1, None));
    assert_eq!(app.pipeline.reconcile().await.unwrap(), 0);

    let rows = app.pipeline.ports.sink.read(None, None).await.unwrap();
    let rows: Vec<_> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_rows_match(&rows, &expected(&clean));
}
