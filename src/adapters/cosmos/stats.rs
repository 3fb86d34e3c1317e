//! The Cosmos adapter's own counters: request units consumed, requests, 429s and retries. They
//! aggregate in process like the pipeline's counters (nothing is logged per request) and are read
//! with [`CosmosStats::snapshot`] (the `cosmos_ru` report, tests, a status endpoint).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::pipeline::metrics::AdapterCounters;

/// Counters of one store.
#[derive(Debug, Default)]
pub struct CosmosStats {
    /// Request units consumed, in hundredths (the service reports two decimals).
    pub request_centiunits: AtomicU64,
    /// The part of `request_centiunits` spent on answers that did no work: lost conditional
    /// writes (412/409) and failed attempts.
    pub wasted_centiunits: AtomicU64,
    /// Requests answered, the SDK's own retries included.
    pub requests: AtomicU64,
    /// Responses with status 429.
    pub throttled: AtomicU64,
    /// Attempts repeated after a transient failure (ours and the SDK's).
    pub retries: AtomicU64,
    /// Calls that still failed after their retries.
    pub failed: AtomicU64,
    /// Conditional writes that lost (412 on replace, 409 on create).
    pub conflicts: AtomicU64,
    /// Documents returned by queries: what a query transferred, whatever the caller kept.
    pub query_documents: AtomicU64,
    /// Request units (hundredths) and requests by operation, indexed by [`Operation`]: where
    /// the charge goes (the `azure_stack` and `cosmos_ru` reports break it down).
    by_operation: [OperationTally; Operation::ALL.len()],
}

/// The operations the store sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Create,
    Replace,
    Delete,
    Query,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Read,
        Operation::Create,
        Operation::Replace,
        Operation::Delete,
        Operation::Query,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Replace => "replace",
            Operation::Delete => "delete",
            Operation::Query => "query page",
        }
    }
}

#[derive(Debug, Default)]
struct OperationTally {
    centiunits: AtomicU64,
    requests: AtomicU64,
}

/// What one kind of operation cost so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperationCharge {
    pub operation: Operation,
    pub request_units: f64,
    /// Attempts answered (a query counts its pages).
    pub requests: u64,
}

impl AdapterCounters for CosmosStats {
    fn read(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("cosmos_request_units", get(&self.request_centiunits) / 100),
            ("cosmos_throttled", get(&self.throttled)),
            ("cosmos_retries", get(&self.retries)),
        ]
    }
}

impl CosmosStats {
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_request_units(&self, charge: f64) {
        if charge > 0.0 {
            self.add(&self.request_centiunits, (charge * 100.0).round() as u64);
        }
    }

    pub fn add_wasted_request_units(&self, charge: f64) {
        if charge > 0.0 {
            self.add(&self.wasted_centiunits, (charge * 100.0).round() as u64);
        }
    }

    /// Counts one answered attempt of `operation` and its charge.
    pub fn add_operation(&self, operation: Operation, charge: f64) {
        let tally = &self.by_operation[operation as usize];
        self.add(&tally.requests, 1);
        if charge > 0.0 {
            self.add(&tally.centiunits, (charge * 100.0).round() as u64);
        }
    }

    /// Request units and attempts by operation.
    pub fn by_operation(&self) -> Vec<OperationCharge> {
        Operation::ALL
            .iter()
            .map(|&operation| {
                let tally = &self.by_operation[operation as usize];
                OperationCharge {
                    operation,
                    request_units: tally.centiunits.load(Ordering::Relaxed) as f64 / 100.0,
                    requests: tally.requests.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// Request units spent on answers that did no work.
    pub fn wasted_request_units(&self) -> f64 {
        self.wasted_centiunits.load(Ordering::Relaxed) as f64 / 100.0
    }

    /// Request units consumed so far.
    pub fn request_units(&self) -> f64 {
        self.request_centiunits.load(Ordering::Relaxed) as f64 / 100.0
    }

    /// Every counter by name (`cosmos_request_units` whole units).
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BTreeMap::from([
            ("cosmos_request_units", get(&self.request_centiunits) / 100),
            (
                "cosmos_request_units_wasted",
                get(&self.wasted_centiunits) / 100,
            ),
            ("cosmos_requests", get(&self.requests)),
            ("cosmos_throttled", get(&self.throttled)),
            ("cosmos_retries", get(&self.retries)),
            ("cosmos_failed", get(&self.failed)),
            ("cosmos_conflicts", get(&self.conflicts)),
            ("cosmos_query_documents", get(&self.query_documents)),
        ])
    }
}
