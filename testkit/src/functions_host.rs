//! `FunctionsHost`: a host-like driver — a **stand-in** for the Azure Functions host, for the
//! emulated Azure stack only. It is not the Functions host and proves nothing about it beyond
//! the custom-handler contract it plays (docs/functions.md, the envelopes recorded in
//! `tests/fixtures/functions-host/`):
//!
//! - an HTTP front (`POST /api/ingest`) that turns each request into an HTTP-trigger invocation
//!   envelope (`Data.req` with method, headers as arrays, body as a string), POSTs it to the
//!   handler's `/ingest` and answers with the `res` output binding's status, headers and body;
//!   a failed invocation is answered 500, as the host does. It serves no `/api/status` (a
//!   Function App has none), and it checks no function key.
//! - a Service Bus trigger: `maxConcurrentCalls` loops, each peek-locking up to
//!   `maxMessageBatchSize` messages (both read from the repository's `host.json`), invoking
//!   `/process` with the batch envelope (`Data.messages` a string holding the JSON array of the
//!   bodies, `MessageIdArray`, `EnqueuedTimeUtcArray`, `DeliveryCountArray`, `LockTokenArray` as
//!   strings holding JSON arrays), completing the messages on success and abandoning them on
//!   failure (`autoCompleteMessages: true`);
//! - the timer: [`FunctionsHost::timer_tick`] invokes `/summarize` with the timer envelope.
//!
//! The real host receives over AMQP with prefetch; this one uses Eventide's own REST client,
//! one peek-lock per message, so its Service Bus operation counts are an upper bound of the
//! host's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::SecondsFormat;
use eventide::adapters::servicebus::ServiceBusQueue;
use eventide::pipeline::ports::{MessageReceiver, ReceivedMessage};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The largest HTTP request the Functions host accepts: 100 MB (the HTTP trigger's documented
/// request length limit), not axum's 2 MB default, so W1's requests of every series (about
/// 0.7 MB for 1,000 series, 7 MB for 10,000) reach the handler, which holds its own limit.
pub const HOST_REQUEST_LIMIT: usize = 104_857_600;

/// The Service Bus trigger's settings, as `host.json` sets them for the deployed app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerSettings {
    /// `extensions.serviceBus.maxMessageBatchSize`: messages per `/process` invocation.
    pub max_message_batch_size: usize,
    /// `extensions.serviceBus.maxConcurrentCalls`: invocations in flight at once.
    pub max_concurrent_calls: usize,
}

/// The repository's `host.json`, the file deployed with the app, read at compile time.
const HOST_JSON: &str = include_str!("../../host.json");

impl TriggerSettings {
    /// The values the deployed `host.json` sets.
    pub fn from_host_json() -> Self {
        let host: Value = serde_json::from_str(HOST_JSON).expect("host.json is JSON");
        let service_bus = &host["extensions"]["serviceBus"];
        let read = |name: &str| {
            service_bus[name]
                .as_u64()
                .unwrap_or_else(|| panic!("host.json sets extensions.serviceBus.{name}"))
                as usize
        };
        Self {
            max_message_batch_size: read("maxMessageBatchSize"),
            max_concurrent_calls: read("maxConcurrentCalls"),
        }
    }
}

/// What the stand-in host did.
#[derive(Debug, Default)]
pub struct HostCounters {
    pub ingest_invocations: AtomicU64,
    /// `/ingest` invocations that failed (answered 500 to the caller).
    pub ingest_failures: AtomicU64,
    pub process_invocations: AtomicU64,
    /// `/process` invocations that failed: their messages were abandoned.
    pub process_failures: AtomicU64,
    /// Messages handed to `/process`, redeliveries included.
    pub messages_delivered: AtomicU64,
    pub summarize_invocations: AtomicU64,
    pub summarize_failures: AtomicU64,
}

impl HostCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Front {
    client: reqwest::Client,
    handler: String,
    counters: Arc<HostCounters>,
}

/// The running stand-in host. [`FunctionsHost::stop`] ends its loops and its front.
pub struct FunctionsHost {
    front: SocketAddr,
    client: reqwest::Client,
    handler: String,
    pub counters: Arc<HostCounters>,
    pub trigger: TriggerSettings,
    /// Trigger loops currently inside an invocation (receive through settle).
    busy: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
    loops: Vec<JoinHandle<()>>,
    _stop_front: oneshot::Sender<()>,
}

impl FunctionsHost {
    /// Starts the front on 127.0.0.1 and the trigger loops over `observations`, invoking the
    /// handler at `handler` (`http://127.0.0.1:PORT`).
    pub async fn start(
        handler: String,
        observations: ServiceBusQueue,
        trigger: TriggerSettings,
    ) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let counters = Arc::new(HostCounters::default());
        let front_state = Front {
            client: client.clone(),
            handler: handler.clone(),
            counters: counters.clone(),
        };
        let app = Router::new()
            .route("/api/ingest", post(front_ingest))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(DefaultBodyLimit::max(HOST_REQUEST_LIMIT))
            .with_state(front_state);
        let (front, stop) = crate::serve_on_loopback(app).await;
        let stopping = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicU64::new(0));
        let loops = (0..trigger.max_concurrent_calls.max(1))
            .map(|_| {
                let trigger_loop = TriggerLoop {
                    client: client.clone(),
                    url: format!("{handler}/process"),
                    queue: observations.clone(),
                    batch: trigger.max_message_batch_size.max(1),
                    counters: counters.clone(),
                    busy: busy.clone(),
                    stopping: stopping.clone(),
                };
                tokio::spawn(trigger_loop.run())
            })
            .collect();
        Self {
            front,
            client,
            handler,
            counters,
            trigger,
            busy,
            stopping,
            loops,
            _stop_front: stop,
        }
    }

    /// The base URL loadgen targets (`{base}/api/ingest`).
    pub fn front_url(&self) -> String {
        format!("http://{}", self.front)
    }

    /// Whether some trigger loop is inside an invocation.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }

    /// One timer firing: invokes `/summarize` as the host's timer trigger does; returns
    /// whether the invocation succeeded.
    pub async fn timer_tick(&self) -> bool {
        let envelope = json!({
            "Data": { "myTimer": {
                "Schedule": { "AdjustForDST": true },
                "ScheduleStatus": null,
                "IsPastDue": false
            }},
            "Metadata": { "sys": sys("summarize") }
        });
        self.counters
            .summarize_invocations
            .fetch_add(1, Ordering::Relaxed);
        let ok = invoke(
            &self.client,
            &format!("{}/summarize", self.handler),
            &envelope,
        )
        .await
        .is_ok();
        if !ok {
            self.counters
                .summarize_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Ends the trigger loops (each finishes its invocation first) and the front.
    pub async fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for handle in self.loops {
            let _ = handle.await;
        }
    }
}

/// The `sys` metadata the host adds to every invocation.
fn sys(method: &str) -> Value {
    json!({
        "MethodName": method,
        "UtcNow": chrono::Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "RandGuid": format!("{:032x}", rand::random::<u128>()),
    })
}

/// POSTs an envelope; the parsed reply of a 2xx, or the status of a failed invocation.
async fn invoke(client: &reqwest::Client, url: &str, envelope: &Value) -> Result<Value, String> {
    let response = client
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .body(envelope.to_string())
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{url}: reply is not JSON: {e}"))
}

/// The HTTP trigger: request → envelope → `/ingest` → the `res` binding as the response.
async fn front_ingest(State(front): State<Front>, headers: HeaderMap, body: Bytes) -> Response {
    front
        .counters
        .ingest_invocations
        .fetch_add(1, Ordering::Relaxed);
    let mut request_headers = Map::new();
    for (name, value) in &headers {
        let entry = request_headers
            .entry(name.as_str().to_string())
            .or_insert_with(|| json!([]));
        if let (Some(values), Ok(text)) = (entry.as_array_mut(), value.to_str()) {
            values.push(json!(text));
        }
    }
    let envelope = json!({
        "Data": { "req": {
            "Url": "http://127.0.0.1/api/ingest",
            "Method": "POST",
            "Query": {},
            "Headers": request_headers,
            "Params": {},
            "Identities": [],
            "Body": String::from_utf8_lossy(&body),
        }},
        "Metadata": { "Query": {}, "sys": sys("ingest") }
    });
    match invoke(
        &front.client,
        &format!("{}/ingest", front.handler),
        &envelope,
    )
    .await
    {
        Ok(reply) => http_output(&reply["Outputs"]["res"]),
        Err(e) => {
            front
                .counters
                .ingest_failures
                .fetch_add(1, Ordering::Relaxed);
            (StatusCode::INTERNAL_SERVER_ERROR, e).into_response()
        }
    }
}

/// The `res` output binding (`statusCode`, `headers`, `body`) as an HTTP response.
fn http_output(res: &Value) -> Response {
    let status = res["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match &res["body"] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut response = (status, body).into_response();
    if let Some(headers) = res["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

/// One of the trigger's concurrent receive → invoke → settle loops.
struct TriggerLoop {
    client: reqwest::Client,
    url: String,
    queue: ServiceBusQueue,
    batch: usize,
    counters: Arc<HostCounters>,
    busy: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
}

/// How long an idle trigger loop waits before looking at an empty queue again.
const IDLE_POLL: Duration = Duration::from_millis(20);

impl TriggerLoop {
    async fn run(self) {
        while !self.stopping.load(Ordering::SeqCst) {
            self.busy.fetch_add(1, Ordering::SeqCst);
            let worked = self.once().await;
            self.busy.fetch_sub(1, Ordering::SeqCst);
            if !worked {
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }

    /// One receive, invocation and settlement; `false` when there was nothing to do.
    async fn once(&self) -> bool {
        let received = match self.queue.receive(self.batch).await {
            Ok(received) => received,
            Err(_) => return false,
        };
        if received.is_empty() {
            return false;
        }
        let locks: Vec<String> = received.iter().map(|m| m.lock_token.clone()).collect();
        self.counters
            .process_invocations
            .fetch_add(1, Ordering::Relaxed);
        self.counters
            .messages_delivered
            .fetch_add(received.len() as u64, Ordering::Relaxed);
        match invoke(&self.client, &self.url, &batch_envelope(&received)).await {
            Ok(_) => {
                // A lost lock is redelivered, which processing makes harmless.
                let _ = self.queue.complete(&locks).await;
            }
            Err(_) => {
                self.counters
                    .process_failures
                    .fetch_add(1, Ordering::Relaxed);
                let _ = self.queue.abandon(&locks).await;
            }
        }
        true
    }
}

/// The batch envelope of a `cardinality: many`, `dataType: string` Service Bus trigger.
pub fn batch_envelope(messages: &[ReceivedMessage]) -> Value {
    let column = |f: &dyn Fn(&ReceivedMessage) -> Value| {
        Value::String(Value::Array(messages.iter().map(f).collect()).to_string())
    };
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    json!({
        "Data": { "messages": serde_json::to_string(&bodies).unwrap() },
        "Metadata": {
            "MessageIdArray": column(&|m| json!(m.message_id)),
            "DeliveryCountArray": column(&|m| json!(m.delivery_count)),
            "LockTokenArray": column(&|m| json!(m.lock_token)),
            // Each message's application properties, where its trace context travels.
            "ApplicationPropertiesArray": column(&|m| match &m.trace_context {
                Some(context) => Value::Object(
                    context
                        .as_properties()
                        .into_iter()
                        .map(|(name, value)| (name.to_string(), json!(value)))
                        .collect(),
                ),
                None => json!({}),
            }),
            // The host's form: UTC without a zone.
            "EnqueuedTimeUtcArray": column(&|m| json!(m.enqueued_at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string())),
            "sys": sys("process"),
        }
    })
}
