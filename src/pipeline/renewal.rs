//! Keeping a batch's messages locked while it is worked on. A batch can take longer than the
//! queue's lock — a summarize batch of a few hundred days (reading the days, a slow sink,
//! writing rows one by one), or any batch waiting out a dependency's outage (`patience`) — and a
//! lock that expires hands the message to another receiver while this one still works on it,
//! and uses up one of its deliveries. So the locks are renewed at half their duration until the
//! batch is settled.
//!
//! The renewal watches the pipeline's clock rather than sleeping for the lock's duration, so it
//! keeps pace with whatever clock the queue runs on (a scaled clock in the demo, a manual one in
//! tests). This is the pipeline's one timer.

use std::future::Future;
use std::pin::pin;

use chrono::{DateTime, Duration, Utc};
use futures::future::{Either, select};

use crate::pipeline::Pipeline;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::ports::{MessageReceiver, ReceivedMessage};

/// How often the renewal looks at the clock: short against any lock (Service Bus allows no
/// shorter lock than 5 s), and reading the clock costs nothing.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Renewals come at least this far apart, whatever the locks say (a lock that looked expired
/// on arrival, by a clock ahead of the queue's).
const MIN_RENEWAL_INTERVAL: Duration = Duration::seconds(1);

/// The locks of one received batch.
pub struct HeldLocks {
    tokens: Vec<String>,
    /// When the first of them expires; `None` for an empty batch.
    until: Option<DateTime<Utc>>,
}

impl HeldLocks {
    pub fn of(messages: &[ReceivedMessage]) -> Self {
        Self {
            tokens: messages.iter().map(|m| m.lock_token.clone()).collect(),
            until: messages.iter().map(|m| m.locked_until).min(),
        }
    }
}

impl Pipeline {
    /// Runs `work` while renewing `locks`, held on `queue`, every half lock duration.
    pub async fn keeping_locks<T>(
        &self,
        queue: &dyn MessageReceiver,
        locks: HeldLocks,
        work: impl Future<Output = T>,
    ) -> T {
        let Some(locked_until) = locks.until else {
            return work.await;
        };
        let received = self.ports.clock.now();
        // Renewing at half the lock leaves the other half for clock differences and a slow
        // renewal call.
        let interval = ((locked_until - received) / 2).max(MIN_RENEWAL_INTERVAL);
        let renewing = async {
            let mut due = received + interval;
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let now = self.ports.clock.now();
                if now >= due {
                    self.renew(queue, &locks.tokens).await;
                    due = now + interval;
                }
            }
        };
        match select(pin!(work), pin!(renewing)).await {
            Either::Left((done, _)) => done,
            Either::Right((never, _)) => never,
        }
    }

    /// Renews locks; a failure is logged, and at worst lets the messages be delivered again,
    /// which the revision guard makes harmless.
    async fn renew(&self, queue: &dyn MessageReceiver, locks: &[String]) {
        match queue.renew(locks).await {
            Ok(lost) => {
                Metrics::add(&self.metrics.locks_renewed, locks.len() - lost);
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "locks were lost before renewal; those messages will be delivered again"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, count = locks.len(), "renewing locks failed")
            }
        }
    }
}
