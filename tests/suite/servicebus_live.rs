//! Live tests against a real Service Bus namespace. They run only when
//! `EVENTIDE_LIVE_SERVICEBUS` holds a connection string (SAS with Send and Listen rights) and
//! `EVENTIDE_LIVE_SERVICEBUS_QUEUE` (default `eventide-live`) names an existing queue without
//! sessions and with duplicate detection on (and, for the dead-letter test, a
//! `maxDeliveryCount` of at most 20). Unset: the test prints that it was skipped and passes —
//! nothing here has been run against Service Bus unless someone set the variable.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use eventide::adapters::servicebus::{
    ClientOptions, DeadLetterQueue, ServiceBusClient, Settlement,
};
use eventide::pipeline::ports::{
    OutgoingMessage, PortResult, QuarantineEntry, QuarantineSource, Replayed, Resubmission,
    Resubmit,
};

fn live() -> Option<(ServiceBusClient, String)> {
    let Ok(connection) = std::env::var("EVENTIDE_LIVE_SERVICEBUS") else {
        eprintln!("skipped: EVENTIDE_LIVE_SERVICEBUS is not set (no live Service Bus test ran)");
        return None;
    };
    let queue =
        std::env::var("EVENTIDE_LIVE_SERVICEBUS_QUEUE").unwrap_or_else(|_| "eventide-live".into());
    let client = ServiceBusClient::from_connection_string(&connection, ClientOptions::default())
        .expect("EVENTIDE_LIVE_SERVICEBUS is a valid connection string");
    Some((client, queue))
}

fn message(id: &str, body: &str, scheduled_in: Option<Duration>) -> OutgoingMessage {
    OutgoingMessage {
        message_id: id.into(),
        session_id: Some("live-ünïcode".into()),
        body: body.as_bytes().to_vec(),
        scheduled_at: scheduled_in.map(|d| Utc::now() + d),
        trace_context: None,
    }
}

/// Takes messages until the one with `id` comes (others left by earlier runs are completed).
async fn take(
    client: &ServiceBusClient,
    queue: &str,
    id: &str,
    wait: u64,
) -> Option<eventide::adapters::servicebus::LockedMessage> {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(wait);
    while std::time::Instant::now() < deadline {
        match client
            .peek_lock(queue, StdDuration::from_secs(2))
            .await
            .unwrap()
        {
            Some(m) if m.message_id == id => return Some(m),
            Some(other) => {
                client.complete(queue, &other.lock).await.unwrap();
            }
            None => {}
        }
    }
    None
}

#[tokio::test]
async fn live_send_schedule_lock_settle_and_duplicate_detection() {
    let Some((client, queue)) = live() else {
        return;
    };
    let run = format!("{:x}", Utc::now().timestamp_micros());

    // Plain send, peek-lock, abandon, again, renew, complete.
    let id = format!("live-{run}-a");
    client
        .send(&queue, &message(&id, "{\"n\":1}", None))
        .await
        .unwrap();
    let first = take(&client, &queue, &id, 30)
        .await
        .expect("the message arrives");
    assert_eq!(first.body, b"{\"n\":1}");
    assert_eq!(
        client.abandon(&queue, &first.lock).await.unwrap(),
        Settlement::Done
    );
    let second = take(&client, &queue, &id, 30)
        .await
        .expect("delivered again");
    assert_eq!(second.delivery_count, first.delivery_count + 1);
    assert_eq!(
        client.renew_lock(&queue, &second.lock).await.unwrap(),
        Settlement::Done
    );
    assert_eq!(
        client.complete(&queue, &second.lock).await.unwrap(),
        Settlement::Done
    );
    assert_eq!(
        client.complete(&queue, &second.lock).await.unwrap(),
        Settlement::LockLost
    );

    // Batch send with a duplicate MessageId: one copy is kept (duplicate detection on).
    let dup = format!("live-{run}-b");
    client
        .send_batch(
            &queue,
            &[
                message(&dup, "{\"n\":2}", None),
                message(&dup, "{\"n\":3}", None),
            ],
        )
        .await
        .unwrap();
    client
        .send(&queue, &message(&dup, "{\"n\":4}", None))
        .await
        .unwrap();
    let kept = take(&client, &queue, &dup, 30)
        .await
        .expect("one copy arrives");
    client.complete(&queue, &kept.lock).await.unwrap();
    assert!(
        take(&client, &queue, &dup, 6).await.is_none(),
        "duplicates were dropped"
    );

    // Scheduled 15 s ahead: not visible before, visible after.
    let later = format!("live-{run}-c");
    client
        .send(
            &queue,
            &message(&later, "{\"n\":5}", Some(Duration::seconds(15))),
        )
        .await
        .unwrap();
    assert!(
        take(&client, &queue, &later, 5).await.is_none(),
        "not visible early"
    );
    let due = take(&client, &queue, &later, 40)
        .await
        .expect("visible when due");
    client.complete(&queue, &due.lock).await.unwrap();
    assert!(due.lock.sequence_number > 0);
}

/// Sends a replayed entry back to the live queue under a MessageId of the test's.
struct SendBack<'a> {
    client: &'a ServiceBusClient,
    queue: &'a str,
    message_id: String,
}

#[async_trait]
impl Resubmit for SendBack<'_> {
    async fn resubmit(&self, entry: &QuarantineEntry) -> PortResult<Resubmission> {
        let body = String::from_utf8(entry.body.clone()).expect("the test's bodies are text");
        self.client
            .send(self.queue, &message(&self.message_id, &body, None))
            .await
            .map_err(|e| e.into_port("sending a replayed message"))?;
        Ok(Resubmission::Sent)
    }
}

#[tokio::test]
async fn live_dead_lettered_message_is_listed_twice_and_replayed() {
    let Some((client, queue)) = live() else {
        return;
    };
    let client = Arc::new(client);
    let run = format!("{:x}", Utc::now().timestamp_micros());

    // Abandoned until the broker dead-letters it after the queue's maxDeliveryCount.
    let id = format!("live-{run}-dead");
    client
        .send(&queue, &message(&id, "{\"n\":6}", None))
        .await
        .unwrap();
    let mut deliveries = 0;
    while let Some(delivered) = take(&client, &queue, &id, 10).await {
        deliveries += 1;
        assert!(
            deliveries <= 20,
            "the live queue's maxDeliveryCount must be at most 20"
        );
        client.abandon(&queue, &delivered.lock).await.unwrap();
    }
    assert!(deliveries > 0, "the message was never delivered");

    let dead_letters = DeadLetterQueue::new(client.clone(), queue.clone(), "process");
    let find = || async {
        dead_letters
            .list(1_000)
            .await
            .unwrap()
            .into_iter()
            .find(|entry| entry.source == id)
    };
    let entry = find()
        .await
        .expect("the message is in the dead-letter queue");
    assert!(
        entry.reason.contains("MaxDeliveryCountExceeded"),
        "{}",
        entry.reason
    );
    assert_eq!(entry.body, b"{\"n\":6}");
    assert_eq!(find().await.as_ref(), Some(&entry), "listing lost nothing");

    let replayed_id = format!("{id}-replayed");
    let replayed = dead_letters
        .replay(
            std::slice::from_ref(&entry.id),
            &SendBack {
                client: &client,
                queue: &queue,
                message_id: replayed_id.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        replayed,
        [Replayed {
            id: entry.id.clone(),
            outcome: Resubmission::Sent
        }]
    );
    assert!(find().await.is_none(), "replay completed it");
    let back = take(&client, &queue, &replayed_id, 30)
        .await
        .expect("the replayed message is on the queue");
    assert_eq!(back.body, b"{\"n\":6}");
    client.complete(&queue, &back.lock).await.unwrap();
}
