//! The Service Bus REST client against `FakeServiceBus`, a loopback fake of the documented REST
//! semantics (not Service Bus: see `servicebus_live.rs` for the gated live tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use chrono::{Duration, Utc};
use eventide::adapters::servicebus::{
    ClientOptions, Credential, ServiceBusClient, ServiceBusQueue, Settlement,
};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{
    Clock, ErrorKind, MessageReceiver, MessageSender, OutgoingMessage,
};
use eventide::pipeline::retry::RetryPolicy;
use eventide_testkit::fake_service_bus::{
    FIRST_SEQUENCE, FakeQueueSettings, FakeServiceBus, Fault,
};

use crate::kit;

const Q: &str = "q";

fn fast_retries() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: StdDuration::from_millis(5),
            max_delay: StdDuration::from_millis(50),
        },
        ..ClientOptions::default()
    }
}

async fn fake(settings: FakeQueueSettings) -> (FakeServiceBus, Arc<ManualClock>, ServiceBusClient) {
    let clock = Arc::new(ManualClock::new("2026-11-24T12:00:00Z".parse().unwrap()));
    let fake = FakeServiceBus::start(clock.clone(), &[(Q, settings)]).await;
    let client =
        ServiceBusClient::from_connection_string(&fake.connection_string(), fast_retries())
            .unwrap();
    (fake, clock, client)
}

fn message(id: &str, scheduled_at: Option<chrono::DateTime<Utc>>) -> OutgoingMessage {
    OutgoingMessage {
        message_id: id.into(),
        session_id: Some("plant-1/temp".into()),
        body: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        scheduled_at,
        trace_context: None,
    }
}

const NOW: StdDuration = StdDuration::ZERO;

#[tokio::test]
async fn scheduled_sends_wait_and_duplicates_are_dropped_within_a_fixed_window() {
    let (fake, clock, client) = fake(FakeQueueSettings {
        dedup_window: Duration::minutes(10),
        ..FakeQueueSettings::default()
    })
    .await;
    let due = clock.now() + Duration::minutes(5);
    for _ in 0..3 {
        client
            .send(Q, &message("summarize:s1:2026-11-24:1", Some(due)))
            .await
            .unwrap();
    }
    assert_eq!(fake.stats(Q).duplicates_dropped, 2);
    assert!(
        client.peek_lock(Q, NOW).await.unwrap().is_none(),
        "not due yet"
    );
    clock.advance(Duration::minutes(5));
    let m = client.peek_lock(Q, NOW).await.unwrap().unwrap();
    assert_eq!(m.message_id, "summarize:s1:2026-11-24:1");
    assert_eq!(m.session_id.as_deref(), Some("plant-1/temp"));
    assert_eq!(m.delivery_count, 1);
    assert!(
        m.lock.sequence_number >= FIRST_SEQUENCE && m.lock.sequence_number > i64::from(i32::MAX)
    );
    assert_eq!(m.enqueued_at, Some("2026-11-24T12:00:00Z".parse().unwrap()));
    assert_eq!(client.complete(Q, &m.lock).await.unwrap(), Settlement::Done);
    assert_eq!(
        client.complete(Q, &m.lock).await.unwrap(),
        Settlement::LockLost
    );

    // Still inside the window (counted from the first send, not sliding): dropped.
    clock.advance(Duration::minutes(4));
    client
        .send(Q, &message("summarize:s1:2026-11-24:1", None))
        .await
        .unwrap();
    assert!(client.peek_lock(Q, NOW).await.unwrap().is_none());
    // After it: accepted again — the seed system's failure mode with a short window.
    clock.advance(Duration::minutes(2));
    client
        .send(Q, &message("summarize:s1:2026-11-24:1", None))
        .await
        .unwrap();
    assert!(client.peek_lock(Q, NOW).await.unwrap().is_some());
}

#[tokio::test]
async fn batch_sends_keep_ids_sessions_schedules_and_unicode() {
    let (fake, clock, client) = fake(FakeQueueSettings::default()).await;
    let queue = ServiceBusQueue::new(Arc::new(client), Q).with_receive_wait(NOW);
    let mut messages: Vec<_> = (0..250).map(|i| message(&format!("m-{i}"), None)).collect();
    messages.push(message(
        "summarize:ünïcode:flow:2026-11-24:1",
        Some(clock.now() + Duration::hours(1)),
    ));
    messages.push(message("m-0", None)); // a duplicate inside the same send
    queue.send(messages).await.unwrap();
    let stats = fake.stats(Q);
    assert_eq!(
        stats.send_requests, 3,
        "250 + 2 messages in batches of at most 100"
    );
    assert_eq!(
        (
            stats.enqueued,
            stats.duplicates_dropped,
            stats.messages_scheduled
        ),
        (251, 1, 1)
    );

    let got = queue.receive(1_000).await.unwrap();
    assert_eq!(got.len(), 250);
    let locks: Vec<_> = got.iter().map(|m| m.lock_token.clone()).collect();
    queue.complete(&locks).await.unwrap();
    clock.advance(Duration::hours(1));
    let late = queue.receive(10).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].message_id, "summarize:ünïcode:flow:2026-11-24:1");
    assert_eq!(
        late[0].body,
        b"{\"id\":\"summarize:\xc3\xbcn\xc3\xafcode:flow:2026-11-24:1\"}"
    );
}

#[tokio::test]
async fn locks_expire_count_deliveries_renew_and_dead_letter() {
    let (fake, clock, client) = fake(FakeQueueSettings {
        lock_duration: Duration::seconds(30),
        max_delivery_count: 3,
        ..FakeQueueSettings::default()
    })
    .await;
    client.send(Q, &message("poison", None)).await.unwrap();
    let first = client.peek_lock(Q, NOW).await.unwrap().unwrap();
    assert!(client.peek_lock(Q, NOW).await.unwrap().is_none(), "locked");
    clock.advance(Duration::seconds(20));
    assert_eq!(
        client.renew_lock(Q, &first.lock).await.unwrap(),
        Settlement::Done
    );
    clock.advance(Duration::seconds(20));
    assert!(
        client.peek_lock(Q, NOW).await.unwrap().is_none(),
        "renewed lock still held"
    );
    clock.advance(Duration::seconds(11));
    let second = client.peek_lock(Q, NOW).await.unwrap().unwrap();
    assert_eq!(second.delivery_count, 2);
    assert_eq!(
        client.complete(Q, &first.lock).await.unwrap(),
        Settlement::LockLost,
        "expired lock"
    );
    assert_eq!(
        client.abandon(Q, &second.lock).await.unwrap(),
        Settlement::Done
    );
    let third = client.peek_lock(Q, NOW).await.unwrap().unwrap();
    assert_eq!(third.delivery_count, 3);
    assert_eq!(
        client.abandon(Q, &third.lock).await.unwrap(),
        Settlement::Done
    );
    assert!(
        client.peek_lock(Q, NOW).await.unwrap().is_none(),
        "dead-lettered after 3 deliveries"
    );
    assert_eq!(fake.dead_letters(Q), ["poison"]);
}

#[tokio::test]
async fn a_receive_waits_for_a_message_that_arrives() {
    let (_fake, _clock, client) = fake(FakeQueueSettings::default()).await;
    let client = Arc::new(client);
    let sender = client.clone();
    let send = tokio::spawn(async move {
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        sender.send(Q, &message("late", None)).await.unwrap();
    });
    let got = client
        .peek_lock(Q, StdDuration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.unwrap().message_id, "late");
    send.await.unwrap();
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_other_errors_are_not() {
    let (fake, _clock, client) = fake(FakeQueueSettings::default()).await;
    fake.inject([
        Fault {
            status: 429,
            body: "too many requests".into(),
            retry_after: Some(0),
        },
        Fault {
            status: 503,
            body: "unavailable".into(),
            retry_after: None,
        },
        Fault {
            status: 403,
            body: "SubCode=50009. The server is busy.".into(),
            retry_after: None,
        },
    ]);
    client.send(Q, &message("a", None)).await.unwrap();
    assert_eq!(fake.requests(), 4);
    assert_eq!(fake.stats(Q).enqueued, 1);

    fake.inject([Fault {
        status: 400,
        body: "bad request".into(),
        retry_after: None,
    }]);
    let err = client.send(Q, &message("b", None)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    assert!(err.to_string().contains("HTTP 400"), "{err}");
    assert_eq!(fake.requests(), 5, "not retried");

    fake.inject((0..4).map(|_| Fault {
        status: 500,
        body: "boom".into(),
        retry_after: None,
    }));
    let err = client.send(Q, &message("c", None)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(fake.requests(), 9, "bounded: four attempts");

    // The port maps them the same way.
    let queue = ServiceBusQueue::new(Arc::new(client), Q);
    fake.inject((0..4).map(|_| Fault {
        status: 503,
        body: String::new(),
        retry_after: None,
    }));
    let err = queue.send(vec![message("d", None)]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient);
    assert!(err.context.contains("Service Bus queue q"), "{err}");
}

#[tokio::test]
async fn calls_time_out() {
    // Timed: not beside a heavy test.
    let _exclusive = kit::exclusive().await;
    let (fake, _clock, _client) = fake(FakeQueueSettings::default()).await;
    fake.set_latency(StdDuration::from_millis(500));
    let client = ServiceBusClient::from_connection_string(
        &fake.connection_string(),
        ClientOptions {
            call_timeout: StdDuration::from_millis(100),
            retry: RetryPolicy {
                max_attempts: 2,
                ..fast_retries().retry
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = client.send(Q, &message("slow", None)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(
        started.elapsed() < StdDuration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_not_retried() {
    let (fake, _clock, _client) = fake(FakeQueueSettings::default()).await;
    let wrong = fake
        .connection_string()
        .replace("SharedAccessKey=", "SharedAccessKey=x");
    let client = ServiceBusClient::from_connection_string(&wrong, fast_retries()).unwrap();
    let err = client.send(Q, &message("a", None)).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 401"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert_eq!(fake.unauthorized(), 1);
    assert!(!err.to_string().contains("SharedAccessKey"), "{err}");
}

/// A stand-in for an `azure_identity` credential: hands out one token, counting requests.
#[derive(Debug)]
struct CountingCredential {
    calls: AtomicUsize,
    scopes: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TokenCredential for CountingCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.scopes.lock().unwrap() = scopes.iter().map(|s| s.to_string()).collect();
        Ok(AccessToken::new(
            "entra-token-for-tests",
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[tokio::test]
async fn entra_id_tokens_are_requested_for_the_service_bus_scope_and_cached() {
    let (fake, _clock, _client) = fake(FakeQueueSettings::default()).await;
    fake.accept_bearer("entra-token-for-tests");
    let credential = Arc::new(CountingCredential {
        calls: AtomicUsize::new(0),
        scopes: Default::default(),
    });
    let client = ServiceBusClient::new(
        &fake.endpoint(),
        Credential::entra_id(credential.clone()),
        fast_retries(),
    )
    .unwrap();
    for i in 0..5 {
        client
            .send(Q, &message(&format!("e-{i}"), None))
            .await
            .unwrap();
    }
    assert_eq!(fake.stats(Q).enqueued, 5);
    assert_eq!(fake.unauthorized(), 0);
    assert_eq!(credential.calls.load(Ordering::SeqCst), 1, "cached");
    assert_eq!(
        *credential.scopes.lock().unwrap(),
        ["https://servicebus.azure.net/.default"]
    );
}
