//! The workloads `eventide loadgen` sends: what each request holds, derived from a seed so that
//! every run of the same workload sends the same bytes.
//!
//! A workload is `series` × `points` evenly spaced observations over one UTC day, cut into
//! *messages*: `points_per_message` consecutive points of ONE series, what one series reports at
//! a time (ingest once made each its own queue message; it now packs a request's points, all
//! series together, into chunks of up to 62 KiB, and its replies say how many). A request
//! carries the messages of `series_per_request` series for the same stretch of time — W1 all of
//! them, as a source that reports every series every ten minutes sends them. The requests go out in time
//! order: the first points of every series, then the next.
//!
//! Trouble is mixed in per item, drawn from a random generator seeded by the run's seed and the
//! message's index (so any message can be rebuilt alone, in any order, whatever the requests it
//! is grouped into, without holding the workload in memory):
//! - **bad** items carry a value that is not a number: ingest rejects them as invalid;
//! - **late** items are stamped [`LATE_BY_DAYS`] days before the workload's day, a day long
//!   closed under the default `EVENTIDE_MAX_LATENESS`: ingest refuses them as closed;
//! - **duplicates** repeat a point with its value, **corrections** send a point again with a new
//!   value. Both go out in a second pass, after every first-pass request was answered, so a
//!   correction always follows the value it corrects.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{NaiveDate, NaiveTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::domain::observation::format_ts;

/// How far before the workload's day late items are stamped: far beyond the default lateness of
/// one day, so they are refused as closed whatever the target's clock says about the day itself.
pub const LATE_BY_DAYS: u64 = 7;

/// What a correction adds to the value it corrects (any change would do; a round one reads well).
const CORRECTION_DELTA: f64 = 0.5;

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// The named workloads of `eventide loadgen --workload`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Named {
    /// W1: 1,000 series × 1,440 points (one a minute), 10 points of each series at a time,
    /// every series in each request, sent as fast as the concurrency allows (or at `--rate`).
    W1,
    /// W1's volume with a burst: the first and last thirds at the base rate (`--rate`, default
    /// [`BURST_BASE_RATE`] observations/s), the middle third at ten times that.
    Burst,
}

/// The base rate of the burst workload when `--rate` is not given, in observations per second.
pub const BURST_BASE_RATE: f64 = 1_000.0;

/// How much faster than its base rate the burst workload sends in its middle third.
pub const BURST_FACTOR: f64 = 10.0;

/// The shape of a workload: its size and the share of each kind of trouble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    pub series: usize,
    pub points: usize,
    pub points_per_message: usize,
    /// Series whose messages one request carries (reports written before this knob: 1).
    #[serde(default = "one_series")]
    pub series_per_request: usize,
    /// The UTC day the points belong to.
    pub day: NaiveDate,
    pub seed: u64,
    /// Share of items that are invalid (0–1).
    pub bad_ratio: f64,
    /// Share of items stamped on a closed day (0–1).
    pub late_ratio: f64,
    /// Share of valid points sent a second time with the same value (0–1).
    pub duplicate_ratio: f64,
    /// Share of valid points sent a second time with a new value (0–1).
    pub correction_ratio: f64,
}

fn one_series() -> usize {
    1
}

/// What one item of a first-pass request turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Valid,
    Bad,
    Late,
}

/// What happens to a valid point in the second pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    None,
    Duplicate,
    Correction,
}

/// One point of a first-pass request, as drawn.
struct Item {
    series: usize,
    /// Index of the point within the day.
    point: usize,
    kind: Kind,
    value: f64,
    repeat: Repeat,
}

/// Which pass a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Every point once, with the bad and late items mixed in.
    First,
    /// The duplicates and corrections of the first pass.
    Second,
}

/// One request: its NDJSON body and what its items are.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub body: String,
    pub items: ItemCounts,
}

/// Items by kind; a request's, or a whole run's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    /// Every item sent.
    pub items: u64,
    /// Valid first-pass points.
    pub valid: u64,
    pub bad: u64,
    pub late: u64,
    pub duplicates: u64,
    pub corrections: u64,
}

impl ItemCounts {
    /// Items the target should accept: valid points and every second-pass item.
    pub fn acceptable(&self) -> u64 {
        self.valid + self.duplicates + self.corrections
    }

    /// Items the target should reject: invalid ones and those for a closed day.
    pub fn refusable(&self) -> u64 {
        self.bad + self.late
    }

    pub fn add(&mut self, other: &ItemCounts) {
        self.items += other.items;
        self.valid += other.valid;
        self.bad += other.bad;
        self.late += other.late;
        self.duplicates += other.duplicates;
        self.corrections += other.corrections;
    }
}

impl Shape {
    /// Checks the knobs before anything is sent.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.series > 0
                && self.points > 0
                && self.points_per_message > 0
                && self.series_per_request > 0,
            "--series, --points, --points-per-message and --series-per-request must be positive"
        );
        anyhow::ensure!(
            self.points <= 86_400,
            "--points: at most one point a second (86,400 a day)"
        );
        for (name, ratio) in [
            ("--bad-ratio", self.bad_ratio),
            ("--late-ratio", self.late_ratio),
            ("--duplicate-ratio", self.duplicate_ratio),
            ("--correction-ratio", self.correction_ratio),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&ratio),
                "{name} must be between 0 and 1"
            );
        }
        anyhow::ensure!(
            self.bad_ratio + self.late_ratio <= 1.0,
            "--bad-ratio plus --late-ratio must not exceed 1"
        );
        anyhow::ensure!(
            self.duplicate_ratio + self.correction_ratio <= 1.0,
            "--duplicate-ratio plus --correction-ratio must not exceed 1"
        );
        Ok(())
    }

    /// Requests per pass: one per run of `points_per_message` points and group of
    /// `series_per_request` series.
    pub fn requests(&self) -> usize {
        self.series.div_ceil(self.series_per_request) * self.runs()
    }

    /// Messages of the first pass: one per series and run of `points_per_message` points.
    pub fn messages(&self) -> usize {
        self.series * self.runs()
    }

    /// Runs of `points_per_message` points in a series' day.
    fn runs(&self) -> usize {
        self.points.div_ceil(self.points_per_message)
    }

    /// The messages request `index` carries: the same run of every series of its group.
    fn messages_of(&self, index: usize) -> std::ops::Range<usize> {
        let groups = self.series.div_ceil(self.series_per_request);
        let (run, group) = (index / groups, index % groups);
        let first = group * self.series_per_request;
        let last = (first + self.series_per_request).min(self.series);
        run * self.series + first..run * self.series + last
    }

    /// Every observation of the first pass (the second pass's size is only known once drawn).
    pub fn observations(&self) -> u64 {
        (self.series * self.points) as u64
    }

    /// Request `index` of `pass`; `None` for a second-pass request with nothing to repeat.
    pub fn request(&self, pass: Pass, index: usize) -> Option<Request> {
        let mut request = Request::default();
        for message in self.messages_of(index) {
            self.write_message(pass, message, &mut request);
        }
        (request.items.items > 0).then_some(request)
    }

    /// Appends the items of message `message` of `pass` to `request`.
    fn write_message(&self, pass: Pass, message: usize, request: &mut Request) {
        for item in self.draw(message) {
            let value = match (pass, item.repeat) {
                (Pass::First, _) => item.value,
                (Pass::Second, Repeat::None) => continue,
                (Pass::Second, Repeat::Duplicate) => item.value,
                (Pass::Second, Repeat::Correction) => item.value + CORRECTION_DELTA,
            };
            let counts = &mut request.items;
            counts.items += 1;
            match (pass, item.kind, item.repeat) {
                (Pass::First, Kind::Valid, _) => counts.valid += 1,
                (Pass::First, Kind::Bad, _) => counts.bad += 1,
                (Pass::First, Kind::Late, _) => counts.late += 1,
                (Pass::Second, _, Repeat::Duplicate) => counts.duplicates += 1,
                (Pass::Second, _, _) => counts.corrections += 1,
            }
            let series = series_name(item.series);
            let ts = format_ts(self.timestamp(item.point, item.kind == Kind::Late));
            let _ = if item.kind == Kind::Bad {
                writeln!(
                    request.body,
                    r#"{{"series":"{series}","ts":"{ts}","value":"n/a"}}"#
                )
            } else {
                writeln!(
                    request.body,
                    r#"{{"series":"{series}","ts":"{ts}","value":{value}}}"#
                )
            };
        }
    }

    /// The points the target must hold once everything was merged, by series and timestamp (UTC
    /// nanoseconds): the ground truth a run is compared with.
    pub fn expected_points(&self) -> BTreeMap<String, BTreeMap<i64, f64>> {
        let mut points: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
        for message in 0..self.messages() {
            for item in self.draw(message) {
                if item.kind != Kind::Valid {
                    continue;
                }
                let value = match item.repeat {
                    Repeat::Correction => item.value + CORRECTION_DELTA,
                    Repeat::None | Repeat::Duplicate => item.value,
                };
                points
                    .entry(series_name(item.series))
                    .or_default()
                    .insert(self.timestamp(item.point, false), value);
            }
        }
        points
    }

    /// The items of first-pass message `index`, drawn from the seed and the index alone.
    fn draw(&self, index: usize) -> Vec<Item> {
        // Time order: run 0 of every series, then run 1, …
        let (run, series) = (index / self.series, index % self.series);
        let first = run * self.points_per_message;
        let last = (first + self.points_per_message).min(self.points);
        debug_assert!(run < self.runs(), "message {index} is beyond the workload");
        let mut rng = StdRng::seed_from_u64(mix(self.seed, index as u64));
        (first..last)
            .map(|point| {
                let roll: f64 = rng.random();
                let kind = if roll < self.bad_ratio {
                    Kind::Bad
                } else if roll < self.bad_ratio + self.late_ratio {
                    Kind::Late
                } else {
                    Kind::Valid
                };
                let phase = point as f64 / self.points as f64 * std::f64::consts::TAU;
                let noise: f64 = rng.random();
                let value = 20.0 + 5.0 * phase.sin() + (noise * 1000.0).round() / 1000.0;
                let again: f64 = rng.random();
                let repeat = if kind != Kind::Valid {
                    Repeat::None
                } else if again < self.duplicate_ratio {
                    Repeat::Duplicate
                } else if again < self.duplicate_ratio + self.correction_ratio {
                    Repeat::Correction
                } else {
                    Repeat::None
                };
                Item {
                    series,
                    point,
                    kind,
                    value,
                    repeat,
                }
            })
            .collect()
    }

    /// The UTC timestamp of point `point`, on the workload's day or, for a late item,
    /// [`LATE_BY_DAYS`] before it.
    fn timestamp(&self, point: usize, late: bool) -> i64 {
        let day = if late {
            self.day
                .checked_sub_days(chrono::Days::new(LATE_BY_DAYS))
                .unwrap_or(self.day)
        } else {
            self.day
        };
        let midnight = day
            .and_time(NaiveTime::MIN)
            .and_utc()
            .timestamp_nanos_opt()
            .unwrap_or_default();
        midnight + point as i64 * (NANOS_PER_DAY / self.points as i64)
    }
}

/// The series name of series `index`: `loadgen-00042`.
pub fn series_name(index: usize) -> String {
    format!("loadgen-{index:05}")
}

/// One 64-bit seed per request from the run's seed (SplitMix64's finalizer), so neighbouring
/// requests draw unrelated sequences.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            series: 3,
            points: 50,
            points_per_message: 10,
            series_per_request: 1,
            day: NaiveDate::from_ymd_opt(2026, 11, 19).unwrap(),
            seed: 7,
            bad_ratio: 0.1,
            late_ratio: 0.1,
            duplicate_ratio: 0.2,
            correction_ratio: 0.2,
        }
    }

    fn totals(shape: &Shape, pass: Pass) -> ItemCounts {
        let mut totals = ItemCounts::default();
        for index in 0..shape.requests() {
            if let Some(request) = shape.request(pass, index) {
                totals.add(&request.items);
            }
        }
        totals
    }

    #[test]
    fn the_same_seed_sends_the_same_bytes_and_another_seed_does_not() {
        let a = shape();
        let b = Shape { seed: 8, ..shape() };
        let body = |s: &Shape, i| s.request(Pass::First, i).unwrap().body;
        assert_eq!(body(&a, 4), body(&a, 4));
        assert_ne!(body(&a, 4), body(&b, 4));
    }

    #[test]
    fn every_point_is_sent_once_in_the_first_pass_and_the_knobs_shape_the_items() {
        let shape = shape();
        let first = totals(&shape, Pass::First);
        assert_eq!(first.items, shape.observations());
        assert_eq!(first.valid + first.bad + first.late, first.items);
        assert!(first.bad > 0 && first.late > 0);
        let second = totals(&shape, Pass::Second);
        assert_eq!(second.items, second.duplicates + second.corrections);
        assert!(second.duplicates > 0 && second.corrections > 0);
        let expected = shape.expected_points();
        let held: u64 = expected.values().map(|p| p.len() as u64).sum();
        assert_eq!(held, first.valid);

        let clean = Shape {
            bad_ratio: 0.0,
            late_ratio: 0.0,
            duplicate_ratio: 0.0,
            correction_ratio: 0.0,
            ..shape
        };
        assert_eq!(totals(&clean, Pass::First).valid, clean.observations());
        assert_eq!(totals(&clean, Pass::Second), ItemCounts::default());
    }

    #[test]
    fn a_request_holds_one_series_and_late_items_fall_on_a_closed_day() {
        let shape = Shape {
            late_ratio: 1.0,
            bad_ratio: 0.0,
            ..shape()
        };
        let request = shape.request(Pass::First, 4).unwrap();
        assert_eq!(request.items.late, 10);
        assert!(request.body.lines().all(|l| l.contains("loadgen-00001")));
        assert!(
            request
                .body
                .lines()
                .all(|l| l.contains("\"ts\":\"2026-11-12T"))
        );
        assert!(shape.expected_points().is_empty());
    }

    #[test]
    fn grouping_series_into_requests_sends_the_same_messages_in_fewer_requests() {
        let single = shape();
        let grouped = Shape {
            series_per_request: 2,
            ..shape()
        };
        assert_eq!(single.requests(), 15);
        assert_eq!(grouped.requests(), 10, "two groups (2 + 1 series) per run");
        let bodies = |s: &Shape| -> String {
            (0..s.requests())
                .filter_map(|i| s.request(Pass::First, i))
                .map(|r| r.body)
                .collect()
        };
        assert_eq!(
            bodies(&single),
            bodies(&grouped),
            "the same bytes, in the same order"
        );
        let first = grouped.request(Pass::First, 0).unwrap();
        assert!(first.body.contains("loadgen-00000") && first.body.contains("loadgen-00001"));
        assert!(!first.body.contains("loadgen-00002"));
        assert_eq!(single.expected_points(), grouped.expected_points());
    }

    #[test]
    fn bad_knobs_are_refused() {
        assert!(
            Shape {
                bad_ratio: 1.5,
                ..shape()
            }
            .validate()
            .is_err()
        );
        assert!(
            Shape {
                points_per_message: 0,
                ..shape()
            }
            .validate()
            .is_err()
        );
        assert!(
            Shape {
                series_per_request: 0,
                ..shape()
            }
            .validate()
            .is_err()
        );
        assert!(shape().validate().is_ok());
    }
}
