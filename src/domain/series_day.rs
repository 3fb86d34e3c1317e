//! The series-day: the points of one series on one day, their merge, and the day's summary state.
//!
//! The merge is a join in a lattice: for every timestamp the point with the greatest
//! `(stamp, value bits)` wins. That makes it idempotent, commutative and associative, so the
//! stored day never depends on how often or in which order messages were delivered. The revision
//! is the sum of the winning stamps: it is a function of the stored points only (so any delivery
//! order reaches the same revision) and it grows strictly with every change (a new timestamp adds
//! a positive stamp, a correction replaces a stamp by a larger one).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::series::SeriesId;

/// Milliseconds since 2020-01-01T00:00:00Z, the epoch of ingest stamps. Kept small so that the
/// sum of a day's stamps (its revision) fits an `i64` with room to spare even for a series that
/// reports every 10 ms for a whole day.
pub const STAMP_EPOCH_MS: i64 = 1_577_836_800_000;

/// Converts a wall-clock instant to an ingest stamp (always at least 1).
pub fn stamp_at(at: DateTime<Utc>) -> i64 {
    (at.timestamp_millis() - STAMP_EPOCH_MS).max(1)
}

/// Identifies a series-day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesDayKey {
    pub series: SeriesId,
    pub day: NaiveDate,
}

impl SeriesDayKey {
    pub fn new(series: SeriesId, day: NaiveDate) -> Self {
        Self { series, day }
    }
}

impl std::fmt::Display for SeriesDayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.series, self.day)
    }
}

/// One stored point: the value at `ts` as last ingested.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Nanoseconds since the Unix epoch, UTC.
    pub ts: i64,
    pub value: f64,
    /// When the point was ingested (see [`stamp_at`]); the later stamp wins a correction.
    pub stamp: i64,
}

impl Point {
    /// True when `self` wins over `other` for the same timestamp. Ties on the stamp fall back to
    /// the value's bits so that the winner is the same whichever arrives first.
    fn beats(&self, other: &Point) -> bool {
        (self.stamp, self.value.to_bits()) > (other.stamp, other.value.to_bits())
    }
}

/// Sorts points by timestamp and keeps the winner for each timestamp.
pub fn normalize(points: &mut Vec<Point>) {
    points.sort_unstable_by(|a, b| {
        a.ts.cmp(&b.ts)
            .then(a.stamp.cmp(&b.stamp))
            .then(a.value.to_bits().cmp(&b.value.to_bits()))
    });
    // After the sort the winner of each timestamp is its last entry.
    let mut write = 0;
    for read in 0..points.len() {
        if read + 1 < points.len() && points[read + 1].ts == points[read].ts {
            continue;
        }
        points[write] = points[read];
        write += 1;
    }
    points.truncate(write);
}

/// Merges `incoming` (normalized) into `stored` (normalized); returns whether `stored` changed.
pub fn merge_into(stored: &mut Vec<Point>, incoming: &[Point]) -> bool {
    if incoming.is_empty() {
        return false;
    }
    let mut merged = Vec::with_capacity(stored.len() + incoming.len());
    let mut changed = false;
    let (mut i, mut j) = (0, 0);
    while i < stored.len() || j < incoming.len() {
        match (stored.get(i), incoming.get(j)) {
            (Some(s), Some(n)) if s.ts == n.ts => {
                if n.beats(s) {
                    merged.push(*n);
                    changed = true;
                } else {
                    merged.push(*s);
                }
                i += 1;
                j += 1;
            }
            (Some(s), Some(n)) if s.ts < n.ts => {
                merged.push(*s);
                i += 1;
            }
            (Some(_), Some(n)) | (None, Some(n)) => {
                merged.push(*n);
                changed = true;
                j += 1;
            }
            (Some(s), None) => {
                merged.push(*s);
                i += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
    if changed {
        *stored = merged;
    }
    changed
}

/// The revision of a set of points: the sum of their stamps (see the module docs).
pub fn revision(points: &[Point]) -> i64 {
    points
        .iter()
        .fold(0i64, |acc, p| acc.saturating_add(p.stamp))
}

/// Where a series-day stands in the summarize cycle. Stored beside the points and changed only
/// when the cycle moves, so that ordinary merges never rewrite it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayState {
    /// The highest epoch for which a summarize message was sent; 0 before the first.
    pub epoch: u32,
    /// A summarize message for `epoch` is outstanding and has not completed.
    pub pending: bool,
    /// When the message for `epoch` becomes due.
    pub due_at: DateTime<Utc>,
    /// Bumped when data changes while a summary may be in flight, so that the summary's
    /// conditional state update fails and it looks again.
    pub touched: u64,
    /// The revision last written to the summary table.
    pub summarized_revision: Option<i64>,
}

impl DayState {
    /// The state after a summarize message for the next epoch was sent.
    pub fn next_epoch(previous: Option<&DayState>, due_at: DateTime<Utc>) -> DayState {
        DayState {
            epoch: previous.map_or(0, |s| s.epoch) + 1,
            pending: true,
            due_at,
            touched: previous.map_or(0, |s| s.touched),
            summarized_revision: previous.and_then(|s| s.summarized_revision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(ts: i64, value: f64, stamp: i64) -> Point {
        Point { ts, value, stamp }
    }

    #[test]
    fn corrections_win_by_stamp_not_by_arrival() {
        let mut stored = vec![p(1, 10.0, 5)];
        assert!(!merge_into(&mut stored, &[p(1, 99.0, 4)]));
        assert!(merge_into(&mut stored, &[p(1, 11.0, 6), p(2, 1.0, 1)]));
        assert_eq!(stored, vec![p(1, 11.0, 6), p(2, 1.0, 1)]);
        assert!(!merge_into(&mut stored, &[p(1, 11.0, 6)]));
    }

    #[test]
    fn revision_grows_with_every_change() {
        let mut stored = vec![];
        let mut last = revision(&stored);
        for incoming in [vec![p(1, 1.0, 1)], vec![p(1, 2.0, 2)], vec![p(0, 1.0, 1)]] {
            assert!(merge_into(&mut stored, &incoming));
            assert!(revision(&stored) > last);
            last = revision(&stored);
        }
    }

    fn arb_points() -> impl Strategy<Value = Vec<Point>> {
        prop::collection::vec(
            (
                0i64..40,
                prop::sample::select(vec![-1.5, 0.0, 2.0, 7.25]),
                1i64..6,
            )
                .prop_map(|(ts, value, stamp)| p(ts, value, stamp)),
            0..60,
        )
    }

    fn apply_in_chunks(chunks: &[Vec<Point>]) -> Vec<Point> {
        let mut stored = Vec::new();
        for chunk in chunks {
            let mut chunk = chunk.clone();
            normalize(&mut chunk);
            merge_into(&mut stored, &chunk);
        }
        stored
    }

    proptest! {
        #[test]
        fn merge_is_order_independent_and_idempotent(
            points in arb_points(),
            chunk in 1usize..7,
            seed in any::<u64>(),
        ) {
            let chunks: Vec<Vec<Point>> = points.chunks(chunk).map(<[Point]>::to_vec).collect();
            let reference = apply_in_chunks(&chunks);

            // Every chunk twice, in a shuffled order.
            let mut replay: Vec<Vec<Point>> = chunks.iter().chain(chunks.iter()).cloned().collect();
            let mut state = seed;
            for i in (1..replay.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                replay.swap(i, (state >> 33) as usize % (i + 1));
            }
            let replayed = apply_in_chunks(&replay);
            prop_assert_eq!(&replayed, &reference);
            prop_assert_eq!(revision(&replayed), revision(&reference));

            // The reference keeps exactly one point per timestamp, the greatest one.
            let mut all = points.clone();
            normalize(&mut all);
            prop_assert_eq!(reference, all);
        }
    }
}
