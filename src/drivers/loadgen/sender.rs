//! Sends a workload's requests to an ingest endpoint, a bounded number in flight, optionally paced
//! to an offered rate, and tallies what came back: items accepted and rejected (as the replies
//! count them), errors by kind, and the latency of every request in an HDR histogram.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde_json::Value;
use tokio::task::JoinSet;

use super::workload::{ItemCounts, Pass, Request};

/// The slowest latency the histogram tells apart (longer ones are recorded as this), in µs.
const LATENCY_CEILING_US: u64 = 3_600_000_000;

/// Where requests go, and how they authenticate.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    /// `{base}/api/ingest`.
    pub ingest: String,
    /// A Function App's function key, sent as `x-functions-key` (never printed).
    pub functions_key: Option<String>,
}

impl Target {
    /// A request to `url` with the function key, when there is one.
    pub fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.authorized(self.client.get(url))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.functions_key {
            Some(key) => request.header("x-functions-key", key),
            None => request,
        }
    }
}

/// A run of consecutive requests of one pass, sent at one offered rate.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: &'static str,
    pub pass: Pass,
    pub requests: Range<usize>,
    /// Observations per second to offer; `None`: as fast as the concurrency allows.
    pub rate: Option<f64>,
}

/// What came back for a set of requests.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Requests sent (second-pass slots with nothing to repeat are not requests).
    pub requests: u64,
    pub items: ItemCounts,
    /// Items the replies counted as accepted.
    pub accepted: u64,
    /// Queue messages the replies said the accepted items were packed into.
    pub messages: u64,
    /// Items of answered requests that were not accepted.
    pub rejected: u64,
    /// Of those, the ones refused because their day is closed.
    pub rejected_closed: u64,
    /// Items of requests that got no reply counting them (transport errors, 5xx, …).
    pub unanswered: u64,
    /// Failed requests by kind (`http 503`, `timeout`, `connect`, …).
    pub errors: BTreeMap<String, u64>,
    /// Request latencies in microseconds. A paced request's latency runs from when it was due,
    /// so time spent waiting for a free slot counts (no coordinated omission).
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            requests: 0,
            items: ItemCounts::default(),
            accepted: 0,
            messages: 0,
            rejected: 0,
            rejected_closed: 0,
            unanswered: 0,
            errors: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, LATENCY_CEILING_US, 3)
                .expect("constant histogram bounds are valid"),
            elapsed: Duration::ZERO,
        }
    }
}

impl Tally {
    /// Adds `other`'s counts; elapsed times add up (segments run one after another).
    pub fn merge(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.items.add(&other.items);
        self.accepted += other.accepted;
        self.messages += other.messages;
        self.rejected += other.rejected;
        self.rejected_closed += other.rejected_closed;
        self.unanswered += other.unanswered;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.latency
            .add(&other.latency)
            .expect("histograms of one run share their bounds");
        self.elapsed += other.elapsed;
    }

    fn record(&mut self, answer: Answer) {
        self.requests += 1;
        self.items.add(&answer.items);
        self.latency
            .saturating_record(answer.latency.as_micros().min(u128::from(u64::MAX)) as u64);
        match answer.outcome {
            Ok(counted) => {
                self.accepted += counted.accepted;
                self.messages += counted.messages;
                self.rejected += answer.items.items.saturating_sub(counted.accepted);
                self.rejected_closed += counted.closed;
            }
            Err(kind) => {
                self.unanswered += answer.items.items;
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }
}

/// What one reply counted.
struct Counted {
    accepted: u64,
    /// Queue messages the target packed them into (0 when the reply does not say).
    messages: u64,
    closed: u64,
}

struct Answer {
    items: ItemCounts,
    latency: Duration,
    /// The reply's counts, or the kind of failure.
    outcome: Result<Counted, String>,
}

/// Sends `segment`'s requests, built on the way or before, with at most `concurrency` in
/// flight (`None`: a second-pass slot with nothing to repeat).
pub async fn send_segment(
    target: &Target,
    requests: impl Iterator<Item = Option<Request>>,
    segment: &Segment,
    concurrency: usize,
    progress: &ProgressBar,
) -> anyhow::Result<Tally> {
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut in_flight = JoinSet::new();
    let mut offered_items = 0u64;
    for request in requests {
        progress.inc(1);
        let Some(request) = request else {
            continue;
        };
        let due = segment
            .rate
            .map(|rate| started + Duration::from_secs_f64(offered_items as f64 / rate));
        offered_items += request.items.items;
        while in_flight.len() >= concurrency.max(1) {
            let answer = in_flight.join_next().await.context("a request in flight")?;
            tally.record(answer.context("a request task")?);
        }
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let target = target.clone();
        in_flight.spawn(async move {
            let sent = due.unwrap_or_else(Instant::now);
            let outcome = send_one(&target, request.body).await;
            Answer {
                items: request.items,
                latency: sent.elapsed(),
                outcome,
            }
        });
    }
    while let Some(answer) = in_flight.join_next().await {
        tally.record(answer.context("a request task")?);
    }
    tally.elapsed = started.elapsed();
    Ok(tally)
}

/// POSTs one NDJSON body; the reply's counts, or the kind of failure.
async fn send_one(target: &Target, body: String) -> Result<Counted, String> {
    let request = target
        .authorized(target.client.post(&target.ingest))
        .header("content-type", "application/x-ndjson")
        .body(body);
    let response = request.send().await.map_err(|e| transport_kind(&e))?;
    let status = response.status().as_u16();
    // 422: every item was rejected, which is an answer like any other here.
    if status != 200 && status != 422 {
        return Err(format!("http {status}"));
    }
    let reply: Value = response.json().await.map_err(|e| transport_kind(&e))?;
    let accepted = reply["accepted"]
        .as_u64()
        .ok_or_else(|| "reply without `accepted`".to_string())?;
    Ok(Counted {
        accepted,
        messages: reply["messages"].as_u64().unwrap_or(0),
        closed: closed_rejections(&reply),
    })
}

/// How many of a reply's rejections name a closed day. A reply that counts its rejections by
/// reason (a map of reason to count, next to a list cut short) is read by its counts; otherwise
/// the listed rejections are counted.
fn closed_rejections(reply: &Value) -> u64 {
    let closed = |reason: &str| reason.contains("closed");
    let by_reason = reply.as_object().into_iter().flatten().find_map(|(_, v)| {
        let counts = v.as_object()?;
        (!counts.is_empty() && counts.values().all(Value::is_u64)).then_some(counts)
    });
    match by_reason {
        Some(counts) => counts
            .iter()
            .filter(|(reason, _)| closed(reason))
            .filter_map(|(_, n)| n.as_u64())
            .sum(),
        None => reply["rejected"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["reason"].as_str().is_some_and(closed))
            .count() as u64,
    }
}

fn transport_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_decode() {
        "unreadable reply"
    } else {
        "transport"
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn closed_rejections_are_counted_from_the_list_or_from_counts_by_reason() {
        let listed = json!({"accepted": 1, "rejected": [
            {"index": 0, "reason": "day 2026-11-12 closed at 2026-11-14T00:00:00Z"},
            {"index": 1, "reason": "value is missing"},
        ]});
        assert_eq!(closed_rejections(&listed), 1);
        let counted = json!({"accepted": 1, "rejected": [],
            "rejected_by_reason": {"day closed": 250, "value is missing": 3}});
        assert_eq!(closed_rejections(&counted), 250);
        assert_eq!(closed_rejections(&json!({"accepted": 3})), 0);
    }
}
