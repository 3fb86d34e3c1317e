//! Daily statistics of one series-day, and the row they become in the summary table.
//!
//! Sums use Neumaier's compensated summation and the variance is computed in two passes around
//! the compensated mean, so a day of large, nearly equal values (the common case for meters and
//! counters) keeps its precision. Percentiles interpolate linearly between the closest ranks,
//! exactly as SQL's `PERCENTILE_CONT`.
//!
//! Every finite value is a valid observation, so the statistics must not overflow where their
//! true value is finite: the moments are computed on the values scaled by a power of two (exact,
//! so ordinary days get the very same bits), and an interpolation whose spread overflows is done
//! on halves. A statistic whose true value is beyond `f64` — the sum of values near `f64::MAX`,
//! or the spread of values near both `±f64::MAX` — is `None`, stored as NULL, and named by
//! [`DailyStats::out_of_range`].

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::observation::format_ts;
use super::series::SeriesId;
use super::series_day::{Point, Revision, SeriesDayKey, revision};

/// The statistics of a non-empty series-day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyStats {
    pub count: u64,
    /// `None` when the true sum is beyond the range of `f64`.
    pub sum: Option<f64>,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation; `None` below two points, or when it is beyond the range of
    /// `f64`.
    pub stddev: Option<f64>,
    pub first_value: f64,
    /// UTC nanoseconds; serialized as RFC 3339.
    #[serde(serialize_with = "serialize_ts")]
    pub first_ts: i64,
    pub last_value: f64,
    #[serde(serialize_with = "serialize_ts")]
    pub last_ts: i64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// A row of `daily_summary`; serializes flat, with the table's column names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    pub series: SeriesId,
    pub day: NaiveDate,
    #[serde(flatten)]
    pub stats: DailyStats,
    /// The series-day revision the statistics were computed from; a stored row is only ever
    /// replaced by a row with a higher revision.
    pub revision: Revision,
    pub computed_at: DateTime<Utc>,
}

/// Why a summary row cannot be stored: SQL holds no non-finite float (PostgreSQL would store
/// `Infinity`/`NaN`, SQLite turns NaN into NULL, SQL Server rejects both) and no count beyond a
/// signed 64-bit integer, so every sink refuses such a row, and `summarize` checks before it
/// writes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unstorable {
    #[error("series {series:?} day {day}: {column} is {value}, which SQL cannot store")]
    NotFinite {
        series: SeriesId,
        day: NaiveDate,
        column: &'static str,
        value: f64,
    },
    #[error("series {series:?} day {day}: count {count} does not fit a signed 64-bit column")]
    CountTooLarge {
        series: SeriesId,
        day: NaiveDate,
        count: u64,
    },
    #[error(
        "series {series:?} day {day}: revision {revision} is beyond 2^127, which two signed 64-bit columns cannot hold in order"
    )]
    RevisionTooLarge {
        series: SeriesId,
        day: NaiveDate,
        revision: Revision,
    },
}

impl SummaryRow {
    /// The row of the stored day `key` whose points are `points` (one per timestamp, sorted),
    /// computed at `computed_at`; `None` for a day without points.
    pub fn of_day(
        key: &SeriesDayKey,
        points: &[Point],
        computed_at: DateTime<Utc>,
    ) -> Option<SummaryRow> {
        Some(SummaryRow {
            series: key.series.clone(),
            day: key.day,
            stats: DailyStats::compute(points)?,
            revision: revision(points),
            computed_at,
        })
    }

    /// Checks that every sink can store the row as it is.
    pub fn check_storable(&self) -> Result<(), Unstorable> {
        let s = &self.stats;
        if i64::try_from(s.count).is_err() {
            return Err(Unstorable::CountTooLarge {
                series: self.series.clone(),
                day: self.day,
                count: s.count,
            });
        }
        if self.revision.parts().is_none() {
            return Err(Unstorable::RevisionTooLarge {
                series: self.series.clone(),
                day: self.day,
                revision: self.revision,
            });
        }
        let numbers = [
            ("sum", s.sum),
            ("min", Some(s.min)),
            ("max", Some(s.max)),
            ("mean", Some(s.mean)),
            ("stddev", s.stddev),
            ("first_value", Some(s.first_value)),
            ("last_value", Some(s.last_value)),
            ("p50", Some(s.p50)),
            ("p90", Some(s.p90)),
            ("p99", Some(s.p99)),
        ];
        match numbers
            .into_iter()
            .find_map(|(column, value)| value.filter(|v| !v.is_finite()).map(|v| (column, v)))
        {
            Some((column, value)) => Err(Unstorable::NotFinite {
                series: self.series.clone(),
                day: self.day,
                column,
                value,
            }),
            None => Ok(()),
        }
    }
}

fn serialize_ts<S: serde::Serializer>(ts: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_ts(*ts))
}

/// Compensated summation in [`LANES`] running sums, each keeping the exact rounding error of
/// its additions (Knuth's TwoSum), added up at the end.
///
/// Why lanes: one running sum is a chain of dependent additions, each waiting for the last;
/// independent lanes let the processor overlap them, and a day of 1,440 values is summed in a
/// fraction of the time. Each lane is as accurate as one compensated sum.
#[derive(Debug, Default, Clone, Copy)]
struct CompensatedSum {
    sums: [f64; LANES],
    compensations: [f64; LANES],
}

/// Running sums of a [`CompensatedSum`].
const LANES: usize = 4;

/// `f` of every point, [`LANES`] points at a time; lanes past the last point are 0.
fn in_lanes(points: &[Point], f: impl Fn(&Point) -> f64) -> impl Iterator<Item = [f64; LANES]> {
    points
        .chunks(LANES)
        .map(move |chunk| std::array::from_fn(|i| chunk.get(i).map_or(0.0, &f)))
}

impl CompensatedSum {
    /// The compensated sum of `f` over `points`.
    fn of(points: &[Point], f: impl Fn(&Point) -> f64) -> f64 {
        let mut sum = CompensatedSum::default();
        for xs in in_lanes(points, f) {
            sum.add(xs);
        }
        sum.total()
    }

    /// Adds one value to each lane.
    fn add(&mut self, xs: [f64; LANES]) {
        for ((sum, compensation), x) in self.sums.iter_mut().zip(&mut self.compensations).zip(xs) {
            let t = *sum + x;
            let x_part = t - *sum;
            *compensation += (*sum - (t - x_part)) + (x - x_part);
            *sum = t;
        }
    }

    fn total(&self) -> f64 {
        let mut sum = 0.0;
        let mut compensation: f64 = self.compensations.iter().sum();
        for &x in &self.sums {
            let t = sum + x;
            let x_part = t - sum;
            compensation += (sum - (t - x_part)) + (x - x_part);
            sum = t;
        }
        sum + compensation
    }
}

/// `PERCENTILE_CONT` of non-empty values, given as [`total_order_key`]s, at each of `ps`
/// (ascending), by selection instead of a full sort: only the order statistics the percentiles
/// fall between are put in place, each in the part of `keys` above the one before (the end of
/// day computes three percentiles of 1,440 values per series-day; sorting them all was most of
/// its arithmetic). Selecting integers rather than floats under `total_cmp` halves the rest.
/// Reorders `keys`.
fn percentiles_cont<const N: usize>(keys: &mut [i64], ps: [f64; N]) -> [f64; N] {
    let last_index = keys.len() - 1;
    // Everything before `start` is in place or below what is: ranks only grow, so an index
    // asked for again below `start` is one already put in place.
    let mut start = 0;
    let mut order_statistic = |k: usize| -> f64 {
        if k < start {
            return from_total_order_key(keys[k]);
        }
        let (_, key, _) = keys[start..].select_nth_unstable(k - start);
        start = k + 1;
        from_total_order_key(*key)
    };
    ps.map(|p| {
        let rank = p * last_index as f64;
        let lower = rank.floor() as usize;
        let a = order_statistic(lower);
        let b = order_statistic(rank.ceil() as usize);
        interpolate(a, b, rank - lower as f64)
    })
}

/// An integer whose order is [`f64::total_cmp`]'s order of the floats: negative floats get every
/// bit but the sign flipped, so that larger magnitudes become smaller integers.
fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// The float of a [`total_order_key`] (the flip undoes itself).
fn from_total_order_key(key: i64) -> f64 {
    f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
}

/// The value `fraction` of the way from `a` to `b` (`a <= b`).
fn interpolate(a: f64, b: f64, fraction: f64) -> f64 {
    let spread = b - a;
    if spread.is_finite() {
        a + fraction * spread
    } else {
        // Only values near both ±f64::MAX spread beyond f64; halving them is exact.
        let (a_half, b_half) = (a / 2.0, b / 2.0);
        (2.0 * (a_half + fraction * (b_half - a_half))).clamp(a, b)
    }
}

/// `x · 2^exponent`, exact unless the result overflows or is subnormal. Done in two steps so
/// that each factor is a normal number even for exponents beyond ±1022.
fn times_power_of_two(x: f64, exponent: i32) -> f64 {
    let first = exponent / 2;
    x * power_of_two(first) * power_of_two(exponent - first)
}

/// `2^exponent` for `-1022 <= exponent <= 1023`.
fn power_of_two(exponent: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&exponent));
    f64::from_bits(((exponent + 1023) as u64) << 52)
}

/// The exponent `e` with `magnitude · 2^-e` in `[0.5, 1)`; 0 for zero and subnormal magnitudes,
/// which need no scaling.
fn scale_exponent(magnitude: f64) -> i32 {
    let biased = ((magnitude.to_bits() >> 52) & 0x7ff) as i32;
    if biased == 0 { 0 } else { biased - 1022 }
}

/// Sum, mean and sample standard deviation of a non-empty day.
struct Moments {
    sum: Option<f64>,
    mean: f64,
    stddev: Option<f64>,
}

impl Moments {
    /// Computes on the values scaled so the largest magnitude is below 1: no intermediate can
    /// overflow, and scaling by a power of two changes no digit of an ordinary day. Only the
    /// results are scaled back; one that does not fit `f64` is `None`.
    fn compute(points: &[Point], min: f64, max: f64) -> Moments {
        let exponent = scale_exponent(min.abs().max(max.abs()));
        let scaled = |p: &Point| times_power_of_two(p.value, -exponent);
        let count = points.len();
        let total = CompensatedSum::of(points, scaled);
        let mean = total / count as f64;
        let stddev = (count >= 2).then(|| {
            let mut squares = CompensatedSum::default();
            let mut deviations = CompensatedSum::default();
            // Lanes past the last point hold a deviation of 0, which adds nothing to either.
            for d in in_lanes(points, |p| scaled(p) - mean) {
                squares.add(d.map(|d| d * d));
                deviations.add(d);
            }
            // The second term corrects for the rounding error left in `mean`.
            let n = count as f64;
            let variance =
                (squares.total() - deviations.total() * deviations.total() / n) / (n - 1.0);
            variance.max(0.0).sqrt()
        });
        let unscale = |x: f64| Some(times_power_of_two(x, exponent)).filter(|x| x.is_finite());
        Moments {
            sum: unscale(total),
            // The mean of finite values lies between them; the clamp only undoes a rounding
            // step past f64::MAX.
            mean: times_power_of_two(mean, exponent).clamp(min, max),
            stddev: stddev.and_then(unscale),
        }
    }
}

impl DailyStats {
    /// Computes the statistics of `points`, which hold one point per timestamp (the merged day)
    /// sorted by timestamp. `None` for an empty day.
    pub fn compute(points: &[Point]) -> Option<DailyStats> {
        let first = points.first()?;
        let last = points.last()?;
        let count = points.len();
        let mut keys: Vec<i64> = points.iter().map(|p| total_order_key(p.value)).collect();
        let min = from_total_order_key(*keys.iter().min()?);
        let max = from_total_order_key(*keys.iter().max()?);
        let [p50, p90, p99] = percentiles_cont(&mut keys, [0.5, 0.9, 0.99]);
        let Moments { sum, mean, stddev } = Moments::compute(points, min, max);
        Some(DailyStats {
            count: count as u64,
            sum,
            min,
            max,
            mean,
            stddev,
            first_value: first.value,
            first_ts: first.ts,
            last_value: last.value,
            last_ts: last.ts,
            p50,
            p90,
            p99,
        })
    }

    /// The statistics left out (`None`) because their true value is beyond the range of `f64`.
    pub fn out_of_range(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.sum.is_none() {
            names.push("sum");
        }
        if self.count >= 2 && self.stddev.is_none() {
            names.push("stddev");
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn points(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                ts: i as i64,
                value,
                stamp: 1,
            })
            .collect()
    }

    /// The textbook definitions, computed naively in extended precision where it matters.
    fn naive(values: &[f64]) -> (f64, f64, Option<f64>, [f64; 3]) {
        let n = values.len() as f64;
        let sum: f64 = values.iter().sum();
        let mean = sum / n;
        let stddev = (values.len() >= 2)
            .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| {
            let rank = p * (n - 1.0);
            let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
            sorted[lo] + (rank - lo as f64) * (sorted[hi] - sorted[lo])
        };
        (sum, mean, stddev, [pct(0.5), pct(0.9), pct(0.99)])
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300) || (a - b).abs() < 1e-12
    }

    #[test]
    fn known_values() {
        let stats = DailyStats::compute(&points(&[4.0, 1.0, 3.0, 2.0])).unwrap();
        assert_eq!(
            (stats.count, stats.sum, stats.min, stats.max),
            (4, Some(10.0), 1.0, 4.0)
        );
        assert_eq!(stats.mean, 2.5);
        assert!(close(stats.stddev.unwrap(), (5.0f64 / 3.0).sqrt()));
        assert_eq!((stats.first_value, stats.last_value), (4.0, 2.0));
        assert_eq!(stats.p50, 2.5);
        assert!(close(stats.p90, 3.7));
        assert!(close(stats.p99, 3.97));
        let single = DailyStats::compute(&points(&[7.0])).unwrap();
        assert_eq!((single.stddev, single.p99), (None, 7.0));
        assert!(DailyStats::compute(&[]).is_none());
    }

    #[test]
    fn large_offsets_keep_their_precision() {
        // Values around 1e9 with a spread of 1: a one-pass variance would lose every digit.
        let values: Vec<f64> = (0..1440).map(|i| 1e9 + (i % 3) as f64).collect();
        let stats = DailyStats::compute(&points(&values)).unwrap();
        let mean = 1e9 + (480.0 * 0.0 + 480.0 * 1.0 + 480.0 * 2.0) / 1440.0;
        assert!(close(stats.mean, mean));
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 1439.0;
        assert!(close(stats.stddev.unwrap(), var.sqrt()));
    }

    #[test]
    fn values_near_the_largest_finite_keep_finite_statistics() {
        // Two valid observations whose sum, 2e308, is beyond f64.
        let stats = DailyStats::compute(&points(&[1e308, 1e308])).unwrap();
        assert_eq!(stats.sum, None);
        assert_eq!((stats.mean, stats.min, stats.max), (1e308, 1e308, 1e308));
        assert_eq!(stats.stddev, Some(0.0));
        assert_eq!((stats.p50, stats.p90, stats.p99), (1e308, 1e308, 1e308));
        assert_eq!(stats.out_of_range(), ["sum"]);

        // A partial sum overflows, the total does not.
        let stats = DailyStats::compute(&points(&[1e308, 1e308, -1e308])).unwrap();
        assert_eq!(stats.sum, Some(1e308));
        assert!(close(stats.mean, 1e308 / 3.0));
        assert!(close(stats.stddev.unwrap(), 1e308 * (4.0f64 / 3.0).sqrt()));
        assert!(stats.out_of_range().is_empty());

        // The spread of ±f64::MAX: the mean and the median are 0, the deviation is beyond f64.
        let stats = DailyStats::compute(&points(&[f64::MAX, -f64::MAX])).unwrap();
        assert_eq!((stats.sum, stats.mean, stats.p50), (Some(0.0), 0.0, 0.0));
        assert!(close(stats.p90, 0.8 * f64::MAX));
        assert_eq!(stats.stddev, None);
        assert_eq!(stats.out_of_range(), ["stddev"]);

        let stats = DailyStats::compute(&points(&[f64::MAX; 3])).unwrap();
        assert_eq!((stats.mean, stats.p99), (f64::MAX, f64::MAX));
        assert_eq!(stats.stddev, Some(0.0));
    }

    #[test]
    fn tiny_values_keep_their_deviation() {
        // Squared deviations of 1e-300 underflow unless scaled.
        let stats = DailyStats::compute(&points(&[1e-300, 3e-300])).unwrap();
        assert!(close(stats.stddev.unwrap(), 2f64.sqrt() * 1e-300));
        assert!(close(stats.mean, 2e-300));
    }

    proptest! {
        /// Scaling every value by a power of two scales every statistic by it exactly, however
        /// close to the ends of f64 that takes them; only a sum beyond f64 drops out.
        #[test]
        fn statistics_scale_exactly_up_to_the_ends_of_f64(
            values in prop::collection::vec(-1e6f64..1e6, 1..300),
            exponent in -900i32..=1000,
        ) {
            let scaled: Vec<f64> = values.iter().map(|v| times_power_of_two(*v, exponent)).collect();
            let plain = DailyStats::compute(&points(&values)).unwrap();
            let big = DailyStats::compute(&points(&scaled)).unwrap();
            let scale = |x: f64| times_power_of_two(x, exponent);
            let want_sum = Some(scale(plain.sum.unwrap())).filter(|s| s.is_finite());
            prop_assert_eq!(big.sum, want_sum);
            prop_assert_eq!(big.mean, scale(plain.mean));
            prop_assert_eq!(big.stddev, plain.stddev.map(scale));
            prop_assert_eq!(
                [big.min, big.max, big.p50, big.p90, big.p99],
                [plain.min, plain.max, plain.p50, plain.p90, plain.p99].map(scale)
            );
        }

        #[test]
        fn matches_the_naive_reference(values in prop::collection::vec(-1e6f64..1e6, 1..300)) {
            let stats = DailyStats::compute(&points(&values)).unwrap();
            let (sum, mean, stddev, pcts) = naive(&values);
            let stats_sum = stats.sum.unwrap();
            prop_assert!(close(stats_sum, sum) || (stats_sum - sum).abs() < 1e-6);
            prop_assert!(close(stats.mean, mean) || (stats.mean - mean).abs() < 1e-9);
            match (stats.stddev, stddev) {
                (Some(a), Some(b)) => prop_assert!(close(a, b) || (a - b).abs() < 1e-6),
                (a, b) => prop_assert_eq!(a, b),
            }
            prop_assert_eq!([stats.p50, stats.p90, stats.p99], pcts);
            prop_assert_eq!(stats.min, values.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(stats.max, values.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        }

        /// Integer order of the keys is `total_cmp`'s order of the floats, and a key gives back
        /// its float bit for bit (signed zeros, infinities and NaNs included).
        #[test]
        fn total_order_keys_order_as_total_cmp(a in any::<f64>(), b in any::<f64>()) {
            prop_assert_eq!(total_order_key(a).cmp(&total_order_key(b)), a.total_cmp(&b));
            prop_assert_eq!(from_total_order_key(total_order_key(a)).to_bits(), a.to_bits());
        }

        /// Integers are summed exactly in any number of lanes and any length: each lane's
        /// compensation keeps what its running sum rounded away.
        #[test]
        fn compensated_sums_of_integers_are_exact(
            values in prop::collection::vec(-(1i64 << 40)..(1i64 << 40), 0..50),
            big in prop::sample::select(vec![0.0, 1e20, -1e20]),
        ) {
            // `big` and its negation at both ends: a plain sum would lose every small value.
            let floats: Vec<f64> = std::iter::once(big)
                .chain(values.iter().map(|&v| v as f64))
                .chain(std::iter::once(-big))
                .collect();
            prop_assert_eq!(
                CompensatedSum::of(&points(&floats), |p| p.value),
                values.iter().sum::<i64>() as f64
            );
        }
    }
}
