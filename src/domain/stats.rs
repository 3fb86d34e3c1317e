//! Daily statistics of one series-day, and the row they become in the summary table.
//!
//! Sums use Neumaier's compensated summation and the variance is computed in two passes around
//! the compensated mean, so a day of large, nearly equal values (the common case for meters and
//! counters) keeps its precision. Percentiles interpolate linearly between the closest ranks,
//! exactly as SQL's `PERCENTILE_CONT`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::observation::format_ts;
use super::series::SeriesId;
use super::series_day::Point;

/// The statistics of a non-empty series-day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyStats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation; `None` below two points.
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
    pub revision: i64,
    pub computed_at: DateTime<Utc>,
}

fn serialize_ts<S: serde::Serializer>(ts: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_ts(*ts))
}

/// Compensated (Neumaier) summation.
#[derive(Debug, Default, Clone, Copy)]
struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn total(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// `PERCENTILE_CONT(p)` over ascending `sorted` values (non-empty).
pub fn percentile_cont(sorted: &[f64], p: f64) -> f64 {
    let rank = p * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = rank.ceil() as usize;
    let (a, b) = (sorted[lower], sorted[upper]);
    a + (rank - lower as f64) * (b - a)
}

impl DailyStats {
    /// Computes the statistics of `points`, which hold one point per timestamp (the merged day)
    /// sorted by timestamp. `None` for an empty day.
    pub fn compute(points: &[Point]) -> Option<DailyStats> {
        let first = points.first()?;
        let last = points.last()?;
        let count = points.len();
        let mut sum = CompensatedSum::default();
        for p in points {
            sum.add(p.value);
        }
        let total = sum.total();
        let mean = total / count as f64;
        let stddev = (count >= 2).then(|| {
            let mut squares = CompensatedSum::default();
            let mut deviations = CompensatedSum::default();
            for p in points {
                let d = p.value - mean;
                squares.add(d * d);
                deviations.add(d);
            }
            // The second term corrects for the rounding error left in `mean`.
            let n = count as f64;
            let variance =
                (squares.total() - deviations.total() * deviations.total() / n) / (n - 1.0);
            variance.max(0.0).sqrt()
        });
        let mut sorted: Vec<f64> = points.iter().map(|p| p.value).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        Some(DailyStats {
            count: count as u64,
            sum: total,
            min: sorted[0],
            max: sorted[count - 1],
            mean,
            stddev,
            first_value: first.value,
            first_ts: first.ts,
            last_value: last.value,
            last_ts: last.ts,
            p50: percentile_cont(&sorted, 0.5),
            p90: percentile_cont(&sorted, 0.9),
            p99: percentile_cont(&sorted, 0.99),
        })
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
            (4, 10.0, 1.0, 4.0)
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

    proptest! {
        #[test]
        fn matches_the_naive_reference(values in prop::collection::vec(-1e6f64..1e6, 1..300)) {
            let stats = DailyStats::compute(&points(&values)).unwrap();
            let (sum, mean, stddev, pcts) = naive(&values);
            prop_assert!(close(stats.sum, sum) || (stats.sum - sum).abs() < 1e-6);
            prop_assert!(close(stats.mean, mean) || (stats.mean - mean).abs() < 1e-9);
            match (stats.stddev, stddev) {
                (Some(a), Some(b)) => prop_assert!(close(a, b) || (a - b).abs() < 1e-6),
                (a, b) => prop_assert_eq!(a, b),
            }
            prop_assert_eq!([stats.p50, stats.p90, stats.p99], pcts);
            prop_assert_eq!(stats.min, values.iter().cloned().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(stats.max, values.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        }
    }
}
