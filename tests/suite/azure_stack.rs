//! The emulated Azure stack in a small form (`eventide_testkit::azure_stack`): loadgen → the
//! stand-in Functions host (HTTP front, Service Bus trigger loops sized by `host.json`, timer)
//! → the real handler router → the Service Bus fake → series-days on the Cosmos DB SDK's
//! emulator (provisioned throughput, throttling on) → PostgreSQL; quarantine on Azurite. The
//! summary rows must equal the workload's ground truth; the request units and Service Bus
//! operations per observation are printed, not asserted (they are figures, measured by
//! `cargo run --release --example reports -- azure_stack`).
//!
//! Needs the real peers `scripts/test` starts (`EVENTIDE_TEST_POSTGRES`,
//! `EVENTIDE_TEST_AZURITE`); without them it reports itself skipped.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use eventide::adapters::cosmos::settings::DEFAULT_LOG_SHARDS;
use eventide::drivers::loadgen::{self, LoadgenArgs};
use eventide::pipeline::ports::OutgoingMessage;
use eventide_testkit::azure_stack::{AzureStack, OBSERVATIONS, StackOptions};
use eventide_testkit::functions_host::{HostCounters, TriggerSettings};

use crate::kit;

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

fn peers() -> Option<(String, String)> {
    match (
        std::env::var("EVENTIDE_TEST_POSTGRES"),
        std::env::var("EVENTIDE_TEST_AZURITE"),
    ) {
        (Ok(p), Ok(a)) if !p.is_empty() && !a.is_empty() => Some((p, a)),
        _ => {
            println!(
                "SKIPPED azure_stack: EVENTIDE_TEST_POSTGRES and EVENTIDE_TEST_AZURITE are not both set (scripts/test sets them)"
            );
            None
        }
    }
}

/// 20 series × 60 points, 10 per message, in W1's shape (every series in each request), with
/// duplicates, corrections and bad items.
fn workload(target: String) -> LoadgenArgs {
    LoadgenArgs {
        series: Some(20),
        points: Some(60),
        points_per_message: Some(10),
        day: Some(day()),
        seed: 5,
        concurrency: 4,
        bad_ratio: 0.05,
        duplicate_ratio: 0.1,
        correction_ratio: 0.1,
        settle_timeout: 60,
        request_timeout: 60,
        ..LoadgenArgs::against(target)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_w1_through_the_emulated_azure_stack_gives_the_exact_statistics() {
    let Some((postgres, azurite)) = peers() else {
        return;
    };
    let trigger = TriggerSettings::from_host_json();
    let stack = AzureStack::start(StackOptions {
        // Low enough that the run meets throttling on one of its two partitions.
        provisioned_ru: 2_000,
        partitions: 2,
        postgres,
        azurite,
        name: format!("azurestack{:08x}", rand::random::<u32>()),
        now: Utc.from_utc_datetime(&day().and_hms_opt(0, 0, 0).unwrap()) + Duration::minutes(1450),
        trigger,
        log_shards: DEFAULT_LOG_SHARDS,
    })
    .await
    .unwrap();

    let args = workload(stack.host.front_url());
    let report = loadgen::execute(&args).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.unanswered, 0);
    assert_eq!(report.accepted, report.sent.acceptable());
    // A message no `process` can decode: quarantined on Azurite, the rest goes on.
    stack
        .app
        .pipeline
        .ports
        .observations
        .send(vec![OutgoingMessage {
            message_id: "poison-1".into(),
            session_id: None,
            body: b"{not json".to_vec(),
            scheduled_at: None,
            trace_context: None,
        }])
        .await
        .unwrap();
    stack.processed(StdDuration::from_secs(60)).await.unwrap();
    let processing = stack.cosmos();
    stack.clock.advance(Duration::hours(1));
    stack
        .summarized(20, StdDuration::from_secs(60))
        .await
        .unwrap();

    // The rows in PostgreSQL equal the workload's ground truth (corrections and duplicates
    // resolved, bad items left out).
    let clean: std::collections::BTreeMap<(String, DateTime<Utc>), f64> = args
        .shape()
        .expected_points()
        .into_iter()
        .flat_map(|(series, points)| {
            points.into_iter().map(move |(ts, value)| {
                ((series.clone(), DateTime::from_timestamp_nanos(ts)), value)
            })
        })
        .collect();
    let rows = kit::sink_rows(stack.sink.as_ref()).await;
    kit::assert_rows_match(&rows, &kit::expected(&clean));

    let quarantined = stack.app.pipeline.ports.quarantine.list(10).await.unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].source, "poison-1");
    assert_eq!(stack.fake.len(OBSERVATIONS), 0);
    // Every message went through `/process` in batches no larger than host.json allows.
    let counters = &stack.host.counters;
    let delivered = HostCounters::get(&counters.messages_delivered);
    let invocations = HostCounters::get(&counters.process_invocations);
    let queue = stack.fake.stats(OBSERVATIONS);
    assert_eq!(
        queue.completed, queue.enqueued,
        "every message was completed"
    );
    assert!(
        queue.enqueued > report.requests,
        "a message per series of each request, and the poison one"
    );
    assert!(delivered >= queue.enqueued);
    assert!(delivered <= invocations * trigger.max_message_batch_size as u64);

    let observations = report.sent.acceptable() as f64;
    let total = stack.cosmos();
    let bus = stack.service_bus();
    println!(
        "azure_stack (small): {} observations; Cosmos DB {:.3} RU/observation processing, {:.3} with the summaries, {} of {} requests answered 429; Service Bus {:.4} operations/observation; {invocations} /process invocations",
        observations,
        processing.request_units / observations,
        total.request_units / observations,
        total.throttled,
        total.requests,
        bus.billed() as f64 / observations,
    );
    println!("  by operation: {}", total.breakdown());
    stack.stop().await;
}
