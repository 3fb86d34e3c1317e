//! The in-process triggers: queue workers for `process` and the timer for `summarize`.

use std::time::Duration;

use tokio::sync::watch;

use super::Embedded;
use crate::domain::schedule::Schedule;
use crate::drivers::backends::QueuePort;
use crate::pipeline::Pipeline;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::process::InboundMessage;
use crate::pipeline::summarize::TickReport;

/// How often idle workers look for scheduled messages that became visible.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How long a worker backs off after a failed batch.
const FAILURE_BACKOFF: Duration = Duration::from_secs(1);
/// How often the timer checks the (possibly accelerated) clock.
const TIMER_POLL: Duration = Duration::from_millis(100);

/// Receives observation batches and processes them until shutdown: complete on success, abandon
/// on a transient failure so the batch is delivered again.
pub(super) async fn pump_observations(
    pipeline: Pipeline,
    queue: QueuePort,
    batch: usize,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let messages = match queue.receiver.receive(batch).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::error!(error = %e, "receiving observations failed");
                pause(&mut stop, FAILURE_BACKOFF).await;
                continue;
            }
        };
        if messages.is_empty() {
            // An embedded queue wakes its workers on arrival; a remote receive already waited.
            let arrival = async {
                match &queue.embedded {
                    Some(embedded) => embedded.arrivals().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = arrival => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let inbound: Vec<InboundMessage> = messages.iter().map(InboundMessage::from).collect();
        let locks: Vec<String> = messages.into_iter().map(|m| m.lock_token).collect();
        let settled = match pipeline.process(&inbound).await {
            Ok(_) => queue.receiver.complete(&locks).await,
            Err(e) => {
                Metrics::add(&pipeline.metrics.transient_failures, 1);
                tracing::error!(error = %e, messages = locks.len(), "process failed; the batch will be delivered again");
                let abandoned = queue.receiver.abandon(&locks).await;
                pause(&mut stop, FAILURE_BACKOFF).await;
                abandoned
            }
        };
        if let Err(e) = settled {
            tracing::error!(error = %e, "settling observation messages failed; their locks will expire");
        }
    }
}

async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
}

pub(super) struct TimerSettings {
    pub budget: Duration,
    pub retention_days: u32,
}

/// Fires the end-of-day work on the schedule, reading time from the pipeline's clock so an
/// accelerated clock fires it accordingly.
pub(super) async fn summarize_timer(
    pipeline: Pipeline,
    embedded: Embedded,
    schedule: Schedule,
    settings: TimerSettings,
    mut stop: watch::Receiver<bool>,
) {
    let clock = pipeline.ports.clock.clone();
    let mut next = schedule.next_after(clock.now());
    while !*stop.borrow() {
        match next {
            Some(at) if clock.now() >= at => {
                end_of_day_tick(&pipeline, settings.budget).await;
                housekeeping(&pipeline, &embedded, settings.retention_days).await;
                next = schedule.next_after(clock.now());
            }
            _ => pause(&mut stop, TIMER_POLL).await,
        }
    }
}

/// Reconcile, then drain due summaries under the budget.
pub(super) async fn end_of_day_tick(pipeline: &Pipeline, budget: Duration) -> TickReport {
    if let Err(e) = pipeline.reconcile().await {
        tracing::error!(error = %e, "reconcile failed; it runs again on the next tick");
    }
    pipeline.summarize_tick(budget).await
}

/// The embedded TTL: forget documents and duplicate-detection history past their retention.
async fn housekeeping(pipeline: &Pipeline, embedded: &Embedded, retention_days: u32) {
    let written_before =
        pipeline.ports.clock.now() - chrono::Duration::days(i64::from(retention_days));
    if let Err(e) = embedded.store.purge_written_before(written_before).await {
        tracing::error!(error = %e, "purging expired series-days failed");
    }
    for queue in [&embedded.observations, &embedded.summaries] {
        if let Err(e) = queue.purge_dedup().await {
            tracing::error!(error = %e, queue = queue.name(), "purging duplicate-detection history failed");
        }
    }
}
