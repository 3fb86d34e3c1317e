//! The console's JSON endpoints on the local router: the quarantine (list, replay), the end of
//! day's progress, and a series' days. They only translate HTTP: listing and replaying are
//! [`crate::drivers::quarantine`]'s, the same code `eventide quarantine` runs, and the figures
//! come from [`crate::pipeline::overview`].

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, body::Bytes};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::series::SeriesId;
use crate::drivers::quarantine::{self, ListedEntry, Selection};
use crate::drivers::reply::ApiError;
use crate::pipeline::overview::{DayProgress, RangeError};
use crate::pipeline::ports::PortError;

/// The header a replay request must carry. A page on another site cannot send it without a
/// CORS preflight, which this server never grants.
pub const CONSOLE_HEADER: &str = "x-eventide-console";

/// Entries listed when the request names no limit.
const DEFAULT_LIMIT: usize = 500;

/// The most entries one listing returns.
const MAX_LIMIT: usize = 10_000;

/// Failures of the shared quarantine code are port failures, or a defect.
fn api_error(error: anyhow::Error) -> ApiError {
    match error.downcast::<PortError>() {
        Ok(port) => port.into(),
        Err(other) => {
            tracing::error!(error = %other, "console request failed");
            ApiError::internal()
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

/// A reason and how many of the listed entries were quarantined with it.
#[derive(Serialize)]
struct ReasonGroup<'a> {
    reason: &'a str,
    count: usize,
}

#[derive(Serialize)]
struct Listing<'a> {
    /// Newest first.
    entries: Vec<ListedEntry<'a>>,
    /// The reasons of the listed entries, most frequent first.
    groups: Vec<ReasonGroup<'a>>,
    /// The entries were cut at the limit: there may be more.
    truncated: bool,
}

/// `GET /api/quarantine?limit=N`: the newest entries of every quarantine in use, with their
/// reasons grouped.
pub async fn list(
    State(app): State<App>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    // One more than asked tells whether there are more.
    let mut entries = quarantine::list(&app.quarantines, limit + 1)
        .await
        .map_err(api_error)?;
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &entries {
        *counts.entry(entry.reason.as_str()).or_default() += 1;
    }
    let mut groups: Vec<ReasonGroup> = counts
        .into_iter()
        .map(|(reason, count)| ReasonGroup { reason, count })
        .collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(b.reason)));
    let listing = Listing {
        entries: entries.iter().map(ListedEntry::from).collect(),
        groups,
        truncated,
    };
    Ok(Json(listing).into_response())
}

/// What to replay: entries by id, or every entry with one reason.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[serde(default)]
    ids: Vec<String>,
    reason: Option<String>,
}

/// `POST /api/quarantine/replay`: re-submits the named entries, or a reason's group, through
/// the same replay as `eventide quarantine replay`. It changes state, so it answers only
/// same-origin requests from the console (see [`same_origin_console`]); an empty selection is
/// refused rather than taken as "everything".
pub async fn replay(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    same_origin_console(&headers)?;
    let request: ReplayRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a replay request: {e}")))?;
    let selection = match (request.ids.is_empty(), request.reason) {
        (false, None) => Selection::Ids(request.ids),
        (true, Some(reason)) => Selection::Reason(reason),
        _ => {
            return Err(ApiError::bad_request(
                "name either \"ids\" (a non-empty list) or one \"reason\"",
            ));
        }
    };
    let report = quarantine::replay_selected(&app.quarantines, &app.pipeline.ports, &selection)
        .await
        .map_err(api_error)?;
    Ok(Json(report).into_response())
}

/// A state-changing request must come from the console itself: a JSON body (a cross-site form
/// cannot send one), the console's header (a cross-site script cannot without a preflight,
/// and no CORS headers are ever sent), a loopback `Host` (a page whose name was rebound to
/// 127.0.0.1 sends its own), and an `Origin`, when the browser sends one, naming that host.
fn same_origin_console(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let json = text(header::CONTENT_TYPE.as_str())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::expects_json());
    }
    if text(CONSOLE_HEADER).is_none() {
        return Err(ApiError::forbidden(format!(
            "a replay needs the {CONSOLE_HEADER} header; see docs/console.md"
        )));
    }
    let host = text(header::HOST.as_str()).unwrap_or("");
    if !is_loopback_host(host) {
        return Err(ApiError::forbidden(
            "a replay is served only to a loopback Host (127.0.0.1, localhost, [::1])",
        ));
    }
    if let Some(origin) = text(header::ORIGIN.as_str())
        && origin != format!("http://{host}")
    {
        return Err(ApiError::forbidden(
            "a replay must come from the console's own origin",
        ));
    }
    Ok(())
}

/// `127.0.0.1:port`, `localhost:port` or `[::1]:port` (the port is optional).
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

#[derive(Serialize)]
struct Progress {
    /// The previous day, then the current one, in the pipeline's time zone.
    days: Vec<DayProgress>,
}

/// `GET /api/progress`: the end of day's progress for the current and the previous day.
pub async fn progress(State(app): State<App>) -> Result<Response, ApiError> {
    let pipeline = &app.pipeline;
    let now = pipeline.ports.clock.now();
    let today = now
        .with_timezone(&pipeline.settings.calendar.tz())
        .date_naive();
    let mut days = Vec::with_capacity(2);
    for day in [today.pred_opt().unwrap_or(today), today] {
        days.push(pipeline.day_progress(day).await?);
    }
    Ok(Json(Progress { days }).into_response())
}

#[derive(Deserialize)]
pub struct SeriesDaysQuery {
    series: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/summaries/days?series=&from=&to=`: one series' rows over a range of days, each
/// with the day's summarize state while the store keeps it (pending, epoch).
pub async fn series_days(
    State(app): State<App>,
    Query(query): Query<SeriesDaysQuery>,
) -> Result<Response, ApiError> {
    let series = query
        .series
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("series is required"))?;
    let series = SeriesId::parse(&series).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let day = |name: &str, value: Option<String>| {
        let value = value.ok_or_else(|| ApiError::bad_request(format!("{name} is required")))?;
        value
            .parse::<NaiveDate>()
            .map_err(|_| ApiError::bad_request(format!("{name} {value:?} is not YYYY-MM-DD")))
    };
    let from = day("from", query.from)?;
    let to = day("to", query.to)?;
    match app.pipeline.series_days(&series, from, to).await {
        Ok(days) => Ok(Json(days).into_response()),
        Err(RangeError::Port(e)) => Err(e.into()),
        Err(invalid @ RangeError::Invalid { .. }) => {
            Err(ApiError::bad_request(invalid.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        for host in [
            "127.0.0.1:7071",
            "localhost:7071",
            "[::1]:7071",
            "127.0.0.1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in ["evil.example:7071", "127.0.0.1.evil.example", "", "[::2]:1"] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
