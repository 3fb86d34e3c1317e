//! The local HTTP API: `POST /api/ingest`, `GET /api/summaries`, `GET /api/status`.
//!
//! Every error is a JSON body `{"error": "..."}` with a status that says whose fault it is, via
//! one error type. Successful requests are counted, not logged.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Embedded;
use crate::domain::parse::{BodyFormat, SUPPORTED_CONTENT_TYPES};
use crate::domain::series::SeriesId;
use crate::pipeline::Pipeline;
use crate::pipeline::ingest::IngestError;
use crate::pipeline::ports::PortError;

#[derive(Clone)]
pub(super) struct AppState {
    pub pipeline: Pipeline,
    pub embedded: Embedded,
    pub max_body_bytes: usize,
}

pub(super) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/ingest", post(ingest))
        .route("/api/summaries", get(summaries))
        .route("/api/status", get(status))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint; see README (HTTP API)",
            )
        })
        .with_state(state)
}

/// The one error type of the API.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        tracing::error!(error = %e, "local API: dependency failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("temporarily unavailable: {e}"),
        )
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Body(e) => Self::new(StatusCode::BAD_REQUEST, e.to_string()),
            IngestError::Queue(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = BodyFormat::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {content_type:?}; use one of {SUPPORTED_CONTENT_TYPES}"
            ),
        )
    })?;
    let body = read_body(request.into_body(), state.max_body_bytes).await?;
    let report = state.pipeline.ingest(format, &body).await?;
    let status = if report.accepted == 0 && !report.rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds the limit of {limit} bytes"),
        )
    };
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                source = err.source();
            }
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body could not be read: {e}"),
            ))
        }
    }
}

#[derive(Deserialize)]
struct SummaryQuery {
    series: Option<String>,
    day: Option<String>,
}

async fn summaries(
    State(state): State<AppState>,
    Query(query): Query<SummaryQuery>,
) -> Result<Response, ApiError> {
    let day = match query.day.filter(|d| !d.is_empty()) {
        Some(day) => Some(day.parse::<chrono::NaiveDate>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("day {day:?} is not YYYY-MM-DD"),
            )
        })?),
        None => None,
    };
    let series = match query.series.filter(|s| !s.is_empty()) {
        Some(series) => Some(
            SeriesId::parse(&series)
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
        None => None,
    };
    let rows = state.pipeline.ports.sink.read(series.as_ref(), day).await?;
    Ok(Json(rows).into_response())
}

async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(state.embedded.status(&state.pipeline).await?).into_response())
}
