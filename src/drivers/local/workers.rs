//! The in-process triggers: queue workers for `process` and the timer for the end of day.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;
use crate::domain::schedule::Schedule;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::process::InboundMessage;
use crate::pipeline::renewal::HeldLocks;
use crate::pipeline::retry::RetryPolicy;

/// How often idle workers look for scheduled messages that became visible.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How long a worker waits after a failed receive, or a batch that outlasted the pipeline's
/// patience: growing with each failure in a row (jittered, so workers do not return in
/// lockstep), up to a minute, so a long outage costs few deliveries.
const FAILURE_BACKOFF: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(60),
};
/// How often the timer checks the (possibly accelerated) clock.
const TIMER_POLL: Duration = Duration::from_millis(100);

/// Receives observation batches and processes them until shutdown: complete when handled,
/// abandon when a dependency stayed down past the pipeline's patience, so the batch is
/// delivered again after a backoff. The batch's locks are renewed while it is worked on.
pub(crate) async fn pump_observations(app: App, batch: usize, mut stop: watch::Receiver<bool>) {
    let queue = &app.observations;
    // Failures in a row: each makes the next backoff longer; a success starts over.
    let mut failures = 0;
    while !*stop.borrow() {
        let messages = match queue.receiver.receive(batch).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::error!(error = %e, "receiving observations failed");
                failures += 1;
                pause(&mut stop, FAILURE_BACKOFF.delay(failures, e.retry_after)).await;
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
        let held = HeldLocks::of(&messages);
        let locks: Vec<String> = messages.iter().map(|m| m.lock_token.clone()).collect();
        let inbound: Vec<InboundMessage> = messages.into_iter().map(InboundMessage::from).collect();
        let processed = app.pipeline.keeping_locks(
            &*queue.receiver,
            held,
            app.pipeline.process_delivery(&inbound),
        );
        let settled = match processed.await {
            Ok(_) => {
                failures = 0;
                queue.receiver.complete(&locks).await
            }
            Err(e) => {
                Metrics::add(&app.pipeline.metrics.transient_failures, 1);
                tracing::error!(error = %e, messages = locks.len(), "process failed; the batch will be delivered again");
                let abandoned = queue.receiver.abandon(&locks).await;
                failures += 1;
                pause(&mut stop, FAILURE_BACKOFF.delay(failures, e.retry_after)).await;
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

/// Fires the end of day on the schedule, reading time from the pipeline's clock so an
/// accelerated clock fires it accordingly.
pub(crate) async fn summarize_timer(
    app: App,
    schedule: Schedule,
    budget: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let clock = app.pipeline.ports.clock.clone();
    let mut next = schedule.next_after(clock.now());
    while !*stop.borrow() {
        match next {
            Some(at) if clock.now() >= at => {
                app.end_of_day(budget).await;
                next = schedule.next_after(clock.now());
            }
            _ => pause(&mut stop, TIMER_POLL).await,
        }
    }
}
