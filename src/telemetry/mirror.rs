//! Mirrors the in-process counters into OpenTelemetry counters. [`Metrics`] stays the one source
//! (`/api/status` and `/metrics` read it directly); a task adds each counter's growth since its
//! last look to a synchronous OpenTelemetry counter. The exporters take deltas, so a counter
//! that did not move in an interval exports nothing, and the exported items per interval are
//! bounded by the number of counters, whatever the message volume.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::{Counter, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::SCOPE;
use crate::pipeline::metrics::Metrics;

/// The running mirror task.
pub struct Mirror {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The OpenTelemetry counters and the values they were last brought up to.
struct Mirrored {
    metrics: Arc<Metrics>,
    counters: BTreeMap<&'static str, Counter<u64>>,
    seen: BTreeMap<&'static str, u64>,
}

impl Mirror {
    /// Starts mirroring `metrics` four times per export `interval`, so an export lags the
    /// counters by at most a quarter interval.
    pub fn start(provider: &SdkMeterProvider, metrics: Arc<Metrics>, interval: Duration) -> Self {
        let meter = provider.meter(SCOPE);
        let counters = Metrics::DESCRIPTIONS
            .iter()
            .map(|counter| {
                let instrument = meter
                    .u64_counter(format!("eventide.{}", counter.name))
                    .with_description(counter.doc)
                    .build();
                (counter.name, instrument)
            })
            .collect();
        let mut mirrored = Mirrored {
            metrics,
            counters,
            seen: BTreeMap::new(),
        };
        let (stop, mut stopped) = oneshot::channel();
        let period = (interval / 4).max(Duration::from_millis(25));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = ticks.tick() => mirrored.catch_up(),
                    _ = &mut stopped => break,
                }
            }
            mirrored.catch_up();
        });
        Self { stop, task }
    }

    /// Mirrors the counters a last time and ends the task.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl Mirrored {
    /// Adds every counter's growth since the last call.
    fn catch_up(&mut self) {
        for (name, value) in self.metrics.snapshot() {
            let seen = self.seen.entry(name).or_insert(0);
            let growth = value.saturating_sub(*seen);
            if growth > 0
                && let Some(counter) = self.counters.get(name)
            {
                counter.add(growth, &[]);
            }
            *seen = value;
        }
    }
}
