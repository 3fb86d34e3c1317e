//! Service Bus operations per observation for workload W1 (1,000 series × 1,440 points, 10
//! points per message), measured: the Azure-mode pipeline (ingest → process → summarize) runs
//! through the real REST client against `FakeServiceBus`, the loopback fake of the documented
//! REST semantics, which counts every operation. Printed next to the seed system's
//! one-message-per-observation design.
//!
//! ```sh
//! cargo run --release --example reports -- servicebus_ops                # full W1
//! cargo run --release --example reports -- servicebus_ops --series 100  # scaled down
//! ```
//!
//! Every count is per series (a series' 1,440 points make 144 messages and one summary
//! whatever the other series do), so a run with fewer series gives the same ratio exactly.

use crate::flags::{self, Flag};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, TimeZone, Utc};
use eventide::domain::parse::BodyFormat;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::MessageReceiver;
use eventide_testkit::azure_mode::{self, OBSERVATIONS, SUMMARIES, Setup};

struct Args {
    series: usize,
    points: usize,
    per_message: usize,
    workers: usize,
}

fn args(argv: Vec<String>) -> Args {
    let mut args = Args {
        series: 1_000,
        points: 1_440,
        per_message: 10,
        workers: 4,
    };
    for Flag { name, value } in flags::numbers(argv) {
        let value = value as usize;
        match name.as_str() {
            "--series" => args.series = value,
            "--points" => args.points = value,
            "--points-per-message" => args.per_message = value,
            "--workers" => args.workers = value,
            other => flags::unknown(other, "--series, --points, --points-per-message, --workers"),
        }
    }
    args
}

#[tokio::main]
pub async fn run(argv: Vec<String>) {
    let args = args(argv);
    let day = Utc.with_ymd_and_hms(2026, 11, 24, 0, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(day + Duration::hours(25)));
    let app = Arc::new(azure_mode::start(clock.clone(), Setup::default()).await);
    let started = Instant::now();

    // Ingest: each request holds `per_message` consecutive points of every series, so each
    // series' share of a request is one queue message.
    let step = 86_400 / args.points as i64;
    let mut observations = 0usize;
    for first in (0..args.points).step_by(args.per_message) {
        let mut body = String::new();
        for s in 0..args.series {
            for i in first..(first + args.per_message).min(args.points) {
                let ts = day + Duration::seconds(i as i64 * step);
                let value = 20.0 + ((s * 31 + i * 17) % 1000) as f64 / 100.0;
                body.push_str(&format!(
                    "{{\"series\":\"w1-{s:04}\",\"ts\":\"{}\",\"value\":{value}}}\n",
                    ts.to_rfc3339()
                ));
                observations += 1;
            }
        }
        let report = app
            .pipeline
            .ingest(BodyFormat::Ndjson, body.as_bytes())
            .await
            .unwrap();
        assert!(report.rejected.is_empty());
    }
    let ingested = started.elapsed();

    // Process, as queue-triggered invocations would.
    let workers: Vec<_> = (0..args.workers)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.drain_observations(32).await })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let processed = started.elapsed();

    // End of day: everything due, summarize until drained.
    clock.advance(Duration::hours(1));
    let mut written = 0;
    loop {
        let tick = app
            .pipeline
            .summarize_tick(StdDuration::from_secs(240))
            .await;
        assert_eq!(tick.error, None);
        written += tick.written;
        if tick.received == 0 {
            break;
        }
    }
    let total = started.elapsed();
    assert_eq!(written, args.series, "one summary row per series");
    assert!(app.embedded.quarantine.size().await.unwrap() == 0);
    assert_eq!(app.fake.len(OBSERVATIONS) + app.fake.len(SUMMARIES), 0);
    // Nothing left over on the summaries queue either.
    assert!(app.summaries.receive(1).await.unwrap().is_empty());

    let obs = app.fake.stats(OBSERVATIONS);
    let sum = app.fake.stats(SUMMARIES);
    let sends = obs.messages_sent;
    let schedules = sum.messages_scheduled;
    let receives = obs.received + sum.received;
    let settles = obs.completed + obs.abandoned + sum.completed + sum.abandoned;
    let n = observations as f64;
    let ops = (sends + receives + schedules) as f64;
    println!(
        "W1 through the Azure-mode pipeline against FakeServiceBus (a loopback fake of the documented REST semantics)"
    );
    println!(
        "  series {}, points/series {}, points/message {}, observations {observations}",
        args.series, args.points, args.per_message
    );
    println!(
        "  sends (observation messages)      {sends:>10}   in {} HTTP send requests (batch send)",
        obs.send_requests
    );
    println!("  receives (observations)           {:>10}", obs.received);
    println!(
        "  schedules (summarize messages)    {schedules:>10}   duplicates dropped by the queue: {}",
        sum.duplicates_dropped
    );
    println!("  receives (summarize messages)     {:>10}", sum.received);
    println!(
        "  completes + abandons (settles)    {settles:>10}   (not in the figure; REST: one call each)"
    );
    println!(
        "  empty receives (204)              {:>10}",
        obs.empty_receives + sum.empty_receives
    );
    println!(
        "Eventide: (sends + receives + schedules) / observations = {:.0} / {observations} = {:.4} operations per observation",
        ops,
        ops / n
    );
    println!(
        "Seed design (model: one message per observation, one summarize message scheduled per document upsert \
         without MessageId, each delivered): 1 send + 1 receive + 1 schedule + 1 receive = 4.0000 operations per observation"
    );
    println!("  ratio seed / Eventide = {:.1}x", 4.0 / (ops / n));
    println!(
        "  (wall time: ingest {:.1} s, process {:.1} s, total {:.1} s; {} HTTP requests to the fake)",
        ingested.as_secs_f64(),
        (processed - ingested).as_secs_f64(),
        total.as_secs_f64(),
        app.fake.requests()
    );
}
