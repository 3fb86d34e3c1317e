//! R6–R7: outages cost time, not data — the sink down during summarize for longer than a
//! batch's patience, and the store, the queue and the sink each down in turn while the local
//! runtime (its workers and its timer) is under load.

use std::sync::Arc;
use std::time::Duration;

use eventide::pipeline::clock::ManualClock;

use super::faults::Dependency;
use super::rig::{Peers, Rig};
use super::{Form, Workload};

fn chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap()
}

async fn r6_sink_down_during_summarize(peers: Peers) {
    let form = Form::current();
    // The full form is the stated case: 5 minutes down against the default 2-minute patience.
    // The short one keeps the proportions in seconds.
    let (outage, patience) = form.pick(
        (Duration::from_secs(5), Duration::from_secs(2)),
        (Duration::from_secs(300), Duration::from_secs(120)),
    );
    let Some(rig) = Rig::build("R6 sink down during summarize", peers, |config| {
        config.pipeline.outage_patience = chrono(patience);
    })
    .await
    else {
        return;
    };
    let workload = Workload::new(form.pick(20, 200), 2, 24, 24, 6);
    rig.ingest(&workload).await;
    let messages = rig.take_observations().await;
    rig.deliver(messages, 1, 66).await;

    rig.clock.advance(chrono::Duration::minutes(6));
    rig.faults.outage(Dependency::Sink, Duration::ZERO, outage);
    // The timer: a tick a second, each within the default 4-minute budget, until done.
    let mut ticks = 0;
    loop {
        ticks += 1;
        let tick = rig
            .app
            .pipeline
            .summarize_tick(Duration::from_secs(240))
            .await;
        if tick.received == 0 && tick.error.is_none() {
            break;
        }
        assert!(ticks < 1_000, "summarize never drained its queue");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let counters = rig.app.pipeline.metrics.snapshot();
    let mut figures = rig
        .figures(
            &workload.expected(),
            counters["summaries_scheduled"],
            rig.summaries.delivered(),
            |_| false,
        )
        .await;
    figures.note = format!(
        "summarize messages; sink down {} s against a patience of {} s: {ticks} ticks, {} tries \
         inside a batch",
        outage.as_secs(),
        patience.as_secs(),
        counters["outage_retries"]
    );
    figures.report();
}

async fn r7_outages_in_turn_under_load(peers: Peers) {
    let form = Form::current();
    let outage = form.pick(Duration::from_secs(3), Duration::from_secs(60));
    let Some(rig) = Rig::build(
        "R7 store, queue, sink down in turn under load",
        peers,
        |config| {
            config.runtime.summarize_schedule = Some("* * * * * *".into());
            config.pipeline.grace = chrono::Duration::zero();
            config.pipeline.settle = chrono::Duration::zero();
            // A lost settlement (the queue down when a batch completes) comes back this soon.
            config.embedded.lock_duration = chrono::Duration::seconds(10);
        },
    )
    .await
    else {
        return;
    };
    let server = rig.serve().await;
    // The runtime's clock follows the wall clock, so its timer and locks run in real time.
    let follower = tokio::spawn(follow_the_wall_clock(rig.clock.clone()));

    // One outage after another, each `outage` long, with load before, during and after.
    rig.faults.outage(Dependency::Store, outage / 2, outage);
    rig.faults.outage(Dependency::Queue, outage * 2, outage);
    rig.faults.outage(Dependency::Sink, outage * 7 / 2, outage);
    let span = outage * 5;
    let workload = Workload::new(form.pick(20, 100), 2, form.pick(24, 96), 8, 7);
    let began = tokio::time::Instant::now();
    let pace = span / workload.requests.len() as u32;
    for (i, body) in workload.requests.iter().enumerate() {
        tokio::time::sleep_until(began + pace * i as u32).await;
        rig.ingest_one(body).await;
    }
    tokio::time::sleep_until(began + span).await;

    // Then until everything is merged and summarized.
    let waited = tokio::time::Instant::now();
    loop {
        let observations = rig.embedded.observations.depth().await.unwrap();
        let summaries = rig.embedded.summaries.depth().await.unwrap();
        if observations.active + observations.deferred + summaries.active + summaries.deferred == 0
        {
            let tick = server.summarize_now().await;
            if tick.received == 0 && tick.error.is_none() {
                break;
            }
        }
        assert!(
            waited.elapsed() < Duration::from_secs(180),
            "the runtime did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    follower.abort();
    server.shutdown().await;
    let counters = rig.app.pipeline.metrics.snapshot();
    let mut figures = rig
        .figures(
            &workload.expected(),
            counters["chunks_sent"],
            rig.observations.delivered(),
            |_| false,
        )
        .await;
    figures.note = format!(
        "each down {} s; {} tries inside a batch, {} steps stopped and retried later",
        outage.as_secs(),
        counters["outage_retries"],
        counters["transient_failures"]
    );
    figures.report();
}

/// Advances `clock` with the wall clock, a tenth of a second at a time.
async fn follow_the_wall_clock(clock: Arc<ManualClock>) {
    let step = Duration::from_millis(100);
    loop {
        tokio::time::sleep(step).await;
        clock.advance(chrono(step));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_embedded() {
    r6_sink_down_during_summarize(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_real_peers() {
    r6_sink_down_during_summarize(Peers::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r7_embedded() {
    r7_outages_in_turn_under_load(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r7_real_peers() {
    r7_outages_in_turn_under_load(Peers::Real).await;
}
