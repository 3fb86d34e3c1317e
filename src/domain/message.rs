//! The bodies Eventide puts on its two queues.
//!
//! Ingest packs each series' observations into a compact chunk,
//! `{"eventide":1,"series":"…","stamp":…,"points":[[ts_ns,value],…]}`, which `process` decodes
//! several times faster than full observation objects (the series is validated once per chunk,
//! timestamps are integers). Any other producer may put a message in one of ingest's public JSON
//! forms on the observations queue; [`decode_observations_message`] accepts both and validates
//! the public forms item by item. `source`, `unit` and `tags` are validated at ingest but not
//! carried past it: the series-day documents and the daily summary have no place for them.
//!
//! A chunk's MessageId is a digest of the whole chunk — series, stamp and points — so it names
//! one write: a request sent again with the same stamp (a retry under its idempotency key)
//! yields the same ids and the queue's duplicate detection drops the copy, while a new request
//! with the same content has a new stamp and is a new write. The stamp leads the id, in fixed-width
//! hex: stamps follow the clock, so the ids a duplicate-detection index remembers arrive in
//! order and land on its last pages instead of on a random page each (the embedded queue's
//! index took a random page per message, most of what a small message cost to send).

use std::collections::HashMap;
use std::io::Write as _;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::observation::{Observation, format_ts};
use super::parse::{BodyError, BodyFormat, Rejection, parse_body};
use super::series::SeriesId;
use super::series_day::SeriesDayKey;

/// Largest chunk body. Service Bus Standard caps a message at 256 KB including its properties,
/// so the body keeps a margin for them.
pub const MAX_CHUNK_BYTES: usize = 250_000;

/// The first bytes of every compact chunk, and the version of its layout.
const CHUNK_PREFIX: &[u8] = b"{\"eventide\":1,";

/// One message for the observations queue: observations of a single series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub series: SeriesId,
    pub message_id: String,
    pub body: Vec<u8>,
    pub observations: usize,
}

/// Groups observations per series and packs each series into chunks of at most `max_bytes`.
///
/// Within one request the last occurrence of a `(series, ts)` wins, like a correction sent later
/// would. Chunks come out ordered by series, then by time, so the same request with the same
/// stamp always yields the same chunks and the same MessageIds.
pub fn chunk_observations(
    observations: Vec<Observation>,
    stamp: i64,
    max_bytes: usize,
) -> Vec<Chunk> {
    let mut groups = SeriesGroups::default();
    for obs in observations {
        groups.add(obs);
    }
    chunk_groups(groups, stamp, max_bytes)
}

/// A request's points grouped per series as they are accepted: 16 bytes a point, where a
/// whole [`Observation`] (with its labels and tags, which are not kept) is several times that.
#[derive(Debug, Default)]
pub struct SeriesGroups {
    per_series: HashMap<SeriesId, Vec<TimedValue>>,
    points: usize,
}

impl SeriesGroups {
    pub fn add(&mut self, obs: Observation) {
        self.points += 1;
        self.per_series
            .entry(obs.series)
            .or_default()
            .push(TimedValue {
                ts: obs.ts,
                value: obs.value,
            });
    }

    /// Points added.
    pub fn points(&self) -> usize {
        self.points
    }
}

/// [`chunk_observations`] for points already grouped.
pub fn chunk_groups(groups: SeriesGroups, stamp: i64, max_bytes: usize) -> Vec<Chunk> {
    let per_series = groups.per_series;
    let mut per_series: Vec<SeriesPoints> = per_series
        .into_iter()
        .map(|(series, points)| SeriesPoints { series, points })
        .collect();
    per_series.sort_unstable_by(|a, b| a.series.cmp(&b.series));
    let mut chunks = Vec::new();
    for SeriesPoints { series, mut points } in per_series {
        // A stable sort keeps request order among equal timestamps; the last one wins.
        points.sort_by_key(|p| p.ts);
        points.dedup_by(|later, earlier| {
            if later.ts == earlier.ts {
                *earlier = *later;
                true
            } else {
                false
            }
        });
        let head = chunk_head(&series, stamp);
        let mut items: Vec<u8> = Vec::new();
        let mut count = 0;
        let mut encoded = Vec::with_capacity(48);
        for TimedValue { ts, value } in points {
            encoded.clear();
            write!(encoded, "[{ts},").expect("writing to a Vec");
            serde_json::to_writer(&mut encoded, &value).expect("finite values serialize");
            encoded.push(b']');
            let projected = head.len() + items.len() + 1 + encoded.len() + 2;
            if count > 0 && projected > max_bytes {
                chunks.push(seal(&series, stamp, &head, &items, count));
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
            chunks.push(seal(&series, stamp, &head, &items, count));
        }
    }
    chunks
}

fn chunk_head(series: &SeriesId, stamp: i64) -> Vec<u8> {
    let mut head = CHUNK_PREFIX.to_vec();
    head.extend_from_slice(b"\"series\":");
    serde_json::to_writer(&mut head, series).expect("strings serialize");
    write!(head, ",\"stamp\":{stamp},\"points\":[").expect("writing to a Vec");
    head
}

/// Closes a chunk and names it by its stamp and a digest of its whole body: the head holds the
/// series and the stamp, so the id changes with either and with any point.
fn seal(series: &SeriesId, stamp: i64, head: &[u8], items: &[u8], count: usize) -> Chunk {
    let mut body = Vec::with_capacity(head.len() + items.len() + 2);
    body.extend_from_slice(head);
    body.extend_from_slice(items);
    body.extend_from_slice(b"]}");
    Chunk {
        series: series.clone(),
        message_id: format!("obs-{:016x}-{}", stamp as u64, digest_hex(&body)),
        body,
        observations: count,
    }
}

/// The first 20 bytes of a SHA-256 digest in hex: 40 characters that name a content.
fn digest_hex(content: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(40);
    for b in &Sha256::digest(content)[..20] {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    hex
}

/// The longest MessageId Service Bus accepts, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 128;

/// One value of a series at one instant, as a message carries it (a chunk writes it as the
/// pair `[ts, value]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(from = "(i64, f64)")]
pub struct TimedValue {
    /// Nanoseconds since the Unix epoch, UTC.
    pub ts: i64,
    pub value: f64,
}

impl From<(i64, f64)> for TimedValue {
    fn from((ts, value): (i64, f64)) -> Self {
        Self { ts, value }
    }
}

/// The valid points of one series in a message.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    pub series: SeriesId,
    pub points: Vec<TimedValue>,
}

/// An observations message, decoded and validated.
#[derive(Debug, Default)]
pub struct DecodedMessage {
    /// The ingest stamp, for Eventide's own chunks.
    pub stamp: Option<i64>,
    pub series: Vec<SeriesPoints>,
    /// Items of a public-form message that failed validation.
    pub rejected: Vec<Rejection>,
}

impl DecodedMessage {
    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }
}

#[derive(Deserialize)]
struct CompactChunk<'a> {
    #[serde(borrow)]
    series: std::borrow::Cow<'a, str>,
    stamp: i64,
    points: Vec<TimedValue>,
}

/// Decodes an observations-queue message: a compact chunk from ingest, or any public JSON form.
pub fn decode_observations_message(body: &[u8]) -> Result<DecodedMessage, BodyError> {
    if body.starts_with(CHUNK_PREFIX) {
        let chunk: CompactChunk<'_> =
            serde_json::from_slice(body).map_err(|e| BodyError::Json(e.to_string()))?;
        let series =
            SeriesId::parse(&chunk.series).map_err(|e| BodyError::Invalid(e.to_string()))?;
        return Ok(DecodedMessage {
            stamp: Some(chunk.stamp),
            series: vec![SeriesPoints {
                series,
                points: chunk.points,
            }],
            rejected: Vec::new(),
        });
    }
    let parsed = parse_body(BodyFormat::Json, body)?;
    let mut index: HashMap<SeriesId, usize> = HashMap::new();
    let mut series: Vec<SeriesPoints> = Vec::new();
    for obs in parsed.accepted {
        let slot = *index.entry(obs.series.clone()).or_insert_with(|| {
            series.push(SeriesPoints {
                series: obs.series.clone(),
                points: Vec::new(),
            });
            series.len() - 1
        });
        series[slot].points.push(TimedValue {
            ts: obs.ts,
            value: obs.value,
        });
    }
    Ok(DecodedMessage {
        stamp: parsed.stamp,
        series,
        rejected: parsed.rejected,
    })
}

/// Points of one series in ingest's public JSON form, an array of observations: what an
/// operator reads, and what `eventide backfill` or a replay takes back.
pub fn public_form(series: &SeriesId, points: &[TimedValue]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = points
        .iter()
        .map(|p| serde_json::json!({"series": series, "ts": format_ts(p.ts), "value": p.value}))
        .collect();
    serde_json::to_vec(&items).expect("finite values serialize")
}

/// The request to summarize one series-day at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarizeRequest {
    /// Validated when the body is decoded, like every series entering the process.
    pub series: SeriesId,
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

    /// `summarize:{series}:{day}:{epoch}`, which an operator can read. A 100-character series
    /// name at epoch 1,000,000 or later would make it longer than a MessageId may be; such an
    /// id is `summarize-sha256:{digest of the readable id}` instead, as unique and as stable.
    pub fn message_id(&self) -> String {
        let readable = format!("summarize:{}:{}:{}", self.series, self.day, self.epoch);
        if readable.chars().count() <= MAX_MESSAGE_ID_CHARS {
            return readable;
        }
        format!("summarize-sha256:{}", digest_hex(readable.as_bytes()))
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
    use std::collections::BTreeMap;

    fn obs(series: &str, minute: i64, value: f64) -> Observation {
        Observation {
            series: SeriesId::parse(series).unwrap(),
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
            .map(|i| {
                obs(
                    if i % 2 == 0 { "a" } else { "b" },
                    i,
                    i as f64 * 0.1 - 7e-300,
                )
            })
            .collect();
        let chunks = chunk_observations(input.clone(), 42, 8_000);
        assert!(chunks.len() > 2);
        let mut decoded = Vec::new();
        for chunk in &chunks {
            assert!(chunk.body.len() <= 8_000, "{} bytes", chunk.body.len());
            let message = decode_observations_message(&chunk.body).unwrap();
            assert!(message.rejected.is_empty());
            assert_eq!(message.stamp, Some(42));
            assert_eq!(message.series.len(), 1);
            assert_eq!(message.series[0].series, chunk.series);
            assert_eq!(message.point_count(), chunk.observations);
            decoded.extend(
                message.series[0]
                    .points
                    .iter()
                    .map(|p| (chunk.series.clone(), p.ts, p.value)),
            );
        }
        decoded.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut want: Vec<_> = input
            .into_iter()
            .map(|o| (o.series, o.ts, o.value))
            .collect();
        want.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        assert_eq!(decoded, want, "every value round-trips exactly");
    }

    #[test]
    fn message_ids_follow_content_and_stamp() {
        let a = chunk_observations(vec![obs("a", 1, 1.0)], 1, MAX_CHUNK_BYTES);
        let again = chunk_observations(vec![obs("a", 1, 1.0)], 1, MAX_CHUNK_BYTES);
        let b = chunk_observations(vec![obs("a", 1, 1.0)], 2, MAX_CHUNK_BYTES);
        let c = chunk_observations(vec![obs("a", 1, 2.0)], 1, MAX_CHUNK_BYTES);
        let d = chunk_observations(vec![obs("b", 1, 1.0)], 1, MAX_CHUNK_BYTES);
        assert_eq!(a, again, "the same write yields the same chunk");
        assert_ne!(
            a[0].message_id, b[0].message_id,
            "a new write of the same content"
        );
        assert_ne!(a[0].message_id, c[0].message_id);
        assert_ne!(a[0].message_id, d[0].message_id);
        assert!(a[0].message_id.len() <= 128);
    }

    #[test]
    fn last_occurrence_in_a_request_wins() {
        let chunks = chunk_observations(
            vec![obs("a", 1, 1.0), obs("a", 1, 5.0), obs("a", 0, 3.0)],
            1,
            MAX_CHUNK_BYTES,
        );
        let message = decode_observations_message(&chunks[0].body).unwrap();
        let t0 = 1_764_028_800_000_000_000;
        assert_eq!(
            message.series[0].points,
            vec![
                TimedValue { ts: t0, value: 3.0 },
                TimedValue {
                    ts: t0 + 60_000_000_000,
                    value: 5.0
                }
            ]
        );
    }

    #[test]
    fn public_forms_are_decoded_and_validated_item_by_item() {
        let body = br#"[{"series":"a","ts":"2026-11-25T00:00:00Z","value":1},{"series":"b","ts":"2026-11-25T00:00:00Z","value":"x"},{"series":"a","ts":"2026-11-25T00:01:00Z","value":2}]"#;
        let message = decode_observations_message(body).unwrap();
        assert_eq!(message.stamp, None);
        assert_eq!(message.series.len(), 1);
        assert_eq!(message.point_count(), 2);
        assert_eq!(message.rejected[0].index, 1);
    }

    #[test]
    fn the_public_form_decodes_to_the_same_points() {
        let series = SeriesId::parse("plant-1/temp").unwrap();
        let points = vec![
            TimedValue {
                ts: i64::MIN,
                value: -0.5,
            },
            TimedValue {
                ts: 1_764_028_800_123_456_789,
                value: 1e300,
            },
        ];
        let decoded = decode_observations_message(&public_form(&series, &points)).unwrap();
        assert!(decoded.rejected.is_empty());
        assert_eq!(decoded.series, vec![SeriesPoints { series, points }]);
    }

    #[test]
    fn a_broken_chunk_fails_as_a_whole() {
        let bad_series = br#"{"eventide":1,"series":"a b","stamp":1,"points":[[1,2.0]]}"#;
        assert!(
            decode_observations_message(bad_series)
                .unwrap_err()
                .to_string()
                .contains("series contains")
        );
        let bad_point = br#"{"eventide":1,"series":"a","stamp":1,"points":[[1,"x"]]}"#;
        assert!(matches!(
            decode_observations_message(bad_point),
            Err(BodyError::Json(_))
        ));
    }

    #[test]
    fn summarize_message_ids_stay_within_the_limit_and_distinct() {
        let longest =
            SeriesId::parse(&"é".repeat(crate::domain::series::MAX_SERIES_CHARS)).unwrap();
        let key = SeriesDayKey::new(longest, "2262-04-11".parse().unwrap());
        let readable = SummarizeRequest::new(&key, 999_999).message_id();
        assert!(readable.starts_with("summarize:éé"), "{readable}");
        assert_eq!(readable.chars().count(), MAX_MESSAGE_ID_CHARS);
        let high = SummarizeRequest::new(&key, u32::MAX).message_id();
        let next = SummarizeRequest::new(&key, u32::MAX - 1).message_id();
        assert!(high.starts_with("summarize-sha256:"), "{high}");
        assert!(high.chars().count() <= MAX_MESSAGE_ID_CHARS);
        assert_ne!(high, next, "each epoch has its own id");
        assert_eq!(high, SummarizeRequest::new(&key, u32::MAX).message_id());
    }

    #[test]
    fn summarize_request_round_trips() {
        let key = SeriesDayKey::new(
            SeriesId::parse("plant-1/temp").unwrap(),
            "2026-11-25".parse().unwrap(),
        );
        let req = SummarizeRequest::new(&key, 3);
        assert_eq!(req.message_id(), "summarize:plant-1/temp:2026-11-25:3");
        assert_eq!(SummarizeRequest::from_body(&req.to_body()).unwrap(), req);
        assert!(SummarizeRequest::from_body(b"{}").is_err());
        let bad_series = br#"{"series":"a b","day":"2026-11-25","epoch":1}"#;
        let reason = SummarizeRequest::from_body(bad_series).unwrap_err();
        assert!(reason.contains("series contains ' '"), "{reason}");
    }
}
