//! Telemetry to Application Insights, through the real exporter crate
//! (`opentelemetry-application-insights`) of the real binary, against `FakeAppInsights` — a
//! loopback STAND-IN for the ingestion and Live Metrics endpoints (the connection string's
//! `IngestionEndpoint=` and `LiveEndpoint=` point at it). What it decodes is what the exporter
//! put on the wire. It serves HTTPS with a test certificate the child trusts through
//! `SSL_CERT_FILE`.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use eventide::pipeline::metrics::{BACKLOG_QUEUES, Export, Metrics};
use eventide_testkit::child::free_port;
use eventide_testkit::child::wait_ready;
use eventide_testkit::fake_app_insights::{FakeAppInsights, INSTRUMENTATION_KEY};
use serde_json::Value;

use crate::kit;

/// A Service Bus key in the child's settings that no exported payload may contain.
const SERVICE_BUS_KEY: &str = "c2VjcmV0LXNlcnZpY2UtYnVzLWtleS1odW50ZXIy";

/// The day every workload writes (kept open by the lateness setting below).
const DAY: &str = "2026-01-10";

pub(crate) struct Runtime {
    child: Child,
    pub(crate) base: String,
}

/// Starts `eventide local` exporting to `fake` (see [`FakeAppInsights::local_command`]), with
/// the queues explicitly embedded beside a Service Bus connection string that must never be
/// exported, and the telemetry settings in `telemetry` on top of the defaults.
pub(crate) async fn start(
    dir: &std::path::Path,
    fake: &FakeAppInsights,
    telemetry: &[(&str, &str)],
) -> Runtime {
    let port = free_port();
    let mut child = fake.exporting_command(binary(), dir, &format!("local-{port}"));
    child
        .args(["local", "--port", &port.to_string()])
        .env("EVENTIDE_OBSERVATIONS_BACKEND", "embedded")
        .env("EVENTIDE_SUMMARIES_BACKEND", "embedded")
        .env(
            "EVENTIDE_SERVICEBUS",
            format!("Endpoint=sb://unused.example/;SharedAccessKeyName=k;SharedAccessKey={SERVICE_BUS_KEY}"),
        );
    for (name, value) in telemetry {
        child.env(name, value);
    }
    let child = child.spawn().expect("the eventide binary starts");
    let base = kit::local_base_when_up(port).await;
    Runtime { child, base }
}

impl Runtime {
    /// A runtime started elsewhere (the Functions driver), answering at `base`.
    pub(crate) fn new(child: Child, base: String) -> Self {
        Self { child, base }
    }

    async fn counters(&self) -> Value {
        let status: Value = reqwest::get(format!("{}/api/status", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        status["counters"].clone()
    }

    /// Waits until `counter` reaches `value` (the workers and the timer run in the child).
    pub(crate) async fn wait_for(&self, counter: &str, value: u64) {
        let started = Instant::now();
        loop {
            let counters = self.counters().await;
            if counters[counter].as_u64() == Some(value) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{counter} did not reach {value}: {counters}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit that flushes the exporters.
    pub(crate) fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "did not stop within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What one workload sent and what the runtime counted.
struct Sent {
    accepted: u64,
    rejected: u64,
    /// Queue messages the reply says the accepted points were packed into.
    messages: u64,
    /// Series-days written, each summarized once.
    series_days: u64,
    counters: Value,
}

/// `series` series with 10 points each on [`DAY`] (packed into the queue messages the reply
/// counts), plus one broken line per 10 series, in one NDJSON request; waits until every message is processed
/// and every series-day summarized, then stops the runtime.
async fn workload(runtime: Runtime, series: usize) -> Sent {
    let mut body = String::new();
    for s in 0..series {
        for minute in 0..10 {
            body.push_str(&format!(
                "{{\"series\":\"plant-{s}/temp\",\"ts\":\"{DAY}T00:{minute:02}:00Z\",\"value\":{}}}\n",
                s as f64 + f64::from(minute) / 10.0
            ));
        }
        if s % 10 == 0 {
            body.push_str(&format!(
                "{{\"series\":\"plant-{s}/temp\",\"ts\":\"{DAY}T01:00:00Z\"}}\n"
            ));
        }
    }
    let client = reqwest::Client::new();
    let (status, reply) =
        kit::post_ingest(&client, &runtime.base, "application/x-ndjson", body).await;
    assert_eq!(status, 200, "{reply}");
    let messages = reply["messages"]
        .as_u64()
        .expect("the reply counts messages");
    assert!(messages >= 1, "{reply}");
    let sent = Sent {
        accepted: 10 * series as u64,
        rejected: series.div_ceil(10) as u64,
        messages,
        series_days: series as u64,
        counters: Value::Null,
    };
    runtime.wait_for("messages_processed", sent.messages).await;
    runtime
        .wait_for("summaries_written", sent.series_days)
        .await;
    let counters = runtime.counters().await;
    runtime.stop();
    Sent { counters, ..sent }
}

/// `command` as the Functions host starts the handler (`serve` on a free port), every port
/// chosen embedded, once it answers.
pub(crate) fn start_embedded_handler(mut command: Command) -> Runtime {
    let port = free_port();
    command
        .arg("serve")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string());
    for name in [
        "EVENTIDE_SERIES_DAY_STORE",
        "EVENTIDE_OBSERVATIONS_BACKEND",
        "EVENTIDE_SUMMARIES_BACKEND",
        "EVENTIDE_SUMMARY_SINK",
        "EVENTIDE_QUARANTINE",
    ] {
        command.env(name, "embedded");
    }
    let child = command.spawn().expect("the eventide binary starts");
    wait_ready(port, Instant::now());
    Runtime::new(child, format!("http://127.0.0.1:{port}"))
}

pub(crate) fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_eventide"))
}

/// What the children wrote to standard error.
pub(crate) fn child_log(dir: &std::path::Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "log"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect()
}

/// Items other than sampled spans (requests and dependencies), which are 1 in 100 invocations
/// at the default ratio: metrics and log records.
fn unsampled_items(fake: &FakeAppInsights) -> usize {
    fake.envelopes()
        .iter()
        .filter(|e| {
            !matches!(
                e["data"]["baseType"].as_str(),
                Some("RequestData" | "RemoteDependencyData")
            )
        })
        .count()
}

/// The resource attributes the exporter copies onto metric items: constants of the process.
const RESOURCE_KEYS: [&str; 2] = ["service.name", "service.version"];

/// Every exported metric's attributes are keys and values `pipeline::metrics` names as
/// literals — never a series, message id or day — and the breakdowns and histograms add up.
fn assert_bounded_dimensions(fake: &FakeAppInsights, sent: &Sent) {
    let allowed: BTreeSet<(&str, &str)> = Metrics::counters()
        .filter_map(|counter| match counter.export {
            Export::Grouped { key, value, .. } => Some((key, value)),
            _ => None,
        })
        .chain(BACKLOG_QUEUES.map(|queue| ("queue", queue)))
        .collect();
    assert!(allowed.len() <= 32, "a small fixed set: {allowed:?}");
    let mut seen = BTreeSet::new();
    for envelope in fake.envelopes() {
        if envelope["data"]["baseType"] != "MetricData" {
            continue;
        }
        let properties = envelope["data"]["baseData"]["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (key, value) in properties {
            let value = value.as_str().unwrap_or_default().to_string();
            // The resource's attributes (process constants) ride on every item.
            if RESOURCE_KEYS.contains(&key.as_str()) {
                continue;
            }
            assert!(
                allowed.contains(&(key.as_str(), value.as_str())),
                "exported attribute {key}={value} is not one of {allowed:?}"
            );
            seen.insert((key, value));
        }
    }
    // The broken lines lack a value: all rejections are of that class.
    assert!(
        seen.contains(&("class".to_string(), "value".to_string())),
        "{seen:?}"
    );
    assert_eq!(
        fake.metric_total("eventide.observations_rejected"),
        sent.rejected as f64
    );
    // One lag per message; one sink write at least.
    assert_eq!(
        fake.metric_count("eventide.ingest_to_merged_seconds"),
        sent.messages as f64
    );
    assert!(fake.metric_count("eventide.sink_write_seconds") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_counters_equal_the_workload_and_their_items_are_flat_with_volume() {
    let dir = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for series in [20, 400] {
        let fake = FakeAppInsights::start().await;
        let runtime = start(dir.path(), &fake, &[]).await;
        let sent = workload(runtime, series).await;
        for (metric, counter, expected) in [
            (
                "eventide.observations_accepted",
                "observations_accepted",
                sent.accepted,
            ),
            (
                "eventide.observations_rejected",
                "observations_rejected",
                sent.rejected,
            ),
            (
                "eventide.messages_processed",
                "messages_processed",
                sent.messages,
            ),
            (
                "eventide.summaries_scheduled",
                "summaries_scheduled",
                sent.series_days,
            ),
            (
                "eventide.summaries_written",
                "summaries_written",
                sent.series_days,
            ),
        ] {
            assert_eq!(
                fake.metric_total(metric),
                expected as f64,
                "{metric} for {series} series; received {} ingestion requests, {} envelopes; the child said: {}",
                fake.track_requests().len(),
                fake.envelopes().len(),
                child_log(dir.path())
            );
            assert_eq!(
                sent.counters[counter].as_u64(),
                Some(expected),
                "{counter} at /api/status"
            );
        }
        assert_bounded_dimensions(&fake, &sent);
        items.push((series, unsampled_items(&fake), fake.track_bytes()));
    }
    let (small, large) = (&items[0], &items[1]);
    assert!(small.1 > 0, "nothing exported: {items:?}");
    assert!(
        large.1 <= small.1,
        "20× the messages exported more items: {items:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_post_while_watched_and_no_payload_holds_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeAppInsights::start().await;
    let runtime = start(dir.path(), &fake, &[("OTEL_TRACES_SAMPLER", "always_on")]).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    // The exporter pings every 5 s; once the stand-in answers "subscribed", it posts every
    // second. Keep requests coming meanwhile.
    while !fake.live_requests().iter().any(|r| r.uri.contains("/post")) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no Live Metrics post within 20 s"
        );
        let body = format!("{{\"series\":\"live/temp\",\"ts\":\"{DAY}T00:00:00Z\",\"value\":1}}\n");
        let (status, reply) =
            kit::post_ingest(&client, &runtime.base, "application/x-ndjson", body).await;
        assert_eq!(status, 200, "{reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    runtime.stop();
    let live = fake.live_requests();
    assert!(live.iter().any(|r| r.uri.contains("/ping")), "no ping");
    // Sampled at 100% here: the ingest requests arrive as RequestData.
    assert!(
        fake.envelopes()
            .iter()
            .any(|e| e["data"]["baseType"] == "RequestData"
                && e["data"]["baseData"]["name"] == "ingest"),
        "no ingest request item"
    );
    let connection_string = fake.connection_string(INSTRUMENTATION_KEY);
    for request in fake.track_requests().iter().chain(&live) {
        let everything = format!("{}\n{}\n{}", request.uri, request.headers, request.body);
        for secret in [
            SERVICE_BUS_KEY,
            connection_string.as_str(),
            "SharedAccessKey",
            "IngestionEndpoint",
        ] {
            assert!(
                !everything.contains(secret),
                "{secret} in a payload to {}",
                request.uri
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_invocation_is_exported_as_an_error_with_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeAppInsights::start().await;
    // The Functions driver, as the host starts it, with every port embedded.
    let runtime = start_embedded_handler(fake.exporting_command(binary(), dir.path(), "handler"));
    // The injected failure: a process invocation whose envelope is not JSON.
    let reply = reqwest::Client::new()
        .post(format!("{}/process", runtime.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    runtime.stop();
    let errors: Vec<Value> = fake
        .envelopes()
        .into_iter()
        .filter(|e| e["data"]["baseData"]["severityLevel"].as_i64() >= Some(3))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "{:?}; the child said: {}",
        fake.envelopes(),
        child_log(dir.path())
    );
    let error = &errors[0]["data"]["baseData"];
    assert_eq!(error["message"], "invocation failed", "{error}");
    let context = error["properties"]["error"].as_str().unwrap_or_default();
    assert!(
        context.starts_with("process: invocation envelope is not JSON"),
        "the error names its function and reason: {error}"
    );
}
