//! The bodies Eventide puts on its two queues.
//!
//! Ingest packs a request's observations into compact chunks,
//! `{"eventide":2,"stamp":…,"runs":[{"series":"…","points":[[ts_ns,value],…]},…]}`: runs of
//! points, one per series, as many series as fit. `process` decodes a chunk several times faster
//! than full observation objects (each series is validated once per run, timestamps are
//! integers). Chunks of the first layout, `{"eventide":1,"series":"…","stamp":…,"points":[…]}`
//! (one series per chunk), are still decoded: a queue may hold them across an upgrade. Any other
//! producer may put a message in one of ingest's public JSON forms on the observations queue;
//! [`decode_observations_message`] accepts all of them and validates the public forms item by
//! item. `source`, `unit` and `tags` are validated at ingest but not carried past it: the
//! series-day documents and the daily summary have no place for them.
//!
//! **Why several series share a chunk.** A source that reports every series every few minutes
//! sends a few points per series per request; a chunk per series made each request a thousand
//! small messages, and every message costs the same queue work (and a billed Service Bus
//! operation) whatever its size. Packed, a request costs as many messages as its bytes need.
//! Nothing relies on a message holding one series: `process` merges per series-day across a
//! whole batch, and the queues are not session queues.
//!
//! A chunk's MessageId is a digest of the whole chunk — stamp, series and points — so it names
//! one write: a request sent again with the same stamp (a retry under its idempotency key)
//! yields the same chunks (series and points are packed in a fixed order) and the same ids, and
//! the queue's duplicate detection drops the copy, while a new request with the same content has
//! a new stamp and is a new write. The stamp leads the id, in fixed-width hex: stamps follow the
//! clock, so the ids a duplicate-detection index remembers arrive in order and land on its last
//! pages instead of on a random page each (the embedded queue's index took a random page per
//! message, most of what a small message cost to send).

use std::collections::HashMap;
use std::io::Write as _;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::observation::{Observation, format_ts};
use super::parse::{BodyError, BodyFormat, Rejection, parse_body};
use super::series::SeriesId;
use super::series_day::SeriesDayKey;

/// Largest chunk body. Service Bus bills a message in units of 64 KB, its properties included
/// (and caps one at 256 KB on Standard): a chunk fills one unit and leaves 2 KiB for its
/// properties, so it is one billed operation per send, receive and completion, and counting
/// messages counts what is billed.
pub const MAX_CHUNK_BYTES: usize = 62 * 1024;

/// The first bytes of every chunk ingest writes, and the version of its layout.
const CHUNK_PREFIX: &[u8] = b"{\"eventide\":2,";

/// The first bytes of a chunk of the first layout, one series per chunk.
const CHUNK_PREFIX_V1: &[u8] = b"{\"eventide\":1,";

/// One message for the observations queue: runs of points of one or more series.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub message_id: String,
    pub body: Vec<u8>,
    pub observations: usize,
}

/// Groups observations per series and packs them into chunks of at most `max_bytes`.
///
/// Within one request the last occurrence of a `(series, ts)` wins, like a correction sent later
/// would. Chunks hold series in order, each series' points in time order, so the same request
/// with the same stamp always yields the same chunks and the same MessageIds.
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
    let mut per_series: Vec<SeriesPoints> = groups
        .per_series
        .into_iter()
        .map(|(series, points)| SeriesPoints { series, points })
        .collect();
    per_series.sort_unstable_by(|a, b| a.series.cmp(&b.series));
    let mut packer = ChunkPacker::new(stamp, max_bytes);
    let mut encoded = Vec::with_capacity(48);
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
        let mut run_head = b"{\"series\":".to_vec();
        serde_json::to_writer(&mut run_head, &series).expect("strings serialize");
        run_head.extend_from_slice(b",\"points\":[");
        for TimedValue { ts, value } in points {
            encoded.clear();
            write!(encoded, "[{ts},").expect("writing to a Vec");
            serde_json::to_writer(&mut encoded, &value).expect("finite values serialize");
            encoded.push(b']');
            packer.push(&run_head, &encoded);
        }
        packer.end_run();
    }
    packer.finish()
}

/// Writes points into chunks, sealing one when the next point would not fit.
struct ChunkPacker {
    stamp: i64,
    max_bytes: usize,
    /// `{"eventide":2,"stamp":…,"runs":[`, the start of every chunk.
    head: Vec<u8>,
    /// The chunk being written, from its head on.
    body: Vec<u8>,
    /// Runs begun in the chunk being written.
    runs: usize,
    /// Points of the run being written, `None` when no run is open.
    run_points: Option<usize>,
    observations: usize,
    chunks: Vec<Chunk>,
}

/// What closes a run (`]}`) and then a chunk (`]}`).
const RUN_END: &[u8] = b"]}";
const CHUNK_END: &[u8] = b"]}";

impl ChunkPacker {
    fn new(stamp: i64, max_bytes: usize) -> Self {
        let mut head = CHUNK_PREFIX.to_vec();
        write!(head, "\"stamp\":{stamp},\"runs\":[").expect("writing to a Vec");
        Self {
            stamp,
            max_bytes,
            body: head.clone(),
            head,
            runs: 0,
            run_points: None,
            observations: 0,
            chunks: Vec::new(),
        }
    }

    /// Adds one encoded point to the run of the series `run_head` opens. A point that would
    /// take the chunk over `max_bytes` starts the next one (a chunk holds at least one point).
    fn push(&mut self, run_head: &[u8], point: &[u8]) {
        let opening = match self.run_points {
            Some(_) => 0,
            None => usize::from(self.runs > 0) + run_head.len(),
        };
        let separator = usize::from(self.run_points.is_some_and(|n| n > 0));
        let projected =
            self.body.len() + opening + separator + point.len() + RUN_END.len() + CHUNK_END.len();
        if self.observations > 0 && projected > self.max_bytes {
            let open_run = self.run_points.is_some();
            self.seal();
            if open_run {
                self.open_run(run_head);
            }
        }
        if self.run_points.is_none() {
            self.open_run(run_head);
        }
        if self.run_points.is_some_and(|n| n > 0) {
            self.body.push(b',');
        }
        self.body.extend_from_slice(point);
        self.run_points = self.run_points.map(|n| n + 1);
        self.observations += 1;
    }

    fn open_run(&mut self, run_head: &[u8]) {
        if self.runs > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(run_head);
        self.runs += 1;
        self.run_points = Some(0);
    }

    fn end_run(&mut self) {
        if self.run_points.take().is_some() {
            self.body.extend_from_slice(RUN_END);
        }
    }

    /// Closes the chunk being written and names it by its stamp and a digest of its whole body
    /// (which holds the stamp, the series and the points, so the id changes with any of them).
    fn seal(&mut self) {
        self.end_run();
        let mut body = std::mem::replace(&mut self.body, self.head.clone());
        body.extend_from_slice(CHUNK_END);
        self.chunks.push(Chunk {
            message_id: format!("obs-{:016x}-{}", self.stamp as u64, digest_hex(&body)),
            body,
            observations: self.observations,
        });
        self.runs = 0;
        self.observations = 0;
    }

    fn finish(mut self) -> Vec<Chunk> {
        if self.observations > 0 {
            self.seal();
        }
        self.chunks
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

/// A run of one series' points, as a chunk carries it.
#[derive(Deserialize)]
struct CompactRun<'a> {
    #[serde(borrow)]
    series: std::borrow::Cow<'a, str>,
    points: Vec<TimedValue>,
}

impl CompactRun<'_> {
    fn validated(self) -> Result<SeriesPoints, BodyError> {
        Ok(SeriesPoints {
            series: SeriesId::parse(&self.series).map_err(|e| BodyError::Invalid(e.to_string()))?,
            points: self.points,
        })
    }
}

/// A chunk as ingest writes it.
#[derive(Deserialize)]
struct CompactChunk<'a> {
    stamp: i64,
    #[serde(borrow)]
    runs: Vec<CompactRun<'a>>,
}

/// A chunk of the first layout: one series.
#[derive(Deserialize)]
struct CompactChunkV1<'a> {
    stamp: i64,
    #[serde(borrow)]
    series: std::borrow::Cow<'a, str>,
    points: Vec<TimedValue>,
}

/// Decodes an observations-queue message: a compact chunk from ingest (either layout), or any
/// public JSON form. A chunk is all or nothing: one run with an invalid series fails it whole.
pub fn decode_observations_message(body: &[u8]) -> Result<DecodedMessage, BodyError> {
    let json = |e: serde_json::Error| BodyError::Json(e.to_string());
    let compact = if body.starts_with(CHUNK_PREFIX) {
        let chunk: CompactChunk<'_> = serde_json::from_slice(body).map_err(json)?;
        Some((chunk.stamp, chunk.runs))
    } else if body.starts_with(CHUNK_PREFIX_V1) {
        let chunk: CompactChunkV1<'_> = serde_json::from_slice(body).map_err(json)?;
        let run = CompactRun {
            series: chunk.series,
            points: chunk.points,
        };
        Some((chunk.stamp, vec![run]))
    } else {
        None
    };
    if let Some((stamp, runs)) = compact {
        return Ok(DecodedMessage {
            stamp: Some(stamp),
            series: runs
                .into_iter()
                .map(CompactRun::validated)
                .collect::<Result<_, _>>()?,
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

    /// Every chunk's points as `(series, ts, value)`, checking each chunk on the way.
    fn unpack(chunks: &[Chunk], stamp: i64, max_bytes: usize) -> Vec<(SeriesId, i64, f64)> {
        let mut decoded = Vec::new();
        for chunk in chunks {
            assert!(chunk.body.len() <= max_bytes, "{} bytes", chunk.body.len());
            let message = decode_observations_message(&chunk.body).unwrap();
            assert!(message.rejected.is_empty());
            assert_eq!(message.stamp, Some(stamp));
            assert_eq!(message.point_count(), chunk.observations);
            for run in message.series {
                decoded.extend(
                    run.points
                        .iter()
                        .map(|p| (run.series.clone(), p.ts, p.value)),
                );
            }
        }
        decoded
    }

    #[test]
    fn chunks_pack_series_together_within_their_bound() {
        let input: Vec<_> = (0..3000)
            .map(|i| obs(&format!("s{}", i % 60), i, i as f64 * 0.1 - 7e-300))
            .collect();
        let chunks = chunk_observations(input.clone(), 42, 8_000);
        assert!(chunks.len() > 2);
        let mut decoded = unpack(&chunks, 42, 8_000);
        // A series' 50 points take about 2 kB: every chunk but the last holds several.
        for chunk in &chunks[..chunks.len() - 1] {
            let runs = decode_observations_message(&chunk.body).unwrap().series;
            assert!(runs.len() > 1, "{} runs", runs.len());
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
    fn a_request_of_many_small_series_is_a_few_full_chunks() {
        // W1's request: 1,000 series × 10 points.
        let input: Vec<_> = (0..10_000)
            .map(|i| {
                obs(
                    &format!("loadgen-{:05}", i % 1000),
                    i / 1000,
                    20.0 + i as f64 / 7.0,
                )
            })
            .collect();
        let chunks = chunk_observations(input, 7, MAX_CHUNK_BYTES);
        let bytes: usize = chunks.iter().map(|c| c.body.len()).sum();
        assert_eq!(
            chunks.len(),
            bytes.div_ceil(MAX_CHUNK_BYTES),
            "{bytes} bytes"
        );
        assert!(chunks.len() < 10, "{} chunks", chunks.len());
        assert_eq!(unpack(&chunks, 7, MAX_CHUNK_BYTES).len(), 10_000);
    }

    #[test]
    fn a_point_larger_than_the_bound_still_gets_a_chunk_of_its_own() {
        let chunks = chunk_observations(vec![obs("a", 0, 1.5), obs("b", 0, 2.5)], 1, 10);
        assert_eq!(chunks.len(), 2);
        assert_eq!(unpack(&chunks, 1, usize::MAX).len(), 2);
    }

    #[test]
    fn chunks_of_the_first_layout_still_decode() {
        let body =
            br#"{"eventide":1,"series":"plant-1/temp","stamp":9,"points":[[1,2.5],[2,-1e300]]}"#;
        let message = decode_observations_message(body).unwrap();
        assert_eq!(message.stamp, Some(9));
        assert_eq!(
            message.series,
            vec![SeriesPoints {
                series: SeriesId::parse("plant-1/temp").unwrap(),
                points: vec![(1, 2.5).into(), (2, -1e300).into()],
            }]
        );
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
        let bad_series =
            br#"{"eventide":2,"stamp":1,"runs":[{"series":"a","points":[[1,2.0]]},{"series":"a b","points":[[1,2.0]]}]}"#;
        assert!(
            decode_observations_message(bad_series)
                .unwrap_err()
                .to_string()
                .contains("series contains")
        );
        let bad_point = br#"{"eventide":2,"stamp":1,"runs":[{"series":"a","points":[[1,"x"]]}]}"#;
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
