//! Trace context from ingest through process to summarize: one observation can be followed
//! across the queues. Checked end to end in embedded mode against the Application Insights
//! STAND-IN (`FakeAppInsights`, see `telemetry_app_insights.rs`), and on the Service Bus wire
//! against `FakeServiceBus`, a loopback fake of the documented REST contract (custom
//! properties as headers on single sends and receives, `UserProperties` in batch sends).

use std::sync::Arc;
use std::time::Duration;

use eventide::adapters::servicebus::{ServiceBusClient, ServiceBusQueue};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::metrics::AdapterCounters as _;
use eventide::pipeline::ports::{MessageReceiver, MessageSender, OutgoingMessage};
use eventide::telemetry::TraceContext;
use eventide_testkit::fake_app_insights::FakeAppInsights;
use eventide_testkit::fake_service_bus::{FakeQueueSettings, FakeServiceBus};
use serde_json::Value;

use crate::telemetry_app_insights::{child_log, start};

/// The caller's trace: ingest's request continues it.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The exported span named `name` (a request or dependency item), if exactly one.
fn span<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|e| e["data"]["baseData"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "spans named {name:?} among {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_observation_is_followed_from_the_callers_trace_to_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeAppInsights::start().await;
    let runtime = start(
        dir.path(),
        &fake,
        &[("OTEL_TRACES_SAMPLER", "parentbased_always_on")],
    )
    .await;
    let body: String = (0..10)
        .map(|minute| {
            format!("{{\"series\":\"traced/temp\",\"ts\":\"2026-01-10T00:{minute:02}:00Z\",\"value\":{minute}}}\n")
        })
        .collect();
    let reply = reqwest::Client::new()
        .post(format!("{}/api/ingest", runtime.base))
        .header("content-type", "application/x-ndjson")
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    runtime.wait_for("summaries_written", 1).await;
    runtime.stop();

    let spans: Vec<Value> = fake
        .envelopes()
        .into_iter()
        .filter(|e| {
            matches!(
                e["data"]["baseType"].as_str(),
                Some("RequestData" | "RemoteDependencyData")
            )
        })
        .collect();
    assert!(
        !spans.is_empty(),
        "no spans; the child said: {}",
        child_log(dir.path())
    );
    let tag = |span: &Value, key: &str| span["tags"][key].as_str().unwrap_or_default().to_string();

    // ingest continues the caller's trace.
    let ingest = span(&spans, "ingest");
    assert_eq!(tag(ingest, "ai.operation.id"), CALLER_TRACE);
    assert_eq!(tag(ingest, "ai.operation.parentId"), CALLER_SPAN);
    let ingest_id = ingest["data"]["baseData"]["id"].as_str().unwrap();

    // process handled that one message: its span is ingest's child, in the same trace.
    let process = span(&spans, "process");
    assert_eq!(
        process["data"]["baseType"], "RequestData",
        "a consumer span"
    );
    assert_eq!(tag(process, "ai.operation.id"), CALLER_TRACE);
    assert_eq!(tag(process, "ai.operation.parentId"), ingest_id);
    let process_id = process["data"]["baseData"]["id"].as_str().unwrap();

    // The summarize batch belongs to its timer tick and links to the process invocation that
    // opened the day's epoch.
    let batch = span(&spans, "summarize batch");
    let links: Value = serde_json::from_str(
        batch["data"]["baseData"]["properties"]["_MS.links"]
            .as_str()
            .unwrap_or("[]"),
    )
    .unwrap();
    assert_eq!(
        links,
        serde_json::json!([{"operation_Id": CALLER_TRACE, "id": process_id}]),
        "{batch}"
    );
    assert_ne!(
        tag(batch, "ai.operation.id"),
        CALLER_TRACE,
        "the tick's own trace"
    );
}

#[tokio::test]
async fn service_bus_messages_carry_their_trace_context_both_ways() {
    let clock = Arc::new(ManualClock::new("2026-11-24T12:00:00Z".parse().unwrap()));
    let fake = FakeServiceBus::start(clock, &[("q", FakeQueueSettings::default())]).await;
    let client = Arc::new(
        ServiceBusClient::from_connection_string(&fake.connection_string(), Default::default())
            .unwrap(),
    );
    let queue = ServiceBusQueue::new(client.clone(), "q").with_receive_wait(Duration::ZERO);
    let context = |i: u64| TraceContext::parse(&format!("00-{i:032x}-{i:016x}-01"));
    let message = |id: &str, trace_context| OutgoingMessage {
        message_id: id.into(),
        session_id: None,
        body: b"{}".to_vec(),
        scheduled_at: None,
        trace_context,
    };
    // A single send (custom properties as headers) and a batch send (`UserProperties`).
    client
        .send("q", &message("single", context(1)))
        .await
        .unwrap();
    queue
        .send(vec![
            message("batched", context(2)),
            message("untraced", None),
        ])
        .await
        .unwrap();
    let mut received: Vec<(String, Option<TraceContext>)> = queue
        .receive(10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.message_id, m.trace_context))
        .collect();
    received.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        received,
        [
            ("batched".to_string(), context(2)),
            ("single".to_string(), context(1)),
            ("untraced".to_string(), None),
        ]
    );
    // The calls, as the pipeline's metrics read them (`servicebus_operations{operation}`).
    let calls: std::collections::BTreeMap<_, _> = client.calls().read().into_iter().collect();
    assert_eq!(calls["servicebus_send"], 1);
    assert_eq!(calls["servicebus_batch_send"], 1);
    assert!(calls["servicebus_peek_lock"] >= 3, "{calls:?}");
    assert_eq!(calls["servicebus_complete"], 0);
}
