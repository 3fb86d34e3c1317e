//! The local HTTP API: `POST /api/ingest`, `GET /api/summaries`, `GET /api/status`, and the
//! counters for a Prometheus scraper at `GET /metrics`, and the operator's console
//! ([`super::console`]).
//!
//! Replies and errors come from [`crate::drivers::reply`], shared with the Functions driver:
//! every error is a JSON body `{"error": "..."}` with a status that says whose fault it is.
//! Successful requests are counted, not logged.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use std::sync::Arc;

use axum::middleware;
use azure_core::credentials::Secret;

use super::{api_key, openapi};
use crate::app::App;
use crate::domain::series::SeriesId;
use crate::drivers::reply::{self, ApiError, IDEMPOTENCY_KEY, IngestHeaders, Reply, TRACEPARENT};
use crate::telemetry::prometheus;

#[derive(Clone)]
struct ApiState {
    app: App,
    max_body_bytes: usize,
}

/// The local API's routes; with `api_key`, every request must carry it (see [`api_key`]).
pub fn router(app: App, max_body_bytes: usize, api_key: Option<Secret>) -> Router {
    let routes = Router::new()
        .route("/api/ingest", post(ingest))
        .route("/api/summaries", get(summaries))
        .route("/api/status", get(status))
        .route("/metrics", get(prometheus_metrics))
        .route("/api/openapi.json", get(openapi::document))
        .fallback(|| async {
            ApiError::not_found("no such endpoint; see docs/operations.md (HTTP API)")
        })
        .with_state(ApiState {
            app: app.clone(),
            max_body_bytes,
        })
        .merge(super::console::router(app));
    match api_key {
        Some(key) => routes.layer(middleware::from_fn_with_state(
            Arc::new(api_key::ApiKey::new(&key)),
            api_key::require,
        )),
        None => routes,
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Reply::from(self).into_response()
    }
}

async fn ingest(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Reply, ApiError> {
    // A value that is not visible ASCII stays present but unreadable, so it is refused as a
    // bad value (415, or 400 for the key) instead of being taken for an absent header.
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let ingest_headers = IngestHeaders {
        content_type: text(header::CONTENT_TYPE.as_str()).unwrap_or(""),
        idempotency_key: text(IDEMPOTENCY_KEY),
        traceparent: text(TRACEPARENT),
    };
    let body = reply::read_body(request.into_body(), state.max_body_bytes).await?;
    reply::ingest(&state.app.pipeline, ingest_headers, &body).await
}

#[derive(Deserialize)]
struct SummaryQuery {
    series: Option<String>,
    day: Option<String>,
}

async fn summaries(
    State(state): State<ApiState>,
    Query(query): Query<SummaryQuery>,
) -> Result<Response, ApiError> {
    let day = match query.day.filter(|d| !d.is_empty()) {
        Some(day) => Some(
            day.parse::<chrono::NaiveDate>()
                .map_err(|_| ApiError::bad_request(format!("day {day:?} is not YYYY-MM-DD")))?,
        ),
        None => None,
    };
    let series = match query.series.filter(|s| !s.is_empty()) {
        Some(series) => {
            Some(SeriesId::parse(&series).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let rows = state
        .app
        .pipeline
        .ports
        .sink
        .read(series.as_ref(), day)
        .await?;
    Ok(Json(rows).into_response())
}

async fn status(State(state): State<ApiState>) -> Result<Response, ApiError> {
    Ok(Json(state.app.status().await?).into_response())
}

/// The counters `/api/status` shows, in the Prometheus text format.
async fn prometheus_metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)],
        prometheus::render(&state.app.pipeline.metrics, &state.app.backlog().await),
    )
        .into_response()
}
