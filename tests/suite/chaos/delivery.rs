//! R1–R3: at-least-once delivery in, exactly-once effect out — messages delivered one to three
//! times in random order, eight workers racing on the same series-days, and a store that fails
//! a fifth of its calls.

use super::faults::Dependency;
use super::rig::{Peers, Rig};
use super::{Form, Workload};
use crate::kit::Lcg;

/// Every message delivered one to three times, shuffled, in random batches on `workers`
/// workers; returns (messages, deliveries).
async fn deliver_repeatedly(rig: &Rig, workers: usize, seed: u64) -> (u64, u64) {
    let messages = rig.take_observations().await;
    let mut rng = Lcg(seed);
    let mut deliveries = Vec::new();
    for message in &messages {
        for _ in 0..1 + rng.below(3) {
            deliveries.push(message.clone());
        }
    }
    rng.shuffle(&mut deliveries);
    let counts = (messages.len() as u64, deliveries.len() as u64);
    rig.deliver(deliveries, workers, seed).await;
    counts
}

async fn r1_redelivered_in_random_order(peers: Peers) {
    let form = Form::current();
    let Some(rig) = Rig::build("R1 every message 1-3x, random order", peers, |_| {}).await else {
        return;
    };
    let workload = Workload::new(form.pick(20, 200), 2, 24, 6, 1);
    rig.ingest(&workload).await;
    let (messages, deliveries) = deliver_repeatedly(&rig, 1, 11).await;
    rig.summarize_all().await;
    rig.figures(&workload.expected(), messages, deliveries, |_| false)
        .await
        .report();
}

async fn r2_eight_workers_on_the_same_days(peers: Peers) {
    let form = Form::current();
    let Some(rig) = Rig::build("R2 eight concurrent workers", peers, |_| {}).await else {
        return;
    };
    // Few series, many small messages: every worker writes the same series-days.
    let workload = Workload::new(3, 2, form.pick(96, 720), 4, 2);
    rig.ingest(&workload).await;
    let (messages, deliveries) = deliver_repeatedly(&rig, 8, 22).await;
    rig.summarize_all().await;
    let mut figures = rig
        .figures(&workload.expected(), messages, deliveries, |_| false)
        .await;
    let conflicts = rig.app.pipeline.metrics.snapshot()["merge_conflicts"];
    figures.note = format!("{conflicts} conditional writes lost a race and were redone");
    figures.report();
}

async fn r3_a_fifth_of_store_calls_fail(peers: Peers) {
    let form = Form::current();
    let Some(rig) = Rig::build("R3 20% store faults", peers, |_| {}).await else {
        return;
    };
    let workload = Workload::new(form.pick(10, 100), 2, 24, 6, 3);
    rig.ingest(&workload).await;
    // 429 (with a hint), 503, timeouts and writes whose answer is lost, in equal shares, from
    // here to the end: while merging and while summarizing.
    rig.faults.set_rate(Dependency::Store, 0.2);
    let (messages, deliveries) = deliver_repeatedly(&rig, 2, 33).await;
    rig.summarize_all().await;
    let mut figures = rig
        .figures(&workload.expected(), messages, deliveries, |_| false)
        .await;
    let retries = rig.app.pipeline.metrics.snapshot()["outage_retries"];
    figures.note = format!("{retries} batches tried again inside their delivery");
    assert!(figures.faults > 0, "no fault was injected");
    figures.report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_embedded() {
    r1_redelivered_in_random_order(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_real_peers() {
    r1_redelivered_in_random_order(Peers::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r2_embedded() {
    r2_eight_workers_on_the_same_days(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r2_real_peers() {
    r2_eight_workers_on_the_same_days(Peers::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_embedded() {
    r3_a_fifth_of_store_calls_fail(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_real_peers() {
    r3_a_fifth_of_store_calls_fail(Peers::Real).await;
}

/// A delivery that stops after writing its points and before opening their epochs — the queue
/// went down between the two, for longer than the patience — leaves points no summary would
/// read; its redelivery finds them written and opens the epochs: for a day seen for the first
/// time (no state yet) and for a day already summarized (a finished state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_stopped_between_its_points_and_its_epochs_is_finished_by_the_redelivery() {
    let rig = Rig::build("stopped delivery", Peers::Embedded, |config| {
        config.pipeline.outage_patience = chrono::Duration::zero();
    })
    .await
    .expect("embedded");
    let summarized = Workload::new(3, 1, 24, 24, 5);
    rig.ingest(&summarized).await;
    let taken = rig.take_observations().await;
    rig.deliver(taken, 1, 5).await;
    rig.summarize_all().await;

    // New points for the summarized days, and a second day seen for the first time.
    let late = Workload::new(3, 2, 36, 36, 6);
    rig.ingest(&late).await;
    let taken = rig.take_observations().await;
    rig.faults.outage(
        Dependency::Queue,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(3600),
    );
    assert!(rig.app.pipeline.process_delivery(&taken).await.is_err());
    let written = rig.app.pipeline.metrics.snapshot()["series_days_written"];
    rig.faults.recover();
    rig.app.pipeline.process_delivery(&taken).await.unwrap();
    assert_eq!(
        rig.app.pipeline.metrics.snapshot()["series_days_written"],
        written,
        "the redelivery wrote nothing: its points were in"
    );
    rig.summarize_all().await;

    let mut clean = summarized.clean.clone();
    clean.extend(late.clean.clone());
    let figures = rig
        .figures(&crate::kit::expected(&clean), 0, 0, |_| false)
        .await;
    assert_eq!(figures.compared, 6);
    assert!(figures.differences.is_empty(), "{:#?}", figures.differences);
}
