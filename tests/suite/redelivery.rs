//! At-least-once in, exactly-once effect out: the dataset with every observation message
//! delivered twice and in shuffled order gives the identical table, with exactly one summarize
//! message per series, day and epoch.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use eventide::app::{App, Driver};
use eventide::domain::parse::BodyFormat;
use eventide::pipeline::Pipeline;
use eventide::pipeline::clock::ManualClock;
use eventide::pipeline::ports::MessageReceiver;
use eventide::pipeline::process::InboundMessage;
use serde_json::Value;

use crate::kit::{Lcg, assert_rows_match, dataset, expected, start, without_computed_at};

#[derive(Clone, Copy)]
enum Delivery {
    /// Each message once, in order, by one worker.
    Once,
    /// Each message twice, shuffled, by two concurrent workers.
    TwiceShuffledConcurrent,
    /// Each message twice, shuffled, with duplicate detection off: the day's state alone must
    /// keep the summarize messages unique.
    TwiceShuffledNoDedup,
}

struct Outcome {
    rows: Vec<Value>,
    summarize_ids: HashMap<String, usize>,
}

async fn process_all(pipeline: &Pipeline, messages: Vec<InboundMessage>, rng: &mut Lcg) {
    let mut rest = &messages[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(40)).min(rest.len());
        pipeline.process(&rest[..n]).await.unwrap();
        rest = &rest[n..];
    }
}

async fn run(delivery: Delivery) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mut config = eventide_testkit::settings(dir.path().join("eventide.db"));
    if let Delivery::TwiceShuffledNoDedup = delivery {
        config.embedded.dedup_window = Duration::zero();
    }
    let clock = Arc::new(ManualClock::new(start()));
    let app = App::build(&config, Driver::Local, clock.clone())
        .await
        .unwrap();
    let embedded = app.embedded.clone().expect("every port is embedded");
    let pipeline = app.pipeline;

    for (content_type, body) in dataset().requests {
        let format = BodyFormat::from_content_type(content_type).unwrap();
        pipeline.ingest(format, body.as_bytes()).await.unwrap();
        clock.advance(Duration::seconds(1));
    }
    let received = embedded.observations.receive(100_000).await.unwrap();
    let mut messages: Vec<InboundMessage> = received.iter().map(InboundMessage::from).collect();
    let mut rng = Lcg(99);
    match delivery {
        Delivery::Once => process_all(&pipeline, messages, &mut rng).await,
        Delivery::TwiceShuffledConcurrent | Delivery::TwiceShuffledNoDedup => {
            messages.extend(messages.clone());
            rng.shuffle(&mut messages);
            if let Delivery::TwiceShuffledConcurrent = delivery {
                let second = messages.split_off(messages.len() / 2);
                let (p1, p2) = (pipeline.clone(), pipeline.clone());
                let a = tokio::spawn(async move { process_all(&p1, messages, &mut Lcg(1)).await });
                let b = tokio::spawn(async move { process_all(&p2, second, &mut Lcg(2)).await });
                a.await.unwrap();
                b.await.unwrap();
            } else {
                process_all(&pipeline, messages, &mut rng).await;
            }
        }
    }

    // Count what reached the summaries queue, on the receive side, then let summarize run.
    clock.advance(Duration::minutes(6));
    let due = embedded.summaries.receive(100_000).await.unwrap();
    let mut summarize_ids = HashMap::new();
    for m in &due {
        *summarize_ids.entry(m.message_id.clone()).or_insert(0) += 1;
    }
    let locks: Vec<String> = due.into_iter().map(|m| m.lock_token).collect();
    embedded.summaries.abandon(&locks).await.unwrap();
    loop {
        let tick = pipeline
            .summarize_tick(std::time::Duration::from_secs(30))
            .await;
        assert_eq!(tick.error, None);
        if tick.received == 0 {
            break;
        }
    }
    let rows = pipeline.ports.sink.read(None, None).await.unwrap();
    Outcome {
        rows: rows
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect(),
        summarize_ids,
    }
}

fn assert_one_message_per_series_day(outcome: &Outcome, series_days: usize) {
    assert_eq!(outcome.summarize_ids.len(), series_days);
    for (id, count) in &outcome.summarize_ids {
        assert_eq!(*count, 1, "{id} reached the queue {count} times");
        assert!(id.starts_with("summarize:") && id.ends_with(":1"), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_shuffled_delivery_gives_the_identical_table() {
    let want = expected(&dataset().clean);
    let once = run(Delivery::Once).await;
    assert_rows_match(&once.rows, &want);
    assert_one_message_per_series_day(&once, want.len());

    for delivery in [
        Delivery::TwiceShuffledConcurrent,
        Delivery::TwiceShuffledNoDedup,
    ] {
        let twice = run(delivery).await;
        assert_one_message_per_series_day(&twice, want.len());
        assert_eq!(
            without_computed_at(&twice.rows),
            without_computed_at(&once.rows)
        );
    }
}
