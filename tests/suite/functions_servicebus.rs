//! The custom handler with its queues moved to Service Bus by settings alone, as in Azure: the
//! handler behind the Functions driver, `EVENTIDE_SERVICEBUS` pointing at the loopback
//! `FakeServiceBus` (a FAKE speaking the REST contract; real Service Bus cannot run here), the
//! test playing the host's triggers. Documents, sink and quarantine stay embedded.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::Secret;
use chrono::Duration as ChronoDuration;
use eventide::adapters::servicebus::{ClientOptions, ServiceBusClient, ServiceBusQueue};
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::MessageReceiver;
use eventide_testkit::fake_service_bus::{FakeQueueSettings, FakeServiceBus};
use serde_json::json;

use crate::kit::handler::{batch_envelope, empty_reply, handler_with, ingest_envelope};
use crate::kit::start;

const OBSERVATIONS: &str = "observations";
const SUMMARIES: &str = "summaries";

fn timer_envelope() -> String {
    json!({
        "Data": { "myTimer": {
            "Schedule": { "AdjustForDST": true },
            "ScheduleStatus": null,
            "IsPastDue": false
        }},
        "Metadata": {}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_on_service_bus_are_chosen_by_settings_and_left_to_the_host() {
    let fake_clock = Arc::new(ManualClock::new(start()));
    let fake = FakeServiceBus::start(
        fake_clock.clone(),
        &[
            (OBSERVATIONS, FakeQueueSettings::default()),
            (SUMMARIES, FakeQueueSettings::default()),
        ],
    )
    .await;
    let connection = fake.connection_string();
    let h = handler_with(|config| {
        config.backends.servicebus.connection = Some(Secret::new(connection.clone()));
        // Service Bus configured: the queue ports follow it.
        config.backends.observations_backend = None;
        config.backends.summaries_backend = None;
    })
    .await;

    // ingest: two series, sent to Service Bus, not to the embedded queue.
    let body: String = (0..6)
        .map(|m| {
            format!(
                "{{\"series\":\"s-{}\",\"ts\":\"2026-11-18T10:{m:02}:00Z\",\"value\":{m}}}\n",
                m % 2
            )
        })
        .collect();
    let (status, _, reply) = h
        .invoke("ingest", ingest_envelope("application/x-ndjson", &body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 200, "{reply}");
    assert_eq!(fake.len(OBSERVATIONS), 1, "both series in one chunk");
    let embedded = h.embedded().observations.depth().await.unwrap();
    assert_eq!((embedded.active, embedded.deferred), (0, 0));

    // Nothing in the handler pumps a Service Bus queue: that is the host's trigger.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.len(OBSERVATIONS), 1);

    // The host's trigger: peek-lock the batch, invoke `process`, complete on 2xx.
    let client = Arc::new(
        ServiceBusClient::from_connection_string(&connection, ClientOptions::default()).unwrap(),
    );
    let queue = ServiceBusQueue::new(client, OBSERVATIONS).with_receive_wait(Duration::ZERO);
    let messages = queue.receive(10).await.unwrap();
    assert_eq!(messages.len(), 1);
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8(m.body.clone()).unwrap())
        .collect();
    let ids: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
    let (status, _, reply) = h.invoke("process", batch_envelope(&bodies, &ids)).await;
    assert_eq!((status, reply), (200, empty_reply()));
    let locks: Vec<String> = messages.into_iter().map(|m| m.lock_token).collect();
    queue.complete(&locks).await.unwrap();
    assert_eq!(fake.len(OBSERVATIONS), 0);
    assert_eq!(
        fake.len(SUMMARIES),
        2,
        "one summarize message per series-day, scheduled on Service Bus"
    );

    // The timer, after the day's due time: summaries are received from Service Bus.
    for clock in [&h.clock, &fake_clock] {
        clock.advance(ChronoDuration::days(1));
    }
    let (status, _, reply) = h.invoke("summarize", timer_envelope()).await;
    assert_eq!((status, reply), (200, empty_reply()));
    assert_eq!(fake.len(SUMMARIES), 0);
    let rows = h.app.pipeline.ports.sink.read(None, None).await.unwrap();
    let counts: Vec<(String, u64)> = rows
        .iter()
        .map(|r| (r.series.to_string(), r.stats.count))
        .collect();
    assert_eq!(counts, [("s-0".to_string(), 3), ("s-1".to_string(), 3)]);
    h.server.shutdown().await;
}
