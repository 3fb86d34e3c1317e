//! R10: data later than the lateness policy, and later than the store's retention, gets a clear
//! refusal ("day … closed") at ingest and in quarantine from the queue; the day's row stays as
//! it was.

use chrono::Duration;
use eventide::domain::parse::BodyFormat;
use eventide::pipeline::ports::QuarantineEntry;
use eventide::pipeline::process::InboundMessage;

use super::rig::{Peers, Rig};
use super::{Form, Workload};

/// Sends late observations for the first day through ingest and as a producer's message on the
/// queue; returns (observations refused at ingest, messages delivered).
async fn send_late(rig: &Rig, late: &Workload, round: usize) -> (usize, u64) {
    let mut refused = 0;
    for body in &late.requests {
        let report = rig
            .app
            .pipeline
            .ingest(BodyFormat::Ndjson, body.as_bytes())
            .await
            .unwrap();
        assert_eq!(report.accepted, 0, "late data was accepted");
        for rejection in &report.rejected {
            assert!(rejection.reason.contains("closed"), "{}", rejection.reason);
        }
        refused += report.rejected.len();
    }
    // Another producer's message, straight onto the queue.
    let first = late.requests[0].lines().next().unwrap();
    let message = InboundMessage {
        message_id: Some(format!("late-producer-{round}")),
        body: format!("[{first}]").into_bytes(),
        enqueued_at: None,
        trace_context: None,
    };
    rig.deliver(vec![message], 1, 0).await;
    (refused, 1)
}

async fn r10_late_data(peers: Peers) {
    let form = Form::current();
    let Some(rig) = Rig::build("R10 late data beyond lateness and retention", peers, |_| {}).await
    else {
        return;
    };
    let series = form.pick(10, 100);
    let workload = Workload::new(series, 2, 24, 24, 10);
    rig.ingest(&workload).await;
    let taken = rig.take_observations().await;
    let mut messages = taken.len() as u64;
    let mut deliveries = messages;
    rig.deliver(taken, 1, 10).await;
    rig.summarize_all().await;

    // Other values for the first day, sent once it is closed (3 days of lateness in the test
    // settings) and again once it is past the store's retention (4 days) and purged.
    let late = Workload::new(series, 1, 24, 24, 1010);
    let mut refused = 0;
    for (round, advance) in [Duration::days(2), Duration::days(5)]
        .into_iter()
        .enumerate()
    {
        rig.clock.advance(advance);
        // The end of day: summaries, reconcile, and the embedded store's purge.
        let day_end = rig.app.end_of_day(std::time::Duration::from_secs(60)).await;
        assert_eq!(day_end.error, None, "{day_end:?}");
        let (at_ingest, sent) = send_late(&rig, &late, round).await;
        refused += at_ingest;
        messages += sent;
        deliveries += sent;
    }
    rig.summarize_all().await;

    let is_late =
        |entry: &QuarantineEntry| entry.function == "process" && entry.reason.contains("closed");
    let quarantined_late = rig
        .quarantined()
        .await
        .iter()
        .filter(|e| is_late(e))
        .count();
    assert_eq!(quarantined_late, 2, "each late message is quarantined once");
    let mut figures = rig
        .figures(&workload.expected(), messages, deliveries, is_late)
        .await;
    figures.note = format!(
        "{refused} late observations refused at ingest and {quarantined_late} late messages \
         quarantined, all \"closed\"; the rows are as they were"
    );
    figures.report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_embedded() {
    r10_late_data(Peers::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r10_real_peers() {
    r10_late_data(Peers::Real).await;
}
