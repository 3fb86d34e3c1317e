//! An embedded queue with the Service Bus semantics the pipeline relies on: scheduled
//! visibility, peek-lock with lock expiry, a delivery count with a maximum after which the
//! message goes to quarantine (the dead-letter of the embedded mode), and MessageId duplicate
//! detection over a window fixed from the first sighting.
//!
//! Every call is one transaction, whatever the number of messages, and the steps a batch takes
//! together are set-based: a receive locks all its messages with one `UPDATE`, a complete
//! deletes them with one `DELETE` per table (the keys bound as one `rarray` parameter). What
//! stays per message is what differs per message: its duplicate check and its rows on send, and
//! the quarantine of one that ran out of deliveries.

use std::rc::Rc;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use rand::Rng;
use rusqlite::params;
use rusqlite::types::Value;
use serde::Serialize;
use tokio::sync::Notify;

use super::{EmbeddedDb, from_millis, millis, quarantine};
use crate::pipeline::ports::{
    Clock, MessageReceiver, MessageSender, OutgoingMessage, PortResult, QuarantineEntry,
    ReceivedMessage,
};
use crate::telemetry::TraceContext;

/// Bodies one receive returns at most, in bytes (at least one message, whatever its size): a
/// batch of many small messages merges best, and this keeps a batch of large ones in bounds.
pub const RECEIVE_BYTES: usize = 16 * 1024 * 1024;

/// How one queue behaves.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// How long a received message stays invisible to others before it is delivered again.
    pub lock_duration: Duration,
    /// Deliveries after which a message is quarantined instead of delivered again.
    pub max_deliveries: u32,
    /// How long a MessageId is remembered; zero turns duplicate detection off.
    pub dedup_window: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            lock_duration: Duration::minutes(1),
            max_deliveries: 10,
            dedup_window: Duration::days(2),
        }
    }
}

/// Message counts of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Deliverable now.
    pub active: u64,
    /// Visible later (scheduled, or locked by a receiver).
    pub deferred: u64,
}

/// A deliverable message as a receive reads it, before it is locked or quarantined.
struct Candidate {
    seq: i64,
    message_id: String,
    body: Vec<u8>,
    enqueued_at: i64,
    delivery_count: u32,
    /// The `traceparent` stored with the message, read back as it was written.
    trace_context: Option<String>,
}

/// One named queue in the embedded database.
#[derive(Clone)]
pub struct EmbeddedQueue {
    db: EmbeddedDb,
    name: &'static str,
    settings: QueueSettings,
    clock: Arc<dyn Clock>,
    arrivals: Arc<Notify>,
}

impl EmbeddedQueue {
    pub fn new(
        db: EmbeddedDb,
        name: &'static str,
        settings: QueueSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            name,
            settings,
            clock,
            arrivals: Arc::new(Notify::new()),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Resolves when messages were sent since the last call (a hint for pumps, which still poll
    /// for scheduled messages becoming visible).
    pub async fn arrivals(&self) {
        self.arrivals.notified().await;
    }

    pub async fn depth(&self) -> PortResult<QueueDepth> {
        let (name, now) = (self.name, millis(self.clock.now()));
        self.db
            .call("measuring queue depth", move |c| {
                c.query_row(
                    "SELECT COALESCE(SUM(visible_at <= ?2), 0), COALESCE(SUM(visible_at > ?2), 0)
                     FROM queue_message WHERE queue = ?1",
                    params![name, now],
                    |r| {
                        Ok(QueueDepth {
                            active: r.get(0)?,
                            deferred: r.get(1)?,
                        })
                    },
                )
            })
            .await
    }

    /// Forgets MessageIds whose duplicate-detection window has passed.
    pub async fn purge_dedup(&self) -> PortResult<usize> {
        let (name, now) = (self.name, millis(self.clock.now()));
        self.db
            .call("purging duplicate-detection history", move |c| {
                c.execute(
                    "DELETE FROM queue_dedup WHERE queue = ?1 AND expires_at <= ?2",
                    params![name, now],
                )
            })
            .await
    }
}

/// Splits a lock token into the message's sequence number and the lock's random part.
fn parse_lock(token: &str) -> Option<i64> {
    token.split_once(':')?.0.parse().ok()
}

/// Deletes a message and its body, whatever its lock.
fn remove(tx: &rusqlite::Connection, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM queue_message WHERE seq = ?1")?
        .execute([seq])?;
    tx.prepare_cached("DELETE FROM queue_body WHERE seq = ?1")?
        .execute([seq])?;
    Ok(())
}

#[async_trait]
impl MessageSender for EmbeddedQueue {
    async fn send(&self, messages: Vec<OutgoingMessage>) -> PortResult<()> {
        let (name, now) = (self.name, self.clock.now());
        let window = self.settings.dedup_window;
        self.db
            .call("sending to embedded queue", move |c| {
                let tx = c.transaction()?;
                let now_ms = millis(now);
                for message in &messages {
                    // One statement remembers the id, or renews one whose window has passed;
                    // it changes no row for an id seen within the window: a duplicate.
                    if window > Duration::zero() {
                        let first_sighting = tx
                            .prepare_cached(
                                "INSERT INTO queue_dedup (queue, message_id, expires_at) VALUES (?1, ?2, ?3)
                                 ON CONFLICT DO UPDATE SET expires_at = excluded.expires_at
                                 WHERE expires_at <= ?4",
                            )?
                            .execute(params![name, message.message_id, millis(now + window), now_ms])?;
                        if first_sighting == 0 {
                            continue;
                        }
                    }
                    let visible_at = message.scheduled_at.map_or(now_ms, |at| millis(at).max(now_ms));
                    tx.prepare_cached(
                        "INSERT INTO queue_message (queue, message_id, session_id, enqueued_at, visible_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![name, message.message_id, message.session_id, now_ms, visible_at])?;
                    let trace_context = message.trace_context.as_ref().map(TraceContext::as_str);
                    tx.prepare_cached("INSERT INTO queue_body (seq, body, trace_context) VALUES (?1, ?2, ?3)")?
                        .execute(params![tx.last_insert_rowid(), message.body, trace_context])?;
                }
                tx.commit()
            })
            .await?;
        self.arrivals.notify_one();
        Ok(())
    }
}

#[async_trait]
impl MessageReceiver for EmbeddedQueue {
    async fn receive(&self, max: usize) -> PortResult<Vec<ReceivedMessage>> {
        let (name, now) = (self.name, self.clock.now());
        let settings = self.settings.clone();
        self.db
            .call("receiving from embedded queue", move |c| {
                let tx = c.transaction()?;
                let now_ms = millis(now);
                let mut candidates: Vec<Candidate> = Vec::new();
                {
                    let mut select = tx.prepare_cached(
                        "SELECT m.seq, m.message_id, b.body, m.enqueued_at, m.delivery_count, b.trace_context
                         FROM queue_message m JOIN queue_body b ON b.seq = m.seq
                         WHERE m.queue = ?1 AND m.visible_at <= ?2 ORDER BY m.visible_at, m.seq LIMIT ?3",
                    )?;
                    let mut rows = select.query(params![name, now_ms, max as i64])?;
                    let mut bytes = 0;
                    while bytes < RECEIVE_BYTES {
                        let Some(r) = rows.next()? else { break };
                        let candidate = Candidate {
                            seq: r.get(0)?,
                            message_id: r.get(1)?,
                            body: r.get(2)?,
                            enqueued_at: r.get(3)?,
                            delivery_count: r.get(4)?,
                            trace_context: r.get(5)?,
                        };
                        bytes += candidate.body.len();
                        candidates.push(candidate);
                    }
                }
                let mut received = Vec::with_capacity(candidates.len());
                // One random part per delivery: a message's token is `seq:random`, unique by its
                // seq, and a later delivery of it gets another.
                let lock = format!("{:016x}", rand::rng().random::<u64>());
                let locked_until = now + settings.lock_duration;
                let mut locked: Vec<Value> = Vec::with_capacity(candidates.len());
                for Candidate {
                    seq,
                    message_id,
                    body,
                    enqueued_at,
                    delivery_count,
                    trace_context,
                } in candidates
                {
                    if delivery_count >= settings.max_deliveries {
                        quarantine::insert(
                            &tx,
                            &QuarantineEntry {
                                id: format!("{name}:{seq}:max-deliveries"),
                                at: now,
                                function: name.to_string(),
                                source: message_id,
                                reason: format!(
                                    "delivered {delivery_count} times without being completed (max {})",
                                    settings.max_deliveries
                                ),
                                body,
                            },
                        )?;
                        remove(&tx, seq)?;
                        continue;
                    }
                    locked.push(Value::Integer(seq));
                    received.push(ReceivedMessage {
                        message_id,
                        body,
                        enqueued_at: from_millis(enqueued_at),
                        delivery_count: delivery_count + 1,
                        lock_token: format!("{seq}:{lock}"),
                        locked_until,
                        trace_context: trace_context.as_deref().and_then(TraceContext::parse),
                    });
                }
                tx.prepare_cached(
                    "UPDATE queue_message SET delivery_count = delivery_count + 1,
                     lock_token = seq || ':' || ?2, visible_at = ?3 WHERE seq IN rarray(?1)",
                )?
                .execute(params![Rc::new(locked), lock, millis(locked_until)])?;
                tx.commit()?;
                Ok(received)
            })
            .await
    }

    async fn complete(&self, lock_tokens: &[String]) -> PortResult<()> {
        let tokens = lock_tokens.to_vec();
        let lost = self
            .db
            .call("completing embedded queue messages", move |c| {
                let tx = c.transaction()?;
                // A token names its seq, so `seq IN … AND lock_token IN …` deletes exactly the
                // messages whose lock is still the one given.
                let seqs: Vec<Value> = tokens
                    .iter()
                    .filter_map(|t| parse_lock(t))
                    .map(Value::Integer)
                    .collect();
                let held: Vec<Value> = tokens.iter().cloned().map(Value::Text).collect();
                let deleted: Vec<Value> = tx
                    .prepare_cached(
                        "DELETE FROM queue_message WHERE seq IN rarray(?1) AND lock_token IN rarray(?2)
                         RETURNING seq",
                    )?
                    .query_map(params![Rc::new(seqs), Rc::new(held)], |r| {
                        r.get::<_, i64>(0).map(Value::Integer)
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let lost = tokens.len().saturating_sub(deleted.len());
                tx.prepare_cached("DELETE FROM queue_body WHERE seq IN rarray(?1)")?
                    .execute([Rc::new(deleted)])?;
                tx.commit()?;
                Ok(lost)
            })
            .await?;
        if lost > 0 {
            tracing::warn!(
                queue = self.name,
                lost,
                "locks expired before completion; those messages will be delivered again"
            );
        }
        Ok(())
    }

    async fn abandon(&self, lock_tokens: &[String]) -> PortResult<()> {
        let tokens = lock_tokens.to_vec();
        let now = millis(self.clock.now());
        self.db
            .call("abandoning embedded queue messages", move |c| {
                let tx = c.transaction()?;
                for token in &tokens {
                    tx.prepare_cached(
                        "UPDATE queue_message SET lock_token = NULL, visible_at = ?3 WHERE seq = ?1 AND lock_token = ?2",
                    )?
                    .execute(params![parse_lock(token), token, now])?;
                }
                tx.commit()
            })
            .await?;
        self.arrivals.notify_one();
        Ok(())
    }

    /// A lock is held until its message is received again; renewing one that is no longer held
    /// counts it as lost.
    async fn renew(&self, lock_tokens: &[String]) -> PortResult<usize> {
        let tokens = lock_tokens.to_vec();
        let locked_until = millis(self.clock.now() + self.settings.lock_duration);
        self.db
            .call("renewing embedded queue locks", move |c| {
                let tx = c.transaction()?;
                let mut lost = 0;
                for token in &tokens {
                    let renewed = tx
                        .prepare_cached(
                            "UPDATE queue_message SET visible_at = ?3 WHERE seq = ?1 AND lock_token = ?2",
                        )?
                        .execute(params![parse_lock(token), token, locked_until])?;
                    lost += usize::from(renewed == 0);
                }
                tx.commit()?;
                Ok(lost)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::clock::ManualClock;
    use crate::pipeline::ports::Quarantine;

    fn queue(settings: QueueSettings) -> (EmbeddedQueue, Arc<ManualClock>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(&dir.path().join("q.db")).unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-25T00:00:00Z".parse().unwrap()));
        (
            EmbeddedQueue::new(db, "test", settings, clock.clone()),
            clock,
            dir,
        )
    }

    fn msg(id: &str, scheduled_in: Option<i64>, clock: &ManualClock) -> OutgoingMessage {
        OutgoingMessage {
            message_id: id.into(),
            session_id: None,
            body: id.as_bytes().to_vec(),
            scheduled_at: scheduled_in.map(|s| clock.now() + Duration::seconds(s)),
            trace_context: None,
        }
    }

    #[tokio::test]
    async fn messages_keep_the_trace_context_they_were_sent_with() {
        let (q, clock, _dir) = queue(QueueSettings::default());
        let context =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let traced = OutgoingMessage {
            trace_context: context.clone(),
            ..msg("traced", None, &clock)
        };
        q.send(vec![traced, msg("plain", None, &clock)])
            .await
            .unwrap();
        let received = q.receive(10).await.unwrap();
        let contexts: Vec<_> = received
            .iter()
            .map(|m| (m.message_id.as_str(), m.trace_context.clone()))
            .collect();
        assert_eq!(contexts, vec![("traced", context), ("plain", None)]);
    }

    #[tokio::test]
    async fn scheduled_messages_wait_and_duplicates_are_dropped() {
        let (q, clock, _dir) = queue(QueueSettings::default());
        q.send(vec![
            msg("a", None, &clock),
            msg("b", Some(60), &clock),
            msg("a", None, &clock),
        ])
        .await
        .unwrap();
        let got = q.receive(10).await.unwrap();
        assert_eq!(
            got.iter()
                .map(|m| m.message_id.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        q.complete(&[got[0].lock_token.clone()]).await.unwrap();
        // Completed and resent within the window: still a duplicate.
        q.send(vec![msg("a", None, &clock)]).await.unwrap();
        assert!(q.receive(10).await.unwrap().is_empty());
        clock.advance(Duration::seconds(61));
        assert_eq!(q.receive(10).await.unwrap()[0].message_id, "b");
        // After the window the same id is new again.
        clock.advance(Duration::days(3));
        q.send(vec![msg("a", None, &clock)]).await.unwrap();
        assert_eq!(q.depth().await.unwrap().active, 2);
    }

    #[tokio::test]
    async fn expired_locks_redeliver_and_max_deliveries_quarantine() {
        let settings = QueueSettings {
            lock_duration: Duration::seconds(30),
            max_deliveries: 2,
            dedup_window: Duration::zero(),
        };
        let (q, clock, _dir) = queue(settings);
        q.send(vec![msg("poison", None, &clock)]).await.unwrap();
        let first = q.receive(1).await.unwrap();
        assert!(q.receive(1).await.unwrap().is_empty(), "locked");
        clock.advance(Duration::seconds(31));
        let second = q.receive(1).await.unwrap();
        assert_eq!(second[0].delivery_count, 2);
        // The first lock expired: completing with it does not remove the message.
        q.complete(&[first[0].lock_token.clone()]).await.unwrap();
        q.abandon(&[second[0].lock_token.clone()]).await.unwrap();
        assert!(
            q.receive(1).await.unwrap().is_empty(),
            "quarantined on the third delivery"
        );
        let kept = super::super::quarantine::EmbeddedQuarantine::new(q.db.clone())
            .list(10)
            .await
            .unwrap();
        assert_eq!(kept.len(), 1);
        assert!(
            kept[0].reason.contains("delivered 2 times"),
            "{}",
            kept[0].reason
        );
        assert_eq!(kept[0].body, b"poison");
    }

    #[tokio::test]
    async fn a_batch_is_locked_and_completed_as_one_but_each_lock_counts_alone() {
        let settings = QueueSettings {
            lock_duration: Duration::seconds(30),
            ..QueueSettings::default()
        };
        let (q, clock, _dir) = queue(settings);
        let ids = ["a", "b", "c", "d"];
        q.send(ids.iter().map(|id| msg(id, None, &clock)).collect())
            .await
            .unwrap();
        let first = q.receive(10).await.unwrap();
        assert_eq!(first.len(), 4);
        let tokens: std::collections::HashSet<&str> =
            first.iter().map(|m| m.lock_token.as_str()).collect();
        assert_eq!(tokens.len(), 4, "one token per message");
        // "a" and "b" complete under their lock; "c" is delivered again before its lock is used.
        clock.advance(Duration::seconds(31));
        let again = q.receive(10).await.unwrap();
        assert_eq!(again.len(), 4, "every lock expired");
        let c_again = again.iter().find(|m| m.message_id == "c").unwrap();
        let c_first = first.iter().find(|m| m.message_id == "c").unwrap();
        assert_ne!(c_again.lock_token, c_first.lock_token);
        let mut completing: Vec<String> = again
            .iter()
            .filter(|m| m.message_id == "a" || m.message_id == "b")
            .map(|m| m.lock_token.clone())
            .collect();
        completing.push(c_first.lock_token.clone()); // lost: "c" stays
        completing.push("not-a-token".into());
        q.complete(&completing).await.unwrap();
        assert_eq!(
            q.depth().await.unwrap().deferred,
            2,
            "c and d are still locked"
        );
        clock.advance(Duration::seconds(31));
        let left: Vec<String> = q
            .receive(10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        assert_eq!(left, ["c", "d"]);
    }

    #[tokio::test]
    async fn a_receive_stops_after_its_byte_budget() {
        let (q, clock, _dir) = queue(QueueSettings::default());
        let big = |id: &str| OutgoingMessage {
            body: vec![b'x'; RECEIVE_BYTES / 2],
            ..msg(id, None, &clock)
        };
        q.send(vec![big("a"), big("b"), big("c")]).await.unwrap();
        assert_eq!(
            q.receive(10).await.unwrap().len(),
            2,
            "the second fills the budget"
        );
        assert_eq!(q.receive(10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn renewing_keeps_a_lock_until_it_is_lost() {
        let settings = QueueSettings {
            lock_duration: Duration::seconds(30),
            ..QueueSettings::default()
        };
        let (q, clock, _dir) = queue(settings);
        q.send(vec![msg("a", None, &clock)]).await.unwrap();
        let first = q.receive(1).await.unwrap();
        assert_eq!(first[0].locked_until, clock.now() + Duration::seconds(30));
        let lock = [first[0].lock_token.clone()];
        clock.advance(Duration::seconds(20));
        assert_eq!(q.renew(&lock).await.unwrap(), 0);
        clock.advance(Duration::seconds(20));
        assert!(q.receive(1).await.unwrap().is_empty(), "still locked");
        clock.advance(Duration::seconds(11));
        let second = q.receive(1).await.unwrap();
        assert_eq!(second[0].delivery_count, 2, "expired, delivered again");
        assert_eq!(q.renew(&lock).await.unwrap(), 1, "the first lock is lost");
        q.complete(&[second[0].lock_token.clone()]).await.unwrap();
        assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
    }
}
