//! Mirrors the in-process counters into OpenTelemetry counters. [`Metrics`] stays the one source
//! (`/api/status` and `/metrics` read it directly); a task adds each counter's growth since its
//! last look to a synchronous OpenTelemetry counter — a breakdown's counters to one instrument,
//! each with its one attribute. The exporters take deltas, so a counter that did not move in
//! an interval exports nothing, and the exported items per interval are bounded by the number
//! of counters, whatever the message volume. Histograms record into their OpenTelemetry
//! instrument as they observe (same bucket bounds).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, MeterProvider as _};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::SCOPE;
use crate::pipeline::metrics::{BUCKET_BOUNDS, Export, Metrics};

/// Messages waiting per queue, where the backend can tell (queue names are fixed literals).
#[async_trait::async_trait]
pub trait Backlog: Send + Sync {
    async fn backlog(&self) -> Vec<(&'static str, u64)>;
}

/// The running mirror task.
pub struct Mirror {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Where one in-process counter's growth goes: an instrument and its attribute, if any.
struct Target {
    instrument: Counter<u64>,
    attributes: Vec<KeyValue>,
}

/// The OpenTelemetry counters and the values they were last brought up to.
struct Mirrored {
    metrics: Arc<Metrics>,
    targets: BTreeMap<&'static str, Target>,
    seen: BTreeMap<&'static str, u64>,
    backlog: Arc<dyn Backlog>,
    /// Recorded only when a queue's backlog changed, so an idle process exports nothing.
    backlog_gauge: Gauge<u64>,
    backlog_seen: BTreeMap<&'static str, u64>,
}

impl Mirror {
    /// Starts mirroring `metrics` four times per export `interval`, so an export lags the
    /// counters by at most a quarter interval.
    pub fn start(
        provider: &SdkMeterProvider,
        metrics: Arc<Metrics>,
        backlog: Arc<dyn Backlog>,
        interval: Duration,
    ) -> Self {
        let meter = provider.meter(SCOPE);
        let mut instruments: BTreeMap<&'static str, Counter<u64>> = BTreeMap::new();
        let mut instrument = |name: &'static str, doc: &'static str| {
            instruments
                .entry(name)
                .or_insert_with(|| {
                    meter
                        .u64_counter(format!("eventide.{name}"))
                        .with_description(doc)
                        .build()
                })
                .clone()
        };
        let mut targets = BTreeMap::new();
        for counter in Metrics::counters() {
            let target = match counter.export {
                Export::Local => continue,
                Export::Own => Target {
                    instrument: instrument(counter.name, counter.doc),
                    attributes: Vec::new(),
                },
                Export::Grouped {
                    instrument: name,
                    key,
                    value,
                } => Target {
                    instrument: instrument(name, counter.doc),
                    attributes: vec![KeyValue::new(key, value)],
                },
            };
            targets.insert(counter.name, target);
        }
        for (described, (name, histogram)) in Metrics::HISTOGRAMS.iter().zip(metrics.histograms()) {
            debug_assert_eq!(described.name, name);
            histogram.export_to(
                meter
                    .f64_histogram(format!("eventide.{name}"))
                    .with_description(described.doc)
                    .with_unit("s")
                    .with_boundaries(BUCKET_BOUNDS.to_vec())
                    .build(),
            );
        }
        let backlog_gauge = meter
            .u64_gauge("eventide.queue_backlog")
            .with_description(BACKLOG_DOC)
            .build();
        let mut mirrored = Mirrored {
            metrics,
            targets,
            seen: BTreeMap::new(),
            backlog,
            backlog_gauge,
            backlog_seen: BTreeMap::new(),
        };
        let (stop, mut stopped) = oneshot::channel();
        let period = (interval / 4).max(Duration::from_millis(25));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        mirrored.catch_up();
                        mirrored.measure_backlog().await;
                    }
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

/// What the backlog gauge shows (also on the Prometheus page).
pub const BACKLOG_DOC: &str =
    "Messages deliverable now in a queue whose backend can count them (the embedded queues).";

impl Mirrored {
    /// Records each queue's backlog that changed since it was last recorded.
    async fn measure_backlog(&mut self) {
        for (queue, waiting) in self.backlog.backlog().await {
            if self.backlog_seen.insert(queue, waiting) != Some(waiting) {
                self.backlog_gauge
                    .record(waiting, &[KeyValue::new("queue", queue)]);
            }
        }
    }

    /// Adds every counter's growth since the last call.
    fn catch_up(&mut self) {
        for (name, value) in self.metrics.snapshot() {
            let seen = self.seen.entry(name).or_insert(0);
            let growth = value.saturating_sub(*seen);
            if growth > 0
                && let Some(target) = self.targets.get(name)
            {
                target.instrument.add(growth, &target.attributes);
            }
            *seen = value;
        }
    }
}
