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
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::app::App;
use crate::drivers::reply::{self, IDEMPOTENCY_KEY, IngestHeaders, Reply};
use envelope::{Invocation, InvocationReply};

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

/// The contract router: `GET /` for readiness, `POST /ingest`, `/process`, `/summarize`.
///
/// Invocation envelopes have no size limit of their own: the only peer is the host on loopback,
/// which already bounds them (request size for HTTP, batch size times message size for Service
/// Bus), and a limit here would fail large batches on every delivery. The ingest body inside
/// the envelope is held to `max_body_bytes`, as in the local API.
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
        .layer(DefaultBodyLimit::disable())
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
            Self::Dependency { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        json_response(status, &json!({ "error": self.to_string() }))
    }
}

fn decode(body: &[u8], function: &'static str) -> Result<Invocation, InvocationError> {
    serde_json::from_slice(body).map_err(|e| {
        InvocationError::envelope(function, format!("invocation envelope is not JSON: {e}"))
    })
}

async fn ingest(
    State(state): State<HandlerState>,
    body: axum::body::Bytes,
) -> Result<Response, InvocationError> {
    let invocation = decode(&body, "ingest")?;
    let request = invocation
        .http_request(HTTP_REQUEST_BINDING)
        .map_err(|e| InvocationError::envelope("ingest", e))?;
    let content_type = request.header("Content-Type").unwrap_or_default();
    let idempotency_key = request.header(IDEMPOTENCY_KEY);
    let headers = IngestHeaders {
        content_type: &content_type,
        idempotency_key: idempotency_key.as_deref(),
    };
    let body = request.body_bytes();
    let outcome = match reply::check_size(body.len(), state.max_body_bytes) {
        Ok(()) => reply::ingest(&state.app.pipeline, headers, &body).await,
        Err(e) => Err(e),
    };
    Ok(http_output(&outcome.unwrap_or_else(Reply::from)))
}

/// A Service Bus batch: handled (200, the host completes the messages) unless a dependency
/// failed transiently, when the invocation fails and the host redelivers the batch.
async fn process(
    State(state): State<HandlerState>,
    body: axum::body::Bytes,
) -> Result<Response, InvocationError> {
    let invocation = decode(&body, "process")?;
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
    body: axum::body::Bytes,
) -> Result<Response, InvocationError> {
    let invocation = decode(&body, "summarize")?;
    invocation
        .timer_is_past_due(TIMER_BINDING)
        .map_err(|e| InvocationError::envelope("summarize", e))?;
    let report = state.app.end_of_day(state.summarize_budget).await;
    match report.error {
        None => Ok(reply(InvocationReply::empty())),
        Some(error) => Err(InvocationError::dependency("summarize", error)),
    }
}
