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

/// A bucket document: an hour's or a slot's points, or a split marker.
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
