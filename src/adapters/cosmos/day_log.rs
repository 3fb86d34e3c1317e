//! The day log (see `layout`): appending a batch's points of pending series-days, and
//! compacting a shard of a day's log into segments of each series before the day is read.
//!
//! Why: a trigger batch carries about ten points per series-day (one W1 message), so
//! rewriting a series-day's hour bucket for them costs a read and a replace (some 12 RU) per
//! ten points. One log document per shard and batch holds a dozen series-days, and a day's
//! compaction writes each series' points once, in a few segments.

use std::collections::{BTreeMap, BTreeSet};

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

/// A log document is closed once its entries' payloads reach this many bytes: with its ids it
/// then stays within the first kilobyte that a write is charged for.
const LOG_DOC_BYTES: usize = 800;
/// Points of one series-day per log entry at most, so one entry stays far below the 2 MB
/// document limit whatever a batch carries.
const LOG_ENTRY_POINTS: usize = 4096;
/// Points per segment: a minute-resolution reading encodes to about 5 bytes, so a segment
/// stays within a kilobyte.
const SEGMENT_POINTS: usize = 120;

/// The points a merge appends for one series-day.
pub(super) struct Appended<'a> {
    pub key: &'a SeriesDayKey,
    pub points: &'a [Point],
}

/// A log document as a compaction reads it.
#[derive(Deserialize)]
struct Logged {
    id: String,
    s: Vec<LogEntry>,
}

impl CosmosStore {
    /// Appends the points of pending series-days: one or more log documents per shard of each
    /// day, each written once under a fresh id. A create that reports a conflict found its own
    /// earlier attempt (a retry after a timeout), which wrote the same document.
    pub(super) async fn append_to_log(&self, appends: &[Appended<'_>]) -> Result<(), CallError> {
        let mut shards: BTreeMap<(NaiveDate, u32), Vec<&Appended<'_>>> = BTreeMap::new();
        for append in appends {
            let shard = log_shard(&append.key.series, self.log_shards());
            shards
                .entry((append.key.day, shard))
                .or_default()
                .push(append);
        }
        let docs: Vec<LogDoc> = shards
            .into_iter()
            .flat_map(|((day, shard), appends)| log_docs(log_partition(day, shard), &appends))
            .collect();
        try_join_all(
            docs.iter()
                .map(|doc| self.gateway().create(&doc.partition, &doc.id, doc)),
        )
        .await?;
        Ok(())
    }

    /// Compacts the log shards that `keys` write to, so that reading their days afterwards
    /// finds every logged point in their own partitions.
    pub(super) async fn compact_logs_of(&self, keys: &[SeriesDayKey]) -> Result<(), CallError> {
        if self.log_shards() == 0 {
            return Ok(());
        }
        let shards: BTreeSet<(NaiveDate, u32)> = keys
            .iter()
            .map(|key| (key.day, log_shard(&key.series, self.log_shards())))
            .collect();
        try_join_all(
            shards
                .into_iter()
                .map(|(day, shard)| self.compact(day, shard)),
        )
        .await?;
        Ok(())
    }

    /// Moves one shard of a day's log into segments: every series' logged points are written
    /// to its own partition, and only then are the log documents deleted. The segments' ids
    /// derive from the log documents compacted, so two compactions of the same documents write
    /// the same segments (the second one's creates conflict and change nothing); two that saw
    /// different documents write copies of the same points, which readers join.
    async fn compact(&self, day: NaiveDate, shard: u32) -> Result<(), CallError> {
        let partition = log_partition(day, shard);
        let query = Query::from("SELECT c.id, c.s FROM c WHERE c.kind = 'l'");
        let mut logged: Vec<Logged> = self
            .gateway()
            .query(&query, &FeedScope::partition(partition.clone()))
            .await?;
        if logged.is_empty() {
            return Ok(());
        }
        logged.sort_by(|a, b| a.id.cmp(&b.id));
        let tag = compaction_tag(&logged);
        let mut by_series: BTreeMap<SeriesId, Vec<Point>> = BTreeMap::new();
        for doc in &logged {
            for entry in &doc.s {
                let points = codec::decode(Part::from_number(entry.part).base(), &entry.p)
                    .map_err(|e| CallError::Document(format!("log {}: {e}", doc.id)))?;
                by_series
                    .entry(entry.series.clone())
                    .or_default()
                    .extend(points);
            }
        }
        let segments: Vec<BucketDoc> = by_series
            .into_iter()
            .flat_map(|(series, mut points)| {
                normalize(&mut points);
                segments(&SeriesDayKey::new(series, day), &tag, &points)
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
                .map(|doc| self.gateway().delete(&partition, &doc.id)),
        )
        .await?;
        Ok(())
    }
}

/// The log documents of one shard: entries in order, a document closed once its payloads
/// reach [`LOG_DOC_BYTES`].
fn log_docs(partition: String, appends: &[&Appended<'_>]) -> Vec<LogDoc> {
    let mut docs = Vec::new();
    let mut entries = Vec::new();
    let mut bytes = 0;
    for append in appends {
        for chunk in append.points.chunks(LOG_ENTRY_POINTS) {
            let part = Part::Hour(Part::hour_of(chunk[0].ts));
            let entry = LogEntry {
                series: append.key.series.clone(),
                part: part.number(),
                p: codec::encode(part.base(), chunk),
            };
            bytes += entry.p.len() + entry.series.as_str().len();
            entries.push(entry);
            if bytes >= LOG_DOC_BYTES {
                docs.push(log_doc(&partition, std::mem::take(&mut entries)));
                bytes = 0;
            }
        }
    }
    if !entries.is_empty() {
        docs.push(log_doc(&partition, entries));
    }
    docs
}

fn log_doc(partition: &str, entries: Vec<LogEntry>) -> LogDoc {
    LogDoc {
        id: format!("{:032x}", rand::random::<u128>()),
        partition: partition.to_string(),
        kind: "l".into(),
        s: entries,
        ttl: NEVER,
    }
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

/// One series-day's compacted points as segments of at most [`SEGMENT_POINTS`], written with
/// `-1` like every bucket of a pending day (the state write that ends the summary aligns them).
fn segments(key: &SeriesDayKey, tag: &str, points: &[Point]) -> Vec<BucketDoc> {
    points
        .chunks(SEGMENT_POINTS)
        .enumerate()
        .map(|(index, chunk)| {
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
        })
        .collect()
}
