//! The Azure Functions custom-handler contract: the host POSTs each invocation to
//! `/{function}` on `127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT` and reads the reply.
//!
//! Error semantics (docs/semantics.md): bad data, and a batch that failed permanently, is
//! quarantined and the invocation succeeds, so the host completes the messages instead of
//! redelivering them until they dead-letter; a transient dependency failure fails the
//! invocation (non-2xx) so the host abandons and redelivers, which is safe because processing
//! is idempotent. HTTP callers get the same replies as from the local API.

pub mod envelope;

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::App;
use crate::drivers::reply::{self, ApiError, IDEMPOTENCY_KEY, IngestHeaders, Reply, TRACEPARENT};
use envelope::{HttpInvocation, Invocation, InvocationReply};

/// Binding names, as in `functions/*/function.json`.
pub const HTTP_REQUEST_BINDING: &str = "req";
pub const HTTP_RESPONSE_BINDING: &str = "res";
pub const BATCH_BINDING: &str = "messages";
pub const SINGLE_MESSAGE_BINDING: &str = "message";
pub const TIMER_BINDING: &str = "myTimer";

#[derive(Clone)]
struct HandlerState {
    app: App,
    summarize_budget: Duration,
    max_body_bytes: usize,
}

/// The largest `/ingest` envelope read for a body limit of `max_body_bytes`. The host puts the
/// body in the envelope once as a JSON string (escaping grows JSON text by its quotes and
/// backslashes), and, for a JSON object body, each top-level property once more in `Metadata`,
/// encoded twice; 4× the body limit holds both for any ordinary body, and 1 MiB holds headers,
/// query and the rest. A larger envelope is answered 413 in the HTTP output without being read.
pub fn ingest_envelope_limit(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_mul(4).saturating_add(1 << 20)
}

/// The largest `/process` envelope read: a batch of at most 100 messages (`maxMessageBatchSize`
/// in host.json) of at most 1 MiB each (Service Bus Premium's default message size; Standard
/// allows 256 KB), encoded twice by the host, which can double JSON text.
pub const MAX_BATCH_ENVELOPE_BYTES: usize = 256 << 20;

/// The largest `/summarize` envelope read: a timer's envelope is a few hundred bytes.
pub const MAX_TIMER_ENVELOPE_BYTES: usize = 1 << 20;

/// The contract router: `GET /` for readiness, `POST /ingest`, `/process`, `/summarize`.
///
/// Each function reads its envelope once, up to a limit that holds what the host can send it
/// (see [`ingest_envelope_limit`], [`MAX_BATCH_ENVELOPE_BYTES`], [`MAX_TIMER_ENVELOPE_BYTES`]);
/// the ingest body inside the envelope is held to `max_body_bytes`, as in the local API.
pub fn router(app: App, summarize_budget: Duration, max_body_bytes: usize) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { json_response(StatusCode::OK, &json!({"status": "ready"})) }),
        )
        .route("/ingest", post(ingest))
        .route("/process", post(process))
        .route("/summarize", post(summarize))
        .fallback(|| async {
            json_response(StatusCode::NOT_FOUND, &json!({"error": "no such function"}))
        })
        .with_state(HandlerState {
            app,
            summarize_budget,
            max_body_bytes,
        })
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body).expect("replies serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn reply(reply: InvocationReply) -> Response {
    json_response(StatusCode::OK, &reply)
}

/// A successful invocation whose HTTP output carries the reply to the caller: the host itself
/// never retries an HTTP invocation, so even a 503 for the client is a handled invocation.
fn http_output(output: &Reply) -> Response {
    reply(InvocationReply::http(HTTP_RESPONSE_BINDING, output))
}

/// Why an invocation failed: the host abandons the messages (Service Bus) or answers 500 (HTTP).
/// The body is for people reading Core Tools output; the host drops it.
#[derive(Debug, thiserror::Error)]
enum InvocationError {
    /// The envelope is not what the host sends for this function's bindings.
    #[error("{function}: {reason}")]
    Envelope {
        function: &'static str,
        reason: String,
    },
    /// The envelope is larger than the host can send for this function.
    #[error("{function}: {reason}")]
    TooLarge {
        function: &'static str,
        reason: String,
    },
    /// A dependency failed after its bounded retries; redelivery will retry the work.
    #[error("{function}: {reason}")]
    Dependency {
        function: &'static str,
        reason: String,
    },
}

impl InvocationError {
    fn envelope(function: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Envelope {
            function,
            reason: reason.to_string(),
        }
    }

    fn dependency(function: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Dependency {
            function,
            reason: reason.to_string(),
        }
    }
}

impl IntoResponse for InvocationError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "invocation failed");
        let status = match self {
            Self::Envelope { .. } => StatusCode::BAD_REQUEST,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Dependency { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        json_response(status, &json!({ "error": self.to_string() }))
    }
}

/// Reads an envelope of at most `limit` bytes and decodes it.
async fn decode(
    request: Request,
    limit: usize,
    function: &'static str,
) -> Result<Invocation, InvocationError> {
    let envelope = reply::read_body(request.into_body(), limit)
        .await
        .map_err(|e| InvocationError::TooLarge {
            function,
            reason: e.to_string(),
        })?;
    serde_json::from_slice(&envelope).map_err(|e| {
        InvocationError::envelope(function, format!("invocation envelope is not JSON: {e}"))
    })
}

/// The HTTP trigger: the envelope is read once, up to [`ingest_envelope_limit`], and the body
/// is taken from it in place (copied only where the host escaped it).
async fn ingest(
    State(state): State<HandlerState>,
    request: Request,
) -> Result<Response, InvocationError> {
    let limit = ingest_envelope_limit(state.max_body_bytes);
    let envelope = match reply::read_body(request.into_body(), limit).await {
        Ok(envelope) => envelope,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let refused = ApiError::payload_too_large(state.max_body_bytes);
            return Ok(http_output(&refused.into()));
        }
        Err(e) => return Ok(http_output(&e.into())),
    };
    let invocation =
        HttpInvocation::decode(&envelope).map_err(|e| InvocationError::envelope("ingest", e))?;
    let request = invocation
        .request()
        .map_err(|e| InvocationError::envelope("ingest", e))?;
    let content_type = request.header("Content-Type").unwrap_or_default();
    let idempotency_key = request.header(IDEMPOTENCY_KEY);
    // The caller's trace context, which the host forwards among the request's headers.
    let traceparent = request.header(TRACEPARENT);
    let headers = IngestHeaders {
        content_type: &content_type,
        idempotency_key: idempotency_key.as_deref(),
        traceparent: traceparent.as_deref(),
    };
    let body = request
        .body()
        .map_err(|e| InvocationError::envelope("ingest", e))?;
    let outcome = match reply::check_size(body.len(), state.max_body_bytes) {
        Ok(()) => reply::ingest(&state.app.pipeline, headers, body.as_bytes()).await,
        Err(e) => Err(e),
    };
    Ok(http_output(&outcome.unwrap_or_else(Reply::from)))
}

/// A Service Bus batch: handled (200, the host completes the messages) unless a dependency
/// failed transiently, when the invocation fails and the host redelivers the batch.
async fn process(
    State(state): State<HandlerState>,
    request: Request,
) -> Result<Response, InvocationError> {
    let invocation = decode(request, MAX_BATCH_ENVELOPE_BYTES, "process").await?;
    let messages = if invocation.data.contains_key(BATCH_BINDING) {
        invocation.service_bus_batch(BATCH_BINDING)
    } else {
        invocation
            .service_bus_message(SINGLE_MESSAGE_BINDING)
            .map(|m| vec![m])
    }
    .map_err(|e| InvocationError::envelope("process", e))?;
    state
        .app
        .pipeline
        .process_delivery(&messages)
        .await
        .map_err(|e| InvocationError::dependency("process", e))?;
    Ok(reply(InvocationReply::empty()))
}

/// The timer: the same end of day as the local timer runs.
async fn summarize(
    State(state): State<HandlerState>,
    request: Request,
) -> Result<Response, InvocationError> {
    let invocation = decode(request, MAX_TIMER_ENVELOPE_BYTES, "summarize").await?;
    invocation
        .timer_is_past_due(TIMER_BINDING)
        .map_err(|e| InvocationError::envelope("summarize", e))?;
    let report = state.app.end_of_day(state.summarize_budget).await;
    match report.error {
        None => Ok(reply(InvocationReply::empty())),
        Some(error) => Err(InvocationError::dependency("summarize", error)),
    }
}
