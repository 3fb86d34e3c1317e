//! In-process counters. Successful work is counted, never logged line by line: counters
//! aggregate and are read on demand (`/api/status`) or exported on an interval.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal,)*) => {
        /// Counters shared by every use case of one process.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// The current value of every counter, by name.
            pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
                BTreeMap::from([$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*])
            }

            /// Every counter's name and what it counts, in declaration order (for exporters
            /// and the Prometheus page, which describe each series).
            pub const DESCRIPTIONS: &[Counter] = &[$(Counter { name: stringify!($name), doc: $doc },)*];
        }
    };
}

counters! {
    observations_accepted: "Observations that passed validation at ingest.",
    observations_rejected: "Observations rejected at ingest, each with its reason in the reply.",
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
    quarantined: "Items and messages put in quarantine.",
    transient_failures: "Work a transient dependency error stopped after its patience — a batch given back to its queue, a failed reconcile run; it is retried later.",
    outage_retries: "Batches tried again inside their delivery after a transient dependency error (`EVENTIDE_OUTAGE_PATIENCE`).",
    failures_observations_queue: "Calls to the observations queue that failed after the adapter's retries.",
    failures_summaries_queue: "Calls to the summaries queue (send, receive, settle) that failed after the adapter's retries.",
    failures_store: "Calls to the series-day store (and the idempotency keys beside it) that failed after the adapter's retries.",
    failures_sink: "Calls to the summary sink that failed after the adapter's retries, including rows it refused for good.",
    failures_quarantine: "Calls to the quarantine that failed after the adapter's retries.",
}

/// One counter's name and description.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    pub name: &'static str,
    pub doc: &'static str,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
