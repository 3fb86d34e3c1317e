//! One queue's dead-letter sub-queue (`{queue}/$DeadLetterQueue`) as a [`QuarantineSource`]:
//! what the broker dead-lettered (a message delivered more than the queue's
//! `maxDeliveryCount` times, or one a client dead-lettered explicitly) is listed and replayed
//! by `eventide quarantine list|replay` beside the pipeline's own quarantine.
//!
//! REST reads a sub-queue only by peek-lock, one message per call, so a listing is a *pass*:
//! lock the next message, keep its lock so the next call moves on, and unlock everything at the
//! end. Nothing is lost or removed, but each unlock counts as a delivery: every listing raises
//! the listed messages' `DeliveryCount` by one. The Service Bus documentation of dead-letter
//! queues says a message cannot be dead-lettered out of a dead-letter queue and that time to
//! live is not observed there, so the count has nothing left to trigger; it only shows up in
//! the message's properties. (Read in the documentation, not checked against a namespace.)
//!
//! A pass covers the messages it can lock within the queue's lock duration: a lock that expires
//! brings its message round again, and the pass ends there. Listings are bounded by their limit
//! anyway; a replay of a dead-letter queue larger than that leaves the rest for another run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use super::client::{
    DeadLetterCause, LockRef, LockedMessage, ServiceBusClient, ServiceBusError, Settlement,
};
use super::queue::DEFAULT_RECEIVE_WAIT;
use super::wire::dead_letter_path;
use crate::pipeline::ports::{
    PortError, PortResult, QuarantineEntry, QuarantineSource, Replayed, Resubmission, Resubmit,
};

/// The dead-letter queue of one Service Bus queue, and the function that queue feeds.
#[derive(Clone)]
pub struct DeadLetterQueue {
    client: Arc<ServiceBusClient>,
    queue: String,
    path: String,
    function: String,
    receive_wait: Duration,
}

impl DeadLetterQueue {
    /// The dead-letter queue of `queue`, whose messages `function` (`process`, `summarize`)
    /// reads; a replayed message goes back to that function's queue.
    pub fn new(
        client: Arc<ServiceBusClient>,
        queue: impl Into<String>,
        function: impl Into<String>,
    ) -> Self {
        let queue = queue.into();
        Self {
            client,
            path: dead_letter_path(&queue),
            queue,
            function: function.into(),
            receive_wait: DEFAULT_RECEIVE_WAIT,
        }
    }

    /// How long the last peek-lock of a pass waits for a message that is not there (whole
    /// seconds on the wire; zero returns at once).
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.receive_wait = wait;
        self
    }

    fn port_error(&self, what: &str, error: ServiceBusError) -> PortError {
        error.into_port(format!(
            "{what} (dead-letter queue of Service Bus queue {})",
            self.queue
        ))
    }

    /// A message as an operator sees it: the MessageId as its source, the broker's reason.
    fn entry(&self, message: &LockedMessage) -> QuarantineEntry {
        QuarantineEntry {
            id: format!(
                "dead-letter:{}:{}",
                self.queue, message.lock.sequence_number
            ),
            // The service always sends EnqueuedTimeUtc; without it the entry lists as oldest.
            at: message.enqueued_at.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            function: self.function.clone(),
            source: message.message_id.clone(),
            reason: reason(&message.dead_letter),
            body: message.body.clone(),
        }
    }
}

/// `dead-lettered: {reason}: {description}`, with whichever of the two the message carries.
fn reason(cause: &DeadLetterCause) -> String {
    let told: Vec<&str> = [cause.reason.as_deref(), cause.description.as_deref()]
        .into_iter()
        .flatten()
        .filter(|text| !text.is_empty())
        .collect();
    if told.is_empty() {
        "dead-lettered without a reason".into()
    } else {
        format!("dead-lettered: {}", told.join(": "))
    }
}

/// One walk through the dead-letter queue under peek-lock. Every message it locked stays
/// locked, so the next peek-lock moves on, until it is settled or the pass is released.
struct Pass<'a> {
    queue: &'a DeadLetterQueue,
    seen: HashSet<i64>,
    held: Vec<LockRef>,
}

impl<'a> Pass<'a> {
    fn new(queue: &'a DeadLetterQueue) -> Self {
        Self {
            queue,
            seen: HashSet::new(),
            held: Vec::new(),
        }
    }

    /// The next message not seen in this pass; `None` when the queue has no more, or when a
    /// message comes round again (its lock expired: the pass has gone through the queue).
    async fn next(&mut self) -> PortResult<Option<LockedMessage>> {
        let queue = self.queue;
        let Some(message) = queue
            .client
            .peek_lock(&queue.path, queue.receive_wait)
            .await
            .map_err(|e| queue.port_error("receiving", e))?
        else {
            return Ok(None);
        };
        self.held.push(message.lock.clone());
        Ok(self
            .seen
            .insert(message.lock.sequence_number)
            .then_some(message))
    }

    /// Completes a message: it leaves the dead-letter queue.
    async fn complete(&mut self, lock: &LockRef) -> PortResult<()> {
        let queue = self.queue;
        let settled = queue
            .client
            .complete(&queue.path, lock)
            .await
            .map_err(|e| queue.port_error("completing a replayed message", e))?;
        if settled == Settlement::LockLost {
            tracing::warn!(
                queue = %queue.queue,
                sequence = lock.sequence_number,
                "a replayed dead-lettered message's lock expired before it was completed; it stays in the dead-letter queue and a later replay sends it again, which is harmless"
            );
        }
        self.held.retain(|held| held != lock);
        Ok(())
    }

    /// Unlocks every message still held (a lock lost meanwhile is no error: that message is
    /// unlocked already).
    async fn release(self) -> PortResult<()> {
        let queue = self.queue;
        let parallelism = queue.client.options().parallelism.max(1);
        let results: Vec<_> = stream::iter(self.held)
            .map(|lock| async move { queue.client.abandon(&queue.path, &lock).await })
            .buffer_unordered(parallelism)
            .collect()
            .await;
        match results.into_iter().find_map(Result::err) {
            Some(e) => Err(queue.port_error("unlocking listed messages", e)),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl QuarantineSource for DeadLetterQueue {
    /// The first `limit` messages in the dead-letter queue's order (oldest first), each locked
    /// for the pass and unlocked at its end.
    async fn list(&self, limit: usize) -> PortResult<Vec<QuarantineEntry>> {
        let mut pass = Pass::new(self);
        let mut entries = Vec::new();
        let walked = async {
            while entries.len() < limit {
                match pass.next().await? {
                    Some(message) => entries.push(self.entry(&message)),
                    None => break,
                }
            }
            PortResult::Ok(())
        }
        .await;
        let released = pass.release().await;
        walked?;
        released?;
        Ok(entries)
    }

    /// Sends each wanted message to its function's queue (through `resubmit`, under a new
    /// MessageId), then completes it here. Send first, complete second: a crash or a lost lock
    /// in between leaves the message dead-lettered after it was sent, and a later replay sends
    /// it again — which processing makes harmless (a chunk merged twice changes nothing, a
    /// day summarized twice writes the same row). Messages not wanted, or declined, are
    /// unlocked at the end.
    async fn replay(
        &self,
        wanted: &[String],
        resubmit: &dyn Resubmit,
    ) -> PortResult<Vec<Replayed>> {
        let mut pass = Pass::new(self);
        let mut replayed = Vec::new();
        let walked = async {
            while let Some(message) = pass.next().await? {
                let entry = self.entry(&message);
                if !(wanted.is_empty() || wanted.contains(&entry.id)) {
                    continue;
                }
                let outcome = resubmit.resubmit(&entry).await?;
                if outcome == Resubmission::Sent {
                    pass.complete(&message.lock).await?;
                }
                replayed.push(Replayed {
                    id: entry.id,
                    outcome,
                });
            }
            PortResult::Ok(())
        }
        .await;
        let released = pass.release().await;
        walked?;
        released?;
        Ok(replayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_joins_what_the_broker_said() {
        let cause = |reason: Option<&str>, description: Option<&str>| DeadLetterCause {
            reason: reason.map(str::to_string),
            description: description.map(str::to_string),
        };
        assert_eq!(
            reason(&cause(
                Some("MaxDeliveryCountExceeded"),
                Some("Message couldn't be consumed after maximum delivery attempts.")
            )),
            "dead-lettered: MaxDeliveryCountExceeded: Message couldn't be consumed after maximum delivery attempts."
        );
        assert_eq!(
            reason(&cause(Some("TTLExpiredException"), None)),
            "dead-lettered: TTLExpiredException"
        );
        assert_eq!(
            reason(&cause(None, Some(""))),
            "dead-lettered without a reason"
        );
    }
}
