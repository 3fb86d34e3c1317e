//! What both drivers answer over HTTP, decided once: the one error type at the driver boundary
//! and the ingest reply. The local API writes a [`Reply`] as an HTTP response; the Functions
//! driver writes the same reply into the invocation's HTTP output binding, so a client sees the
//! same status, body and `Retry-After` under either driver.
//!
//! Errors carry their kind from the adapters: a transient one (a dependency down, throttled,
//! timing out) becomes 503 with `Retry-After`, so clients and gateways retry; a permanent one is
//! a 500 that says the request failed without retelling internals. The context of either goes
//! to the log, never to the client.

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;

use crate::domain::idempotency::IdempotencyKey;
use crate::domain::parse::{BodyFormat, SUPPORTED_CONTENT_TYPES};
use crate::pipeline::Pipeline;
use crate::pipeline::ingest::{IngestError, IngestRequest};
use crate::pipeline::ports::{ErrorKind, PortError};
use crate::telemetry::TraceContext;

/// The header a retrying client names its request with (IETF httpapi draft).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The W3C trace-context request header ingest continues a trace from.
pub const TRACEPARENT: &str = "traceparent";

/// Seconds a client is asked to wait before retrying after a transient failure.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// An HTTP reply, independent of the driver that sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    /// A JSON document, serialized once here so both drivers send the same bytes (fields in
    /// the order the reply types declare them).
    pub body: String,
    /// Set on replies the client should retry later.
    pub retry_after: Option<u32>,
}

impl Reply {
    /// A JSON reply.
    pub fn json(status: StatusCode, body: &impl Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_string(body).expect("replies serialize"),
            retry_after: None,
        }
    }
}

/// A request that failed, as its client may see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    status: StatusCode,
    /// Short and safe to show: never an internal error's text.
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// A request this endpoint will not serve from where it came (a cross-site or rebound
    /// request to a state-changing route).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {content_type:?}; use one of {SUPPORTED_CONTENT_TYPES}"
            ),
        )
    }

    /// For endpoints that take only JSON bodies.
    pub fn expects_json() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this endpoint takes application/json",
        )
    }

    /// A failure that is not the client's; the caller logs what it was.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed; the error was logged",
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<PortError> for ApiError {
    /// Logs the error with its context and keeps only what the client may see.
    fn from(error: PortError) -> Self {
        match error.kind {
            ErrorKind::Transient => {
                tracing::warn!(error = %error, "request failed on a dependency; the client is asked to retry");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "a dependency is temporarily unavailable; retry later",
                )
            }
            ErrorKind::Permanent => {
                tracing::error!(error = %error, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request failed; the error was logged",
                )
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            // The body's own fault: the client needs to know exactly what is wrong with it.
            IngestError::Body(e) => Self::bad_request(e.to_string()),
            IngestError::KeyReused(_) => Self::unprocessable(error.to_string()),
            IngestError::Dependency(e) => e.into(),
        }
    }
}

impl From<ApiError> for Reply {
    fn from(error: ApiError) -> Self {
        let retry_after =
            (error.status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECONDS);
        Self {
            status: error.status,
            body: json!({ "error": error.message }).to_string(),
            retry_after,
        }
    }
}

/// The request headers ingest reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestHeaders<'a> {
    pub content_type: &'a str,
    /// `Idempotency-Key`, when the client sent one.
    pub idempotency_key: Option<&'a str>,
    /// `traceparent`, when the caller sent one; an invalid value is ignored (a new trace
    /// starts), as the W3C recommendation says.
    pub traceparent: Option<&'a str>,
}

/// Ingests one request body: 200 with the per-item report, 422 when no item was accepted or
/// the idempotency key names a request with another body, 400 for a malformed key. The body
/// must already be held to the size limit (see [`check_size`]).
pub async fn ingest(
    pipeline: &Pipeline,
    headers: IngestHeaders<'_>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let content_type = headers.content_type;
    let format = BodyFormat::from_content_type(content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
    let key = headers
        .idempotency_key
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let parent = headers.traceparent.and_then(TraceContext::parse);
    let request = IngestRequest {
        format,
        body,
        key: key.as_ref(),
        parent: parent.as_ref(),
    };
    let report = pipeline.ingest_request(request).await?;
    let status = if report.accepted == 0 && report.rejected_count > 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(Reply::json(status, &report))
}

/// Reads a request body of at most `limit` bytes into one buffer: a longer one is refused with
/// 413 as soon as its `Content-Length` or its bytes so far pass the limit, before it is held.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(ApiError::payload_too_large(limit));
                }
                source = err.source();
            }
            Err(ApiError::bad_request("the body could not be read"))
        }
    }
}

/// Refuses a body longer than `limit` bytes.
pub fn check_size(length: usize, limit: usize) -> Result<(), ApiError> {
    if length > limit {
        return Err(ApiError::payload_too_large(limit));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_ask_the_client_to_retry_without_internals() {
        let error = PortError::transient(
            "sending to queue observations at sb://secret-namespace",
            "connection refused",
        );
        let reply = Reply::from(ApiError::from(error));
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.retry_after, Some(RETRY_AFTER_SECONDS));
        let text = &reply.body;
        assert!(
            !text.contains("secret-namespace") && !text.contains("refused"),
            "{text}"
        );
    }

    #[test]
    fn permanent_failures_are_not_retryable_and_say_nothing_internal() {
        let error = PortError::permanent("decoding stored row of series x", "bad column 7");
        let reply = Reply::from(ApiError::from(error));
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.retry_after, None);
        assert!(!reply.body.contains("column 7"));
    }

    #[test]
    fn bodies_over_the_limit_are_refused() {
        assert!(check_size(10, 10).is_ok());
        let reply = Reply::from(check_size(11, 10).unwrap_err());
        assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
