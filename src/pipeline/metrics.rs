//! In-process metrics: every figure Eventide exports is defined here, once. Successful work is
//! counted, never logged line by line: counters and histograms aggregate in process and are
//! read on demand (`/api/status`, `/metrics`) or exported on an interval (`telemetry`).
//!
//! Dimensions are bounded by construction: a breakdown (rejections by class, quarantined items
//! by function, failures by dependency) is one counter per attribute value, each named here
//! with its value as a literal — a series name, message id or day can never become an
//! attribute, and the exported series per interval are bounded by this file.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

/// How a counter is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// As the instrument `eventide.<name>`, without attributes.
    Own,
    /// Not exported: the total of a breakdown, kept for `/api/status`.
    Local,
    /// As one attribute value of a shared instrument: `eventide.<instrument>{key=value}`.
    Grouped {
        instrument: &'static str,
        key: &'static str,
        value: &'static str,
    },
}

macro_rules! export {
    () => {
        Export::Own
    };
    (local) => {
        Export::Local
    };
    ($instrument:ident { $key:ident = $value:literal }) => {
        Export::Grouped {
            instrument: stringify!($instrument),
            key: stringify!($key),
            value: $value,
        }
    };
}

macro_rules! metrics {
    (
        counters { $($name:ident $([$($export:tt)*])?: $doc:literal,)* }
        histograms { $($histogram:ident: $hdoc:literal,)* }
    ) => {
        /// Counters and histograms shared by every use case of one process.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $doc] pub $name: AtomicU64,)*
            $(#[doc = $hdoc] pub $histogram: Histogram,)*
            adapters: Adapters,
        }

        impl Metrics {
            /// The current value of every counter, by name: the pipeline's, and those of the
            /// adapters that keep their own ([`ADAPTER_COUNTERS`], once attached).
            pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
                let mut values =
                    BTreeMap::from([$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]);
                self.adapters.add_to(&mut values);
                values
            }

            /// Every counter's name, description and export, in declaration order.
            pub const DESCRIPTIONS: &[Counter] = &[$(Counter {
                name: stringify!($name),
                doc: $doc,
                export: export!($($($export)*)?),
            },)*];

            /// Every histogram's name and description, in declaration order.
            pub const HISTOGRAMS: &[Described] = &[$(Described {
                name: stringify!($histogram),
                doc: $hdoc,
            },)*];

            /// Every histogram with its name.
            pub fn histograms(&self) -> Vec<(&'static str, &Histogram)> {
                vec![$((stringify!($histogram), &self.$histogram),)*]
            }

            /// The counter declared as `name`.
            fn counter(&self, name: &str) -> Option<&AtomicU64> {
                match name {
                    $(stringify!($name) => Some(&self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

metrics! {
    counters {
        observations_accepted: "Observations that passed validation at ingest.",
        observations_rejected [local]: "Observations rejected at ingest, each with its reason in the reply (exported by class).",
        rejected_not_an_object [observations_rejected { class = "not_an_object" }]: "Rejected: an item that is not a JSON object.",
        rejected_undecodable [observations_rejected { class = "undecodable" }]: "Rejected: an item that could not be decoded.",
        rejected_series [observations_rejected { class = "series" }]: "Rejected: a missing or invalid series name.",
        rejected_ts [observations_rejected { class = "ts" }]: "Rejected: a missing or invalid timestamp.",
        rejected_value [observations_rejected { class = "value" }]: "Rejected: a missing, non-numeric or non-finite value.",
        rejected_source [observations_rejected { class = "source" }]: "Rejected: an invalid source label.",
        rejected_unit [observations_rejected { class = "unit" }]: "Rejected: an invalid unit label.",
        rejected_tags [observations_rejected { class = "tags" }]: "Rejected: invalid tags.",
        rejected_closed_day [observations_rejected { class = "closed_day" }]: "Rejected: an observation for a day that is closed.",
        rejected_series_limit [observations_rejected { class = "series_limit" }]: "Rejected: a series beyond the per-request limit.",
        rejected_other [observations_rejected { class = "other" }]: "Rejected for a reason of no class above.",
        chunks_sent: "Observation chunks sent to the observations queue.",
        messages_processed: "Observation messages handled by `process`.",
        points_merged: "Valid points handed to the series-day store by `process`.",
        series_days_written: "Series-day merges that changed stored data.",
        merge_conflicts: "Conditional writes that lost a race and were redone.",
        summaries_scheduled: "Summarize epochs opened: message sent and recorded (one per series, day and epoch).",
        summary_send_races: "Summarize sends that lost the race to record their epoch; the queue dropped the duplicate.",
        summaries_written: "Summary rows written to the sink.",
        summaries_unchanged: "Summary rows not written because the stored revision was not older.",
        summaries_out_of_range: "Summary rows stored with a statistic left NULL because its true value is beyond double precision (the sum of values near ±1.8e308).",
        summaries_refused: "Series-days that can never be summarized (stored points that cannot be read, statistics SQL cannot hold, a row the sink refuses for good); their messages are quarantined with the reason.",
        locks_renewed: "Locks of queue messages renewed while their batch was still being worked on.",
        summarize_stale: "Summarize messages for an epoch that a newer one replaced.",
        reconciled: "Series-days whose lost summarize message was replaced by `reconcile`.",
        quarantined [local]: "Items and messages put in quarantine (exported by function).",
        quarantined_process [quarantined { function = "process" }]: "Items and messages `process` put in quarantine.",
        quarantined_summarize [quarantined { function = "summarize" }]: "Summarize messages put in quarantine.",
        transient_failures: "Work a transient dependency error stopped after its patience — a batch given back to its queue, a failed reconcile run; it is retried later.",
        outage_retries: "Batches tried again inside their delivery after a transient dependency error (`EVENTIDE_OUTAGE_PATIENCE`).",
        failures_observations_queue [dependency_failures { dependency = "observations_queue" }]: "Calls to the observations queue that failed after the adapter's retries.",
        failures_summaries_queue [dependency_failures { dependency = "summaries_queue" }]: "Calls to the summaries queue (send, receive, settle) that failed after the adapter's retries.",
        failures_store [dependency_failures { dependency = "store" }]: "Calls to the series-day store (and the idempotency keys beside it) that failed after the adapter's retries.",
        failures_sink [dependency_failures { dependency = "sink" }]: "Calls to the summary sink that failed after the adapter's retries, including rows it refused for good.",
        failures_quarantine [dependency_failures { dependency = "quarantine" }]: "Calls to the quarantine that failed after the adapter's retries.",
    }
    histograms {
        process_batch_seconds: "How long `process` took per delivered batch.",
        summarize_batch_seconds: "How long `summarize` took per received batch.",
        ingest_to_merged_seconds: "From a message's enqueueing at ingest to its points being merged, per message.",
        day_end_to_row_seconds: "From the end of a day to its summary row being written, per row.",
        sink_write_seconds: "How long one write of summary rows to the sink took.",
    }
}

/// The counters adapters keep themselves, because only they see each request: what a Cosmos
/// DB request cost, each Service Bus call. Attached to the pipeline's [`Metrics`] with
/// [`Metrics::attach`] and read with them.
pub const ADAPTER_COUNTERS: &[Counter] = &[
    Counter {
        name: "cosmos_request_units",
        doc: "Cosmos DB request units consumed (whole units), retries and lost races included.",
        export: Export::Own,
    },
    Counter {
        name: "cosmos_throttled",
        doc: "Cosmos DB responses with status 429 (too many requests).",
        export: Export::Own,
    },
    Counter {
        name: "cosmos_retries",
        doc: "Cosmos DB attempts repeated after a transient failure (the adapter's and the SDK's).",
        export: Export::Own,
    },
    service_bus_operation("servicebus_send", "send"),
    service_bus_operation("servicebus_batch_send", "batch_send"),
    service_bus_operation("servicebus_peek_lock", "peek_lock"),
    service_bus_operation("servicebus_complete", "complete"),
    service_bus_operation("servicebus_abandon", "abandon"),
    service_bus_operation("servicebus_renew_lock", "renew_lock"),
];

const fn service_bus_operation(name: &'static str, operation: &'static str) -> Counter {
    Counter {
        name,
        doc: "Service Bus REST calls, by operation (one per call, its retries not counted).",
        export: Export::Grouped {
            instrument: "servicebus_operations",
            key: "operation",
            value: operation,
        },
    }
}

/// What an adapter that keeps its own counters reports: each counter's name (one of
/// [`ADAPTER_COUNTERS`]) and its value so far.
pub trait AdapterCounters: Send + Sync {
    fn read(&self) -> Vec<(&'static str, u64)>;
}

/// The attached adapters' counters.
#[derive(Default)]
struct Adapters(Mutex<Vec<Arc<dyn AdapterCounters>>>);

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Adapters")
    }
}

impl Adapters {
    /// Adds each attached adapter's counters to `values` (two adapters of a kind add up).
    fn add_to(&self, values: &mut BTreeMap<&'static str, u64>) {
        let adapters = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for adapter in adapters.iter() {
            for (name, value) in adapter.read() {
                if ADAPTER_COUNTERS.iter().any(|c| c.name == name) {
                    *values.entry(name).or_default() += value;
                }
            }
        }
    }
}

/// The queues whose backlog is a gauge (`queue_backlog{queue}`), where the backend can count.
pub const BACKLOG_QUEUES: [&str; 2] = ["observations", "summaries"];

/// One counter's name, description and export.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    pub name: &'static str,
    pub doc: &'static str,
    pub export: Export,
}

/// A histogram's name and description.
#[derive(Debug, Clone, Copy)]
pub struct Described {
    pub name: &'static str,
    pub doc: &'static str,
}

impl Metrics {
    /// Every counter: the pipeline's, then the adapters'.
    pub fn counters() -> impl Iterator<Item = &'static Counter> {
        Self::DESCRIPTIONS.iter().chain(ADAPTER_COUNTERS)
    }

    /// Reads `adapter`'s counters with the pipeline's from now on.
    pub fn attach(&self, adapter: Arc<dyn AdapterCounters>) {
        self.adapters
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(adapter);
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts rejected observations of one class (the classes of `domain::parse` and
    /// `pipeline::ingest`, as declared above; any other lands in `other`).
    pub fn reject(&self, class: &str, n: usize) {
        let counter = self
            .breakdown("observations_rejected", class)
            .unwrap_or(&self.rejected_other);
        Self::add(counter, n);
        Self::add(&self.observations_rejected, n);
    }

    /// The counter exported as one value of a breakdown, `instrument{…=value}`: the declaration
    /// above is the one list of a breakdown's values.
    fn breakdown(&self, instrument: &str, value: &str) -> Option<&AtomicU64> {
        let declared = Self::DESCRIPTIONS.iter().find(|counter| {
            matches!(counter.export, Export::Grouped { instrument: i, value: v, .. }
                if i == instrument && v == value)
        })?;
        self.counter(declared.name)
    }

    /// Counts items put in quarantine by one function (`by_function` is one of the
    /// `quarantined_*` counters).
    pub fn quarantine(&self, by_function: &AtomicU64, n: usize) {
        Self::add(by_function, n);
        Self::add(&self.quarantined, n);
    }
}

/// The upper bounds, in seconds, of every histogram's buckets: from milliseconds (a sink
/// write) to a day (the lag from a day's end to its row under a long grace period).
pub const BUCKET_BOUNDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 900.0, 3600.0,
    86400.0,
];

/// A histogram of durations in seconds over [`BUCKET_BOUNDS`], aggregated in process. When
/// telemetry is exported, each observation is also recorded into the exporting instrument
/// (set once by `telemetry`), which aggregates it the same way until the next export.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket; the last is above every bound.
    buckets: [AtomicU64; BUCKET_BOUNDS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
    exported: OnceLock<opentelemetry::metrics::Histogram<f64>>,
}

/// A histogram's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum_seconds: f64,
    /// Observations per bucket of [`BUCKET_BOUNDS`], the last above every bound (not
    /// cumulative).
    pub buckets: Vec<u64>,
}

impl Histogram {
    /// Records one duration (a negative lag, from clock skew, counts as zero).
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = BUCKET_BOUNDS.partition_point(|bound| *bound < seconds);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        if let Some(exported) = self.exported.get() {
            exported.record(seconds, &[]);
        }
    }

    /// Records the time from `from` to `to`, zero when `to` is earlier.
    pub fn observe_lag(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) {
        self.observe((to - from).to_std().unwrap_or_default());
    }

    /// Sends every later observation to `instrument` too (the first call wins).
    pub fn export_to(&self, instrument: opentelemetry::metrics::Histogram<f64>) {
        let _ = self.exported.set(instrument);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_count_by_class_and_in_total() {
        let metrics = Metrics::default();
        metrics.reject("ts", 2);
        metrics.reject("closed_day", 1);
        metrics.reject("something new", 4);
        let counters = metrics.snapshot();
        assert_eq!(counters["rejected_ts"], 2);
        assert_eq!(counters["rejected_closed_day"], 1);
        assert_eq!(counters["rejected_other"], 4);
        assert_eq!(counters["observations_rejected"], 7);
    }

    #[test]
    fn attached_adapters_add_their_known_counters() {
        struct Fixed;
        impl AdapterCounters for Fixed {
            fn read(&self) -> Vec<(&'static str, u64)> {
                vec![("cosmos_throttled", 2), ("not_declared", 9)]
            }
        }
        let metrics = Metrics::default();
        assert!(!metrics.snapshot().contains_key("cosmos_throttled"));
        metrics.attach(Arc::new(Fixed));
        metrics.attach(Arc::new(Fixed));
        let counters = metrics.snapshot();
        assert_eq!(counters["cosmos_throttled"], 4);
        assert!(!counters.contains_key("not_declared"));
    }

    #[test]
    fn every_breakdown_has_a_local_total_of_the_same_name() {
        for counter in Metrics::counters() {
            if let Export::Grouped { instrument, .. } = counter.export {
                let total = Metrics::counters().find(|c| c.name == instrument);
                assert!(
                    total.is_none_or(|t| t.export == Export::Local),
                    "{instrument} is exported both whole and broken down"
                );
            }
        }
    }

    #[test]
    fn histograms_bucket_by_upper_bound() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_millis(6));
        histogram.observe(Duration::from_secs(2 * 86400));
        let at = "2026-01-10T00:00:00Z".parse().unwrap();
        histogram.observe_lag(at, at - chrono::Duration::seconds(1));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 4);
        assert_eq!(snapshot.buckets[0], 2, "5 ms and the negative lag: ≤ 5 ms");
        assert_eq!(snapshot.buckets[1], 1);
        assert_eq!(snapshot.buckets[BUCKET_BOUNDS.len()], 1, "beyond a day");
        assert!((snapshot.sum_seconds - (0.011 + 2.0 * 86400.0)).abs() < 1e-9);
    }
}
