//! The Cosmos DB figures of the series-day store, measured on the SDK's in-memory emulator
//! (its RU model and its per-partition 1-second throughput windows):
//!
//! 1. RU per observation for workload W1 (N series × 1,440 points of one day, 10 points per
//!    message, 100 messages per trigger batch, time-major like live traffic), through the real
//!    `process` use case, next to the seed system's design measured in the same run: one read
//!    plus one replace of the growing day document per observation.
//! 2. Goodput under throttling: a 400 RU/s container, W1's first batches offered at ten times
//!    what it can absorb, through concurrent `process` invocations sharing one store.
//!
//! ```sh
//! cargo run --release --example reports -- cosmos_ru                # full W1 (1,000 series)
//! cargo run --release --example reports -- cosmos_ru --series 100 --seed-series 1 --goodput-batches 12 --goodput-series 1000
//! ```
//!
//! With fewer series the per-observation figures are the same in expectation: every series-day
//! costs the same, and a batch still holds 100 distinct series while N ≥ 100.

use crate::flags::{self, Flag};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use eventide::adapters::cosmos::CosmosStore;
use eventide::app::{App, Driver};
use eventide::pipeline::Pipeline;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::process::InboundMessage;
use eventide_testkit::cosmos::{Emulator, settings};
use serde_json::json;

const POINTS: usize = 1440;
const PER_MESSAGE: usize = 10;
const PER_BATCH: usize = 100;

struct Args {
    series: usize,
    seed_series: usize,
    goodput_batches: usize,
    goodput_series: usize,
    /// 0 skips figure 1 (the RU per observation).
    ru: usize,
}

fn args(argv: Vec<String>) -> Args {
    let mut a = Args {
        series: 1000,
        seed_series: 5,
        goodput_batches: 12,
        goodput_series: 1000,
        ru: 1,
    };
    for Flag { name, value } in flags::numbers(argv) {
        let value = value as usize;
        match name.as_str() {
            "--series" => a.series = value,
            "--seed-series" => a.seed_series = value,
            "--goodput-batches" => a.goodput_batches = value,
            "--goodput-series" => a.goodput_series = value,
            "--ru" => a.ru = value,
            other => flags::unknown(
                other,
                "--series, --seed-series, --goodput-batches, --goodput-series, --ru",
            ),
        }
    }
    a
}

fn day_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap()
}

fn value(s: usize, i: usize) -> f64 {
    // Two-decimal readings, like a thermometer's.
    ((2000 + (s * 37 + i * 11) % 1000) as f64) / 100.0
}

/// W1's messages, time-major: every series' minute 0–9, then 10–19, …
fn w1_batches(series: usize) -> Vec<Vec<InboundMessage>> {
    let enqueued = Some(day_start() + chrono::Duration::days(1));
    let mut messages = Vec::new();
    for chunk in 0..POINTS / PER_MESSAGE {
        for s in 0..series {
            let observations: Vec<_> = (0..PER_MESSAGE)
                .map(|k| {
                    let i = chunk * PER_MESSAGE + k;
                    json!({
                        "series": format!("w1-{s:04}"),
                        "ts": (day_start() + chrono::Duration::minutes(i as i64)).to_rfc3339(),
                        "value": value(s, i),
                    })
                })
                .collect();
            messages.push(InboundMessage {
                message_id: Some(format!("w1-{s}-{chunk}")),
                body: serde_json::to_vec(&observations).unwrap(),
                enqueued_at: enqueued,
                trace_context: None,
            });
        }
    }
    let mut batches = Vec::new();
    let mut it = messages.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(PER_BATCH).collect());
    }
    batches
}

/// A pipeline over `store` with embedded queues, quarantine and sink in a temporary file.
async fn pipeline(store: &CosmosStore, dir: &tempfile::TempDir) -> Pipeline {
    let config = eventide_testkit::settings(dir.path().join("eventide.db"));
    let clock = Arc::new(ManualClock::new(day_start() + chrono::Duration::hours(25)));
    let mut ports = App::build(&config, Driver::Local, clock.clone())
        .await
        .unwrap()
        .pipeline
        .ports;
    let settings = eventide_testkit::pipeline_settings();
    // As the application opens it: on the pipeline's clock, remembering pending states.
    let store = store
        .clone()
        .with_expiry(settings.calendar, clock)
        .remembering_pending(settings.due_margin);
    ports.store = Arc::new(store);
    Pipeline::new(ports, settings)
}

/// Figure 1a: the adapter on W1, no throttling in the way.
async fn adapter_ru(series: usize) -> (f64, u64, f64) {
    let emulator = Emulator::new();
    let mut s = settings(1e9);
    s.create_if_missing = true;
    s.provisioned_throughput = Some(1_000_000);
    s.budget.concurrency = 64;
    let (_client, store) = emulator.open(&s, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(&store, &dir).await;
    let started = Instant::now();
    for batch in w1_batches(series) {
        pipeline.process(&batch).await.expect("W1 batch");
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = store.stats();
    (
        stats.request_units(),
        stats.requests.load(Ordering::Relaxed),
        secs,
    )
}

/// Figure 1b: the seed design — one day document per series-day holding its observations as
/// JSON, read and replaced (If-Match) for every single observation.
async fn seed_ru(series: usize) -> f64 {
    let emulator = Emulator::new();
    let mut s = settings(1e9);
    s.create_if_missing = true;
    s.provisioned_throughput = Some(1_000_000);
    let client = emulator.client(&s, vec![]).await;
    let container = eventide::adapters::cosmos::client::open_container(&client, &s)
        .await
        .unwrap();
    let mut ru = 0.0;
    for s in 0..series {
        let pk = format!("seed-{s:04}");
        let id = format!("{pk}:2026-11-24");
        let mut observations = Vec::new();
        for i in 0..POINTS {
            let ts = (day_start() + chrono::Duration::minutes(i as i64)).to_rfc3339();
            observations.push(json!({"ts": ts, "value": value(s, i)}));
            let doc = |obs: &Vec<serde_json::Value>| {
                json!({"id": id, "seriesId": pk, "day": "2026-11-24", "observations": obs,
                       "revision": obs.len(), "status": "scheduled", "ttl": 172800})
            };
            let etag = match container.read_item(pk.clone(), &id, None).await {
                Ok(r) => {
                    ru += r.diagnostics().total_request_charge().value();
                    r.headers().etag().cloned()
                }
                Err(e) => {
                    assert!(e.status().is_not_found(), "{e}");
                    None
                }
            };
            let r = match etag {
                None => container
                    .create_item(pk.clone(), &id, doc(&observations), None)
                    .await
                    .unwrap(),
                Some(etag) => container
                    .replace_item(
                        pk.clone(),
                        &id,
                        doc(&observations),
                        Some(
                            azure_data_cosmos::options::ItemWriteOptions::default()
                                .with_precondition(
                                    azure_data_cosmos::options::Precondition::if_match(etag),
                                ),
                        ),
                    )
                    .await
                    .unwrap(),
            };
            ru += r.diagnostics().total_request_charge().value();
        }
    }
    ru / (series * POINTS) as f64
}

/// Figure 2: goodput at 400 RU/s with W1's first batches offered at 10× the absorbable rate.
async fn goodput(series: usize, batches: usize, per_batch_ru: f64) {
    const PROVISIONED: f64 = 400.0;
    let emulator = Emulator::new();
    let s = settings(PROVISIONED);
    // One physical partition: what a real 400 RU/s container has.
    emulator.provision(&s, 1, PROVISIONED as u64);
    let (_client, store) = emulator.open(&s, vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(&store, &dir).await;
    let work: Vec<_> = w1_batches(series).into_iter().take(batches).collect();
    // Arrivals at ten times the rate the container can absorb.
    let interval = Duration::from_secs_f64(per_batch_ru / (10.0 * PROVISIONED));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, batch) in work.into_iter().enumerate() {
        tokio::time::sleep_until((started + interval * i as u32).into()).await;
        let p = pipeline.clone();
        tasks.push(tokio::spawn(async move { p.process(&batch).await.is_ok() }));
    }
    let mut failed = 0;
    for t in tasks {
        if !t.await.unwrap() {
            failed += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.stats();
    let ru = stats.request_units();
    let wasted = stats.wasted_request_units();
    let requests = stats.requests.load(Ordering::Relaxed);
    let throttled = stats.throttled.load(Ordering::Relaxed);
    println!(
        "goodput at {PROVISIONED} RU/s (1 partition, budget {PROVISIONED} RU/s, concurrency {}): \
         {batches} batches offered at {:.2} batches/s (10x absorbable), finished in {elapsed:.1} s",
        s.budget.concurrency,
        1.0 / interval.as_secs_f64()
    );
    println!(
        "  RU used for successful work: {:.0} RU (of {ru:.0} charged; {wasted:.0} on lost races or failed attempts) \
         = {:.1}% of provisioned over the run (goal >= 90%)",
        ru - wasted,
        100.0 * (ru - wasted) / (PROVISIONED * elapsed)
    );
    println!(
        "  requests answered 429: {throttled} of {requests} = {:.2}% (goal <= 1%); retries {}; conflicts {}",
        100.0 * throttled as f64 / requests.max(1) as f64,
        stats.retries.load(Ordering::Relaxed),
        stats.conflicts.load(Ordering::Relaxed),
    );
    println!(
        "  invocations failed after retries: {failed} (goal 0); final budget rate {:.0} RU/s",
        store.current_rate()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
pub async fn run(argv: Vec<String>) {
    let a = args(argv);
    let observations = (a.series * POINTS) as f64;
    println!(
        "W1: {} series x {POINTS} points, {PER_MESSAGE} points/message, {PER_BATCH} messages/batch \
         ({} batches), on the in-memory emulator's RU model",
        a.series,
        a.series * POINTS / PER_MESSAGE / PER_BATCH
    );
    // Without figure 1, the offered rate is based on 13 RU per batch message (its measured value).
    let mut per_batch = 13.0 * PER_BATCH as f64;
    if a.ru > 0 {
        let (ru, requests, secs) = adapter_ru(a.series).await;
        let adapter = ru / observations;
        println!(
            "  adapter: {ru:.0} RU in {requests} requests ({secs:.1} s) = {adapter:.4} RU/observation"
        );
        let seed = seed_ru(a.seed_series).await;
        println!(
            "  seed design (read + replace of the day document per observation, {} series): {seed:.1} RU/observation",
            a.seed_series
        );
        println!(
            "  adapter / seed = {:.3}% (goal <= 0.5%)",
            100.0 * adapter / seed
        );
        per_batch = ru / (observations / (PER_MESSAGE * PER_BATCH) as f64);
    }
    goodput(a.goodput_series, a.goodput_batches, per_batch).await;
}
