//! `eventide quarantine list|replay` on the Service Bus dead-letter queues, against
//! `FakeServiceBus` — a loopback FAKE of the documented REST contract (the dead-letter
//! sub-queue paths, peek-lock/complete/unlock there, the `DeadLetterReason` and
//! `DeadLetterErrorDescription` properties), not Service Bus. The application is built from
//! settings alone (`EVENTIDE_SERVICEBUS` pointing at the fake); documents, sink and quarantine
//! stay embedded. A pass over a dead-letter queue whose locks expire on the way ends without
//! listing a message twice or losing one. `servicebus_live.rs` has the gated test against a
//! real namespace.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use azure_core::credentials::Secret;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use eventide::adapters::servicebus::{
    ClientOptions, DeadLetterQueue, ServiceBusClient, ServiceBusQueue,
};
use eventide::app::{App, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::domain::series::SeriesId;
use eventide::drivers::quarantine::{Skipped, list, replay};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::{Clock, MessageReceiver, OutgoingMessage, QuarantineSource};
use eventide::pipeline::process::InboundMessage;
use eventide_testkit::fake_service_bus::{DeadLetterCause, FakeQueueSettings, FakeServiceBus};

use crate::kit::{self, start};

const OBSERVATIONS: &str = "observations";
const SUMMARIES: &str = "summaries";

/// The fake, and an application whose queues are on it because `EVENTIDE_SERVICEBUS` is set.
struct Azure {
    fake: FakeServiceBus,
    app: App,
    client: Arc<ServiceBusClient>,
    _dir: tempfile::TempDir,
}

async fn azure(observations: FakeQueueSettings) -> Azure {
    let clock = Arc::new(ManualClock::new(start()));
    let fake = FakeServiceBus::start(
        clock.clone(),
        &[
            (OBSERVATIONS, observations),
            (SUMMARIES, FakeQueueSettings::default()),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = kit::settings(dir.path());
    config.backends.servicebus.connection = Some(Secret::new(fake.connection_string()));
    let app = App::build(&config, Driver::Local, clock).await.unwrap();
    let client = Arc::new(
        ServiceBusClient::from_connection_string(
            &fake.connection_string(),
            ClientOptions::default(),
        )
        .unwrap(),
    );
    Azure {
        fake,
        app,
        client,
        _dir: dir,
    }
}

impl Azure {
    fn queue(&self, name: &str) -> ServiceBusQueue {
        ServiceBusQueue::new(self.client.clone(), name).with_receive_wait(StdDuration::ZERO)
    }

    /// Plays the host's trigger until the observations queue is empty: receive, process,
    /// complete.
    async fn process_all(&self) {
        let queue = self.queue(OBSERVATIONS);
        loop {
            let batch = queue.receive(16).await.unwrap();
            if batch.is_empty() {
                return;
            }
            let messages: Vec<_> = batch.iter().map(InboundMessage::from).collect();
            self.app.pipeline.process(&messages).await.unwrap();
            let locks: Vec<_> = batch.into_iter().map(|m| m.lock_token).collect();
            queue.complete(&locks).await.unwrap();
        }
    }
}

fn day() -> NaiveDate {
    "2026-11-18".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dead_lettered_after_max_deliveries_is_listed_and_replayed_to_its_summary() {
    let h = azure(FakeQueueSettings {
        max_delivery_count: 3,
        ..FakeQueueSettings::default()
    })
    .await;

    // One chunk on the observations queue.
    let body = "{\"series\":\"dlq-a\",\"ts\":\"2026-11-18T10:00:00Z\",\"value\":1.5}\n\
                {\"series\":\"dlq-a\",\"ts\":\"2026-11-18T10:01:00Z\",\"value\":2.5}\n\
                {\"series\":\"dlq-a\",\"ts\":\"2026-11-18T10:02:00Z\",\"value\":5}\n";
    let ingested = h
        .app
        .pipeline
        .ingest(BodyFormat::Ndjson, body.as_bytes())
        .await
        .unwrap();
    assert_eq!(ingested.accepted, 3);

    // An outage: the host's trigger fails three times, the broker dead-letters the message.
    let queue = h.queue(OBSERVATIONS);
    for _ in 0..3 {
        let batch = queue.receive(16).await.unwrap();
        assert_eq!(batch.len(), 1);
        let locks: Vec<_> = batch.into_iter().map(|m| m.lock_token).collect();
        queue.abandon(&locks).await.unwrap();
    }
    assert!(queue.receive(16).await.unwrap().is_empty());
    let dead = h.fake.dead_lettered(OBSERVATIONS);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].cause,
        DeadLetterCause::max_delivery_count_exceeded()
    );
    assert_eq!(dead[0].delivery_count, 3);

    // `quarantine list` shows it: the queue's function, the MessageId, the broker's reason.
    let listed = list(&h.app.quarantines, 100).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let entry = &listed[0];
    assert_eq!(
        entry.id,
        format!("dead-letter:{OBSERVATIONS}:{}", dead[0].sequence_number)
    );
    assert_eq!(entry.function, "process");
    assert_eq!(entry.source, dead[0].message_id);
    assert_eq!(
        entry.reason,
        "dead-lettered: MaxDeliveryCountExceeded: Message couldn't be consumed after maximum delivery attempts."
    );
    assert_eq!(entry.at, start());
    assert_eq!(entry.body, dead[0].body);

    // The real binary, configured by its settings alone, lists the same entry.
    let (db, servicebus) = (h._dir.path().join("cli.db"), h.fake.connection_string());
    let printed = kit::quarantine_list_cli(&[
        ("EVENTIDE_DB", db.as_os_str()),
        ("EVENTIDE_SERVICEBUS", servicebus.as_ref()),
    ]);
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert_eq!(printed[0]["id"], entry.id.as_str());
    assert_eq!(printed[0]["function"], "process");
    assert_eq!(printed[0]["reason"], entry.reason.as_str());

    // Listing again loses and changes nothing but the delivery count (one per listing).
    let again = list(&h.app.quarantines, 100).await.unwrap();
    assert_eq!(again, listed);
    let still = h.fake.dead_lettered(OBSERVATIONS);
    assert_eq!(still.len(), 1);
    assert_eq!(
        (&still[0].message_id, &still[0].body, &still[0].cause),
        (&dead[0].message_id, &dead[0].body, &dead[0].cause)
    );
    assert_eq!(still[0].delivery_count, dead[0].delivery_count + 3);
    let stats = h.fake.stats(OBSERVATIONS);
    assert_eq!(stats.dead_letter_received, 3);
    assert_eq!(stats.dead_letter_abandoned, 3, "every lock was released");
    assert_eq!(stats.dead_letter_completed, 0);

    // `quarantine replay`: back on its queue under a new MessageId, gone from the DLQ.
    let report = replay(&h.app.quarantines, &h.app.pipeline.ports, &[])
        .await
        .unwrap();
    assert_eq!(report.replayed, [entry.id.as_str()]);
    assert!(report.skipped.is_empty(), "{report:?}");
    assert!(h.fake.dead_letters(OBSERVATIONS).is_empty());
    let stored: Vec<String> = h.fake.stored_ids(OBSERVATIONS).into_keys().collect();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].starts_with(&format!("replay:{}:", entry.id)),
        "{stored:?}"
    );

    // Processed, then summarized: the day's row has the three points.
    h.process_all().await;
    h.app.pipeline.summarize_day(day()).await.unwrap();
    let series = SeriesId::parse("dlq-a").unwrap();
    let rows = h
        .app
        .pipeline
        .ports
        .sink
        .read(Some(&series), Some(day()))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].stats.count, 3);
    assert_eq!(rows[0].stats.sum, Some(9.0));
    assert_eq!((rows[0].stats.min, rows[0].stats.max), (1.5, 5.0));
    assert!(list(&h.app.quarantines, 100).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_id_takes_one_dead_letter_queue_message_and_names_unknown_ids() {
    let h = azure(FakeQueueSettings::default()).await;
    let message = |id: &str, body: &str| OutgoingMessage {
        message_id: id.into(),
        session_id: None,
        body: body.as_bytes().to_vec(),
        scheduled_at: None,
        trace_context: None,
    };
    // One message on each queue, dead-lettered explicitly by a client with its own reasons.
    h.client
        .send(OBSERVATIONS, &message("obs-poison", "{\"series\":"))
        .await
        .unwrap();
    h.client
        .send(
            SUMMARIES,
            &message(
                "summarize:dlq-b:2026-11-18:1",
                "{\"not\":\"a summarize message\"}",
            ),
        )
        .await
        .unwrap();
    let cause = |reason: &str| DeadLetterCause {
        reason: reason.into(),
        description: "set by the test".into(),
    };
    assert!(
        h.fake
            .dead_letter(OBSERVATIONS, "obs-poison", cause("PoisonObservation"))
    );
    assert!(h.fake.dead_letter(
        SUMMARIES,
        "summarize:dlq-b:2026-11-18:1",
        cause("PoisonSummary")
    ));

    let listed = list(&h.app.quarantines, 100).await.unwrap();
    let mut seen: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|e| (e.function.as_str(), e.source.as_str(), e.reason.as_str()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "process",
                "obs-poison",
                "dead-lettered: PoisonObservation: set by the test"
            ),
            (
                "summarize",
                "summarize:dlq-b:2026-11-18:1",
                "dead-lettered: PoisonSummary: set by the test"
            ),
        ]
    );
    let summary = listed.iter().find(|e| e.function == "summarize").unwrap();

    let unknown = format!("dead-letter:{OBSERVATIONS}:1");
    let report = replay(
        &h.app.quarantines,
        &h.app.pipeline.ports,
        &[summary.id.clone(), unknown.clone()],
    )
    .await
    .unwrap();
    assert_eq!(report.replayed, [summary.id.as_str()]);
    assert_eq!(
        report.skipped,
        [Skipped {
            id: unknown,
            reason: "no such entry".into()
        }]
    );
    // The summarize message is back on its queue under a new id; the other stays where it was.
    assert!(h.fake.dead_letters(SUMMARIES).is_empty());
    let requeued: Vec<String> = h.fake.stored_ids(SUMMARIES).into_keys().collect();
    assert_eq!(requeued.len(), 1);
    assert!(requeued[0].starts_with(&format!("replay:{}:", summary.id)));
    assert_eq!(h.fake.dead_letters(OBSERVATIONS), ["obs-poison"]);
    assert_eq!(h.fake.stats(OBSERVATIONS).dead_letter_completed, 0);
}

/// A clock that moves `step` on every reading: the fake reads it once per lock or settle, so
/// locks expire while a pass is still going.
struct Ticking {
    clock: ManualClock,
    step: Duration,
}

impl Clock for Ticking {
    fn now(&self) -> DateTime<Utc> {
        self.clock.advance(self.step);
        self.clock.now()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_whose_locks_expire_ends_without_repeats_or_losses() {
    // One-minute locks, 25 seconds per request: the first lock expires on the fourth call.
    let clock = Arc::new(Ticking {
        clock: ManualClock::new(start()),
        step: Duration::seconds(25),
    });
    let fake = FakeServiceBus::start(clock, &[(OBSERVATIONS, FakeQueueSettings::default())]).await;
    let client = Arc::new(
        ServiceBusClient::from_connection_string(
            &fake.connection_string(),
            ClientOptions::default(),
        )
        .unwrap(),
    );
    for n in 0..5 {
        let id = format!("poison-{n}");
        client
            .send(
                OBSERVATIONS,
                &OutgoingMessage {
                    message_id: id.clone(),
                    session_id: None,
                    body: b"{}".to_vec(),
                    scheduled_at: None,
                    trace_context: None,
                },
            )
            .await
            .unwrap();
        let cause = DeadLetterCause::max_delivery_count_exceeded();
        assert!(fake.dead_letter(OBSERVATIONS, &id, cause));
    }
    let dead_letters =
        DeadLetterQueue::new(client, OBSERVATIONS, "process").with_receive_wait(StdDuration::ZERO);

    let listed = dead_letters.list(100).await.unwrap();
    let sources: Vec<&str> = listed.iter().map(|e| e.source.as_str()).collect();
    assert_eq!(
        sources,
        ["poison-0", "poison-1", "poison-2"],
        "the pass ended when poison-0 came round again"
    );
    assert_eq!(fake.dead_letters(OBSERVATIONS).len(), 5, "nothing was lost");
    let stats = fake.stats(OBSERVATIONS);
    assert_eq!(stats.dead_letter_received, 4);
    assert_eq!(stats.dead_letter_completed, 0);
}
