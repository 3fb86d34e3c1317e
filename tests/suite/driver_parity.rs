//! Both drivers answer the same way, because they share the code that decides: a queue outage
//! is 503 with `Retry-After` for the client of either driver, a failing reconcile never keeps
//! the summaries from being written, and the Functions driver refuses to start on an implicit
//! per-instance SQLite file.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::app::{App, Config, Driver};
use eventide::domain::series_day::{DayState, SeriesDayKey};
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{
    DayPoints, MessageSender, OutgoingMessage, PortError, PortResult, PreparedMerge,
    SeriesDayStore, StateWrite, StoredDay, Versioned, WriteOutcome,
};
use serde_json::{Value, json};

use crate::kit;

/// Settings for a runtime on a fresh file with every port chosen explicitly (the Functions
/// driver refuses implicit ones) and the timer left to the test.
fn explicit_embedded(dir: &std::path::Path) -> Config {
    let mut config = kit::settings(dir);
    eventide_testkit::every_port_embedded(&mut config);
    config
}

/// A STAND-IN for an observations queue that is down: every send fails transiently, as the
/// Service Bus adapter reports a namespace it cannot reach after its retries.
struct QueueDown;

#[async_trait]
impl MessageSender for QueueDown {
    async fn send(&self, _: Vec<OutgoingMessage>) -> PortResult<()> {
        Err(PortError::transient(
            "sending to queue observations at sb://internal-namespace",
            "connection refused (injected outage)",
        ))
    }
}

/// Builds the application, lets the test replace ports, and starts it behind `driver`.
async fn serve(
    driver: Driver,
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut App),
) -> (Server, Arc<ManualClock>) {
    let config = explicit_embedded(dir);
    let clock = Arc::new(ManualClock::new(kit::start()));
    let server = kit::serve_adjusted(&config, driver, clock.clone(), adjust).await;
    (server, clock)
}

const BODY: &str = r#"{"series":"plant-1/temp","ts":"2026-11-19T10:00:00Z","value":1.5}"#;

/// An HTTP-trigger envelope as the host sends it.
fn ingest_envelope(body: &str) -> String {
    json!({
        "Data": { "req": {
            "Url": "https://example.invalid/api/ingest", "Method": "POST", "Query": {},
            "Headers": { "Content-Type": ["application/x-ndjson"] }, "Params": {},
            "Identities": [], "Body": body
        }},
        "Metadata": {}
    })
    .to_string()
}

/// A timer envelope as the host sends it.
fn timer_envelope() -> String {
    json!({
        "Data": { "myTimer": { "Schedule": { "AdjustForDST": true }, "IsPastDue": false } },
        "Metadata": { "sys": { "MethodName": "summarize", "UtcNow": "2026-11-20T12:06:00Z" } }
    })
    .to_string()
}

#[tokio::test]
async fn a_queue_outage_is_503_with_retry_after_under_both_drivers() {
    let client = reqwest::Client::new();

    let dir = tempfile::tempdir().unwrap();
    let (local, _) = serve(Driver::Local, dir.path(), |app| {
        app.pipeline.ports.observations = Arc::new(QueueDown);
    })
    .await;
    let response = client
        .post(format!("http://{}/api/ingest", local.addr))
        .header("content-type", "application/x-ndjson")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body = response.text().await.unwrap();
    assert!(body.contains("temporarily unavailable"), "{body}");
    assert!(
        !body.contains("internal-namespace") && !body.contains("refused"),
        "internals never reach the client: {body}"
    );
    local.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let (host, _) = serve(Driver::Functions, dir.path(), |app| {
        app.pipeline.ports.observations = Arc::new(QueueDown);
    })
    .await;
    let response = client
        .post(format!("http://{}/ingest", host.addr))
        .header("content-type", "application/json")
        .body(ingest_envelope(BODY))
        .send()
        .await
        .unwrap();
    // The invocation itself succeeds: its HTTP output carries the 503 to the caller.
    assert_eq!(response.status().as_u16(), 200);
    let reply: Value = response.json().await.unwrap();
    let res = &reply["Outputs"]["res"];
    assert_eq!(res["statusCode"], 503, "{reply}");
    assert_eq!(res["headers"]["Retry-After"], "5", "{reply}");
    let body = res["body"].as_str().unwrap();
    assert!(body.contains("temporarily unavailable"), "{body}");
    assert!(!body.contains("internal-namespace"), "{body}");
    host.shutdown().await;
}

/// A series-day store whose reconcile query fails (a STAND-IN for a Cosmos DB query that keeps
/// timing out); every other call reaches the real embedded store.
struct ReconcileQueryFails(Arc<dyn SeriesDayStore>);

#[async_trait]
impl SeriesDayStore for ReconcileQueryFails {
    async fn prepare(&self, days: &[DayPoints]) -> PortResult<Vec<PreparedMerge>> {
        self.0.prepare(days).await
    }
    async fn commit(&self, merges: &[PreparedMerge]) -> PortResult<Vec<WriteOutcome>> {
        self.0.commit(merges).await
    }
    async fn read_states(
        &self,
        keys: &[SeriesDayKey],
    ) -> PortResult<Vec<Option<Versioned<DayState>>>> {
        self.0.read_states(keys).await
    }
    async fn write_states(&self, writes: &[StateWrite]) -> PortResult<Vec<WriteOutcome>> {
        self.0.write_states(writes).await
    }
    async fn read_days(&self, keys: &[SeriesDayKey]) -> PortResult<Vec<Option<StoredDay>>> {
        self.0.read_days(keys).await
    }
    async fn pending_due_before(
        &self,
        _: DateTime<Utc>,
        _: usize,
    ) -> PortResult<Vec<SeriesDayKey>> {
        Err(PortError::transient(
            "querying overdue series-days",
            "request timed out (injected)",
        ))
    }
    async fn series_of_day(&self, day: NaiveDate) -> PortResult<Vec<SeriesDayKey>> {
        self.0.series_of_day(day).await
    }
}

/// Ingests a day of three series and waits until the workers merged them.
async fn ingest_and_drain(server: &Server) {
    let body: String = ["a", "b", "c"]
        .iter()
        .map(|s| format!("{{\"series\":\"{s}\",\"ts\":\"2026-11-19T10:00:00Z\",\"value\":2}}\n"))
        .collect();
    let pipeline = &server.app.pipeline;
    let format = eventide::domain::parse::BodyFormat::Ndjson;
    pipeline.ingest(format, body.as_bytes()).await.unwrap();
    for _ in 0..500 {
        if pipeline.metrics.snapshot()["points_merged"] == 3 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the observations were not merged");
}

async fn rows(server: &Server) -> usize {
    let day = NaiveDate::from_ymd_opt(2026, 11, 19);
    server
        .app
        .pipeline
        .ports
        .sink
        .read(None, day)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_failing_reconcile_does_not_stop_summarize_under_both_drivers() {
    let broken = |app: &mut App| {
        let store = app.pipeline.ports.store.clone();
        app.pipeline.ports.store = Arc::new(ReconcileQueryFails(store));
    };

    let dir = tempfile::tempdir().unwrap();
    let (local, clock) = serve(Driver::Local, dir.path(), broken).await;
    ingest_and_drain(&local).await;
    clock.advance(Duration::minutes(6));
    let tick = local.summarize_now().await;
    assert_eq!(tick.error, None);
    assert_eq!(tick.written, 3);
    assert_eq!(rows(&local).await, 3);
    let failures = local.app.pipeline.metrics.snapshot()["transient_failures"];
    assert!(failures >= 1, "the reconcile failure is counted");
    local.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let (host, clock) = serve(Driver::Functions, dir.path(), broken).await;
    ingest_and_drain(&host).await;
    clock.advance(Duration::minutes(6));
    let response = reqwest::Client::new()
        .post(format!("http://{}/summarize", host.addr))
        .header("content-type", "application/json")
        .body(timer_envelope())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "the invocation succeeds");
    assert_eq!(rows(&host).await, 3);
    host.shutdown().await;
}

#[test]
fn serve_with_service_bus_and_no_store_setting_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = eventide_testkit::command(env!("CARGO_BIN_EXE_eventide"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
        .env(
            "EVENTIDE_SERVICEBUS",
            "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0LWtleQ==",
        )
        .env("EVENTIDE_SUMMARY_SINK", "embedded")
        .env("EVENTIDE_QUARANTINE", "embedded")
        .output()
        .unwrap();
    assert!(!output.status.success(), "serve must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("EVENTIDE_SERIES_DAY_STORE is not set"),
        "the message names the setting: {stderr}"
    );
    assert!(stderr.contains("Functions host"), "{stderr}");
    assert!(
        !stderr.contains("c2VjcmV0LWtleQ"),
        "never the key: {stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no SQLite file was created on the instance"
    );
}
