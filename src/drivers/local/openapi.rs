//! The OpenAPI 3.1 description of the local API, served at `/api/openapi.json`. The document is
//! `docs/openapi.json`, compiled in; `tests/suite/openapi.rs` keeps it in step with the router
//! and the replies, and `scripts/check-api` runs schemathesis against it.

use axum::http::header;
use axum::response::IntoResponse;

/// The document's text.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// `GET /api/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
