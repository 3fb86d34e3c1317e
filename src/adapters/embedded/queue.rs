//! An embedded queue with the Service Bus semantics the pipeline relies on: scheduled
//! visibility, peek-lock with lock expiry, a delivery count with a maximum after which the
//! message goes to quarantine (the dead-letter of the embedded mode), and MessageId duplicate
//! detection over a window fixed from the first sighting.
//!
//! **A send travels as one envelope.** The messages of one send that become visible at the same
//! instant share a `queue_envelope` row — their visibility, lock and delivery count — and each
//! has a `queue_item` row with its id, body and trace context. A receive locks whole envelopes
//! with one `UPDATE`, and completing a whole envelope deletes one row and one range of items:
//! a message costs its item row and its duplicate check, and nothing else grows with the number
//! of messages. (With a lock row per message, ingest's ten-point messages cost 2.5 times what
//! sixty-point ones did for the same observations.)
//!
//! Item ids are `envelope << 16 | position`. AUTOINCREMENT never reuses an envelope's number, so
//! no item id is ever reused, and an envelope names its items as one range of ids
//! (`first_item..=last_item`, which may have holes). Settling part of an envelope is the rare
//! path, and pays for itself:
//! * a receive that fills up inside an envelope locks the part it read as a new envelope over the
//!   head of the range, and the envelope keeps the unread tail (and its place in the queue);
//! * completing some of an envelope's messages deletes their items and lowers its count;
//! * abandoning some of them moves their items into a new envelope, visible at once, while the
//!   rest stay locked.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
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

/// Bits of an item id that number the item within its envelope.
const POSITION_BITS: u32 = 16;
/// Messages one envelope holds at most; a larger send is several envelopes.
const ENVELOPE_MESSAGES: usize = 1 << POSITION_BITS;

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

/// An envelope as stored: what a receive reads of the deliverable ones, and what settling a
/// lock reads of the one it holds.
struct Envelope {
    seq: i64,
    enqueued_at: i64,
    delivery_count: u32,
    first_item: i64,
    last_item: i64,
    /// Items left in the range.
    messages: i64,
}

/// The columns [`Envelope::from_row`] reads, in its order.
macro_rules! envelope_columns {
    () => {
        "seq, enqueued_at, delivery_count, first_item, last_item, messages"
    };
}

impl Envelope {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            enqueued_at: r.get(1)?,
            delivery_count: r.get(2)?,
            first_item: r.get(3)?,
            last_item: r.get(4)?,
            messages: r.get(5)?,
        })
    }

    /// The envelope, when `lock` still holds it.
    fn held(tx: &Connection, seq: i64, lock: &str) -> rusqlite::Result<Option<Self>> {
        tx.prepare_cached(concat!(
            "SELECT ",
            envelope_columns!(),
            " FROM queue_envelope WHERE seq = ?1 AND lock_token = ?2"
        ))?
        .query_row(params![seq, lock], Self::from_row)
        .optional()
    }

    fn has_holes(&self) -> bool {
        self.messages != self.last_item - self.first_item + 1
    }

    fn in_range(&self, item: i64) -> bool {
        (self.first_item..=self.last_item).contains(&item)
    }

    /// Whether `items` are all of the envelope's messages: its range has no holes and they fill it.
    fn is_all(&self, items: &BTreeSet<i64>) -> bool {
        !self.has_holes()
            && items.len() as i64 == self.messages
            && items.iter().all(|&i| self.in_range(i))
    }

    /// How many of `items` are still messages of this envelope (those completed or moved away
    /// left holes in its range).
    fn still_held(&self, tx: &Connection, items: &BTreeSet<i64>) -> rusqlite::Result<usize> {
        let mut held = 0;
        for &item in items.iter().filter(|&&i| self.in_range(i)) {
            held += usize::from(
                !self.has_holes()
                    || tx
                        .prepare_cached("SELECT 1 FROM queue_item WHERE item = ?1")?
                        .exists([item])?,
            );
        }
        Ok(held)
    }
}

/// One queued message as stored.
struct Item {
    item: i64,
    message_id: String,
    body: Vec<u8>,
    /// The `traceparent` stored with the message, read back as it was written.
    trace_context: Option<String>,
}

/// What a lock token names: the envelope, the message's item and the delivery's lock. A token is
/// `envelope:item:lock`, unique per message and delivery.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    envelope: i64,
    lock: &'a str,
    item: i64,
}

impl<'a> Token<'a> {
    fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.splitn(3, ':');
        let envelope = parts.next()?.parse().ok()?;
        let item = parts.next()?.parse().ok()?;
        let lock = parts.next()?;
        Some(Self {
            envelope,
            lock,
            item,
        })
    }

    fn format(envelope: i64, item: i64, lock: &str) -> String {
        format!("{envelope}:{item}:{lock}")
    }
}

/// The items tokens name, per envelope and lock; tokens that name nothing are counted apart.
struct HeldLocks<'a> {
    by_envelope: BTreeMap<(i64, &'a str), BTreeSet<i64>>,
    unparsable: usize,
}

impl<'a> HeldLocks<'a> {
    fn of(tokens: &'a [String]) -> Self {
        let mut held = Self {
            by_envelope: BTreeMap::new(),
            unparsable: 0,
        };
        for token in tokens {
            match Token::parse(token) {
                Some(t) => {
                    held.by_envelope
                        .entry((t.envelope, t.lock))
                        .or_default()
                        .insert(t.item);
                }
                None => held.unparsable += 1,
            }
        }
        held
    }

    /// Runs `settle` on each envelope the tokens still hold the lock of, and returns how many
    /// tokens are lost: the unparsable ones, those of envelopes no longer held, and those
    /// `settle` reports (messages it found already gone).
    fn settle_held(
        &self,
        tx: &Connection,
        mut settle: impl FnMut(&Envelope, &BTreeSet<i64>) -> rusqlite::Result<usize>,
    ) -> rusqlite::Result<usize> {
        let mut lost = self.unparsable;
        for (&(seq, lock), items) in &self.by_envelope {
            match Envelope::held(tx, seq, lock)? {
                Some(envelope) => lost += settle(&envelope, items)?,
                None => lost += items.len(),
            }
        }
        Ok(lost)
    }
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
                    "SELECT COALESCE(SUM(CASE WHEN visible_at <= ?2 THEN messages END), 0),
                            COALESCE(SUM(CASE WHEN visible_at > ?2 THEN messages END), 0)
                     FROM queue_envelope WHERE queue = ?1",
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

/// A new envelope of `messages` items over `first_item..=last_item`, or over its own id space
/// when no range is given (the items are then inserted by the caller); returns its number.
fn insert_envelope(
    tx: &Connection,
    queue: &str,
    enqueued_at: i64,
    visible_at: i64,
    delivery_count: u32,
    range: Option<(i64, i64)>,
    messages: i64,
) -> rusqlite::Result<i64> {
    let seq: i64 = tx
        .prepare_cached(
            "INSERT INTO queue_envelope
                 (queue, enqueued_at, visible_at, delivery_count, first_item, last_item, messages)
             VALUES (?1, ?2, ?3, ?4, 0, 0, ?5) RETURNING seq",
        )?
        .query_row(
            params![queue, enqueued_at, visible_at, delivery_count, messages],
            |r| r.get(0),
        )?;
    let (first, last) =
        range.unwrap_or((seq << POSITION_BITS, (seq << POSITION_BITS) + messages - 1));
    tx.prepare_cached("UPDATE queue_envelope SET first_item = ?2, last_item = ?3 WHERE seq = ?1")?
        .execute(params![seq, first, last])?;
    Ok(seq)
}

/// Deletes an envelope and every item in its range.
fn remove_envelope(tx: &Connection, envelope: &Envelope) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM queue_envelope WHERE seq = ?1")?
        .execute([envelope.seq])?;
    tx.prepare_cached("DELETE FROM queue_item WHERE item BETWEEN ?1 AND ?2")?
        .execute([envelope.first_item, envelope.last_item])?;
    Ok(())
}

/// Lowers an envelope's count by `gone` items, deleting it when none is left.
fn shrink_envelope(tx: &Connection, seq: i64, gone: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE queue_envelope SET messages = messages - ?2 WHERE seq = ?1")?
        .execute([seq, gone])?;
    tx.prepare_cached("DELETE FROM queue_envelope WHERE seq = ?1 AND messages <= 0")?
        .execute([seq])?;
    Ok(())
}

/// Reads the items of `first..=last` in order, as long as `more` says so after each.
fn read_items(
    tx: &Connection,
    first: i64,
    last: i64,
    mut more: impl FnMut(&Item) -> bool,
) -> rusqlite::Result<Vec<Item>> {
    let mut select = tx.prepare_cached(
        "SELECT item, message_id, body, trace_context FROM queue_item
         WHERE item BETWEEN ?1 AND ?2 ORDER BY item",
    )?;
    let mut rows = select.query([first, last])?;
    let mut items = Vec::new();
    while let Some(r) = rows.next()? {
        let item = Item {
            item: r.get(0)?,
            message_id: r.get(1)?,
            body: r.get(2)?,
            trace_context: r.get(3)?,
        };
        let go_on = more(&item);
        items.push(item);
        if !go_on {
            break;
        }
    }
    Ok(items)
}

/// Moves an exhausted envelope's messages to the quarantine, each with the reason.
fn quarantine_envelope(
    tx: &Connection,
    name: &str,
    envelope: &Envelope,
    max_deliveries: u32,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    for item in read_items(tx, envelope.first_item, envelope.last_item, |_| true)? {
        quarantine::insert(
            tx,
            &QuarantineEntry {
                id: format!("{name}:{}:max-deliveries", item.item),
                at: now,
                function: name.to_string(),
                source: item.message_id,
                reason: format!(
                    "delivered {} times without being completed (max {max_deliveries})",
                    envelope.delivery_count
                ),
                body: item.body,
            },
        )?;
    }
    remove_envelope(tx, envelope)
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
                // The messages that are not duplicates, per instant they become visible.
                let mut due: BTreeMap<i64, Vec<&OutgoingMessage>> = BTreeMap::new();
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
                    due.entry(visible_at).or_default().push(message);
                }
                {
                    // Held across the send: fetching it from the cache per message hashed its
                    // text each time.
                    let mut insert_item = tx.prepare_cached(
                        "INSERT INTO queue_item (item, message_id, trace_context, body) VALUES (?1, ?2, ?3, ?4)",
                    )?;
                    for (visible_at, messages) in due {
                        for envelope in messages.chunks(ENVELOPE_MESSAGES) {
                            let seq = insert_envelope(&tx, name, now_ms, visible_at, 0, None, envelope.len() as i64)?;
                            for (position, message) in (0..).zip(envelope) {
                                let trace_context = message.trace_context.as_ref().map(TraceContext::as_str);
                                insert_item.execute(params![
                                    (seq << POSITION_BITS) + position,
                                    message.message_id,
                                    trace_context,
                                    message.body
                                ])?;
                            }
                        }
                    }
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
                let envelopes: Vec<Envelope> = tx
                    .prepare_cached(concat!(
                        "SELECT ",
                        envelope_columns!(),
                        " FROM queue_envelope WHERE queue = ?1 AND visible_at <= ?2
                         ORDER BY visible_at, seq LIMIT ?3"
                    ))?
                    .query_map(params![name, now_ms, max as i64], Envelope::from_row)?
                    .collect::<rusqlite::Result<_>>()?;
                // One random part per delivery: a message's token is `envelope:item:random`,
                // unique by its item, and a later delivery of it gets another.
                let lock = format!("{:016x}", rand::rng().random::<u64>());
                let locked_until = now + settings.lock_duration;
                let mut received: Vec<ReceivedMessage> = Vec::new();
                let mut locked: Vec<Value> = Vec::new();
                let mut bytes = 0;
                for envelope in envelopes {
                    if received.len() >= max || bytes >= RECEIVE_BYTES {
                        break;
                    }
                    if envelope.delivery_count >= settings.max_deliveries {
                        quarantine_envelope(&tx, name, &envelope, settings.max_deliveries, now)?;
                        continue;
                    }
                    let room = max - received.len();
                    let mut taken = 0;
                    let items = read_items(&tx, envelope.first_item, envelope.last_item, |item| {
                        taken += 1;
                        bytes += item.body.len();
                        taken < room && bytes < RECEIVE_BYTES
                    })?;
                    let read = items.len() as i64;
                    // A receive that filled up inside the envelope locks the head it read as an
                    // envelope of its own; this one keeps the tail and its place.
                    let seq = match items.last() {
                        Some(last) if read < envelope.messages => {
                            let head = insert_envelope(
                                &tx,
                                name,
                                envelope.enqueued_at,
                                now_ms,
                                envelope.delivery_count,
                                Some((envelope.first_item, last.item)),
                                read,
                            )?;
                            tx.prepare_cached(
                                "UPDATE queue_envelope SET first_item = ?2, messages = messages - ?3
                                 WHERE seq = ?1",
                            )?
                            .execute(params![envelope.seq, last.item + 1, read])?;
                            head
                        }
                        _ => envelope.seq,
                    };
                    locked.push(Value::Integer(seq));
                    received.extend(items.into_iter().map(|item| ReceivedMessage {
                        message_id: item.message_id,
                        body: item.body,
                        enqueued_at: from_millis(envelope.enqueued_at),
                        delivery_count: envelope.delivery_count + 1,
                        lock_token: Token::format(seq, item.item, &lock),
                        locked_until,
                        trace_context: item.trace_context.as_deref().and_then(TraceContext::parse),
                    }));
                }
                tx.prepare_cached(
                    "UPDATE queue_envelope SET delivery_count = delivery_count + 1,
                     lock_token = ?2, visible_at = ?3 WHERE seq IN rarray(?1)",
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
                let lost = HeldLocks::of(&tokens).settle_held(&tx, |envelope, items| {
                    if envelope.is_all(items) {
                        remove_envelope(&tx, envelope)?;
                        return Ok(0);
                    }
                    let mut deleted = 0;
                    for &item in items.iter().filter(|&&i| envelope.in_range(i)) {
                        deleted += tx
                            .prepare_cached("DELETE FROM queue_item WHERE item = ?1")?
                            .execute([item])?;
                    }
                    shrink_envelope(&tx, envelope.seq, deleted as i64)?;
                    Ok(items.len() - deleted)
                })?;
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
        let (name, now) = (self.name, millis(self.clock.now()));
        self.db
            .call("abandoning embedded queue messages", move |c| {
                let tx = c.transaction()?;
                // Abandoning reports no lost locks: their messages come back either way.
                HeldLocks::of(&tokens).settle_held(&tx, |envelope, items| {
                    if envelope.is_all(items) {
                        tx.prepare_cached(
                            "UPDATE queue_envelope SET lock_token = NULL, visible_at = ?2 WHERE seq = ?1",
                        )?
                        .execute(params![envelope.seq, now])?;
                        return Ok(0);
                    }
                    // Some of a locked envelope: their items move to a new, visible envelope.
                    let moving: Vec<i64> = items.iter().copied().filter(|&i| envelope.in_range(i)).collect();
                    let moved = insert_envelope(
                        &tx,
                        name,
                        envelope.enqueued_at,
                        now,
                        envelope.delivery_count,
                        None,
                        moving.len() as i64,
                    )?;
                    // A token of a message already completed moves nothing.
                    let mut count = 0;
                    for (position, item) in (0..).zip(&moving) {
                        count += tx
                            .prepare_cached("UPDATE queue_item SET item = ?2 WHERE item = ?1")?
                            .execute([*item, (moved << POSITION_BITS) + position])?;
                    }
                    shrink_envelope(&tx, moved, (moving.len() - count) as i64)?;
                    shrink_envelope(&tx, envelope.seq, count as i64)?;
                    Ok(0)
                })?;
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
                let lost = HeldLocks::of(&tokens).settle_held(&tx, |envelope, items| {
                    tx.prepare_cached("UPDATE queue_envelope SET visible_at = ?2 WHERE seq = ?1")?
                        .execute(params![envelope.seq, locked_until])?;
                    Ok(items.len() - envelope.still_held(&tx, items)?)
                })?;
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

    /// Settings whose locks last 30 s, so a test can let them expire.
    fn thirty_second_locks() -> QueueSettings {
        QueueSettings {
            lock_duration: Duration::seconds(30),
            ..QueueSettings::default()
        }
    }

    /// Sends one message per id, visible now, in one send.
    async fn send_now(q: &EmbeddedQueue, clock: &ManualClock, ids: &[&str]) {
        q.send(ids.iter().map(|id| msg(id, None, clock)).collect())
            .await
            .unwrap();
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
            max_deliveries: 2,
            dedup_window: Duration::zero(),
            ..thirty_second_locks()
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
        let (q, clock, _dir) = queue(thirty_second_locks());
        send_now(&q, &clock, &["a", "b", "c", "d"]).await;
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

    fn ids(received: &[ReceivedMessage]) -> Vec<&str> {
        received.iter().map(|m| m.message_id.as_str()).collect()
    }

    fn tokens(received: &[ReceivedMessage], wanted: &[&str]) -> Vec<String> {
        received
            .iter()
            .filter(|m| wanted.contains(&m.message_id.as_str()))
            .map(|m| m.lock_token.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_receive_that_fills_up_inside_a_send_leaves_the_rest_deliverable() {
        let (q, clock, _dir) = queue(QueueSettings::default());
        send_now(&q, &clock, &["a", "b", "c", "d", "e"]).await;
        q.send(vec![msg("f", None, &clock)]).await.unwrap();
        let first = q.receive(2).await.unwrap();
        assert_eq!(ids(&first), ["a", "b"]);
        assert_eq!(
            q.depth().await.unwrap(),
            QueueDepth {
                active: 4,
                deferred: 2
            }
        );
        // The unread rest of the send keeps its place ahead of the later send.
        let second = q.receive(10).await.unwrap();
        assert_eq!(ids(&second), ["c", "d", "e", "f"]);
        q.complete(&tokens(&first, &["a", "b"])).await.unwrap();
        q.complete(&tokens(&second, &["c", "d", "e", "f"]))
            .await
            .unwrap();
        assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
    }

    #[tokio::test]
    async fn abandoning_part_of_a_send_redelivers_only_that_part() {
        let (q, clock, _dir) = queue(thirty_second_locks());
        send_now(&q, &clock, &["a", "b", "c", "d"]).await;
        let first = q.receive(10).await.unwrap();
        q.complete(&tokens(&first, &["a"])).await.unwrap();
        q.abandon(&tokens(&first, &["b", "d"])).await.unwrap();
        let again = q.receive(10).await.unwrap();
        assert_eq!(ids(&again), ["b", "d"], "c is still locked, a is gone");
        assert!(again.iter().all(|m| m.delivery_count == 2));
        // The first delivery's token for "c" still holds its lock, the abandoned ones no more.
        assert_eq!(q.renew(&tokens(&first, &["b", "c"])).await.unwrap(), 1);
        q.complete(&tokens(&first, &["c"])).await.unwrap();
        q.complete(&tokens(&again, &["b", "d"])).await.unwrap();
        assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
        clock.advance(Duration::minutes(5));
        assert!(
            q.receive(10).await.unwrap().is_empty(),
            "nothing comes back"
        );
    }

    #[tokio::test]
    async fn messages_of_one_send_scheduled_apart_become_visible_apart() {
        let (q, clock, _dir) = queue(QueueSettings::default());
        q.send(vec![
            msg("later", Some(60), &clock),
            msg("now", None, &clock),
            msg("later-too", Some(60), &clock),
        ])
        .await
        .unwrap();
        let now = q.receive(10).await.unwrap();
        assert_eq!(ids(&now), ["now"]);
        q.complete(&tokens(&now, &["now"])).await.unwrap();
        clock.advance(Duration::seconds(60));
        assert_eq!(ids(&q.receive(10).await.unwrap()), ["later", "later-too"]);
    }

    #[tokio::test]
    async fn renewing_keeps_a_lock_until_it_is_lost() {
        let (q, clock, _dir) = queue(thirty_second_locks());
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
