//! A small Service Bus REST client: send, batch send, scheduled send, peek-lock receive,
//! complete, abandon (unlock) and renew lock — on a queue, or on its dead-letter sub-queue
//! ([`dead_letter_path`](super::wire::dead_letter_path)), which takes the same calls.
//!
//! Every call has a timeout and goes through the shared [`RetryPolicy`]: 429, 408, 5xx and the
//! throttling code 50009 are retried with backoff and full jitter (honouring `Retry-After`);
//! anything else fails at once. Retrying is safe for every operation: a re-sent message keeps
//! its MessageId (duplicate detection drops the copy), a re-sent peek-lock at worst leaves a
//! message locked until its lock expires, and settling an already settled message reports
//! [`Settlement::LockLost`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest_013 as http;
use reqwest_013::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, RETRY_AFTER};
use reqwest_013::{Method, StatusCode};

use super::auth::{AuthError, ConnectionString, Credential};
use super::wire::{
    BATCH_CONTENT_TYPE, BODY_CONTENT_TYPE, BatchEntry, DEAD_LETTER_DESCRIPTION, DEAD_LETTER_REASON,
    DEAD_LETTER_SUFFIX, LockedProperties, SendProperties, custom_property_text, parse_rfc1123,
    trace_properties,
};
use crate::pipeline::metrics::AdapterCounters;
use crate::pipeline::ports::{ErrorKind, OutgoingMessage, PortError};
use crate::pipeline::retry::{RetryPolicy, Verdict};
use crate::telemetry::TraceContext;

/// The request and response header carrying broker properties.
const BROKER_PROPERTIES: HeaderName = HeaderName::from_static("brokerproperties");

/// The service's error sub-code for "server busy" (throttling); retried like a 429.
const THROTTLED_SUBCODE: &str = "50009";

/// Longest part of an error response body kept in an error message.
const MAX_DETAIL: usize = 300;

/// Tunables of the client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time one HTTP call may take (a peek-lock may take its wait time on top).
    pub call_timeout: Duration,
    pub retry: RetryPolicy,
    /// Largest batch-send body. Standard-tier namespaces accept 256 KB per batch; the margin
    /// covers the HTTP envelope.
    pub max_batch_bytes: usize,
    /// Most messages in one batch send.
    pub max_batch_messages: usize,
    /// HTTP calls one queue operation keeps in flight (REST settles and receives one message
    /// per call).
    pub parallelism: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_batch_bytes: 192 * 1024,
            max_batch_messages: 100,
            parallelism: 16,
        }
    }
}

/// A failed Service Bus call.
#[derive(Debug, thiserror::Error)]
pub enum ServiceBusError {
    #[error("{operation} on {entity}: HTTP {status}: {detail}")]
    Status {
        operation: &'static str,
        entity: String,
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// Connection failures and timeouts.
    #[error("{operation} on {entity}: {source}")]
    Transport {
        operation: &'static str,
        entity: String,
        #[source]
        source: http::Error,
    },
    #[error("{operation} on {entity}: unexpected response: {reason}")]
    Protocol {
        operation: &'static str,
        entity: String,
        reason: String,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("invalid Service Bus setting: {0}")]
    Config(String),
}

impl ServiceBusError {
    /// Whether retrying can help, and after how long the service asked us to wait.
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Status {
                status,
                detail,
                retry_after,
                ..
            } => {
                let retryable = *status == 429
                    || *status == 408
                    || (500..600).contains(status)
                    || detail.contains(THROTTLED_SUBCODE);
                if retryable {
                    Verdict::Transient {
                        retry_after: *retry_after,
                    }
                } else {
                    Verdict::Permanent
                }
            }
            Self::Transport { .. } | Self::Auth(AuthError::Token(_)) => {
                Verdict::Transient { retry_after: None }
            }
            Self::Protocol { .. } | Self::Auth(_) | Self::Config(_) => Verdict::Permanent,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self.verdict() {
            Verdict::Transient { .. } => ErrorKind::Transient,
            Verdict::Permanent => ErrorKind::Permanent,
        }
    }

    /// The port error, transient or permanent as classified.
    pub fn into_port(self, context: impl Into<String>) -> PortError {
        PortError::classified(self.verdict(), context, self)
    }
}

/// Identifies one peek-lock: the message's sequence number and the lock token. Its text form
/// `{sequence}/{token}` is the port's lock token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRef {
    pub sequence_number: i64,
    pub lock_token: String,
}

impl fmt::Display for LockRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.sequence_number, self.lock_token)
    }
}

impl FromStr for LockRef {
    type Err = ServiceBusError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ServiceBusError::Config(format!("{text:?} is not a Service Bus lock token"));
        let (seq, token) = text.split_once('/').ok_or_else(bad)?;
        let sequence_number = seq.parse().map_err(|_| bad())?;
        if token.is_empty() || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad());
        }
        Ok(Self {
            sequence_number,
            lock_token: token.to_string(),
        })
    }
}

/// A message received under a peek-lock.
#[derive(Debug, Clone, PartialEq)]
pub struct LockedMessage {
    pub message_id: String,
    pub session_id: Option<String>,
    pub lock: LockRef,
    pub delivery_count: u32,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub locked_until: Option<DateTime<Utc>>,
    /// Why the broker dead-lettered it; empty for a message that was not dead-lettered.
    pub dead_letter: DeadLetterCause,
    /// The sender's trace context (custom property `traceparent` or `Diagnostic-Id`).
    pub trace_context: Option<TraceContext>,
    pub body: Vec<u8>,
}

/// The `DeadLetterReason` and `DeadLetterErrorDescription` properties of a dead-lettered
/// message (the broker's own reasons are listed in the Service Bus dead-letter queue
/// documentation, e.g. `MaxDeliveryCountExceeded`; a client that dead-letters explicitly may
/// set any text or none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterCause {
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// The outcome of settling (complete, abandon, renew) a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Done,
    /// The lock expired or the message was settled already; the message is (or will be)
    /// delivered again, which the pipeline tolerates.
    LockLost,
}

/// One HTTP reply, read completely.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A Service Bus namespace reached over REST.
pub struct ServiceBusClient {
    http: http::Client,
    endpoint: String,
    credential: Credential,
    options: ClientOptions,
    calls: Arc<Calls>,
}

/// The REST operations this client makes and the counter each is reported as (see
/// `pipeline::metrics::ADAPTER_COUNTERS`).
const OPERATIONS: [(&str, &str); 6] = [
    ("send", "servicebus_send"),
    ("batch send", "servicebus_batch_send"),
    ("peek-lock", "servicebus_peek_lock"),
    ("complete", "servicebus_complete"),
    ("abandon", "servicebus_abandon"),
    ("renew lock", "servicebus_renew_lock"),
];

/// Calls made, by operation (one per call, whatever its retries).
#[derive(Debug, Default)]
pub struct Calls([AtomicU64; OPERATIONS.len()]);

impl Calls {
    fn count(&self, operation: &str) {
        if let Some(i) = OPERATIONS.iter().position(|(op, _)| *op == operation) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl AdapterCounters for Calls {
    fn read(&self) -> Vec<(&'static str, u64)> {
        OPERATIONS
            .iter()
            .zip(&self.0)
            .map(|((_, counter), calls)| (*counter, calls.load(Ordering::Relaxed)))
            .collect()
    }
}

impl fmt::Debug for ServiceBusClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBusClient")
            .field("endpoint", &self.endpoint)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl ServiceBusClient {
    /// A client for `endpoint` (`https://{namespace}.servicebus.windows.net`, or a loopback
    /// `http://` address for tests).
    pub fn new(
        endpoint: &str,
        credential: Credential,
        options: ClientOptions,
    ) -> Result<Self, ServiceBusError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(ServiceBusError::Config(format!(
                "endpoint {endpoint:?} must start with https://"
            )));
        }
        let http = http::Client::builder()
            .connect_timeout(options.call_timeout)
            .pool_max_idle_per_host(options.parallelism.max(1) * 2)
            .build()
            .map_err(|e| ServiceBusError::Config(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            credential,
            options,
            calls: Arc::default(),
        })
    }

    /// A client from a connection string (SAS key or signature).
    pub fn from_connection_string(
        text: &str,
        options: ClientOptions,
    ) -> Result<Self, ServiceBusError> {
        let cs = ConnectionString::parse(text)?;
        Self::new(&cs.endpoint, cs.credential(), options)
    }

    /// A client for a namespace (`myns.servicebus.windows.net`) with an Entra ID credential.
    pub fn with_entra_id(
        namespace: &str,
        credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
        options: ClientOptions,
    ) -> Result<Self, ServiceBusError> {
        let host = namespace
            .trim()
            .trim_start_matches("sb://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if host.is_empty() || host.contains(['/', ' ', ';']) {
            return Err(ServiceBusError::Config(format!(
                "{namespace:?} is not a namespace host like myns.servicebus.windows.net"
            )));
        }
        Self::new(
            &format!("https://{host}"),
            Credential::entra_id(credential),
            options,
        )
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The calls this client made, by operation, for the pipeline's metrics.
    pub fn calls(&self) -> Arc<Calls> {
        self.calls.clone()
    }

    /// Sends one message (any body bytes).
    pub async fn send(
        &self,
        queue: &str,
        message: &OutgoingMessage,
    ) -> Result<(), ServiceBusError> {
        let properties = ascii_json(
            &serde_json::to_string(&SendProperties::of(message)).expect("properties serialize"),
        );
        let url = format!("{}/messages", self.entity_url(queue)?);
        let mut headers = vec![
            (BROKER_PROPERTIES, properties),
            (CONTENT_TYPE, BODY_CONTENT_TYPE.to_string()),
        ];
        // Custom properties are headers of their own; a string value goes in double quotes.
        for (name, value) in trace_properties(message) {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
            headers.push((name, format!("\"{value}\"")));
        }
        self.call(
            "send",
            queue,
            Method::POST,
            url,
            headers,
            message.body.clone(),
            self.options.call_timeout,
        )
        .await?;
        Ok(())
    }

    /// Sends messages in one batch-send request. Bodies must be UTF-8 text (the batch format
    /// carries them as JSON strings); see [`Self::plan_sends`] for splitting a larger set.
    pub async fn send_batch(
        &self,
        queue: &str,
        messages: &[OutgoingMessage],
    ) -> Result<(), ServiceBusError> {
        let mut entries = Vec::with_capacity(messages.len());
        for message in messages {
            entries.push(batch_entry(message).ok_or_else(|| {
                ServiceBusError::Config(format!(
                    "message {} has a body that is not UTF-8 text and cannot go in a batch",
                    message.message_id
                ))
            })?);
        }
        self.send_encoded_batch(queue, &entries).await
    }

    async fn send_encoded_batch(
        &self,
        queue: &str,
        entries: &[String],
    ) -> Result<(), ServiceBusError> {
        let mut body = Vec::with_capacity(entries.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(entry.as_bytes());
        }
        body.push(b']');
        let url = format!("{}/messages", self.entity_url(queue)?);
        self.call(
            "batch send",
            queue,
            Method::POST,
            url,
            vec![(CONTENT_TYPE, BATCH_CONTENT_TYPE.to_string())],
            body,
            self.options.call_timeout,
        )
        .await?;
        Ok(())
    }

    /// Groups messages into batch sends within the size and count limits; a message that is
    /// not UTF-8 or too large for a batch is sent on its own.
    pub fn plan_sends<'a>(&self, messages: &'a [OutgoingMessage]) -> Vec<SendPlan<'a>> {
        let mut plans = Vec::new();
        let mut batch: Vec<String> = Vec::new();
        let mut batch_bytes = 2;
        for message in messages {
            match batch_entry(message) {
                Some(entry) if entry.len() + 3 <= self.options.max_batch_bytes => {
                    if !batch.is_empty()
                        && (batch_bytes + entry.len() + 1 > self.options.max_batch_bytes
                            || batch.len() >= self.options.max_batch_messages)
                    {
                        plans.push(SendPlan::Batch(std::mem::take(&mut batch)));
                        batch_bytes = 2;
                    }
                    batch_bytes += entry.len() + 1;
                    batch.push(entry);
                }
                _ => plans.push(SendPlan::Single(message)),
            }
        }
        if !batch.is_empty() {
            plans.push(SendPlan::Batch(batch));
        }
        plans
    }

    /// Runs one planned send.
    pub async fn send_planned(
        &self,
        queue: &str,
        plan: &SendPlan<'_>,
    ) -> Result<(), ServiceBusError> {
        match plan {
            SendPlan::Single(message) => self.send(queue, message).await,
            SendPlan::Batch(entries) => self.send_encoded_batch(queue, entries).await,
        }
    }

    /// Peek-locks the next visible message, waiting up to `wait` for one (whole seconds).
    pub async fn peek_lock(
        &self,
        queue: &str,
        wait: Duration,
    ) -> Result<Option<LockedMessage>, ServiceBusError> {
        let url = format!(
            "{}/messages/head?timeout={}",
            self.entity_url(queue)?,
            wait.as_secs()
        );
        let reply = self
            .call(
                "peek-lock",
                queue,
                Method::POST,
                url,
                Vec::new(),
                Vec::new(),
                self.options.call_timeout + wait,
            )
            .await?;
        if reply.status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let protocol = |reason: String| ServiceBusError::Protocol {
            operation: "peek-lock",
            entity: queue.to_string(),
            reason,
        };
        let header = reply
            .headers
            .get(&BROKER_PROPERTIES)
            .ok_or_else(|| protocol("no BrokerProperties header".into()))?;
        let properties: LockedProperties = serde_json::from_slice(header.as_bytes())
            .map_err(|e| protocol(format!("BrokerProperties: {e}")))?;
        let lock = LockRef::from_str(&format!(
            "{}/{}",
            properties.sequence_number, properties.lock_token
        ))
        .map_err(|e| protocol(e.to_string()))?;
        Ok(Some(LockedMessage {
            message_id: properties.message_id,
            session_id: properties.session_id,
            lock,
            delivery_count: properties.delivery_count,
            enqueued_at: properties
                .enqueued_time_utc
                .as_deref()
                .and_then(parse_rfc1123),
            locked_until: properties
                .locked_until_utc
                .as_deref()
                .and_then(parse_rfc1123),
            dead_letter: DeadLetterCause {
                reason: custom_property(&reply.headers, DEAD_LETTER_REASON),
                description: custom_property(&reply.headers, DEAD_LETTER_DESCRIPTION),
            },
            trace_context: TraceContext::from_properties(|name| {
                custom_property(&reply.headers, name)
            }),
            body: reply.body,
        }))
    }

    /// Deletes a locked message (complete).
    pub async fn complete(
        &self,
        queue: &str,
        lock: &LockRef,
    ) -> Result<Settlement, ServiceBusError> {
        self.settle("complete", queue, Method::DELETE, lock).await
    }

    /// Releases a lock so the message is delivered again (abandon).
    pub async fn abandon(
        &self,
        queue: &str,
        lock: &LockRef,
    ) -> Result<Settlement, ServiceBusError> {
        self.settle("abandon", queue, Method::PUT, lock).await
    }

    /// Extends a lock by the queue's lock duration.
    pub async fn renew_lock(
        &self,
        queue: &str,
        lock: &LockRef,
    ) -> Result<Settlement, ServiceBusError> {
        self.settle("renew lock", queue, Method::POST, lock).await
    }

    async fn settle(
        &self,
        operation: &'static str,
        queue: &str,
        method: Method,
        lock: &LockRef,
    ) -> Result<Settlement, ServiceBusError> {
        let url = format!(
            "{}/messages/{}/{}",
            self.entity_url(queue)?,
            lock.sequence_number,
            lock.lock_token
        );
        match self
            .call(
                operation,
                queue,
                method,
                url,
                Vec::new(),
                Vec::new(),
                self.options.call_timeout,
            )
            .await
        {
            Ok(_) => Ok(Settlement::Done),
            // No message with that lock: it expired, or the message was settled already.
            Err(ServiceBusError::Status {
                status: 404 | 410, ..
            }) => Ok(Settlement::LockLost),
            Err(e) => Err(e),
        }
    }

    /// The URL of a queue, or of a queue's dead-letter sub-queue.
    fn entity_url(&self, entity: &str) -> Result<String, ServiceBusError> {
        let queue = entity.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(entity);
        let valid = !queue.is_empty()
            && queue.len() <= 260
            && queue
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '~'))
            && !queue.starts_with('/')
            && !queue.ends_with('/');
        if !valid {
            return Err(ServiceBusError::Config(format!(
                "{queue:?} is not a queue name (letters, digits, - _ . ~ and / only)"
            )));
        }
        Ok(format!("{}/{entity}", self.endpoint))
    }

    /// One call with retries.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        operation: &'static str,
        entity: &str,
        method: Method,
        url: String,
        headers: Vec<(HeaderName, String)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Reply, ServiceBusError> {
        let resource = format!("{}/{entity}", self.endpoint);
        self.calls.count(operation);
        self.options
            .retry
            .run(
                || {
                    self.attempt(
                        operation, entity, &resource, &method, &url, &headers, &body, timeout,
                    )
                },
                ServiceBusError::verdict,
            )
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        operation: &'static str,
        entity: &str,
        resource: &str,
        method: &Method,
        url: &str,
        headers: &[(HeaderName, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Reply, ServiceBusError> {
        let transport = |source| ServiceBusError::Transport {
            operation,
            entity: entity.to_string(),
            source,
        };
        let authorization = self.credential.authorization(resource).await?;
        let mut request = self
            .http
            .request(method.clone(), url)
            .timeout(timeout)
            .header(AUTHORIZATION, authorization);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .body(body.to_vec())
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        if status.is_success() {
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = String::from_utf8_lossy(&body);
        Err(ServiceBusError::Status {
            operation,
            entity: entity.to_string(),
            status: status.as_u16(),
            detail: text.chars().take(MAX_DETAIL).collect(),
            retry_after,
        })
    }
}

/// A send as planned by [`ServiceBusClient::plan_sends`].
#[derive(Debug)]
pub enum SendPlan<'a> {
    /// One message sent on its own (raw body).
    Single(&'a OutgoingMessage),
    /// Encoded batch entries.
    Batch(Vec<String>),
}

impl SendPlan<'_> {
    pub fn messages(&self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Batch(entries) => entries.len(),
        }
    }
}

/// The JSON of one batch entry, or `None` for a body that is not UTF-8 text.
fn batch_entry(message: &OutgoingMessage) -> Option<String> {
    let body = std::str::from_utf8(&message.body).ok()?;
    Some(
        serde_json::to_string(&BatchEntry {
            body: body.to_string(),
            broker_properties: SendProperties::of(message),
            user_properties: trace_properties(message)
                .into_iter()
                .map(|(name, value)| (name.to_string(), value))
                .collect(),
        })
        .expect("batch entries serialize"),
    )
}

/// A custom property of a received message, from its HTTP header.
fn custom_property(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|value| custom_property_text(value.as_bytes()))
}

/// JSON with every non-ASCII character escaped as `\uXXXX`, so it fits in an HTTP header
/// (series names, hence MessageIds and SessionIds, may contain any letter). Non-ASCII text can
/// only occur inside JSON strings, where the escape means the same character.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_refs_round_trip_and_reject_paths() {
        let lock: LockRef = "844424930131969/7da9cfd5-40d5-4bb1-8d64-ec5a52e1c547"
            .parse()
            .unwrap();
        assert_eq!(lock.sequence_number, 844_424_930_131_969);
        assert_eq!(
            lock.to_string(),
            "844424930131969/7da9cfd5-40d5-4bb1-8d64-ec5a52e1c547"
        );
        for bad in ["", "12", "x/abc", "12/../../admin", "12/a b"] {
            assert!(bad.parse::<LockRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn non_ascii_properties_are_escaped_for_headers() {
        let json = serde_json::to_string(&SendProperties {
            message_id: "summarize:ünïcode:flow:2026-11-24:1".into(),
            session_id: Some("😀".into()),
            scheduled_enqueue_time_utc: None,
        })
        .unwrap();
        let ascii = ascii_json(&json);
        assert!(ascii.is_ascii());
        let back: SendProperties = serde_json::from_str(&ascii).unwrap();
        assert_eq!(back.message_id, "summarize:ünïcode:flow:2026-11-24:1");
        assert_eq!(back.session_id.as_deref(), Some("😀"));
    }

    #[test]
    fn errors_are_classified() {
        let status = |status: u16, detail: &str| ServiceBusError::Status {
            operation: "send",
            entity: "q".into(),
            status,
            detail: detail.into(),
            retry_after: None,
        };
        for transient in [
            status(429, ""),
            status(503, ""),
            status(500, ""),
            status(408, ""),
        ] {
            assert_eq!(transient.kind(), ErrorKind::Transient, "{transient}");
        }
        assert_eq!(
            status(
                403,
                "<Error><Code>403</Code><Detail>SubCode=50009. Server busy</Detail></Error>"
            )
            .kind(),
            ErrorKind::Transient
        );
        for permanent in [
            status(400, ""),
            status(401, ""),
            status(404, ""),
            status(413, ""),
        ] {
            assert_eq!(permanent.kind(), ErrorKind::Permanent, "{permanent}");
        }
    }

    #[test]
    fn sends_are_planned_within_batch_limits() {
        let client = ServiceBusClient::new(
            "http://127.0.0.1:1",
            Credential::SharedAccessSignature("SharedAccessSignature x".into()),
            ClientOptions {
                max_batch_bytes: 1_000,
                max_batch_messages: 3,
                ..ClientOptions::default()
            },
        )
        .unwrap();
        let message = |id: &str, body: Vec<u8>| OutgoingMessage {
            message_id: id.into(),
            session_id: None,
            body,
            scheduled_at: None,
            trace_context: None,
        };
        let messages = vec![
            message("a", b"{}".to_vec()),
            message("b", b"{}".to_vec()),
            message("c", b"{}".to_vec()),
            message("d", b"{}".to_vec()),
            message("big", vec![b'x'; 2_000]),
            message("binary", vec![0xff, 0xfe]),
        ];
        let plans = client.plan_sends(&messages);
        let shape: Vec<(bool, usize)> = plans
            .iter()
            .map(|p| (matches!(p, SendPlan::Batch(_)), p.messages()))
            .collect();
        assert_eq!(
            shape,
            [(true, 3), (false, 1), (false, 1), (true, 1)],
            "a full batch, two singles, the rest"
        );
        for plan in &plans {
            if let SendPlan::Batch(entries) = plan {
                // `[` + entries joined by `,` + `]`
                let body_len = entries.iter().map(String::len).sum::<usize>() + entries.len() + 1;
                assert!(body_len <= 1_000, "{body_len}");
            }
        }
    }
}
