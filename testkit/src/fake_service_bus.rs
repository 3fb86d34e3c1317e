//! `FakeServiceBus`: a loopback HTTP **fake** of the documented Service Bus REST semantics, for
//! tests and reports only. It is not Service Bus and proves nothing about the real service
//! beyond the documented contract it models:
//!
//! - send (`POST /{queue}/messages`, raw body + `BrokerProperties` header) and batch send
//!   (`application/vnd.microsoft.servicebus.json`);
//! - MessageId duplicate detection over a window fixed from the first accepted copy (not
//!   sliding), scheduled messages included; a duplicate is answered 201 and dropped;
//! - `ScheduledEnqueueTimeUtc` in the RFC 1123 GMT form (anything else is a 400);
//! - peek-lock (`POST /{queue}/messages/head?timeout=N`: 201 + `BrokerProperties` + `Location`,
//!   or 204 after the wait), lock expiry, delivery count; a message delivered `maxDeliveryCount`
//!   times moves to the dead-letter queue with the custom properties `DeadLetterReason:
//!   "MaxDeliveryCountExceeded"` and `DeadLetterErrorDescription` (the reason and description
//!   the Service Bus dead-letter queue documentation lists; custom properties travel as one HTTP
//!   header each, a string value in double quotes, per "Message headers and properties");
//! - the dead-letter sub-queue `/{queue}/$DeadLetterQueue`: peek-lock, complete, unlock and
//!   renew as on the queue, no maximum delivery count and no dead-lettering out of it (the
//!   documentation says a dead-letter queue cannot dead-letter); [`FakeServiceBus::dead_letter`]
//!   models a client that dead-letters a message explicitly with its own reason (AMQP can, REST
//!   cannot);
//! - custom properties: on a single send every request header that is not a standard HTTP
//!   or Service Bus header, on a batch send each entry's `UserProperties` object; kept with the
//!   message and returned on peek-lock as one header each (a string in double quotes), as
//!   "Message headers and properties" documents;
//! - complete (`DELETE` lock URI), unlock (`PUT`), renew (`POST`); 404 for a lost lock;
//! - 64-bit sequence numbers (they start above `i32::MAX`, as on partitioned entities);
//! - SAS (`SharedAccessSignature sr&sig&se&skn`, checked against the key) or a configured
//!   `Bearer` token; 401 otherwise.
//!
//! Queue time (visibility, locks, duplicate window) comes from an injected clock so tests can
//! cross a day; SAS expiry is checked against the wall clock. Faults (status codes, the
//! throttling sub-code 50009) and a per-request latency can be injected.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use eventide::pipeline::ports::Clock;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, oneshot};

/// The first sequence number: above `i32::MAX`, with a partition id in the top bits.
pub const FIRST_SEQUENCE: i64 = (3_i64 << 48) + 1;

/// How one fake queue behaves.
#[derive(Debug, Clone)]
pub struct FakeQueueSettings {
    /// Duplicate-detection window; zero turns duplicate detection off.
    pub dedup_window: Duration,
    pub lock_duration: Duration,
    pub max_delivery_count: u32,
}

impl Default for FakeQueueSettings {
    fn default() -> Self {
        Self {
            dedup_window: Duration::days(2),
            lock_duration: Duration::minutes(1),
            max_delivery_count: 10,
        }
    }
}

/// What one queue saw, for assertions and the operations report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// HTTP send requests (single or batch).
    pub send_requests: u64,
    /// Messages in those requests, duplicates included.
    pub messages_sent: u64,
    /// Of those, messages with a `ScheduledEnqueueTimeUtc`.
    pub messages_scheduled: u64,
    /// Messages dropped by duplicate detection.
    pub duplicates_dropped: u64,
    /// Messages stored (sent minus dropped).
    pub enqueued: u64,
    /// Peek-locks that returned a message.
    pub received: u64,
    /// Peek-locks that found nothing (204).
    pub empty_receives: u64,
    pub completed: u64,
    pub abandoned: u64,
    pub renewed: u64,
    /// Settle calls for a lock that had expired or was unknown (404).
    pub lock_lost: u64,
    pub dead_lettered: u64,
    /// Peek-locks on the dead-letter queue that returned a message.
    pub dead_letter_received: u64,
    /// Dead-lettered messages completed (removed from the dead-letter queue).
    pub dead_letter_completed: u64,
    /// Dead-lettered messages unlocked.
    pub dead_letter_abandoned: u64,
}

#[derive(Debug, Clone)]
struct Message {
    seq: i64,
    message_id: String,
    session_id: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
    enqueued_at: DateTime<Utc>,
    visible_at: DateTime<Utc>,
    delivery_count: u32,
    lock: Option<(String, DateTime<Utc>)>,
    /// Set when the message was dead-lettered.
    dead_letter: Option<DeadLetterCause>,
    /// Custom properties, name and header value (a string value in double quotes).
    custom: Vec<(String, String)>,
}

/// Why a message was dead-lettered: its `DeadLetterReason` and `DeadLetterErrorDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterCause {
    pub reason: String,
    pub description: String,
}

impl DeadLetterCause {
    /// What the broker sets when a message was delivered too often (the documented reason and
    /// description).
    pub fn max_delivery_count_exceeded() -> Self {
        Self {
            reason: "MaxDeliveryCountExceeded".into(),
            description: "Message couldn't be consumed after maximum delivery attempts.".into(),
        }
    }
}

/// A message in a dead-letter queue, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLettered {
    pub message_id: String,
    pub sequence_number: i64,
    pub delivery_count: u32,
    pub cause: DeadLetterCause,
    pub body: Vec<u8>,
}

/// The queue itself, or its dead-letter sub-queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubQueue {
    Active,
    DeadLetter,
}

/// The path segment that names a queue's dead-letter sub-queue.
const DEAD_LETTER_SEGMENT: &str = "$DeadLetterQueue";

struct Queue {
    settings: FakeQueueSettings,
    messages: BTreeMap<i64, Message>,
    /// MessageId → when its window started (the first accepted copy).
    seen: HashMap<String, DateTime<Utc>>,
    /// The dead-letter sub-queue, by sequence number.
    dead_letter: BTreeMap<i64, Message>,
    stats: QueueStats,
}

impl Queue {
    fn messages(&mut self, sub: SubQueue) -> &mut BTreeMap<i64, Message> {
        match sub {
            SubQueue::Active => &mut self.messages,
            SubQueue::DeadLetter => &mut self.dead_letter,
        }
    }

    /// Moves a stored message to the dead-letter queue with `cause`.
    fn move_to_dead_letter(&mut self, seq: i64, cause: DeadLetterCause) {
        if let Some(mut message) = self.messages.remove(&seq) {
            message.lock = None;
            message.dead_letter = Some(cause);
            self.dead_letter.insert(seq, message);
            self.stats.dead_lettered += 1;
        }
    }
}

/// A response to inject instead of handling a request.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    key_name: String,
    key: String,
    bearer: Option<String>,
    latency: StdDuration,
    next_seq: i64,
    queues: HashMap<String, Queue>,
    faults: VecDeque<Fault>,
    requests: u64,
    unauthorized: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    arrivals: Notify,
}

/// The running fake. Dropping it stops the server.
pub struct FakeServiceBus {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

/// The SAS key name and key the fake accepts by default.
pub const KEY_NAME: &str = "RootManageSharedAccessKey";
pub const KEY: &str = "ZmFrZS1zZXJ2aWNlLWJ1cy1rZXktZm9yLXRlc3RzLW9ubHk=";

impl FakeServiceBus {
    /// Starts the fake on 127.0.0.1 with the given queues.
    pub async fn start(clock: Arc<dyn Clock>, queues: &[(&str, FakeQueueSettings)]) -> Self {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                clock,
                key_name: KEY_NAME.into(),
                key: KEY.into(),
                bearer: None,
                latency: StdDuration::ZERO,
                next_seq: FIRST_SEQUENCE,
                queues: queues
                    .iter()
                    .map(|(name, settings)| {
                        (
                            name.to_string(),
                            Queue {
                                settings: settings.clone(),
                                messages: BTreeMap::new(),
                                seen: HashMap::new(),
                                dead_letter: BTreeMap::new(),
                                stats: QueueStats::default(),
                            },
                        )
                    })
                    .collect(),
                faults: VecDeque::new(),
                requests: 0,
                unauthorized: 0,
            }),
            arrivals: Notify::new(),
        });
        let app = Router::new()
            .route("/{queue}/messages", post(send))
            .route("/{queue}/messages/head", post(peek_lock))
            .route(
                "/{queue}/messages/{seq}/{lock}",
                post(settle).put(settle).delete(settle),
            )
            .route(
                &format!("/{{queue}}/{DEAD_LETTER_SEGMENT}/messages/head"),
                post(peek_lock_dead_letter),
            )
            .route(
                &format!("/{{queue}}/{DEAD_LETTER_SEGMENT}/messages/{{seq}}/{{lock}}"),
                post(settle_dead_letter)
                    .put(settle_dead_letter)
                    .delete(settle_dead_letter),
            )
            .with_state(shared.clone());
        let (addr, stop) = crate::serve_on_loopback(app).await;
        Self {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connection string with the fake's SAS key.
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint={}/;SharedAccessKeyName={KEY_NAME};SharedAccessKey={KEY}",
            self.endpoint()
        )
    }

    /// Also accept `Authorization: Bearer {token}`.
    pub fn accept_bearer(&self, token: &str) {
        self.lock().bearer = Some(token.to_string());
    }

    /// Sleep this long in every request (models a network round trip).
    pub fn set_latency(&self, latency: StdDuration) {
        self.lock().latency = latency;
    }

    /// Answer the next requests with these responses instead.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    pub fn stats(&self, queue: &str) -> QueueStats {
        self.lock().queues[queue].stats.clone()
    }

    /// HTTP requests handled (faults and 401s included).
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    pub fn unauthorized(&self) -> u64 {
        self.lock().unauthorized
    }

    /// Messages in the queue (scheduled and locked included).
    pub fn len(&self, queue: &str) -> usize {
        self.lock().queues[queue].messages.len()
    }

    /// MessageIds in the queue's dead-letter queue, in its order.
    pub fn dead_letters(&self, queue: &str) -> Vec<String> {
        self.lock().queues[queue]
            .dead_letter
            .values()
            .map(|m| m.message_id.clone())
            .collect()
    }

    /// The messages in the queue's dead-letter queue, in its order.
    pub fn dead_lettered(&self, queue: &str) -> Vec<DeadLettered> {
        self.lock().queues[queue]
            .dead_letter
            .values()
            .map(|m| DeadLettered {
                message_id: m.message_id.clone(),
                sequence_number: m.seq,
                delivery_count: m.delivery_count,
                cause: m.dead_letter.clone().expect("dead-lettered with a cause"),
                body: m.body.clone(),
            })
            .collect()
    }

    /// Dead-letters a stored message by MessageId with a reason of the caller's, as a client
    /// that dead-letters explicitly (over AMQP) would. Returns whether one was found.
    pub fn dead_letter(&self, queue: &str, message_id: &str, cause: DeadLetterCause) -> bool {
        let mut inner = self.lock();
        let q = inner.queues.get_mut(queue).unwrap();
        let seq = q
            .messages
            .values()
            .find(|m| m.message_id == message_id)
            .map(|m| m.seq);
        if let Some(seq) = seq {
            q.move_to_dead_letter(seq, cause);
        }
        seq.is_some()
    }

    /// Removes a stored message by MessageId, as an expired TTL, a purge or an operator would:
    /// the test's way to lose a message on purpose. Returns whether one was removed.
    pub fn lose(&self, queue: &str, message_id: &str) -> bool {
        let mut inner = self.lock();
        let q = inner.queues.get_mut(queue).unwrap();
        let seq = q
            .messages
            .values()
            .find(|m| m.message_id == message_id)
            .map(|m| m.seq);
        seq.and_then(|s| q.messages.remove(&s)).is_some()
    }

    /// MessageIds currently stored, with how many copies each.
    pub fn stored_ids(&self, queue: &str) -> HashMap<String, usize> {
        let mut ids = HashMap::new();
        for m in self.lock().queues[queue].messages.values() {
            *ids.entry(m.message_id.clone()).or_insert(0) += 1;
        }
        ids
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }
}

fn error(status: StatusCode, detail: &str) -> Response {
    (
        status,
        format!(
            "<Error><Code>{}</Code><Detail>{detail}</Detail></Error>",
            status.as_u16()
        ),
    )
        .into_response()
}

/// Common entry: latency, injected faults, authorization. `None` means go ahead.
async fn admit(shared: &Shared, headers: &HeaderMap, uri: &Uri, queue: &str) -> Option<Response> {
    let latency = shared.inner.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut inner = shared.inner.lock().unwrap();
    inner.requests += 1;
    if let Some(fault) = inner.faults.pop_front() {
        let mut response = error(StatusCode::from_u16(fault.status).unwrap(), &fault.body);
        if let Some(secs) = fault.retry_after {
            response.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&secs.to_string()).unwrap(),
            );
        }
        return Some(response);
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let resource = format!("http://{host}{}", uri.path());
    if !authorized(&inner, headers, &resource) {
        inner.unauthorized += 1;
        return Some(error(StatusCode::UNAUTHORIZED, "invalid authorization"));
    }
    if !inner.queues.contains_key(queue) {
        return Some(error(StatusCode::NOT_FOUND, "no such entity"));
    }
    None
}

/// Checks a SAS the way the documentation describes it, or the configured bearer token.
fn authorized(inner: &Inner, headers: &HeaderMap, resource: &str) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if let Some(token) = value.strip_prefix("Bearer ") {
        return inner.bearer.as_deref() == Some(token);
    }
    let Some(params) = value.strip_prefix("SharedAccessSignature ") else {
        return false;
    };
    let fields: HashMap<&str, &str> = params
        .split('&')
        .filter_map(|p| p.split_once('='))
        .collect();
    let (Some(sr), Some(sig), Some(se), Some(skn)) = (
        fields.get("sr"),
        fields.get("sig"),
        fields.get("se"),
        fields.get("skn"),
    ) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if *skn != inner.key_name || se.parse::<u64>().map_or(true, |se| se <= now) {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(inner.key.as_bytes()).unwrap();
    mac.update(format!("{sr}\n{se}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let given = percent_encoding::percent_decode_str(sig).decode_utf8_lossy();
    let scope = percent_encoding::percent_decode_str(sr).decode_utf8_lossy();
    given == expected && resource.to_lowercase().starts_with(&scope.to_lowercase())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendProps {
    message_id: Option<String>,
    session_id: Option<String>,
    scheduled_enqueue_time_utc: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchItem {
    body: String,
    #[serde(default)]
    broker_properties: Option<SendProps>,
    #[serde(default)]
    user_properties: BTreeMap<String, Value>,
}

/// One message of a send request, as sent.
struct Sent {
    props: SendProps,
    body: Vec<u8>,
    /// Custom properties, name and header value.
    custom: Vec<(String, String)>,
}

/// Request headers that are not custom properties: HTTP's own and the REST API's.
const NOT_CUSTOM: &[&str] = &[
    "authorization",
    "brokerproperties",
    "content-type",
    "content-length",
    "content-encoding",
    "host",
    "accept",
    "accept-encoding",
    "user-agent",
    "connection",
    "transfer-encoding",
    "expect",
];

/// The custom properties of a single send: its non-standard headers, as sent.
fn custom_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            !NOT_CUSTOM.contains(&name.as_str()) && !name.as_str().starts_with("x-ms-")
        })
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect()
}

/// The custom properties of a batch entry, as headers would carry them.
fn custom_values(properties: BTreeMap<String, Value>) -> Vec<(String, String)> {
    properties
        .into_iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => format!("\"{text}\""),
                other => other.to_string(),
            };
            (name, text)
        })
        .collect()
}

fn parse_gmt(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%a, %d %b %Y %H:%M:%S GMT")
        .ok()
        .map(|n| n.and_utc())
}

async fn send(
    State(shared): State<Arc<Shared>>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(denied) = admit(&shared, &headers, &uri, &queue).await {
        return denied;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let items: Vec<Sent> =
        if content_type.as_deref() == Some("application/vnd.microsoft.servicebus.json") {
            match serde_json::from_slice::<Vec<BatchItem>>(&body) {
                Ok(items) => items
                    .into_iter()
                    .map(|i| {
                        let props = i.broker_properties.unwrap_or(SendProps {
                            message_id: None,
                            session_id: None,
                            scheduled_enqueue_time_utc: None,
                        });
                        Sent {
                            props,
                            body: i.body.into_bytes(),
                            custom: custom_values(i.user_properties),
                        }
                    })
                    .collect(),
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad batch: {e}")),
            }
        } else {
            let props = match headers.get("brokerproperties") {
                Some(v) => match serde_json::from_slice::<SendProps>(v.as_bytes()) {
                    Ok(p) => p,
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("bad BrokerProperties: {e}"),
                        );
                    }
                },
                None => SendProps {
                    message_id: None,
                    session_id: None,
                    scheduled_enqueue_time_utc: None,
                },
            };
            vec![Sent {
                props,
                body: body.to_vec(),
                custom: custom_headers(&headers),
            }]
        };
    let mut inner = shared.inner.lock().unwrap();
    let now = inner.clock.now();
    // Validate everything first: a bad request stores nothing.
    let mut parsed = Vec::with_capacity(items.len());
    for Sent {
        props,
        body,
        custom,
    } in items
    {
        let visible_at = match props.scheduled_enqueue_time_utc.as_deref() {
            None => now,
            Some(text) => match parse_gmt(text) {
                Some(at) => at.max(now),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("ScheduledEnqueueTimeUtc {text:?} is not an RFC 1123 GMT date"),
                    );
                }
            },
        };
        parsed.push((props, body, visible_at, custom));
    }
    let mut seq = inner.next_seq;
    let q = inner.queues.get_mut(&queue).unwrap();
    q.stats.send_requests += 1;
    for (props, body, visible_at, custom) in parsed {
        q.stats.messages_sent += 1;
        if props.scheduled_enqueue_time_utc.is_some() {
            q.stats.messages_scheduled += 1;
        }
        let message_id = props
            .message_id
            .unwrap_or_else(|| format!("{:032x}", rand::rng().random::<u128>()));
        if q.settings.dedup_window > Duration::zero() {
            match q.seen.get(&message_id) {
                Some(first) if now < *first + q.settings.dedup_window => {
                    q.stats.duplicates_dropped += 1;
                    continue;
                }
                _ => {
                    q.seen.insert(message_id.clone(), now);
                }
            }
        }
        q.messages.insert(
            seq,
            Message {
                seq,
                message_id,
                session_id: props.session_id,
                content_type: content_type.clone(),
                body,
                enqueued_at: now,
                visible_at,
                delivery_count: 0,
                lock: None,
                dead_letter: None,
                custom,
            },
        );
        q.stats.enqueued += 1;
        seq += 1;
    }
    inner.next_seq = seq;
    drop(inner);
    shared.arrivals.notify_waiters();
    StatusCode::CREATED.into_response()
}

#[derive(Debug, Deserialize)]
struct PeekQuery {
    timeout: Option<u64>,
}

async fn peek_lock(
    State(shared): State<Arc<Shared>>,
    Path(queue): Path<String>,
    Query(query): Query<PeekQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    peek_lock_in(shared, queue, SubQueue::Active, query, headers, uri).await
}

async fn peek_lock_dead_letter(
    State(shared): State<Arc<Shared>>,
    Path(queue): Path<String>,
    Query(query): Query<PeekQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    peek_lock_in(shared, queue, SubQueue::DeadLetter, query, headers, uri).await
}

async fn peek_lock_in(
    shared: Arc<Shared>,
    queue: String,
    sub: SubQueue,
    query: PeekQuery,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(denied) = admit(&shared, &headers, &uri, &queue).await {
        return denied;
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // The documented default wait is 60 s; the fake caps it so a forgotten wait cannot hang a test.
    let wait = StdDuration::from_secs(query.timeout.unwrap_or(60).min(60));
    let deadline = Instant::now() + wait;
    loop {
        let arrived = shared.arrivals.notified();
        if let Some(response) = try_lock(&shared, &queue, sub, &host) {
            return response;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            shared
                .inner
                .lock()
                .unwrap()
                .queues
                .get_mut(&queue)
                .unwrap()
                .stats
                .empty_receives += 1;
            return StatusCode::NO_CONTENT.into_response();
        }
        // Scheduled messages and expiring locks become visible with time, so poll as well.
        let _ = tokio::time::timeout(left.min(StdDuration::from_millis(20)), arrived).await;
    }
}

fn try_lock(shared: &Shared, queue: &str, sub: SubQueue, host: &str) -> Option<Response> {
    let mut inner = shared.inner.lock().unwrap();
    let now = inner.clock.now();
    let q = inner.queues.get_mut(queue).unwrap();
    let lock_duration = q.settings.lock_duration;
    let max = q.settings.max_delivery_count;
    loop {
        let seq = q
            .messages(sub)
            .values()
            .find(|m| m.visible_at <= now && m.lock.as_ref().is_none_or(|(_, until)| *until <= now))
            .map(|m| m.seq)?;
        let message = q.messages(sub).get_mut(&seq).unwrap();
        message.lock = None;
        // A dead-letter queue has no maximum delivery count: it cannot dead-letter.
        if sub == SubQueue::Active && message.delivery_count >= max {
            q.move_to_dead_letter(seq, DeadLetterCause::max_delivery_count_exceeded());
            continue;
        }
        let message = q.messages(sub).get_mut(&seq).unwrap();
        let token = uuid_like();
        let until = now + lock_duration;
        message.delivery_count += 1;
        message.lock = Some((token.clone(), until));
        let properties = json!({
            "DeliveryCount": message.delivery_count,
            "EnqueuedSequenceNumber": 0,
            "EnqueuedTimeUtc": gmt(message.enqueued_at),
            "LockToken": token,
            "LockedUntilUtc": gmt(until),
            "MessageId": message.message_id,
            "SequenceNumber": message.seq,
            "SessionId": message.session_id,
            "State": "Active",
            "TimeToLive": 922337203685.4775_f64,
        });
        let mut response = (StatusCode::CREATED, message.body.clone()).into_response();
        let h = response.headers_mut();
        h.insert(
            "brokerproperties",
            HeaderValue::from_str(&ascii_json(&properties.to_string())).unwrap(),
        );
        let entity = match sub {
            SubQueue::Active => queue.to_string(),
            SubQueue::DeadLetter => format!("{queue}/{DEAD_LETTER_SEGMENT}"),
        };
        h.insert(
            "location",
            HeaderValue::from_str(&format!("http://{host}/{entity}/messages/{seq}/{token}"))
                .unwrap(),
        );
        if let Some(ct) = &message.content_type {
            h.insert("content-type", HeaderValue::from_str(ct).unwrap());
        }
        // Custom properties: one header each, string values in double quotes.
        for (name, value) in &message.custom {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                h.insert(name, value);
            }
        }
        if let Some(cause) = &message.dead_letter {
            for (name, value) in [
                ("DeadLetterReason", &cause.reason),
                ("DeadLetterErrorDescription", &cause.description),
            ] {
                h.insert(
                    name,
                    HeaderValue::from_str(&format!("\"{value}\"")).unwrap(),
                );
            }
        }
        match sub {
            SubQueue::Active => q.stats.received += 1,
            SubQueue::DeadLetter => q.stats.dead_letter_received += 1,
        }
        return Some(response);
    }
}

async fn settle(
    State(shared): State<Arc<Shared>>,
    Path((queue, seq, lock)): Path<(String, i64, String)>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    settle_in(
        shared,
        (queue, seq, lock),
        SubQueue::Active,
        method,
        headers,
        uri,
    )
    .await
}

async fn settle_dead_letter(
    State(shared): State<Arc<Shared>>,
    Path((queue, seq, lock)): Path<(String, i64, String)>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    settle_in(
        shared,
        (queue, seq, lock),
        SubQueue::DeadLetter,
        method,
        headers,
        uri,
    )
    .await
}

async fn settle_in(
    shared: Arc<Shared>,
    (queue, seq, lock): (String, i64, String),
    sub: SubQueue,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Some(denied) = admit(&shared, &headers, &uri, &queue).await {
        return denied;
    }
    let mut inner = shared.inner.lock().unwrap();
    let now = inner.clock.now();
    let q = inner.queues.get_mut(&queue).unwrap();
    let lock_duration = q.settings.lock_duration;
    let held = q.messages(sub).get(&seq).is_some_and(|m| {
        m.lock
            .as_ref()
            .is_some_and(|(token, until)| *token == lock && *until > now)
    });
    if !held {
        q.stats.lock_lost += 1;
        return error(StatusCode::NOT_FOUND, "no message with that lock token");
    }
    match method {
        Method::DELETE => {
            q.messages(sub).remove(&seq);
            match sub {
                SubQueue::Active => q.stats.completed += 1,
                SubQueue::DeadLetter => q.stats.dead_letter_completed += 1,
            }
        }
        Method::PUT => {
            q.messages(sub).get_mut(&seq).unwrap().lock = None;
            match sub {
                SubQueue::Active => q.stats.abandoned += 1,
                SubQueue::DeadLetter => q.stats.dead_letter_abandoned += 1,
            }
        }
        _ => {
            let until = now + lock_duration;
            q.messages(sub).get_mut(&seq).unwrap().lock = Some((lock, until));
            q.stats.renewed += 1;
        }
    }
    drop(inner);
    shared.arrivals.notify_waiters();
    StatusCode::OK.into_response()
}

fn gmt(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn uuid_like() -> String {
    let n: u128 = rand::rng().random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}
