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
    locks_renewed: "Locks of summarize messages renewed while their batch was still being worked on.",
    summarize_stale: "Summarize messages for an epoch that a newer one replaced.",
    reconciled: "Series-days whose lost summarize message was replaced by `reconcile`.",
    quarantined: "Items and messages put in quarantine.",
    transient_failures: "Invocations failed by a transient dependency error (retried).",
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
