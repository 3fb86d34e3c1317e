//! Telemetry bytes per 1,000 successful messages: the real binary (`eventide local`, default
//! telemetry settings) exporting through the real exporters to loopback STAND-INS that count
//! what arrives — `FakeAppInsights` for the Application Insights ingestion endpoint (the bytes
//! it bills are the JSON), and `FakeOtlp` for an OTLP/HTTP receiver (protobuf). Beside it, the
//! seed's design (a request row and the host's two per-execution traces for every message) and
//! the host's own share under our host.json, estimated from the documented item shapes (see
//! docs/telemetry.md).
//!
//! ```sh
//! cargo build --release && cargo run --release --example reports -- telemetry_bytes [SERIES...]
//! ```
//!
//! Each SERIES (default 100 and 1000) runs SERIES series × 1,440 points, 10 points per message
//! at full speed (W1 is 1,000 series: 144,000 messages). A full-speed run fits in one export
//! interval, so what it exports is one export's worth: the most an export holds, since every
//! instrument moved. At W1's real-time rate (144,000 messages over a day) an export holds at most
//! that, once per interval. The binary is `EVENTIDE_BINARY`, else `target/release/eventide`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eventide::telemetry::{APP_INSIGHTS_METRIC_INTERVAL, OTLP_METRIC_INTERVAL};
use eventide_testkit::child::free_port;
use eventide_testkit::fake_app_insights::FakeAppInsights;
use eventide_testkit::fake_otlp::FakeOtlp;
use serde_json::{Value, json};

/// Points per series over the day, and per message (one message per series and request).
const POINTS: usize = 1_440;
const POINTS_PER_MESSAGE: usize = 10;
/// The interval the figures were given at before the hourly default, for comparison.
const ONE_MINUTE: Duration = Duration::from_secs(60);
/// Application Insights (Analytics Logs, pay as you go) per GB, from the reference anchors.
const PRICE_PER_GB: f64 = 2.30;

pub fn run(args: Vec<String>) {
    let series: Vec<usize> = if args.is_empty() {
        vec![100, 1_000]
    } else {
        args.iter()
            .map(|a| a.parse().expect("SERIES is a number"))
            .collect()
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = std::env::var_os("EVENTIDE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/eventide"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("binary: {}", binary.display());
    println!(
        "{:>6} {:>7} {:>9} {:>8} {:>6} {:>7} {:>9} {:>9} {:>10}  items by type",
        "to", "series", "messages", "seconds", "posts", "items", "wire B", "billed B", "B/1000 msg"
    );
    // Per destination: the most metric bytes one export held, and the bytes per message of
    // everything else (sampled spans, log records), which follow the invocations, not the clock.
    let mut per_export = [0.0_f64; 2];
    let mut per_message = [0.0_f64; 2];
    for &n in &series {
        for (slot, target) in [Target::AppInsights, Target::Otlp].into_iter().enumerate() {
            let measured = runtime.block_on(measure(&binary, n, target));
            println!(
                "{:>6} {n:>7} {:>9} {:>8.1} {:>6} {:>7} {:>9} {:>9} {:>10.0}  {}",
                target.name(),
                measured.messages,
                measured.seconds,
                measured.posts,
                measured.items,
                measured.wire,
                measured.billed,
                measured.billed as f64 / (measured.messages as f64 / 1_000.0),
                measured.by_type
            );
            per_export[slot] = per_export[slot].max(measured.metric_bytes as f64);
            // Spans are sampled (1 in 100): the largest share seen, to err high.
            per_message[slot] =
                per_message[slot].max(measured.other_bytes as f64 / measured.messages as f64);
        }
    }
    let w1_messages = 1_000.0 * (POINTS / POINTS_PER_MESSAGE) as f64;
    // A W1 day at its real-time rate: one export's metrics per interval, plus the spans and
    // records of a day's invocations (the most seen per message, times W1's messages).
    let at_w1_rate = |slot: usize, interval: Duration| {
        let exports = 86_400.0 / interval.as_secs_f64();
        (per_export[slot] * exports + per_message[slot] * w1_messages) / (w1_messages / 1_000.0)
    };
    let eventide_per_1000 = at_w1_rate(0, APP_INSIGHTS_METRIC_INTERVAL);
    println!();
    println!(
        "Eventide to Application Insights, W1 at its real-time rate, default settings (an export \
         every {} s of at most {:.0} B of metric JSON, and {:.2} B of spans and logs per message): \
         {eventide_per_1000:.0} B per 1,000 messages (at an export a minute: {:.0} B)",
        APP_INSIGHTS_METRIC_INTERVAL.as_secs(),
        per_export[0],
        per_message[0],
        at_w1_rate(0, ONE_MINUTE)
    );
    println!(
        "Eventide over OTLP, W1 at its real-time rate, default settings (an export every {} s of \
         at most {:.0} B of metric protobuf, and {:.2} B of spans and logs per message): {:.0} B per \
         1,000 messages (at an export an hour: {:.0} B)",
        OTLP_METRIC_INTERVAL.as_secs(),
        per_export[1],
        per_message[1],
        at_w1_rate(1, OTLP_METRIC_INTERVAL),
        at_w1_rate(1, APP_INSIGHTS_METRIC_INTERVAL)
    );
    let seed = seed_bytes_per_message();
    println!(
        "seed design (request row + 2 host traces per message, JSON as documented): {:.0} B per 1,000 messages",
        seed * 1_000.0
    );
    let host = host_share_per_1000(w1_messages);
    println!(
        "the host's own share under our host.json, W1: {host:.0} B per 1,000 messages (estimate)"
    );
    let per_million_obs = |bytes_per_1000: f64| {
        bytes_per_1000 * (1_000_000.0 / POINTS_PER_MESSAGE as f64 / 1_000.0) / 1e9 * PRICE_PER_GB
    };
    println!(
        "cost per million observations at ${PRICE_PER_GB}/GB: Eventide ${:.6}, host ${:.4}, seed ${:.4}",
        per_million_obs(eventide_per_1000),
        per_million_obs(host),
        per_million_obs(seed * 1_000.0)
    );
}

/// Where a run exports to.
#[derive(Debug, Clone, Copy)]
enum Target {
    AppInsights,
    Otlp,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::AppInsights => "AI",
            Self::Otlp => "OTLP",
        }
    }
}

/// A started stand-in.
enum StandIn {
    AppInsights(FakeAppInsights),
    Otlp(FakeOtlp),
}

/// What one run exported.
struct Measured {
    messages: usize,
    seconds: f64,
    posts: usize,
    items: usize,
    wire: usize,
    /// What the destination stores: the JSON for Application Insights, the protobuf for OTLP.
    billed: usize,
    /// The part of `billed` that is metrics (exported on the interval).
    metric_bytes: usize,
    /// The rest: sampled spans and log records (exported per invocation).
    other_bytes: usize,
    by_type: String,
}

async fn measure(binary: &Path, series: usize, target: Target) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let (fake, mut command) = match target {
        Target::AppInsights => {
            let fake = FakeAppInsights::start().await;
            let command = fake.exporting_command(binary, dir.path(), "telemetry-bytes");
            (StandIn::AppInsights(fake), command)
        }
        Target::Otlp => {
            let fake = FakeOtlp::start().await;
            let command = fake.exporting_command(binary, dir.path(), "telemetry-bytes");
            (StandIn::Otlp(fake), command)
        }
    };
    let port = free_port();
    let mut child = command
        .args(["local", "--port", &port.to_string()])
        .spawn()
        .expect("the eventide binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{base}/api/status"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let day = "2026-01-10";
    let messages = series * POINTS / POINTS_PER_MESSAGE;
    for chunk in 0..POINTS / POINTS_PER_MESSAGE {
        let mut body = String::new();
        for s in 0..series {
            for p in 0..POINTS_PER_MESSAGE {
                let minute = chunk * POINTS_PER_MESSAGE + p;
                body.push_str(&format!(
                    "{{\"series\":\"w1-{s}/value\",\"ts\":\"{day}T{:02}:{:02}:00Z\",\"value\":{minute}}}\n",
                    minute / 60,
                    minute % 60
                ));
            }
        }
        let reply = client
            .post(format!("{base}/api/ingest"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
    }
    wait_for(&client, &base, "messages_processed", messages).await;
    wait_for(&client, &base, "summaries_written", series).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap();
    let mut by_type = std::collections::BTreeMap::<String, usize>::new();
    match fake {
        StandIn::AppInsights(fake) => {
            let types = fake.by_type();
            for (kind, total) in &types {
                by_type.insert(kind.clone(), total.items);
            }
            let (wire, json) = fake.track_bytes();
            let metric_bytes = types.get("MetricData").map_or(0, |t| t.json_bytes);
            Measured {
                messages,
                seconds,
                posts: fake.track_requests().len(),
                items: by_type.values().sum(),
                wire,
                billed: json,
                metric_bytes,
                other_bytes: json.saturating_sub(metric_bytes),
                by_type: format!("{by_type:?}"),
            }
        }
        StandIn::Otlp(fake) => {
            for request in fake.requests() {
                *by_type.entry(request.path).or_default() += 1;
            }
            let items = fake.spans().len() + fake.logs().len() + fake.metric_points_count();
            let metric_bytes: usize = fake
                .requests()
                .iter()
                .filter(|r| r.path == "/v1/metrics")
                .map(|r| r.body.len())
                .sum();
            Measured {
                messages,
                seconds,
                posts: fake.requests().len(),
                items,
                wire: fake.bytes(),
                billed: fake.bytes(),
                metric_bytes,
                other_bytes: fake.bytes() - metric_bytes,
                by_type: format!("{by_type:?}"),
            }
        }
    }
}

/// Waits until `counter` reaches at least `value` (a day that takes more data while it is being
/// summarized is summarized again).
async fn wait_for(client: &reqwest::Client, base: &str, counter: &str, value: usize) {
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{counter} did not reach {value} within 10 minutes"
        );
        let status: Value = client
            .get(format!("{base}/api/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["counters"][counter].as_u64() >= Some(value as u64) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tags the Functions host puts on each item (role, instance, operation, SDK).
fn host_tags() -> Value {
    json!({
        "ai.cloud.role": "eventide-prod-func",
        "ai.cloud.roleInstance": "10-30-2-41-8f3c5a2d1b",
        "ai.operation.id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "ai.operation.parentId": "00f067aa0ba902b7",
        "ai.operation.name": "process",
        "ai.internal.sdkVersion": "azurefunctionscoretools: 4.0.5907",
        "ai.internal.nodeName": "10-30-2-41-8f3c5a2d1b"
    })
}

/// The properties the host logger adds to each of its items.
fn host_properties(category: &str, level: &str) -> Value {
    json!({
        "InvocationId": "6d1d4d5f-2f0e-4b6e-9a8c-0b8f1c2d3e4f",
        "ProcessId": "1234",
        "HostInstanceId": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
        "Category": category,
        "LogLevel": level,
        "OperationName": "process",
        "prop__{OriginalFormat}": "Executed '{functionName}' ({status}, Id={invocationId}, Duration={executionDuration}ms)"
    })
}

/// One envelope as the host sends it.
fn envelope(name: &str, base_type: &str, base_data: Value) -> Value {
    json!({
        "name": name,
        "time": "2026-01-10T09:14:58.6120000Z",
        "iKey": "00000000-0000-0000-0000-000000000000",
        "tags": host_tags(),
        "data": {"baseType": base_type, "baseData": base_data}
    })
}

fn request_row() -> Value {
    let mut properties = host_properties("Host.Results", "Information");
    properties["TriggerReason"] = json!("New ServiceBus message detected on 'observations'.");
    properties["FullName"] = json!("Functions.process");
    envelope(
        "Microsoft.ApplicationInsights.Request",
        "RequestData",
        json!({
            "ver": 2, "id": "00f067aa0ba902b7", "name": "process",
            "duration": "00:00:00.0123450", "success": true, "responseCode": "0",
            "url": "", "properties": properties
        }),
    )
}

fn host_trace(message: &str) -> Value {
    envelope(
        "Microsoft.ApplicationInsights.Message",
        "MessageData",
        json!({
            "ver": 2, "message": message, "severityLevel": 1,
            "properties": host_properties("Function.process", "Information")
        }),
    )
}

fn json_len(value: &Value) -> f64 {
    serde_json::to_string(value).unwrap().len() as f64
}

/// The seed's per-message telemetry: the host's request row and its "Executing" / "Executed"
/// traces for every message (one message per execution), as JSON.
fn seed_bytes_per_message() -> f64 {
    json_len(&request_row())
        + json_len(&host_trace(
            "Executing 'Functions.process' (Reason='New ServiceBus message detected on 'observations'.', Id=6d1d4d5f-2f0e-4b6e-9a8c-0b8f1c2d3e4f)",
        ))
        + json_len(&host_trace(
            "Executed 'Functions.process' (Succeeded, Id=6d1d4d5f-2f0e-4b6e-9a8c-0b8f1c2d3e4f, Duration=12ms)",
        ))
}

/// The host's own items under our host.json for a W1 day of `messages`: `Function` at Warning
/// (no per-execution traces); `Host.Results` keeps a request row per execution (batches of
/// `maxMessageBatchSize` = 100 messages) and the 5-items-per-second sampling never bites at
/// W1's rate; `Host.Aggregator` sends its 7 customMetrics per active function every 30 s
/// (`process` busy all day, `summarize` on its 288 timer ticks).
fn host_share_per_1000(messages: f64) -> f64 {
    let executions = messages / 100.0 + 288.0;
    let aggregate = envelope(
        "Microsoft.ApplicationInsights.Metric",
        "MetricData",
        json!({
            "ver": 2,
            "metrics": [{"name": "process AvgDurationMs", "kind": 0, "value": 12.3, "count": 1}],
            "properties": host_properties("Host.Aggregator", "Information")
        }),
    );
    let aggregate_windows = 2_880.0 + 288.0;
    let bytes =
        executions * json_len(&request_row()) + aggregate_windows * 7.0 * json_len(&aggregate);
    bytes / (messages / 1_000.0)
}
