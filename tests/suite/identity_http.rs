//! Every write keeps its identity, end to end through the HTTP API of the embedded default: a
//! new request whose content equals an earlier one is a new write (A→B→A ends on A), requests
//! stamped in the same millisecond still apply in order, and a request retried under its
//! `Idempotency-Key` is a no-op however late it comes — while the same key with another body is
//! refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::app::{App, Config, Driver};
use eventide::domain::series::SeriesId;
use eventide::domain::series_day::{Point, Revision, SeriesDayKey, stamp_at};
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{MessageSender, OutgoingMessage, PortError, PortResult};
use serde_json::{Value, json};

use crate::kit;

const SERIES: &str = "plant-1/temp";

fn start_time() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

/// The day the observations are for: yesterday, open and already past due, so a summary
/// can run right after the data without moving the clock.
fn day() -> NaiveDate {
    "2026-11-19".parse().unwrap()
}

fn observation(value: f64) -> String {
    json!({"series": SERIES, "ts": "2026-11-19T10:00:00Z", "value": value}).to_string()
}

/// The local runtime on a fresh embedded file, on a manual clock, the timer left to the test.
struct Harness {
    server: Server,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        Self::start_with(|_| {}, |_| {}).await
    }

    /// Lets the test change settings before the build and ports after it.
    async fn start_with(
        configure: impl FnOnce(&mut Config),
        adjust: impl FnOnce(&mut App),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::on_file(dir.path().join("eventide.db"));
        config.runtime.summarize_schedule = Some("0 0 0 1 1 *".into());
        // Summaries of late data are due at once, so the test needs no clock jumps for them.
        config.pipeline.settle = Duration::zero();
        configure(&mut config);
        let clock = Arc::new(ManualClock::new(start_time()));
        let server = kit::serve_adjusted(&config, Driver::Local, clock.clone(), adjust).await;
        Self {
            server,
            clock,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// POSTs an NDJSON body, with an `Idempotency-Key` when given; the status and the reply.
    async fn post(&self, body: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("http://{}/api/ingest", self.server.addr))
            .header("content-type", "application/x-ndjson")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Sends one value and waits until the workers merged it.
    async fn send(&self, value: f64, key: Option<&str>) {
        let (status, reply) = self.post(&observation(value), key).await;
        assert_eq!(status, 200, "{reply}");
        self.drain().await;
    }

    /// Waits until the observations queue is empty (every message processed and completed).
    async fn drain(&self) {
        let queue = &self.server.app.embedded.as_ref().unwrap().observations;
        for _ in 0..500 {
            let depth = queue.depth().await.unwrap();
            if depth.active + depth.deferred == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the observations queue did not drain");
    }

    fn counter(&self, name: &str) -> u64 {
        self.server.app.pipeline.metrics.snapshot()[name]
    }

    /// The stored points of the test day.
    async fn stored(&self) -> Vec<Point> {
        let key = SeriesDayKey::new(SeriesId::parse(SERIES).unwrap(), day());
        let store = &self.server.app.pipeline.ports.store;
        store.read_days(&[key]).await.unwrap()[0]
            .clone()
            .map(|d| d.points)
            .unwrap_or_default()
    }

    /// Runs the end of day and returns the day's row: (sum, revision).
    async fn summarize(&self) -> (f64, Revision) {
        let tick = self.server.summarize_now().await;
        assert_eq!(tick.error, None);
        let rows = self
            .server
            .app
            .pipeline
            .ports
            .sink
            .read(None, Some(day()))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        (rows[0].stats.sum.expect("a finite sum"), rows[0].revision)
    }
}

#[tokio::test]
async fn a_value_sent_again_after_another_one_is_a_new_write() {
    let h = Harness::start().await;
    for value in [1.0, 2.0, 1.0] {
        h.send(value, None).await;
        h.clock.advance(Duration::seconds(1));
    }
    assert_eq!(h.counter("chunks_sent"), 3);
    assert_eq!(h.counter("messages_processed"), 3, "no chunk was dropped");
    let stored = h.stored().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].value, 1.0, "A→B→A ends on A");
    assert_eq!(h.summarize().await.0, 1.0);
    h.server.shutdown().await;
}

#[tokio::test]
async fn corrections_stamped_in_the_same_millisecond_apply_in_order_and_replace_the_row() {
    let h = Harness::start().await;
    // The clock never moves: every request arrives in the same millisecond.
    h.send(2.0, None).await;
    let (sum, first_revision) = h.summarize().await;
    assert_eq!(sum, 2.0);
    h.send(1.0, None).await;
    assert_eq!(h.stored().await[0].value, 1.0, "the later request wins");
    let (sum, revision) = h.summarize().await;
    assert_eq!(sum, 1.0, "the row follows the correction");
    assert!(revision > first_revision);
    h.send(2.0, None).await;
    assert_eq!(h.stored().await[0].value, 2.0);
    assert_eq!(h.summarize().await.0, 2.0);
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_request_retried_under_its_idempotency_key_is_a_no_op_even_after_a_later_write() {
    // Duplicate detection off: the retry must be a no-op by itself, not because the queue
    // happens to still remember the first attempt's MessageIds.
    let h = Harness::start_with(
        |config| config.embedded.dedup_window = Duration::zero(),
        |_| {},
    )
    .await;
    h.send(1.0, Some("req-a")).await;
    h.clock.advance(Duration::seconds(1));
    h.send(2.0, Some("req-b")).await;
    h.clock.advance(Duration::seconds(1));

    let (status, reply) = h.post(&observation(1.0), Some("req-a")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["accepted"], 1,
        "the retry gets the first attempt's answer: {reply}"
    );
    h.drain().await;
    let stored = h.stored().await;
    assert_eq!(
        stored[0].value, 2.0,
        "the retry did not undo the later write"
    );
    assert_eq!(
        stored[0].stamp,
        stamp_at(start_time() + Duration::seconds(1))
    );

    // The same key with another body is refused, and changes nothing.
    let (status, reply) = h.post(&observation(3.0), Some("req-a")).await;
    assert_eq!(status, 422, "{reply}");
    let error = reply["error"].as_str().unwrap();
    assert!(error.contains("Idempotency-Key"), "{error}");
    h.drain().await;
    assert_eq!(h.stored().await[0].value, 2.0);
    h.server.shutdown().await;
}

/// An observations queue that is down for the first send and takes every later one.
struct DownOnce {
    inner: Arc<dyn MessageSender>,
    calls: AtomicUsize,
}

#[async_trait]
impl MessageSender for DownOnce {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> PortResult<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(PortError::transient(
                "sending to queue observations",
                "connection refused (injected)",
            ));
        }
        self.inner.send(messages).await
    }
}

#[tokio::test]
async fn a_retry_after_a_failed_attempt_takes_effect_as_of_the_first_attempt() {
    let h = Harness::start_with(
        |_| {},
        |app| {
            let inner = app.pipeline.ports.observations.clone();
            app.pipeline.ports.observations = Arc::new(DownOnce {
                inner,
                calls: AtomicUsize::new(0),
            });
        },
    )
    .await;
    let (status, reply) = h.post(&observation(1.0), Some("req-a")).await;
    assert_eq!(status, 503, "{reply}");
    h.clock.advance(Duration::seconds(1));
    h.send(2.0, Some("req-b")).await;
    h.clock.advance(Duration::seconds(1));

    // The client retries the failed request: it is the write it always was, older than B.
    let (status, reply) = h.post(&observation(1.0), Some("req-a")).await;
    assert_eq!(status, 200, "{reply}");
    h.drain().await;
    let stored = h.stored().await;
    assert_eq!(stored[0].value, 2.0, "B was sent after A and stays");
    assert_eq!(
        stored[0].stamp,
        stamp_at(start_time() + Duration::seconds(1))
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn idempotency_keys_are_bounded() {
    let h = Harness::start().await;
    for bad in ["", "has space", "ünïcode", &"k".repeat(129)] {
        let (status, reply) = h.post(&observation(1.0), Some(bad)).await;
        assert_eq!(status, 400, "{bad:?}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains("Idempotency-Key"));
    }
    // The structured-field form of the IETF draft, a quoted string, names the same key.
    let (status, _) = h.post(&observation(1.0), Some("\"7e1f-x\"")).await;
    assert_eq!(status, 200);
    let (status, _) = h.post(&observation(1.0), Some("7e1f-x")).await;
    assert_eq!(status, 200);
    let (status, _) = h.post(&observation(5.0), Some("7e1f-x")).await;
    assert_eq!(status, 422);
    h.server.shutdown().await;
}

/// An HTTP-trigger envelope as the Functions host sends it, with the request's headers.
fn ingest_envelope(body: &str, key: &str) -> String {
    json!({
        "Data": { "req": {
            "Url": "https://example.invalid/api/ingest", "Method": "POST", "Query": {},
            "Headers": {
                "Content-Type": ["application/x-ndjson"],
                "idempotency-key": [key]
            },
            "Params": {}, "Identities": [], "Body": body
        }},
        "Metadata": {}
    })
    .to_string()
}

#[tokio::test]
async fn the_functions_driver_reads_the_key_from_the_invocation() {
    use eventide::app::config::{QuarantineTarget, QueueBackend, SinkTarget, StoreBackend};
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::on_file(dir.path().join("eventide.db"));
    let backends = &mut config.backends;
    backends.series_day_store = Some(StoreBackend::Embedded);
    backends.observations_backend = Some(QueueBackend::Embedded);
    backends.summaries_backend = Some(QueueBackend::Embedded);
    backends.summary_sink = Some(SinkTarget::Embedded);
    backends.quarantine = Some(QuarantineTarget::Embedded);
    let clock = Arc::new(ManualClock::new(start_time()));
    let server = Server::launch(&config, Driver::Functions, clock)
        .await
        .unwrap();
    let invoke = |body: String| {
        let url = format!("http://{}/ingest", server.addr);
        async move {
            let reply: Value = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            reply["Outputs"]["res"]["statusCode"].as_u64().unwrap()
        }
    };
    assert_eq!(invoke(ingest_envelope(&observation(1.0), "k-1")).await, 200);
    assert_eq!(invoke(ingest_envelope(&observation(1.0), "k-1")).await, 200);
    assert_eq!(invoke(ingest_envelope(&observation(2.0), "k-1")).await, 422);
    assert_eq!(invoke(ingest_envelope(&observation(2.0), "k 2")).await, 400);
    server.shutdown().await;
}
