//! The whole pipeline (ingest → process → summarize) with the Cosmos DB store in place of the
//! embedded one, on the SDK's in-memory emulator: once clean, and with 20% of Cosmos requests
//! failing (429, 503, 408 timeouts, and writes applied whose response is lost) both with the day
//! log (pending days' merges append to it, reads compact it) and without it (every merge
//! rewrites buckets). Each must end with documents and summary rows equal to the ground truth
//! computed independently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use azure_data_cosmos::fault_injection::{
    FaultInjectionConditionBuilder, FaultInjectionErrorType, FaultInjectionResultBuilder,
    FaultInjectionRule, FaultInjectionRuleBuilder, FaultOperationType,
};
use chrono::{DateTime, Utc};
use eventide::adapters::cosmos::CosmosStore;
use eventide::adapters::cosmos::settings::DEFAULT_LOG_SHARDS;
use eventide::adapters::embedded::queue::EmbeddedQueue;
use eventide::app::{App, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::SeriesDayKey;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{MessageReceiver, SeriesDayStore};
use eventide::pipeline::process::InboundMessage;
use eventide::pipeline::{Pipeline, Settings};
use eventide_testkit::cosmos::{Emulator, settings};

use crate::kit::{Dataset, assert_rows_match, dataset, expected, start};

/// The error types injected, one phase at a time, on every item operation.
const FAULTS: [FaultInjectionErrorType; 4] = [
    FaultInjectionErrorType::TooManyRequests,
    FaultInjectionErrorType::ServiceUnavailable,
    FaultInjectionErrorType::Timeout,
    FaultInjectionErrorType::ResponseTimeoutAfterService,
];
const OPS: [FaultOperationType; 5] = [
    FaultOperationType::ReadItem,
    FaultOperationType::CreateItem,
    FaultOperationType::ReplaceItem,
    FaultOperationType::DeleteItem,
    FaultOperationType::QueryItem,
];

/// One rule per (fault, operation) at probability `p`; phase `k` enables the rules of fault k.
struct Faults {
    rules: Vec<(usize, Arc<FaultInjectionRule>)>,
}

impl Faults {
    fn new(p: f32) -> Self {
        let mut rules = Vec::new();
        for (k, fault) in FAULTS.iter().enumerate() {
            for op in OPS {
                let rule = FaultInjectionRuleBuilder::new(
                    format!("{fault:?}-{op:?}"),
                    FaultInjectionResultBuilder::new()
                        .with_error(*fault)
                        .with_probability(p)
                        .build(),
                )
                .with_condition(
                    FaultInjectionConditionBuilder::new()
                        .with_operation_type(op)
                        .build(),
                )
                .build();
                rules.push((k, Arc::new(rule)));
            }
        }
        let faults = Self { rules };
        faults.phase(0);
        faults
    }

    fn phase(&self, k: usize) {
        for (fault, rule) in &self.rules {
            if *fault == k % FAULTS.len() {
                rule.enable();
            } else {
                rule.disable();
            }
        }
    }

    fn all(&self) -> Vec<Arc<FaultInjectionRule>> {
        self.rules.iter().map(|(_, r)| r.clone()).collect()
    }

    fn hits(&self) -> BTreeMap<String, u64> {
        let mut hits = BTreeMap::new();
        for (k, rule) in &self.rules {
            *hits.entry(format!("{:?}", FAULTS[*k])).or_default() += rule.hit_count() as u64;
        }
        hits
    }
}

struct Harness {
    pipeline: Pipeline,
    observations: EmbeddedQueue,
    store: CosmosStore,
    clock: Arc<ManualClock>,
    /// Messages per process batch: 5, or 1 with the day log, whose batches make only a few
    /// requests each (a header read per series-day and a log document), so that every fault
    /// still meets many of them.
    batch: usize,
    /// A summarize tick's budget: a minute, or with the day log a few milliseconds, so that a
    /// tick runs about one batch per receive loop and the phases of the faults change between
    /// the batches (the first read of a day compacts its log, many requests in one batch).
    tick: Duration,
    _dir: tempfile::TempDir,
}

/// The pipeline over the Cosmos store with `log_shards` shards of the day log (0: none).
async fn harness(emulator: &Emulator, faults: Option<&Faults>, log_shards: u32) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = eventide_testkit::settings(dir.path().join("eventide.db"));
    let clock = Arc::new(ManualClock::new(start()));
    let mut s = settings(4000.0);
    s.create_if_missing = true;
    s.provisioned_throughput = Some(10_000);
    s.request_timeout = Duration::from_secs(5);
    s.log_shards = log_shards;
    let rules = faults.map(Faults::all).unwrap_or_default();
    let (_client, store) = emulator.open(&s, rules).await;
    // The embedded adapters of a temporary file, with the Cosmos store in place of theirs.
    let app = App::build(&config, Driver::Local, clock.clone())
        .await
        .unwrap();
    let mut ports = app.pipeline.ports;
    ports.store = Arc::new(store.clone());
    let embedded = app.embedded.expect("the queues are embedded");
    let settings = Settings {
        // Small chunks: many messages, so many batches meet the faults (smaller still with the
        // day log, whose batches make fewer requests).
        max_chunk_bytes: if log_shards > 0 { 256 } else { 1024 },
        // With the day log, a summarize batch per series-day: the first read of each log
        // shard compacts it, and the faults' phases change between the batches.
        summarize_batch: if log_shards > 0 { 1 } else { 256 },
        ..eventide_testkit::pipeline_settings()
    };
    Harness {
        pipeline: Pipeline::new(ports, settings),
        observations: embedded.observations,
        store,
        clock,
        batch: if log_shards > 0 { 1 } else { 5 },
        tick: if log_shards > 0 {
            Duration::from_millis(5)
        } else {
            Duration::from_secs(60)
        },
        _dir: dir,
    }
}

impl Harness {
    async fn ingest_dataset(&self) -> Dataset {
        let data = dataset();
        for (content_type, body) in &data.requests {
            let format = BodyFormat::from_content_type(content_type).unwrap();
            self.pipeline.ingest(format, body.as_bytes()).await.unwrap();
            self.clock.advance(chrono::Duration::seconds(1));
        }
        data
    }

    /// Pumps the observations queue like the trigger does: complete on success, abandon on a
    /// failure so the batch is delivered again. Returns the failed invocations.
    async fn process_all(&self, faults: Option<&Faults>) -> usize {
        let mut failed = 0;
        for batch in 0.. {
            assert!(batch < 2000, "the queue did not drain");
            if let Some(f) = faults {
                f.phase(batch);
            }
            let messages = self.observations.receive(self.batch).await.unwrap();
            if messages.is_empty() {
                return failed;
            }
            let inbound: Vec<InboundMessage> = messages.iter().map(InboundMessage::from).collect();
            let locks: Vec<String> = messages.into_iter().map(|m| m.lock_token).collect();
            match self.pipeline.process(&inbound).await {
                Ok(_) => self.observations.complete(&locks).await.unwrap(),
                Err(_) => {
                    failed += 1;
                    self.observations.abandon(&locks).await.unwrap();
                }
            }
        }
        unreachable!()
    }

    /// Runs the end of day until every due summary is written.
    async fn end_of_day(&self, faults: Option<&Faults>) {
        self.clock.advance(chrono::Duration::hours(1));
        let mut idle = 0;
        for tick in 0..500 {
            if let Some(f) = faults {
                f.phase(tick);
            }
            let report = self.pipeline.summarize_tick(self.tick).await;
            if report.received == 0 && report.error.is_none() {
                idle += 1;
                if idle == 2 {
                    return;
                }
            }
        }
        panic!("the end of day did not finish");
    }

    async fn rows(&self) -> Vec<serde_json::Value> {
        crate::kit::sink_rows(self.pipeline.ports.sink.as_ref()).await
    }

    /// The stored documents equal the clean data: every point once, with its last value.
    async fn assert_documents(&self, clean: &BTreeMap<(String, DateTime<Utc>), f64>) {
        let mut keys: Vec<SeriesDayKey> = clean
            .keys()
            .map(|(s, ts)| SeriesDayKey::new(SeriesId::parse(s).unwrap(), ts.date_naive()))
            .collect();
        keys.dedup();
        let days = self.store.read_days(&keys).await.unwrap();
        let mut stored = BTreeMap::new();
        for day in days {
            let day = day.expect("every series-day is stored");
            for p in day.points {
                let ts = DateTime::from_timestamp_nanos(p.ts);
                assert!(
                    stored
                        .insert((day.key.series.to_string(), ts), p.value)
                        .is_none()
                );
            }
        }
        assert_eq!(&stored, clean);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pipeline_runs_on_the_cosmos_store() {
    let emulator = Emulator::new();
    let h = harness(&emulator, None, DEFAULT_LOG_SHARDS).await;
    let data = h.ingest_dataset().await;
    assert_eq!(h.process_all(None).await, 0);
    h.assert_documents(&data.clean).await;
    h.end_of_day(None).await;
    assert_rows_match(&h.rows().await, &expected(&data.clean));
    let stats = h.store.stats().snapshot();
    assert!(stats["cosmos_request_units"] > 0, "{stats:?}");
    assert_eq!(stats["cosmos_failed"], 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_faults_lose_nothing_and_apply_nothing_twice_with_the_day_log() {
    // Many shards, so that compacting the day's log takes many summarize batches.
    twenty_percent_faults_lose_nothing_and_apply_nothing_twice(16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_percent_faults_lose_nothing_and_apply_nothing_twice_rewriting_buckets() {
    twenty_percent_faults_lose_nothing_and_apply_nothing_twice(0).await;
}

async fn twenty_percent_faults_lose_nothing_and_apply_nothing_twice(log_shards: u32) {
    let emulator = Emulator::new();
    let faults = Faults::new(0.2);
    let h = harness(&emulator, Some(&faults), log_shards).await;
    let data = h.ingest_dataset().await;
    let failed = h.process_all(Some(&faults)).await;
    h.end_of_day(Some(&faults)).await;

    // Read the truth with the faults off.
    for (_, rule) in &faults.rules {
        rule.disable();
    }
    h.assert_documents(&data.clean).await;
    assert_rows_match(&h.rows().await, &expected(&data.clean));

    let hits = faults.hits();
    let stats = h.store.stats();
    println!(
        "faults injected {hits:?}; store {:?}; failed invocations {failed}",
        stats.snapshot()
    );
    for (fault, n) in &hits {
        assert!(*n > 10, "{fault} was injected only {n} times: {hits:?}");
    }
    assert!(stats.throttled.load(Ordering::Relaxed) > 0);
    assert!(stats.retries.load(Ordering::Relaxed) > 0);
    assert!(
        stats.conflicts.load(Ordering::Relaxed) > 0,
        "lost responses of applied writes come back as conflicts"
    );
}
