//! One Service Bus queue behind the pipeline's [`MessageSender`] and [`MessageReceiver`] ports.
//!
//! REST moves one message per receive or settle call, so this adapter keeps several calls in
//! flight ([`ClientOptions::parallelism`](super::client::ClientOptions)). Sends go out as batch
//! sends where the messages fit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::{self, StreamExt};

use super::client::{LockRef, LockedMessage, ServiceBusClient, ServiceBusError, Settlement};
use crate::pipeline::ports::{
    MessageReceiver, MessageSender, OutgoingMessage, PortError, PortResult, ReceivedMessage,
};

/// How long a lock is assumed to last when the service does not say.
const ASSUMED_LOCK_LEFT: chrono::Duration = chrono::Duration::seconds(30);

/// Default long-poll time of a peek-lock on an empty queue.
pub const DEFAULT_RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// A queue of one namespace.
#[derive(Clone)]
pub struct ServiceBusQueue {
    client: Arc<ServiceBusClient>,
    name: String,
    receive_wait: Duration,
}

impl ServiceBusQueue {
    pub fn new(client: Arc<ServiceBusClient>, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
            receive_wait: DEFAULT_RECEIVE_WAIT,
        }
    }

    /// How long a receive waits for a message on an empty queue (whole seconds on the wire;
    /// zero returns at once).
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.receive_wait = wait;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &ServiceBusClient {
        &self.client
    }

    fn parallelism(&self) -> usize {
        self.client.options().parallelism.max(1)
    }

    fn port_error(&self, what: &str, error: ServiceBusError) -> PortError {
        error.into_port(format!("{what} (Service Bus queue {})", self.name))
    }

    /// Settles every lock with `f`, several at a time; lost locks are counted, not errors.
    async fn settle_all<F, Fut>(
        &self,
        what: &str,
        lock_tokens: &[String],
        f: F,
    ) -> PortResult<usize>
    where
        F: Fn(Arc<ServiceBusClient>, String, LockRef) -> Fut,
        Fut: std::future::Future<Output = Result<Settlement, ServiceBusError>>,
    {
        let mut locks = Vec::with_capacity(lock_tokens.len());
        for token in lock_tokens {
            locks.push(
                token
                    .parse::<LockRef>()
                    .map_err(|e| self.port_error(what, e))?,
            );
        }
        let results: Vec<_> = stream::iter(locks)
            .map(|lock| f(self.client.clone(), self.name.clone(), lock))
            .buffer_unordered(self.parallelism())
            .collect()
            .await;
        let mut lost = 0;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(Settlement::Done) => {}
                Ok(Settlement::LockLost) => lost += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(self.port_error(what, e)),
            None => Ok(lost),
        }
    }
}

impl From<LockedMessage> for ReceivedMessage {
    fn from(message: LockedMessage) -> Self {
        ReceivedMessage {
            message_id: message.message_id,
            body: message.body,
            // The service always sends EnqueuedTimeUtc; receipt time is the closest fallback.
            enqueued_at: message.enqueued_at.unwrap_or_else(Utc::now),
            delivery_count: message.delivery_count,
            lock_token: message.lock.to_string(),
            // And LockedUntilUtc; without it, assume half of the default one-minute lock is left.
            locked_until: message
                .locked_until
                .unwrap_or_else(|| Utc::now() + ASSUMED_LOCK_LEFT),
            trace_context: message.trace_context,
        }
    }
}

#[async_trait]
impl MessageSender for ServiceBusQueue {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> PortResult<()> {
        let plans = self.client.plan_sends(&messages);
        let plans = &plans;
        // By index: a closure over references would not be `Send` for every lifetime.
        let results: Vec<_> = stream::iter(0..plans.len())
            .map(|i| self.client.send_planned(&self.name, &plans[i]))
            .buffer_unordered(self.parallelism())
            .collect()
            .await;
        match results.into_iter().find_map(Result::err) {
            // Some sends may have gone through; the caller re-sends all, and duplicate
            // detection drops what arrived already.
            Some(e) => Err(self.port_error(&format!("sending {} messages", messages.len()), e)),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl MessageReceiver for ServiceBusQueue {
    /// Peek-locks up to `max` messages in growing waves of parallel calls (1, 2, 4, … up to
    /// the parallelism), stopping at the first call that finds the queue empty. Messages
    /// already locked are returned even if a later call fails, so they are not stranded.
    async fn receive(&self, max: usize) -> PortResult<Vec<ReceivedMessage>> {
        let mut received: Vec<ReceivedMessage> = Vec::new();
        let mut wave = 1;
        while received.len() < max {
            let calls = wave.min(max - received.len()).min(self.parallelism());
            let results: Vec<_> = stream::iter(0..calls)
                .map(|_| self.client.peek_lock(&self.name, self.receive_wait))
                .buffer_unordered(calls)
                .collect()
                .await;
            let mut empty = false;
            let mut error = None;
            for result in results {
                match result {
                    Ok(Some(message)) => received.push(message.into()),
                    Ok(None) => empty = true,
                    Err(e) => error = Some(e),
                }
            }
            if let Some(e) = error {
                if received.is_empty() {
                    return Err(self.port_error("receiving", e));
                }
                tracing::warn!(queue = %self.name, error = %e, "a receive call failed; returning the messages already locked");
                break;
            }
            if empty {
                break;
            }
            wave *= 2;
        }
        Ok(received)
    }

    async fn complete(&self, lock_tokens: &[String]) -> PortResult<()> {
        let lost = self
            .settle_all(
                "completing messages",
                lock_tokens,
                |client, queue, lock| async move { client.complete(&queue, &lock).await },
            )
            .await?;
        if lost > 0 {
            tracing::warn!(
                queue = %self.name,
                lost,
                "locks expired before completion; those messages will be delivered again"
            );
        }
        Ok(())
    }

    async fn abandon(&self, lock_tokens: &[String]) -> PortResult<()> {
        self.settle_all(
            "abandoning messages",
            lock_tokens,
            |client, queue, lock| async move { client.abandon(&queue, &lock).await },
        )
        .await
        .map(|_| ())
    }

    async fn renew(&self, lock_tokens: &[String]) -> PortResult<usize> {
        self.settle_all(
            "renewing locks",
            lock_tokens,
            |client, queue, lock| async move { client.renew_lock(&queue, &lock).await },
        )
        .await
    }
}
