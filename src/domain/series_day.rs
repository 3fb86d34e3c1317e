//! The series-day: the points of one series on one day, their merge, and the day's summary state.
//!
//! The merge is a join in a lattice: for every timestamp the point with the greatest
//! `(stamp, value bits)` wins. That makes it idempotent, commutative and associative, so the
//! stored day never depends on how often or in which order messages were delivered.
//!
//! The [`Revision`] is the sum over the stored points of `stamp · 2^64 + value bits`: a number
//! that orders points exactly as the merge does, summed. It is a function of the stored points
//! only (so any delivery order reaches the same revision), and it grows strictly with every
//! change: a new timestamp adds a positive term, and a point that wins over another — by a later
//! stamp, or on a tie by its value's bits — has the greater term. Stamps are bounded
//! ([`MAX_STAMP`], and [`check_stamp`] refuses stamps ahead of the clock), so the sum is exact.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::series::SeriesId;

/// Milliseconds since 2020-01-01T00:00:00Z, the epoch of ingest stamps. Kept small so that the
/// sum of a day's stamps (its revision) fits an `i64` with room to spare even for a series that
/// reports every 10 ms for a whole day.
pub const STAMP_EPOCH_MS: i64 = 1_577_836_800_000;

/// The largest stamp a point may carry: 2^42 ms after [`STAMP_EPOCH_MS`], in the year 2159.
/// With it a day's [`Revision`] is exact in 128 bits for up to 2^21 points at the largest
/// stamp, and for some 2^27 points at the stamps of the 2020s.
pub const MAX_STAMP: i64 = 1 << 42;

/// How far ahead of this instance's clock a producer's stamp may be, in milliseconds: room for
/// clock differences between hosts. A stamp further ahead would win over every correction sent
/// before its time, so it is refused.
pub const STAMP_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Converts a wall-clock instant to an ingest stamp (always at least 1).
pub fn stamp_at(at: DateTime<Utc>) -> i64 {
    (at.timestamp_millis() - STAMP_EPOCH_MS).clamp(1, MAX_STAMP)
}

/// Checks the stamp a message carries against the clock. `Ok(None)` when it carries no positive
/// stamp (the caller stamps the message itself); an error with the reason when the stamp is more
/// than [`STAMP_TOLERANCE_MS`] ahead of `now`.
pub fn check_stamp(stamp: Option<i64>, now: DateTime<Utc>) -> Result<Option<i64>, String> {
    let Some(stamp) = stamp.filter(|s| *s > 0) else {
        return Ok(None);
    };
    let ahead = i128::from(stamp) - i128::from(stamp_at(now));
    if ahead > i128::from(STAMP_TOLERANCE_MS) {
        return Err(format!(
            "stamp {stamp} is {ahead} ms ahead of this instance's clock (at most {STAMP_TOLERANCE_MS} ms are allowed): it would win over every correction sent before its time"
        ));
    }
    Ok(Some(stamp))
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
    /// When the point was ingested (see [`stamp_at`]), from 1 to [`MAX_STAMP`]; the later stamp
    /// wins a correction.
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

/// The revision of a set of points (see the module docs).
pub fn revision(points: &[Point]) -> Revision {
    Revision(
        points
            .iter()
            .fold(0u128, |acc, p| acc.saturating_add(p.revision_term())),
    )
}

impl Point {
    /// This point's part of the revision: greater exactly when the point wins the merge.
    fn revision_term(&self) -> u128 {
        (u128::from(self.stamp.clamp(0, MAX_STAMP) as u64) << 64) | u128::from(self.value.to_bits())
    }
}

/// Which stored points a summary was computed from, ordered so that a later state of a day has
/// the greater revision (see the module docs).
///
/// SQL has no 128-bit integer, so the sinks store it as two signed 64-bit columns ([`parts`]),
/// compared in order. It is shown as a decimal string: as a JSON number it would be beyond what
/// most JSON parsers read exactly.
///
/// [`parts`]: Revision::parts
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(u128);

/// A [`Revision`] as two signed 64-bit numbers whose order, `high` first, is the revision's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionParts {
    /// The high 64 bits: about the sum of the stamps.
    pub high: i64,
    /// The low 64 bits, offset by -2^63 so that signed order is unsigned order.
    pub low: i64,
}

impl Revision {
    pub const fn new(value: u128) -> Self {
        Self(value)
    }

    pub const fn value(self) -> u128 {
        self.0
    }

    /// The least revision above this one: what a deliberate restatement of a day takes, so that
    /// it replaces whatever the day had.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The parts a sink stores; `None` beyond 2^127, which no signed pair holds in order.
    pub fn parts(self) -> Option<RevisionParts> {
        Some(RevisionParts {
            high: i64::try_from(self.0 >> 64).ok()?,
            low: (self.0 as u64 ^ 1 << 63) as i64,
        })
    }

    /// The revision stored as `parts` (a negative `high` is not one; it reads as zero).
    pub fn from_parts(parts: RevisionParts) -> Self {
        let high = u128::from(parts.high.max(0) as u64);
        Self(high << 64 | u128::from(parts.low as u64 ^ 1 << 63))
    }

    /// A revision stored before revisions counted value bits (the sum of the stamps alone): the
    /// smallest revision of a day with that sum, so the day's next summary replaces it.
    pub fn from_stamp_sum(sum: i64) -> Self {
        Self::from_parts(RevisionParts {
            high: sum,
            low: i64::MIN,
        })
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Revision {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads the decimal string, or an integer written before revisions counted value bits.
impl<'de> Deserialize<'de> for Revision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Decimal(String),
            StampSum(i64),
        }
        match Stored::deserialize(deserializer)? {
            Stored::Decimal(text) => text
                .parse()
                .map(Revision)
                .map_err(|e| serde::de::Error::custom(format!("revision {text:?}: {e}"))),
            Stored::StampSum(sum) => Ok(Revision::from_stamp_sum(sum)),
        }
    }
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
    pub summarized_revision: Option<Revision>,
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
    fn a_correction_with_an_equal_stamp_raises_the_revision() {
        let mut stored = vec![p(1, 1.0, 7)];
        let before = revision(&stored);
        assert!(
            merge_into(&mut stored, &[p(1, 2.0, 7)]),
            "the tie goes to 2.0"
        );
        assert!(revision(&stored) > before);
    }

    #[test]
    fn stamps_at_the_top_of_their_range_leave_room_for_corrections() {
        let mut stored = vec![p(1, 1.0, MAX_STAMP), p(2, 1.0, MAX_STAMP)];
        let before = revision(&stored);
        assert!(merge_into(&mut stored, &[p(3, 1.0, 1)]));
        assert!(revision(&stored) > before);
    }

    #[test]
    fn stamps_ahead_of_the_clock_are_refused_beyond_the_tolerance() {
        let now: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
        let current = stamp_at(now);
        assert_eq!(check_stamp(None, now), Ok(None));
        assert_eq!(
            check_stamp(Some(0), now),
            Ok(None),
            "not positive: stamped here"
        );
        assert_eq!(check_stamp(Some(7), now), Ok(Some(7)), "the past is fine");
        let edge = current + STAMP_TOLERANCE_MS;
        assert_eq!(check_stamp(Some(edge), now), Ok(Some(edge)));
        let reason = check_stamp(Some(edge + 1), now).unwrap_err();
        assert!(reason.contains("ms ahead"), "{reason}");
        assert!(check_stamp(Some(i64::MAX), now).is_err());
        assert_eq!(stamp_at(DateTime::<Utc>::MAX_UTC), MAX_STAMP);
    }

    #[test]
    fn revisions_read_as_decimal_strings_and_as_old_stamp_sums() {
        let revision = Revision::new((5 << 64) + 9);
        let json = serde_json::to_string(&revision).unwrap();
        assert_eq!(json, "\"92233720368547758089\"");
        assert_eq!(serde_json::from_str::<Revision>(&json).unwrap(), revision);
        let old: Revision = serde_json::from_str("5").unwrap();
        assert_eq!(
            old,
            Revision::new(5 << 64),
            "the smallest revision of that stamp sum"
        );
        assert!(old < revision);
        assert!(serde_json::from_str::<Revision>("\"x\"").is_err());
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

    /// Stored days and incoming chunks where ties on the stamp, values that differ only in
    /// their bits, and stamps near the top of their range are common.
    fn arb_tied_points() -> impl Strategy<Value = Vec<Point>> {
        let value = prop_oneof![
            prop::sample::select(vec![-1.5, 0.0, -0.0, 2.0, f64::MAX, -f64::MAX]),
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
        ];
        let stamp = prop_oneof![1i64..4, (MAX_STAMP - 3)..=MAX_STAMP];
        prop::collection::vec(
            (0i64..12, value, stamp).prop_map(|(ts, value, stamp)| p(ts, value, stamp)),
            0..30,
        )
    }

    proptest! {
        /// Whatever the stamps: every merge that changes the stored points raises the
        /// revision, and one that changes nothing keeps it.
        #[test]
        fn revision_grows_strictly_with_every_change(
            stored in arb_tied_points(),
            chunks in prop::collection::vec(arb_tied_points(), 1..6),
        ) {
            let mut day = stored;
            normalize(&mut day);
            for chunk in chunks {
                let mut chunk = chunk;
                normalize(&mut chunk);
                let before = (day.clone(), revision(&day));
                let changed = merge_into(&mut day, &chunk);
                // By bits: 0.0 and -0.0 are different values to the merge.
                let bits = |points: &[Point]| -> Vec<(i64, u64, i64)> {
                    points.iter().map(|p| (p.ts, p.value.to_bits(), p.stamp)).collect()
                };
                prop_assert_eq!(changed, bits(&day) != bits(&before.0));
                if changed {
                    prop_assert!(revision(&day) > before.1, "{:?} -> {:?}", before.0, day);
                } else {
                    prop_assert_eq!(revision(&day), before.1);
                }
            }
        }

        /// The two signed parts a sink stores compare as the revision does, and give it back.
        #[test]
        fn revision_parts_keep_the_order(a in 0u128..1 << 127, b in 0u128..1 << 127) {
            let (ra, rb) = (Revision::new(a), Revision::new(b));
            let (pa, pb) = (ra.parts().unwrap(), rb.parts().unwrap());
            prop_assert_eq!(ra.cmp(&rb), (pa.high, pa.low).cmp(&(pb.high, pb.low)));
            prop_assert_eq!(Revision::from_parts(pa), ra);
        }

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
