//! How a series-day is laid out in documents, all in the partition of its series
//! (`/seriesId`), so every read and write of a day stays in one logical partition.
//!
//! * The **header** (`id` = the day) holds the summary state. Only state changes rewrite it, so
//!   ordinary merges only read it (about 1 RU).
//! * One **hour bucket** per UTC hour with data (`{day}_{hour}`) holds that hour's points in the
//!   compact codec. A merge reads and rewrites only the hours it touches.
//! * An hour that outgrows [`MAX_HOUR_POINTS`] (a series reporting more often than every 15 s)
//!   is **split**: its points move to 2-minute **slot buckets** (`{day}_{hour}_{slot}`) and the
//!   hour bucket becomes an empty marker saying so. A slot of a series that reports every second
//!   holds 120 points (well under 1 KB encoded); even one point every 10 ms stays far below the
//!   2 MB item limit. So documents stay small whatever the reporting rate, and the cost of a
//!   merge follows the points it brings, not the size of the day.
//!
//! Readers take the union of every bucket of the day under the merge's lattice join, so a split
//! interrupted half-way (slots written, marker not yet) is still read correctly: the copies are
//! the same points.
//!
//! While a day's summary is pending, merges do not rewrite its buckets: a trigger batch carries
//! only a few points of each series-day, and a bucket rewrite per series-day and batch is most
//! of what the store would cost. Instead each batch appends its points to the **day log**:
//! one [`LogDoc`] per shard of the day it touches, in the partition [`log_partition`] (a key no
//! series can have, since series names cannot contain `~`), holding the points of every
//! series-day of that shard in the batch. Log documents are written once and never changed.
//! Before a day is read for its summary, its log is **compacted**: each series' logged points
//! become **segments** in its own partition (bucket documents with ids `{day}_s{tag}_{n}`,
//! written once), and only then are the log documents deleted. A reader that reads the log
//! first and the day's buckets after therefore misses no point, whoever compacts meanwhile.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::series::SeriesId;
use crate::domain::series_day::Revision;

pub const HOUR_NS: i64 = 3_600_000_000_000;
pub const SLOT_NS: i64 = 120_000_000_000;
pub const SLOTS_PER_HOUR: i64 = HOUR_NS / SLOT_NS;
/// Parts per hour: the hour bucket (0), its slots (1..=30), the split marker (31).
const PARTS_PER_HOUR: i64 = 32;
const MARKER: i64 = PARTS_PER_HOUR - 1;
/// An hour bucket holding more points than this is split into slots.
pub const MAX_HOUR_POINTS: usize = 240;

/// One of a day's bucket documents: an hour, a slot of a split hour, or the marker that splits an
/// hour. [`Part::number`] is what the document stores as `part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The bucket of an absolute UTC hour (ns / 3.6e12).
    Hour(i64),
    /// Slot `slot` (0..30) of a split hour.
    Slot(i64, i64),
    /// Turns the hour bucket into a split marker (written after the slots).
    SplitMarker(i64),
}

impl Part {
    pub fn hour_of(ts: i64) -> i64 {
        ts.div_euclid(HOUR_NS)
    }

    pub fn slot_of(ts: i64) -> Part {
        let hour = Self::hour_of(ts);
        let offset = i128::from(ts) - hour_start(hour);
        Part::Slot(hour, (offset / i128::from(SLOT_NS)) as i64)
    }

    pub fn number(self) -> i64 {
        match self {
            Part::Hour(h) => h * PARTS_PER_HOUR,
            Part::Slot(h, s) => h * PARTS_PER_HOUR + 1 + s,
            Part::SplitMarker(h) => h * PARTS_PER_HOUR + MARKER,
        }
    }

    pub fn from_number(n: i64) -> Part {
        let (h, r) = (n.div_euclid(PARTS_PER_HOUR), n.rem_euclid(PARTS_PER_HOUR));
        match r {
            0 => Part::Hour(h),
            MARKER => Part::SplitMarker(h),
            s => Part::Slot(h, s - 1),
        }
    }

    /// The first instant the part covers, or the earliest representable one for the parts
    /// that begin before it (the hour of 1677-09-21T00:12:43Z and its first slots): the codec
    /// stores offsets from the base, so it only has to be at or before every point of the part.
    pub fn base(self) -> i64 {
        let start = match self {
            Part::Hour(h) | Part::SplitMarker(h) => hour_start(h),
            Part::Slot(h, s) => hour_start(h) + i128::from(s) * i128::from(SLOT_NS),
        };
        i64::try_from(start).unwrap_or(i64::MIN)
    }

    /// The document id within the series' partition.
    pub fn id(self, day: NaiveDate) -> String {
        match self {
            Part::Hour(h) | Part::SplitMarker(h) => format!("{day}_{h}"),
            Part::Slot(h, s) => format!("{day}_{h}_{s:02}"),
        }
    }
}

/// The first instant of an absolute UTC hour, wide enough for the hour that begins before the
/// earliest timestamp a signed 64-bit nanosecond count holds.
fn hour_start(hour: i64) -> i128 {
    i128::from(hour) * i128::from(HOUR_NS)
}

/// The id of a day's header document.
pub fn header_id(day: NaiveDate) -> String {
    day.to_string()
}

/// The header document: the day's summary state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeaderDoc {
    pub id: String,
    #[serde(rename = "seriesId")]
    pub series_id: SeriesId,
    pub day: String,
    /// Always `"h"`; queries select headers by it.
    pub kind: String,
    pub epoch: u32,
    pub pending: bool,
    /// Milliseconds since the Unix epoch, so queries can compare it.
    #[serde(rename = "dueAt")]
    pub due_at: i64,
    pub touched: u64,
    /// A decimal string (Cosmos DB keeps numbers as doubles, which would round it); headers
    /// written before revisions counted value bits hold the sum of the stamps as a number.
    #[serde(rename = "summarizedRevision")]
    pub summarized_revision: Option<Revision>,
    pub ttl: i64,
}

/// The partition of one shard of a day's log.
pub fn log_partition(day: NaiveDate, shard: u32) -> String {
    format!("~log/{day}/{shard}")
}

/// The shard of a day's log that `series` writes to, out of `shards`: FNV-1a of its name, so
/// every instance and every version agrees.
pub fn log_shard(series: &SeriesId, shards: u32) -> u32 {
    let hash = series
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % u64::from(shards.max(1))) as u32
}

/// The id of segment `index` of a compaction identified by `tag`, in the series' partition.
pub fn segment_id(day: NaiveDate, tag: &str, index: usize) -> String {
    format!("{day}_s{tag}_{index}")
}

/// A document of a day's log: the points one trigger batch brought for the series-days of one
/// shard. Written once; deleted once compacted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogDoc {
    pub id: String,
    /// The log's partition ([`log_partition`]), not a series.
    #[serde(rename = "seriesId")]
    pub partition: String,
    /// Always `"l"`, so the queries for headers never see log documents.
    pub kind: String,
    /// The day, so that a read finds every shard of its day's log by the indexed `kind` and
    /// `day`, whatever the shard count was when the documents were written.
    pub day: String,
    /// One entry per series-day.
    pub s: Vec<LogEntry>,
    pub ttl: i64,
}

/// One series' points in a log document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogEntry {
    #[serde(rename = "k")]
    pub series: SeriesId,
    /// The [`Part::number`] of the hour of the first point: the codec's base.
    #[serde(rename = "h")]
    pub part: i64,
    /// The points, encoded by `codec` relative to the hour's start.
    pub p: String,
}

/// A bucket document: an hour's or a slot's points, a split marker, or a segment of compacted
/// log points (whose `part` is the hour of its first point).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketDoc {
    pub id: String,
    #[serde(rename = "seriesId")]
    pub series_id: SeriesId,
    pub day: String,
    pub part: i64,
    /// The points, encoded by `codec` relative to the part's base.
    pub p: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split: bool,
    pub ttl: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_round_trip_and_ids_are_distinct() {
        let day: NaiveDate = "2026-11-24".parse().unwrap();
        for part in [
            Part::Hour(491_234),
            Part::Slot(491_234, 0),
            Part::Slot(491_234, 29),
            Part::SplitMarker(491_234),
            Part::Hour(-5),
            Part::Slot(-5, 3),
        ] {
            assert_eq!(Part::from_number(part.number()), part);
        }
        assert_eq!(Part::Hour(7).id(day), Part::SplitMarker(7).id(day));
        assert_ne!(Part::Hour(7).id(day), Part::Slot(7, 0).id(day));
        let ts = 7 * HOUR_NS + 59 * 60_000_000_000 + 59_999_999_999;
        assert_eq!(Part::slot_of(ts), Part::Slot(7, 29));
        assert!(Part::Slot(7, 29).base() <= ts && ts < Part::Slot(7, 29).base() + SLOT_NS);
    }

    #[test]
    fn the_parts_of_the_first_and_last_hour_hold_their_points() {
        for ts in [
            i64::MIN,
            i64::MIN + 119_999_999_999,
            i64::MIN + 120_000_000_000,
            i64::MAX,
        ] {
            let hour = Part::Hour(Part::hour_of(ts));
            let slot = Part::slot_of(ts);
            assert!(hour.base() <= ts && slot.base() <= ts, "{ts}");
            assert!(
                i128::from(ts) - i128::from(slot.base()) < i128::from(SLOT_NS),
                "{ts}"
            );
            assert_eq!(Part::from_number(slot.number()), slot);
        }
        let Part::Slot(_, first_slot) = Part::slot_of(i64::MIN) else {
            unreachable!()
        };
        // The range starts 12 minutes 43 seconds into its hour: in the hour's seventh slot.
        assert_eq!(first_slot, 6);
    }
}
