//! The report of one `eventide loadgen` run: a table for people, JSON (`--json`) for machines —
//! `eventide cost --from-report` reads it back.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::sender::{Segment, Tally};
use super::settle::Settled;
use super::workload::{ItemCounts, Named, Shape};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The target's base URL (the function key is never part of it).
    pub target: String,
    pub workload: Named,
    pub shape: Shape,
    pub concurrency: usize,
    pub requests: u64,
    /// Items sent, by kind.
    pub sent: ItemCounts,
    /// Items the target's replies accepted.
    pub accepted: u64,
    /// Queue messages the replies said the accepted items were packed into (reports written
    /// before this count: 0).
    #[serde(default)]
    pub messages: u64,
    /// Items of answered requests that were not accepted …
    pub rejected: u64,
    /// … of which refused for a closed day.
    pub rejected_closed: u64,
    /// Items of requests that failed without a counting reply.
    pub unanswered: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Observations per second offered; `None` when sent as fast as the concurrency allowed.
    pub offered_rate: Option<f64>,
    /// Observations per second answered.
    pub achieved_rate: f64,
    pub elapsed_s: f64,
    pub latency_ms: Latency,
    pub segments: Vec<SegmentReport>,
    /// What `/api/status` told; `None` when the target serves none.
    pub settled: Option<Settled>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentReport {
    pub name: String,
    pub requests: u64,
    pub items: u64,
    pub offered_rate: Option<f64>,
    pub achieved_rate: f64,
    pub latency_ms: Latency,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// Observations per second of `tally`, answered.
fn achieved(tally: &Tally) -> f64 {
    let answered = tally.items.items - tally.unanswered;
    answered as f64 / tally.elapsed.as_secs_f64().max(f64::EPSILON)
}

impl SegmentReport {
    pub fn new(segment: &Segment, tally: &Tally) -> Self {
        Self {
            name: segment.name.to_string(),
            requests: tally.requests,
            items: tally.items.items,
            offered_rate: segment.rate,
            achieved_rate: achieved(tally),
            latency_ms: Latency::of(&tally.latency),
        }
    }
}

/// What a run was, besides its tallies.
pub struct RunInfo {
    pub target: String,
    pub workload: Named,
    pub shape: Shape,
    pub concurrency: usize,
}

impl Report {
    pub fn new(
        info: RunInfo,
        segments: Vec<SegmentReport>,
        total: &Tally,
        settled: Option<Settled>,
    ) -> Self {
        // Offered overall: every item over the time the offered rates planned for them.
        let planned: Option<f64> = segments
            .iter()
            .map(|s| s.offered_rate.map(|rate| s.items as f64 / rate))
            .sum();
        Self {
            target: info.target,
            workload: info.workload,
            shape: info.shape,
            concurrency: info.concurrency,
            requests: total.requests,
            sent: total.items,
            accepted: total.accepted,
            messages: total.messages,
            rejected: total.rejected,
            rejected_closed: total.rejected_closed,
            unanswered: total.unanswered,
            errors: total.errors.clone(),
            offered_rate: planned.map(|secs| total.items.items as f64 / secs.max(f64::EPSILON)),
            achieved_rate: achieved(total),
            elapsed_s: total.elapsed.as_secs_f64(),
            latency_ms: Latency::of(&total.latency),
            segments,
            settled,
        }
    }
}

fn rate(rate: Option<f64>) -> String {
    rate.map_or_else(|| "unpaced".into(), |r| format!("{r:.0}/s"))
}

fn seconds(s: Option<f64>) -> String {
    s.map_or_else(|| "not reached".into(), |s| format!("{s:.2} s"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = &self.shape;
        writeln!(
            f,
            "eventide loadgen {:?} → {}: {} series × {} points on {}, {} at a time per series, {} series per request, seed {}, {} in flight",
            self.workload,
            self.target,
            shape.series,
            shape.points,
            shape.day,
            shape.points_per_message,
            shape.series_per_request,
            shape.seed,
            self.concurrency
        )?;
        let sent = &self.sent;
        writeln!(
            f,
            "  requests                 {:>12}  ({} queue messages)",
            self.requests, self.messages
        )?;
        writeln!(
            f,
            "  items sent               {:>12}  (valid {}, bad {}, late {}, duplicates {}, corrections {})",
            sent.items, sent.valid, sent.bad, sent.late, sent.duplicates, sent.corrections
        )?;
        writeln!(f, "  accepted                 {:>12}", self.accepted)?;
        writeln!(
            f,
            "  rejected                 {:>12}  ({} for a closed day)",
            self.rejected, self.rejected_closed
        )?;
        writeln!(f, "  unanswered               {:>12}", self.unanswered)?;
        writeln!(
            f,
            "  offered / achieved rate  {:>12} / {:.0} observations/s over {:.2} s",
            rate(self.offered_rate),
            self.achieved_rate,
            self.elapsed_s
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "  latency ms               p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        if self.errors.is_empty() {
            writeln!(f, "  errors                   none")?;
        }
        for (kind, n) in &self.errors {
            writeln!(f, "  errors: {kind:<16} {n:>12}")?;
        }
        if self.segments.len() > 1 {
            writeln!(
                f,
                "  {:<14} {:>9} {:>10} {:>10} {:>10} {:>10}",
                "segment", "requests", "offered", "achieved", "p50 ms", "p99 ms"
            )?;
            for s in &self.segments {
                writeln!(
                    f,
                    "  {:<14} {:>9} {:>10} {:>8.0}/s {:>10.1} {:>10.1}",
                    s.name,
                    s.requests,
                    rate(s.offered_rate),
                    s.achieved_rate,
                    s.latency_ms.p50,
                    s.latency_ms.p99
                )?;
            }
        }
        match &self.settled {
            None => writeln!(f, "  target status            not served (no /api/status)")?,
            Some(settled) => {
                writeln!(
                    f,
                    "  all merged after         {:>12}",
                    seconds(settled.merged_after_s)
                )?;
                writeln!(
                    f,
                    "  all summarized after     {:>12}",
                    seconds(settled.summarized_after_s)
                )?;
                let counted: Vec<String> = settled
                    .counters
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(name, n)| format!("{name} {n}"))
                    .collect();
                writeln!(f, "  target counted           {}", counted.join(", "))?;
            }
        }
        Ok(())
    }
}
