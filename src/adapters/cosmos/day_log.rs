//! The day log (see `layout`): appending a batch's points of pending series-days, and
//! compacting a shard of a day's log into segments of each series before the day is read.
//!
//! Why: a trigger batch carries about ten points per series-day (one W1 message), so
//! rewriting a series-day's hour bucket for them costs a read and a replace (some 12 RU) per
//! ten points. One log document per shard and batch holds a dozen series-days, and a day's
//! compaction writes each series' points once, in a few segments.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use futures::future::try_join_all;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::client::CallError;
use super::codec;
use super::layout::{BucketDoc, LogDoc, LogEntry, Part, log_partition, log_shard, segment_id};
use super::store::{CosmosStore, NEVER};
use crate::domain::series::SeriesId;
use crate::domain::series_day::{Point, SeriesDayKey, normalize};
use azure_data_cosmos::{FeedScope, Query};

/// The largest log document or segment written, in bytes of JSON: large enough that the
/// properties every document carries are a small part of its charge, small enough that a
/// document is never near the 2 MB limit.
const MAX_DOC_BYTES: usize = 8 * 1024;
/// Points of one series-day per log entry at most, so one entry stays within
/// [`MAX_DOC_BYTES`] whatever a batch carries (13 bytes a point at worst, in base64).
const LOG_ENTRY_POINTS: usize = 512;

/// The points a merge appends for one series-day.
pub(super) struct Appended<'a> {
    pub key: &'a SeriesDayKey,
    pub points: &'a [Point],
}

/// One shard of one day's log: a partition of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct LogShard {
    day: NaiveDate,
    shard: u32,
}

impl LogShard {
    fn of(key: &SeriesDayKey, shards: u32) -> Self {
        Self {
            day: key.day,
            shard: log_shard(&key.series, shards),
        }
    }

    fn partition(self) -> String {
        log_partition(self.day, self.shard)
    }

    /// The shard a log partition key names (`None`: not one [`log_partition`] makes).
    fn parse(partition: &str) -> Option<Self> {
        let (day, shard) = partition.strip_prefix("~log/")?.split_once('/')?;
        Some(Self {
            day: day.parse().ok()?,
            shard: shard.parse().ok()?,
        })
    }
}

/// Waits for, then holds, one shard's turn to be compacted.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// Compactions under way in this process, one at a time per shard of a day. The summarize
/// loops of a tick read days of the same shards at once; a second compaction of a shard would
/// read its log again and write the same segments for nothing.
#[derive(Default)]
pub(super) struct Compactions(Mutex<HashMap<LogShard, Gate>>);

/// One shard's turn to be compacted; forgets the shard's gate when nobody else waits on it.
struct Turn<'a> {
    compactions: &'a Compactions,
    shard: LogShard,
    gate: Gate,
}

impl Compactions {
    async fn one_at_a_time<T>(&self, shard: LogShard, work: impl Future<Output = T>) -> T {
        let gate = self
            .0
            .lock()
            .expect("the compactions map is never left half-changed")
            .entry(shard)
            .or_default()
            .clone();
        let turn = Turn {
            compactions: self,
            shard,
            gate,
        };
        let _held = turn.gate.lock().await;
        work.await
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut gates = self
            .compactions
            .0
            .lock()
            .expect("the compactions map is never left half-changed");
        // The map's reference and this turn's: nobody else holds or waits for the gate.
        if Arc::strong_count(&self.gate) == 2 {
            gates.remove(&self.shard);
        }
    }
}

/// A log document as a compaction reads it.
#[derive(Deserialize)]
struct Logged {
    id: String,
    s: Vec<LogEntry>,
}

/// Series-days whose logged points cannot be decoded, each with the reason. Their log
/// documents stay in the log; every other series' points are compacted as usual.
pub(super) type Damaged = BTreeMap<SeriesDayKey, String>;

impl CosmosStore {
    /// Appends the points of pending series-days: one or more log documents per shard of each
    /// day, each written once under a fresh id. A create that reports a conflict found its own
    /// earlier attempt (a retry after a timeout), which wrote the same document.
    pub(super) async fn append_to_log(&self, appends: &[Appended<'_>]) -> Result<(), CallError> {
        let mut shards: BTreeMap<LogShard, Vec<&Appended<'_>>> = BTreeMap::new();
        for append in appends {
            shards
                .entry(LogShard::of(append.key, self.log_shards()))
                .or_default()
                .push(append);
        }
        let docs: Vec<LogDoc> = shards
            .into_iter()
            .flat_map(|(shard, appends)| log_docs(shard, &appends))
            .collect();
        try_join_all(
            docs.iter()
                .map(|doc| self.gateway().create(&doc.partition, &doc.id, doc)),
        )
        .await?;
        Ok(())
    }

    /// Compacts every shard of the logs of the days of `keys` that holds documents, so that
    /// reading those days afterwards finds every logged point in the series' own partitions,
    /// and answers the series-days whose logged points cannot be decoded.
    /// The shards are found by query, not by the shard count now configured: documents written
    /// under another count, or before the log was turned off, are compacted all the same.
    pub(super) async fn compact_logs_of(
        &self,
        keys: &[SeriesDayKey],
    ) -> Result<Damaged, CallError> {
        let days: BTreeSet<NaiveDate> = keys.iter().map(|key| key.day).collect();
        let logged = try_join_all(days.into_iter().map(|day| self.logged_shards(day))).await?;
        let shards: BTreeSet<LogShard> = logged.into_iter().flatten().collect();
        let damaged = try_join_all(
            shards
                .into_iter()
                .map(|shard| self.compactions().one_at_a_time(shard, self.compact(shard))),
        )
        .await?;
        Ok(damaged.into_iter().flatten().collect())
    }

    /// The shards of `day`'s log that hold documents.
    async fn logged_shards(&self, day: NaiveDate) -> Result<BTreeSet<LogShard>, CallError> {
        #[derive(Deserialize)]
        struct Partition {
            #[serde(rename = "seriesId")]
            partition: String,
        }
        let query = Query::from("SELECT c.seriesId FROM c WHERE c.kind = 'l' AND c.day = @d")
            .with_parameter("@d", day.to_string())
            .map_err(|e| CallError::Document(format!("building a query: {e}")))?;
        let found: Vec<Partition> = self
            .gateway()
            .query(&query, &FeedScope::full_container())
            .await?;
        found
            .iter()
            .map(|found| {
                LogShard::parse(&found.partition).ok_or_else(|| {
                    CallError::Document(format!("a log document in {:?}", found.partition))
                })
            })
            .collect()
    }

    /// Moves one shard of a day's log into segments: every series' logged points are written
    /// to its own partition, and only then are the log documents deleted. The segments' ids
    /// derive from the log documents compacted, so two compactions of the same documents write
    /// the same segments (the second one's creates conflict and change nothing); two that saw
    /// different documents write copies of the same points, which readers join.
    ///
    /// An entry whose points cannot be decoded damages its series-day alone: its document is
    /// kept (the other entries' points are compacted from it all the same, and again by every
    /// later compaction while it stays: into the same segments when nothing else was logged
    /// meanwhile, into copies that readers join when something was), and the series-day is
    /// answered as damaged. A document that is not a log document at all names no series, and
    /// fails the whole shard.
    async fn compact(&self, shard: LogShard) -> Result<Damaged, CallError> {
        let partition = shard.partition();
        let query = Query::from("SELECT c.id, c.s FROM c WHERE c.kind = 'l'");
        let mut logged: Vec<Logged> = self
            .gateway()
            .query(&query, &FeedScope::partition(partition.clone()))
            .await?;
        let mut damaged = Damaged::new();
        if logged.is_empty() {
            return Ok(damaged);
        }
        logged.sort_by(|a, b| a.id.cmp(&b.id));
        let tag = compaction_tag(&logged);
        let mut by_series: BTreeMap<SeriesId, Vec<Point>> = BTreeMap::new();
        let mut kept: BTreeSet<&str> = BTreeSet::new();
        for doc in &logged {
            for entry in &doc.s {
                match codec::decode(Part::from_number(entry.part).base(), &entry.p) {
                    Ok(points) => by_series
                        .entry(entry.series.clone())
                        .or_default()
                        .extend(points),
                    Err(e) => {
                        kept.insert(&doc.id);
                        damaged.insert(
                            SeriesDayKey::new(entry.series.clone(), shard.day),
                            format!("log document {} in {partition}: {e}", doc.id),
                        );
                    }
                }
            }
        }
        let segments: Vec<BucketDoc> = by_series
            .into_iter()
            .flat_map(|(series, mut points)| {
                normalize(&mut points);
                segments(&SeriesDayKey::new(series, shard.day), &tag, &points)
            })
            .collect();
        try_join_all(
            segments
                .iter()
                .map(|doc| self.gateway().create(doc.series_id.as_str(), &doc.id, doc)),
        )
        .await?;
        try_join_all(
            logged
                .iter()
                .filter(|doc| !kept.contains(doc.id.as_str()))
                .map(|doc| self.gateway().delete(&partition, &doc.id)),
        )
        .await?;
        Ok(damaged)
    }
}

/// The log documents of one shard: its entries in order, cut by [`pack`].
fn log_docs(shard: LogShard, appends: &[&Appended<'_>]) -> Vec<LogDoc> {
    let entries: Vec<LogEntry> = appends
        .iter()
        .flat_map(|append| {
            append.points.chunks(LOG_ENTRY_POINTS).map(|chunk| {
                let part = Part::Hour(Part::hour_of(chunk[0].ts));
                LogEntry {
                    series: append.key.series.clone(),
                    part: part.number(),
                    p: codec::encode(part.base(), chunk),
                }
            })
        })
        .collect();
    let sizes: Vec<usize> = entries.iter().map(|e| json_len(e) + 1).collect();
    let overhead = json_len(&log_doc(shard, Vec::new()));
    let mut entries = entries.into_iter();
    pack(&sizes, overhead)
        .into_iter()
        .map(|run| log_doc(shard, entries.by_ref().take(run.len()).collect()))
        .collect()
}

fn log_doc(shard: LogShard, entries: Vec<LogEntry>) -> LogDoc {
    LogDoc {
        id: format!("{:032x}", rand::random::<u128>()),
        partition: shard.partition(),
        kind: "l".into(),
        day: shard.day.to_string(),
        s: entries,
        ttl: NEVER,
    }
}

/// Bytes of `value` as JSON.
fn json_len(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |json| json.len())
}

/// Cuts items of the given sizes into runs, each a document of `overhead` plus its items. A
/// write is charged by the document's size in kilobytes rounded up to a power of two (the
/// emulator's model; Azure's charge also grows with size), so each document is filled up to
/// the largest power-of-two kilobytes the items left can fill, at most [`MAX_DOC_BYTES`]:
/// 5.5 KB of entries become documents of 4 KB, 1 KB and 0.5 KB, not one of 5.5 KB charged as
/// 8. An item larger than its document's bound gets a document of its own.
fn pack(sizes: &[usize], overhead: usize) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < sizes.len() {
        let left: usize = overhead + sizes[start..].iter().sum::<usize>();
        let mut bound = 1024;
        while bound * 2 <= left.min(MAX_DOC_BYTES) {
            bound *= 2;
        }
        let mut end = start + 1;
        let mut size = overhead + sizes[start];
        while end < sizes.len() && size + sizes[end] <= bound {
            size += sizes[end];
            end += 1;
        }
        runs.push(start..end);
        start = end;
    }
    runs
}

/// Names a compaction by the log documents it read (sorted by id).
fn compaction_tag(logged: &[Logged]) -> String {
    let mut digest = Sha256::new();
    for doc in logged {
        digest.update(doc.id.as_bytes());
        digest.update([0]);
    }
    digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One series-day's compacted points as segments cut by [`pack`] (by each point's share of
/// the whole day's encoding, with a tenth to spare), written with `-1` like every bucket of a
/// pending day: the state write that ends the summary aligns them.
fn segments(key: &SeriesDayKey, tag: &str, points: &[Point]) -> Vec<BucketDoc> {
    let segment = |index: usize, chunk: &[Point]| {
        let part = Part::Hour(Part::hour_of(chunk[0].ts));
        BucketDoc {
            id: segment_id(key.day, tag, index),
            series_id: key.series.clone(),
            day: key.day.to_string(),
            part: part.number(),
            p: codec::encode(part.base(), chunk),
            split: false,
            ttl: NEVER,
        }
    };
    let whole = segment(0, points);
    let per_point = (whole.p.len() * 11 / 10).div_ceil(points.len().max(1));
    let overhead = json_len(&whole) - whole.p.len();
    pack(&vec![per_point; points.len()], overhead)
        .into_iter()
        .enumerate()
        .map(|(index, run)| segment(index, &points[run]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_points(series: &str, n: usize) -> (SeriesDayKey, Vec<Point>) {
        let key = SeriesDayKey::new(
            SeriesId::parse(series).unwrap(),
            "2026-11-24".parse().unwrap(),
        );
        let start = 1_795_478_400_000_000_000; // 2026-11-24T00:00:00Z
        let points = (0..n)
            .map(|i| Point {
                ts: start + i as i64 * 60_000_000_000,
                value: 20.0 + (i % 50) as f64 * 0.01,
                stamp: 1,
            })
            .collect();
        (key, points)
    }

    fn decoded(docs: &[LogDoc]) -> BTreeMap<SeriesId, Vec<Point>> {
        let mut by_series: BTreeMap<SeriesId, Vec<Point>> = BTreeMap::new();
        for entry in docs.iter().flat_map(|doc| &doc.s) {
            let points = codec::decode(Part::from_number(entry.part).base(), &entry.p).unwrap();
            by_series
                .entry(entry.series.clone())
                .or_default()
                .extend(points);
        }
        by_series
    }

    #[test]
    fn documents_are_filled_up_to_powers_of_two_kilobytes() {
        // 5.5 KB of 100-byte items, and 100 bytes of overhead per document.
        let runs = pack(&[100; 55], 100);
        let sizes: Vec<usize> = runs.iter().map(|r| 100 + 100 * r.len()).collect();
        assert_eq!(sizes, [4000, 1000, 800]);
        assert_eq!(runs.first().unwrap().start, 0);
        assert!(runs.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(runs.last().unwrap().end, 55);
        // Never beyond the largest document; an item larger than that stands alone.
        let runs = pack(&[1000; 40], 0);
        assert!(runs.iter().all(|r| r.len() <= MAX_DOC_BYTES / 1000));
        assert_eq!(pack(&[20_000, 10], 0), [0..1, 1..2]);
    }

    #[test]
    fn a_shard_is_logged_in_bounded_documents_holding_every_point_once() {
        let days: Vec<(SeriesDayKey, Vec<Point>)> = (0..60)
            .map(|i| day_points(&format!("dev-{i:02}"), 10))
            .collect();
        let appends: Vec<Appended<'_>> = days
            .iter()
            .map(|(key, points)| Appended { key, points })
            .collect();
        let shard = LogShard::parse("~log/2026-11-24/0").unwrap();
        let docs = log_docs(shard, &appends.iter().collect::<Vec<_>>());
        let total: usize = docs.iter().map(json_len).sum();
        assert!(total > 4096, "{total} bytes");
        assert!(
            docs.len() > 1,
            "60 series-days fill more than one power of two"
        );
        for doc in &docs {
            assert!(json_len(doc) <= MAX_DOC_BYTES, "{} bytes", json_len(doc));
            assert_eq!(doc.partition, "~log/2026-11-24/0");
            assert_eq!(doc.day, "2026-11-24");
        }
        let ids: BTreeSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids.len(), docs.len(), "every document has its own id");
        let expected: BTreeMap<SeriesId, Vec<Point>> = days
            .iter()
            .map(|(key, points)| (key.series.clone(), points.clone()))
            .collect();
        assert_eq!(decoded(&docs), expected);
    }

    #[test]
    fn a_series_day_with_many_points_is_split_into_entries_and_segments() {
        let (key, points) = day_points("fast", LOG_ENTRY_POINTS + 5);
        let append = Appended {
            key: &key,
            points: &points,
        };
        let docs = log_docs(LogShard::parse("~log/2026-11-24/3").unwrap(), &[&append]);
        let entries: usize = docs.iter().map(|d| d.s.len()).sum();
        assert_eq!(entries, 2);
        assert_eq!(decoded(&docs)[&key.series], points);

        let segments = segments(&key, "00ff", &points);
        assert!(segments.len() > 1);
        assert!(segments.iter().all(|s| json_len(s) <= MAX_DOC_BYTES));
        assert_eq!(segments[0].id, "2026-11-24_s00ff_0");
        let mut back = Vec::new();
        for segment in &segments {
            back.extend(codec::decode(Part::from_number(segment.part).base(), &segment.p).unwrap());
        }
        assert_eq!(back, points);
    }
}
