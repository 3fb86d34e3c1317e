//! The bodies Eventide puts on its two queues.
//!
//! Observation chunks use the public wrapper form `{"observations": [...]}` plus the ingest stamp,
//! so Eventide's own messages and any other producer's go through the same decoder. Their
//! MessageId is derived from the content (not the stamp), so a request that is sent twice yields
//! the same ids and the queue's duplicate detection drops the copy.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::observation::{Observation, format_ts};
use super::series_day::SeriesDayKey;

/// Largest chunk body. Service Bus Standard caps a message at 256 KB including its properties,
/// so the body keeps a margin for them.
pub const MAX_CHUNK_BYTES: usize = 250_000;

/// One message for the observations queue: observations of a single series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub series: String,
    pub message_id: String,
    pub body: Vec<u8>,
    pub observations: usize,
}

#[derive(Serialize)]
struct WireObservation<'a> {
    series: &'a str,
    ts: String,
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: &'a BTreeMap<String, String>,
}

/// Groups observations per series and packs each series into chunks of at most `max_bytes`.
///
/// Within one request the last occurrence of a `(series, ts)` wins, like a correction sent later
/// would. Chunks come out ordered by series, then by time, so the same request always yields the
/// same chunks and the same MessageIds.
pub fn chunk_observations(
    observations: Vec<Observation>,
    stamp: i64,
    max_bytes: usize,
) -> Vec<Chunk> {
    let mut per_series: BTreeMap<String, BTreeMap<i64, Observation>> = BTreeMap::new();
    for obs in observations {
        per_series
            .entry(obs.series.clone())
            .or_default()
            .insert(obs.ts, obs);
    }
    let head = format!("{{\"stamp\":{stamp},\"observations\":[");
    let tail = "]}";
    let mut chunks = Vec::new();
    for (series, points) in per_series {
        let mut items: Vec<u8> = Vec::new();
        let mut count = 0;
        for obs in points.values() {
            let encoded = serde_json::to_vec(&WireObservation {
                series: &obs.series,
                ts: format_ts(obs.ts),
                value: obs.value,
                source: obs.source.as_deref(),
                unit: obs.unit.as_deref(),
                tags: &obs.tags,
            })
            .expect("observations always serialize");
            let projected = head.len() + items.len() + 1 + encoded.len() + tail.len();
            if count > 0 && projected > max_bytes {
                chunks.push(seal(&series, &head, &items, count));
                items.clear();
                count = 0;
            }
            if count > 0 {
                items.push(b',');
            }
            items.extend_from_slice(&encoded);
            count += 1;
        }
        if count > 0 {
            chunks.push(seal(&series, &head, &items, count));
        }
    }
    chunks
}

fn seal(series: &str, head: &str, items: &[u8], count: usize) -> Chunk {
    let digest = Sha256::digest(items);
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    let mut body = Vec::with_capacity(head.len() + items.len() + 2);
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(items);
    body.extend_from_slice(b"]}");
    Chunk {
        series: series.to_string(),
        message_id: format!("obs-{hex}"),
        body,
        observations: count,
    }
}

/// The request to summarize one series-day at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarizeRequest {
    pub series: String,
    pub day: NaiveDate,
    pub epoch: u32,
}

impl SummarizeRequest {
    pub fn new(key: &SeriesDayKey, epoch: u32) -> Self {
        Self {
            series: key.series.clone(),
            day: key.day,
            epoch,
        }
    }

    pub fn key(&self) -> SeriesDayKey {
        SeriesDayKey::new(self.series.clone(), self.day)
    }

    /// `summarize:{series}:{day}:{epoch}` — at most 128 characters for any valid series name.
    pub fn message_id(&self) -> String {
        format!("summarize:{}:{}:{}", self.series, self.day, self.epoch)
    }

    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("summarize requests always serialize")
    }

    pub fn from_body(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body).map_err(|e| format!("not a summarize request: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse::{BodyFormat, parse_body};

    fn obs(series: &str, minute: i64, value: f64) -> Observation {
        Observation {
            series: series.into(),
            ts: 1_764_028_800_000_000_000 + minute * 60_000_000_000,
            value,
            source: None,
            unit: None,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn chunks_are_per_series_bounded_and_decodable() {
        let input: Vec<_> = (0..3000)
            .map(|i| obs(if i % 2 == 0 { "a" } else { "b" }, i, i as f64 * 0.1))
            .collect();
        let chunks = chunk_observations(input, 42, 8_000);
        assert!(chunks.len() > 2);
        let mut total = 0;
        for chunk in &chunks {
            assert!(chunk.body.len() <= 8_000, "{} bytes", chunk.body.len());
            let parsed = parse_body(BodyFormat::Json, &chunk.body).unwrap();
            assert!(parsed.rejected.is_empty());
            assert_eq!(parsed.stamp, Some(42));
            assert!(parsed.accepted.iter().all(|o| o.series == chunk.series));
            assert_eq!(parsed.accepted.len(), chunk.observations);
            total += chunk.observations;
        }
        assert_eq!(total, 3000);
    }

    #[test]
    fn message_ids_follow_content_not_stamp() {
        let a = chunk_observations(vec![obs("a", 1, 1.0)], 1, MAX_CHUNK_BYTES);
        let b = chunk_observations(vec![obs("a", 1, 1.0)], 2, MAX_CHUNK_BYTES);
        let c = chunk_observations(vec![obs("a", 1, 2.0)], 1, MAX_CHUNK_BYTES);
        assert_eq!(a[0].message_id, b[0].message_id);
        assert_ne!(a[0].message_id, c[0].message_id);
        assert!(a[0].message_id.len() <= 128);
    }

    #[test]
    fn last_occurrence_in_a_request_wins() {
        let chunks =
            chunk_observations(vec![obs("a", 1, 1.0), obs("a", 1, 5.0)], 1, MAX_CHUNK_BYTES);
        let parsed = parse_body(BodyFormat::Json, &chunks[0].body).unwrap();
        assert_eq!(parsed.accepted.len(), 1);
        assert_eq!(parsed.accepted[0].value, 5.0);
    }

    #[test]
    fn summarize_request_round_trips() {
        let key = SeriesDayKey::new("plant-1/temp", "2026-11-25".parse().unwrap());
        let req = SummarizeRequest::new(&key, 3);
        assert_eq!(req.message_id(), "summarize:plant-1/temp:2026-11-25:3");
        assert_eq!(SummarizeRequest::from_body(&req.to_body()).unwrap(), req);
        assert!(SummarizeRequest::from_body(b"{}").is_err());
    }
}
