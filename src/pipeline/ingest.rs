//! `ingest`: validate a body item by item, chunk the valid observations per series and send the
//! chunks to the observations queue. An observation for a closed day (see `domain::lateness`)
//! is rejected like an invalid one, with the reason.
//!
//! Every request is its own write: it gets a stamp no earlier request of this process had, and
//! its chunks' MessageIds follow that stamp, so a request that repeats an earlier one's content
//! is applied again instead of being dropped as a duplicate. A client that retries names its
//! request with an `Idempotency-Key`; every attempt under the key then carries the stamp of the
//! first one, so the retry yields the same chunks — dropped by duplicate detection, or merged as
//! a no-op once the queue has forgotten them — and never undoes a later write.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use tracing::Instrument as _;

use crate::domain::idempotency::{IdempotencyKey, fingerprint};
use crate::domain::message::{SeriesGroups, chunk_groups};
use crate::domain::observation::{Invalid, Observation};
use crate::domain::parse::{
    BodyError, BodyFormat, ParseRules, ParsedBody, Rejection, parse_body_each,
};
use crate::domain::series::SeriesId;
use crate::domain::series_day::stamp_at;
use crate::telemetry::{TraceContext, adopt_or_link};

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{KeyRecord, OutgoingMessage, PortError};

/// Rejected items a reply lists with their reasons; the rest are only counted by class, so a
/// body of millions of bad items gets a small reply.
pub const MAX_DETAILED_REJECTIONS: usize = 100;

/// Distinct series one request may write: each series becomes at least one queue message, so
/// this bounds the messages a request can cost. Items of further series are rejected (class
/// `series_limit`).
pub const MAX_SERIES_PER_REQUEST: usize = 10_000;

/// One ingest request.
#[derive(Debug, Clone, Copy)]
pub struct IngestRequest<'a> {
    pub format: BodyFormat,
    pub body: &'a [u8],
    /// The client's name for the request, the same on every retry of it.
    pub key: Option<&'a IdempotencyKey>,
    /// The caller's trace context (its `traceparent` header): the request's span continues
    /// that trace.
    pub parent: Option<&'a TraceContext>,
}

/// What happened to one ingest request.
#[derive(Debug, serde::Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    /// The first [`MAX_DETAILED_REJECTIONS`] rejected items, with their reasons.
    pub rejected: Vec<Rejection>,
    /// Queue messages the accepted observations were packed into.
    pub messages: usize,
    /// Every rejected item, listed or not.
    pub rejected_count: usize,
    /// Every rejected item counted by the class of rule it broke.
    pub rejected_by_class: BTreeMap<&'static str, usize>,
}

/// Why a whole request failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body could not be read at all (400).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The key names an earlier request with another body (422): taking this one for its retry
    /// would drop it, taking it as new would break the promise the key makes.
    #[error("Idempotency-Key {0} was already used for a request with a different body")]
    KeyReused(IdempotencyKey),
    /// The queue or the key store could not take the request (503; the caller retries, and
    /// duplicate detection drops chunks that did get through).
    #[error(transparent)]
    Dependency(#[from] PortError),
}

/// Hands out ingest stamps: the current time in stamp units, but always later than the last
/// stamp handed out, so two requests of one process never share a stamp and the later one wins
/// every point they both hold (a shared stamp would leave it to the values' bits).
#[derive(Debug, Default)]
pub struct StampSequence {
    last: AtomicI64,
}

impl StampSequence {
    pub fn next(&self, now: DateTime<Utc>) -> i64 {
        let wanted = stamp_at(now);
        let previous = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(wanted.max(last + 1))
            })
            .expect("the update always applies");
        wanted.max(previous + 1)
    }
}

impl Pipeline {
    /// Ingests a request that has no idempotency key.
    pub async fn ingest(
        &self,
        format: BodyFormat,
        body: &[u8],
    ) -> Result<IngestReport, IngestError> {
        self.ingest_request(IngestRequest {
            format,
            body,
            key: None,
            parent: None,
        })
        .await
    }

    /// One span per request (a request in Application Insights), a child of the caller's
    /// trace context when it sent one; its counts are attributes, never its series or days.
    /// Every message it sends carries the span's context.
    pub async fn ingest_request(
        &self,
        request: IngestRequest<'_>,
    ) -> Result<IngestReport, IngestError> {
        let span = tracing::info_span!("ingest", otel.kind = "server", bytes = request.body.len());
        adopt_or_link(&span, request.parent);
        self.ingest_in_span(request).instrument(span).await
    }

    async fn ingest_in_span(
        &self,
        request: IngestRequest<'_>,
    ) -> Result<IngestReport, IngestError> {
        let now = self.ports.clock.now();
        let (parsed, groups) = self.parse_admitted(request.format, request.body, now)?;
        let accepted = groups.points();
        let mut stamp = self.stamps.next(now);
        if let (Some(key), true) = (request.key, accepted > 0) {
            let record = KeyRecord {
                key: key.clone(),
                fingerprint: fingerprint(request.format, request.body),
                stamp,
                first_seen: now,
            };
            let kept = self.ports.idempotency.claim(record.clone()).await?;
            if kept.fingerprint != record.fingerprint {
                return Err(IngestError::KeyReused(key.clone()));
            }
            stamp = kept.stamp;
        }
        let chunks = chunk_groups(groups, stamp, self.settings.max_chunk_bytes);
        let messages = chunks.len();
        let trace_context = TraceContext::current();
        let outgoing = chunks
            .into_iter()
            .map(|chunk| OutgoingMessage {
                message_id: chunk.message_id,
                session_id: None,
                body: chunk.body,
                scheduled_at: None,
                trace_context: trace_context.clone(),
            })
            .collect();
        if messages > 0 {
            self.ports.observations.send(outgoing).await?;
        }
        Metrics::add(&self.metrics.observations_accepted, accepted);
        for (class, rejected) in &parsed.rejections.by_class {
            self.metrics.reject(class, *rejected);
        }
        Metrics::add(&self.metrics.chunks_sent, messages);
        Ok(IngestReport {
            accepted,
            rejected: parsed.rejected,
            messages,
            rejected_count: parsed.rejections.total,
            rejected_by_class: parsed.rejections.by_class,
        })
    }

    /// Parses a body, admitting valid items whose day is open, up to
    /// [`MAX_SERIES_PER_REQUEST`] series, grouped per series as they come. (Synchronous, so
    /// that the rule's state is never held across an await.)
    fn parse_admitted(
        &self,
        format: BodyFormat,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(ParsedBody, SeriesGroups), BodyError> {
        let window = self.day_window(now);
        let calendar = self.settings.calendar;
        let series_seen: RefCell<HashSet<SeriesId>> = RefCell::default();
        let admit = |obs: &Observation| {
            if window.is_closed_at(obs.ts) {
                return Err(Invalid::new(
                    "closed_day",
                    window.refusal(calendar.day_of(obs.ts)),
                ));
            }
            let mut seen = series_seen.borrow_mut();
            if !seen.contains(&obs.series) {
                if seen.len() == MAX_SERIES_PER_REQUEST {
                    return Err(Invalid::new(
                        "series_limit",
                        format!(
                            "a request may write at most {MAX_SERIES_PER_REQUEST} series; send the others in another request"
                        ),
                    ));
                }
                seen.insert(obs.series.clone());
            }
            Ok(())
        };
        let rules = ParseRules {
            rule: &admit,
            detailed: MAX_DETAILED_REJECTIONS,
        };
        let mut groups = SeriesGroups::default();
        let parsed = parse_body_each(format, body, rules, &mut |obs| groups.add(obs))?;
        Ok((parsed, groups))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_repeat_and_follow_the_clock() {
        let stamps = StampSequence::default();
        let t: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
        let first = stamps.next(t);
        assert_eq!(first, stamp_at(t));
        assert_eq!(stamps.next(t), first + 1);
        assert_eq!(stamps.next(t - chrono::Duration::seconds(5)), first + 2);
        let later = t + chrono::Duration::seconds(1);
        assert_eq!(stamps.next(later), stamp_at(later));
    }
}
