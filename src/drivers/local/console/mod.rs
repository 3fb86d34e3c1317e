//! The operator's console of `eventide local`: a page at `/` that polls the local API and draws
//! the pipeline's figures, lists and replays the quarantine, and charts a series' days.
//!
//! Its assets are compiled into the binary (no build step, no network, nothing read from disk
//! at run time) and its JSON endpoints are in [`api`]. Only the local router serves it: the
//! Functions driver's routes answer the host alone and nothing there could protect a replay.

pub mod api;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::App;

/// One embedded file and the content type it is served with.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_str!("assets/index.html"),
    content_type: "text/html; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    body: include_str!("assets/console.js"),
    content_type: "text/javascript; charset=utf-8",
};
const STYLE: Asset = Asset {
    body: include_str!("assets/console.css"),
    content_type: "text/css; charset=utf-8",
};

/// Everything the page loads comes from this server; it may not be framed (the replay button
/// must not be clickable through another site's page).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

impl IntoResponse for &'static Asset {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// The console's page, assets and JSON endpoints, to be merged into the local router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { &INDEX }))
        .route("/console.js", get(|| async { &SCRIPT }))
        .route("/console.css", get(|| async { &STYLE }))
        .route("/api/quarantine", get(api::list))
        .route("/api/quarantine/replay", post(api::replay))
        .route("/api/progress", get(api::progress))
        .route("/api/summaries/days", get(api::series_days))
        .with_state(app)
}
