//! Riding out a dependency's outage inside one delivery.
//!
//! A batch that fails because the store, a queue or the sink is briefly unavailable would
//! succeed a little later. Handing it straight back to the broker makes the broker deliver it
//! again at once, and every delivery counts: a 30-second outage used up `maxDeliveryCount` and
//! dead-lettered messages that were never bad. So the use cases wait first: they try the batch
//! again with exponential, jittered backoff (never sooner than the dependency's `Retry-After`),
//! for at most the patience (`EVENTIDE_OUTAGE_PATIENCE`), while the trigger keeps the messages'
//! locks. Only an outage longer than that gives the batch back, and the next delivery waits
//! again. Trying a batch again is safe because every step is idempotent.
//!
//! Waiting uses the runtime's time (`tokio::time`), not the pipeline's clock: it is about how
//! long a dependency takes to recover, which a scaled or manual clock says nothing about.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Pipeline;
use super::metrics::Metrics;
use super::ports::{ErrorKind, PortResult};
use super::retry::RetryPolicy;

/// The waits between tries of one batch: up to half a second at first, doubling to at most
/// 30 seconds, so a minute-long outage costs a handful of tries.
const BACKOFF: RetryPolicy = RetryPolicy {
    max_attempts: u32::MAX,
    base_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(30),
};

impl Pipeline {
    /// When a batch starting now must stop waiting for its dependencies.
    pub fn patience_deadline(&self) -> Instant {
        Instant::now() + self.settings.patience
    }

    /// [`patiently`], counting the tries in this pipeline's metrics.
    pub async fn patiently<T, Fut>(
        &self,
        deadline: Instant,
        attempt: impl FnMut() -> Fut,
    ) -> PortResult<T>
    where
        Fut: Future<Output = PortResult<T>>,
    {
        patiently(deadline, &self.metrics, attempt).await
    }
}

/// Runs `attempt` until it succeeds or fails permanently, trying again after each transient
/// failure as long as the wait ends before `deadline`; then the last error.
async fn patiently<T, Fut>(
    deadline: Instant,
    metrics: &Metrics,
    mut attempt: impl FnMut() -> Fut,
) -> PortResult<T>
where
    Fut: Future<Output = PortResult<T>>,
{
    let mut retry = 0;
    loop {
        let error = match attempt().await {
            Err(e) if e.kind == ErrorKind::Transient => e,
            outcome => return outcome,
        };
        retry += 1;
        let wait = BACKOFF
            .delay(retry, None)
            .max(error.retry_after.unwrap_or_default());
        if Instant::now() + wait >= deadline {
            return Err(error);
        }
        if retry == 1 {
            tracing::warn!(error = %error, "a dependency failed; the batch waits and tries again");
        }
        Metrics::add(&metrics.outage_retries, 1);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::pipeline::ports::PortError;

    fn deadline(patience: Duration) -> Instant {
        Instant::now() + patience
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_shorter_than_the_patience_costs_time_only() {
        let metrics = Metrics::default();
        let started = Instant::now();
        let tries = AtomicU32::new(0);
        let outcome = patiently(deadline(Duration::from_secs(120)), &metrics, || async {
            tries.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() < Duration::from_secs(60) {
                Err(PortError::transient("the store", "503"))
            } else {
                Ok("merged")
            }
        })
        .await;
        assert_eq!(outcome.unwrap(), "merged");
        let tries = tries.load(Ordering::Relaxed);
        assert!(
            (3..=40).contains(&tries),
            "{tries} tries over a 60 s outage"
        );
        assert_eq!(
            metrics.outage_retries.load(Ordering::Relaxed),
            u64::from(tries - 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_outage_gives_the_batch_back_before_the_deadline() {
        let started = Instant::now();
        let outcome: PortResult<()> = patiently(
            deadline(Duration::from_secs(120)),
            &Metrics::default(),
            || async { Err(PortError::transient("the sink", "connection refused")) },
        )
        .await;
        assert_eq!(outcome.unwrap_err().context, "the sink");
        assert!(started.elapsed() < Duration::from_secs(120));
        assert!(started.elapsed() > Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_and_zero_patience_are_not_retried() {
        let tries = AtomicU32::new(0);
        let outcome: PortResult<()> = patiently(
            deadline(Duration::from_secs(120)),
            &Metrics::default(),
            || async {
                tries.fetch_add(1, Ordering::Relaxed);
                Err(PortError::permanent("the sink", "row refused"))
            },
        )
        .await;
        assert!(outcome.is_err());
        let outcome: PortResult<()> =
            patiently(deadline(Duration::ZERO), &Metrics::default(), || async {
                tries.fetch_add(1, Ordering::Relaxed);
                Err(PortError::transient("the sink", "busy"))
            })
            .await;
        assert!(outcome.is_err());
        assert_eq!(tries.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_hint_is_waited_for() {
        let started = Instant::now();
        let tries = AtomicU32::new(0);
        patiently(
            deadline(Duration::from_secs(120)),
            &Metrics::default(),
            || async {
                if tries.fetch_add(1, Ordering::Relaxed) == 0 {
                    Err(PortError {
                        retry_after: Some(Duration::from_secs(20)),
                        ..PortError::transient("cosmos", "429")
                    })
                } else {
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
        assert!(started.elapsed() >= Duration::from_secs(20));
    }
}
