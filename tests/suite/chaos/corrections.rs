//! R9 and R11: every change reaches the table — a value sent again after a different one
//! (A → B → A, with summaries in between), corrections that tie on the producer's stamp, and a
//! commit held back until after the summary of its day has read the day.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventide::domain::series_day::stamp_at;
use eventide::pipeline::ports::Clock;
use eventide::pipeline::process::InboundMessage;

use super::rig::{Peers, Rig};
use super::{Form, Workload};
use crate::kit::{Lcg, expected};

async fn r9_a_b_a_and_equal_stamps(peers: Peers) {
    let form = Form::current();
    let Some(rig) = Rig::build("R9 A-B-A and equal-stamp corrections", peers, |_| {}).await else {
        return;
    };
    let series = form.pick(10, 100);
    // The same series and timestamps, other values.
    let a = Workload::new(series, 2, 24, 24, 91);
    let b = Workload::new(series, 2, 24, 24, 92);
    let mut messages = 0;
    let mut deliveries = 0;
    for (phase, workload) in [&a, &b, &a].into_iter().enumerate() {
        rig.ingest(workload).await;
        let mut taken = rig.take_observations().await;
        messages += taken.len() as u64;
        if phase == 2 {
            // The last A twice, shuffled.
            taken.extend(taken.clone());
            Lcg(9).shuffle(&mut taken);
        }
        deliveries += taken.len() as u64;
        rig.deliver(taken, 2, 99 + phase as u64).await;
        rig.summarize_all().await;
    }

    // Producers' messages that tie on the stamp: the tie goes to the greater value bits
    // (docs/semantics.md), whichever arrives first, and each replaces the summary written
    // between them.
    let mut clean = a.clean.clone();
    let stamp = stamp_at(rig.clock.now()) - 1_000;
    let ts: DateTime<Utc> = "2026-11-18T10:00:00Z".parse().unwrap();
    for k in 0..4 {
        let series = format!("tie-{k}");
        let (low, high) = (1.0 + k as f64, 2.0 + k as f64);
        let order = if k % 2 == 0 { [low, high] } else { [high, low] };
        for (i, value) in order.into_iter().enumerate() {
            let message = InboundMessage {
                message_id: Some(format!("{series}-{i}")),
                body: format!(
                    r#"{{"stamp":{stamp},"observations":[{{"series":"{series}","ts":"{}","value":{value}}}]}}"#,
                    ts.to_rfc3339()
                )
                .into_bytes(),
                enqueued_at: None,
                trace_context: None,
            };
            rig.deliver(vec![message], 1, 0).await;
            rig.summarize_all().await;
            messages += 1;
            deliveries += 1;
        }
        let winner = if low.to_bits() > high.to_bits() {
            low
        } else {
            high
        };
        clean.insert((series, ts), winner);
    }
    let mut figures = rig
        .figures(&expected(&clean), messages, deliveries, |_| false)
        .await;
    figures.note = "values A, then B, then A again; 4 stamp ties in both orders".into();
    figures.report();
}

async fn r11_a_commit_held_past_a_running_summary(peers: Peers) {
    let form = Form::current();
    let Some(rig) = Rig::build("R11 commit delayed past a running summary", peers, |_| {}).await
    else {
        return;
    };
    let series = form.pick(10, 100);
    let first = Workload::new(series, 1, 24, 24, 111);
    rig.ingest(&first).await;
    let taken = rig.take_observations().await;
    let mut messages = taken.len() as u64;
    rig.deliver(taken, 1, 1).await;
    rig.summarize_all().await;

    // Late data opens the days' next epoch, due after the settle time…
    let second = Workload::new(series, 1, 36, 36, 112);
    rig.ingest(&second).await;
    let taken = rig.take_observations().await;
    messages += taken.len() as u64;
    rig.deliver(taken, 1, 2).await;
    // …and more arrives in a batch whose commits are held back until after that summary came
    // due, ran, read the days without them and finished.
    let third = Workload::new(series, 1, 60, 60, 113);
    rig.ingest(&third).await;
    let taken = rig.take_observations().await;
    messages += taken.len() as u64;
    let held = Duration::from_secs(2);
    rig.faults.delay_commits(held);
    let pipeline = rig.app.pipeline.clone();
    let delivery = tokio::spawn(async move { pipeline.process_delivery(&taken).await });
    tokio::time::sleep(held / 4).await;
    rig.clock.advance(chrono::Duration::minutes(6));
    let tick = rig
        .app
        .pipeline
        .summarize_tick(Duration::from_secs(60))
        .await;
    assert!(!delivery.is_finished(), "the commits were not held");
    assert!(
        tick.written > 0 && tick.error.is_none(),
        "no summary ran during the commits: {tick:?}"
    );
    delivery.await.unwrap().unwrap();
    rig.faults.delay_commits(Duration::ZERO);
    // The late commits reopened their days: the next end of day writes the held points.
    rig.summarize_all().await;

    let mut clean: BTreeMap<_, _> = first.clean.clone();
    clean.extend(second.clean.clone());
    clean.extend(third.clean.clone());
    let mut figures = rig
        .figures(&expected(&clean), messages, messages, |_| false)
        .await;
    figures.note = format!(
        "{} rows written by summaries that ran while the commits were held",
        tick.written
    );
    figures.report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r9_embedded() {
    r9_a_b_a_and_equal_stamps(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r9_real_peers() {
    r9_a_b_a_and_equal_stamps(Peers::Real).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_embedded() {
    r11_a_commit_held_past_a_running_summary(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_real_peers() {
    r11_a_commit_held_past_a_running_summary(Peers::Real).await;
}
