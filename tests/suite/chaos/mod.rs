//! The chaos suite: the pipeline's promises — a bad record or a failed call affects only that
//! record, and every delivery, retry and crash ends in the same SQL table — kept under
//! adversity. Each scenario injects its faults, runs the workload to the end, compares the final
//! summary table with ground truth computed independently (`kit::expected`), and prints one
//! line of figures: messages, deliveries, faults injected, series-days compared, lost, written
//! twice, and healthy messages quarantined (the goal for the last three is 0).
//!
//! Every scenario runs on the embedded backends, and again on the real peers that run here —
//! the Cosmos DB SDK's emulator for the series-days, PostgreSQL for the sink, Azurite for the
//! quarantine — when `scripts/test` (or `scripts/chaos`) has started them; without them the
//! peer run reports itself skipped. The queues are the embedded ones in both (Service Bus has
//! no peer here; its fake is exercised by the `servicebus_*` tests).
//!
//! The short form runs in `scripts/test`; `EVENTIDE_CHAOS=full` (what `scripts/chaos` sets)
//! runs the full sizes and durations: the 60-second outages, the 5-minute sink outage, ten
//! kills.

mod corrections;
mod crash;
mod delivery;
mod faults;
mod isolation;
mod lateness;
mod outages;
mod rig;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::kit::{Expected, Lcg, expected};

/// How big and how long the scenarios are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Small sizes and short outages, for every run of the suite.
    Short,
    /// The sizes and durations the guarantees are stated for (`scripts/chaos`).
    Full,
}

impl Form {
    pub fn current() -> Self {
        match std::env::var("EVENTIDE_CHAOS").as_deref() {
            Ok("full") => Self::Full,
            _ => Self::Short,
        }
    }

    /// `short` in the short form, `full` in the full one.
    pub fn pick<T>(self, short: T, full: T) -> T {
        match self {
            Self::Short => short,
            Self::Full => full,
        }
    }
}

/// What one scenario did and found.
#[derive(Debug, Default)]
pub struct Figures {
    pub scenario: String,
    /// Observation (or summarize) messages the scenario produced.
    pub messages: u64,
    /// Deliveries of those messages to the pipeline, redeliveries included.
    pub deliveries: u64,
    pub faults: u64,
    pub compared: usize,
    /// Series-days whose row is missing or wrong.
    pub lost: usize,
    pub written_twice: usize,
    /// Quarantined or dead-lettered messages that were never bad.
    pub quarantined_healthy: usize,
    pub elapsed: Duration,
    /// Anything else the scenario wants on its line.
    pub note: String,
    /// What differed from ground truth, for the failure message.
    pub differences: Vec<String>,
}

impl Figures {
    /// Prints the line and asserts the goals: nothing lost, nothing written twice, nothing
    /// healthy quarantined.
    pub fn report(self) {
        println!(
            "chaos {}: messages {}, deliveries {}, faults {}, series-days compared {}, lost {}, \
             written twice {}, quarantined healthy {}, {:.1} s{}",
            self.scenario,
            self.messages,
            self.deliveries,
            self.faults,
            self.compared,
            self.lost,
            self.written_twice,
            self.quarantined_healthy,
            self.elapsed.as_secs_f64(),
            if self.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.note)
            }
        );
        assert!(self.compared > 0, "{}: nothing compared", self.scenario);
        assert_eq!(
            (self.lost, self.written_twice, self.quarantined_healthy),
            (0, 0, 0),
            "{}: {:#?}",
            self.scenario,
            self.differences
        );
    }
}

/// A workload and the clean data it adds up to.
pub struct Workload {
    /// NDJSON request bodies, in the order they are sent.
    pub requests: Vec<String>,
    /// `(series, ts) -> value` once every request is in: the last value sent wins.
    pub clean: BTreeMap<(String, DateTime<Utc>), f64>,
}

/// The first day of every workload (the test clock starts two days later).
pub fn first_day() -> NaiveDate {
    "2026-11-18".parse().unwrap()
}

impl Workload {
    /// `series` series over `days` days from [`first_day`], `per_day` points per series-day,
    /// sent `per_request` points per request (each request one queue message), then a
    /// correction of every tenth point in later requests.
    pub fn new(series: usize, days: usize, per_day: usize, per_request: usize, seed: u64) -> Self {
        let mut rng = Lcg(seed);
        let day0 = Utc.from_utc_datetime(&first_day().and_hms_opt(0, 0, 0).unwrap());
        let step = chrono::Duration::minutes(1440 / per_day as i64);
        let mut points = Vec::new();
        for s in 0..series {
            for i in 0..days * per_day {
                let value = 100.0 + s as f64 + (rng.next() % 10_000) as f64 / 101.0;
                points.push((series_name(s), day0 + step * i as i32, value));
            }
        }
        let corrections: Vec<_> = points
            .iter()
            .step_by(10)
            .map(|(series, ts, value)| (series.clone(), *ts, value + 0.25))
            .collect();
        let mut clean = BTreeMap::new();
        let mut requests = Vec::new();
        for batch in [points, corrections] {
            for chunk in batch.chunks(per_request) {
                let mut body = String::new();
                for (series, ts, value) in chunk {
                    body.push_str(&format!(
                        "{{\"series\":\"{series}\",\"ts\":\"{}\",\"value\":{value}}}\n",
                        ts.to_rfc3339()
                    ));
                    clean.insert((series.clone(), *ts), *value);
                }
                requests.push(body);
            }
        }
        Self { requests, clean }
    }

    pub fn expected(&self) -> BTreeMap<(String, NaiveDate), Expected> {
        expected(&self.clean)
    }
}

pub fn series_name(index: usize) -> String {
    format!("chaos-{index:04}")
}
