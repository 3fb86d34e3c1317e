//! The whole flow through the HTTP ingest of the local runtime, against statistics computed
//! independently from the clean data.

use crate::kit::{assert_rows_match, dataset, expected, spawn_app};
use chrono::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_to_daily_summary_matches_independent_statistics() {
    let t = spawn_app(|_| {}).await;
    let data = dataset();
    let mut rejected = 0;
    for (content_type, body) in &data.requests {
        let (status, reply) = t.post(content_type, body.clone()).await;
        assert_eq!(status, 200, "{reply}");
        for item in reply["rejected"].as_array().unwrap() {
            assert!(
                item["index"].is_u64() && !item["reason"].as_str().unwrap().is_empty(),
                "{item}"
            );
        }
        rejected += reply["rejected"].as_array().unwrap().len();
        // Later requests carry later stamps: corrections win.
        t.clock.advance(Duration::seconds(1));
    }
    assert_eq!(rejected, data.bad_rows);
    t.drain().await;

    // Nothing is due before the settle time has passed.
    assert_eq!(t.end_of_day().await, 0);
    t.clock.advance(Duration::minutes(6));
    let written = t.end_of_day().await;
    let want = expected(&data.clean);
    assert_eq!(written, want.len());
    assert_rows_match(&t.summaries().await, &want);

    let status = t.app.status().await.unwrap();
    assert_eq!(status.counters["summaries_scheduled"], want.len() as u64);
    assert_eq!(
        status.quarantine,
        Some(0),
        "ingest rejections are answered, not quarantined"
    );
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_data_opens_the_next_epoch_and_replaces_the_row() {
    let t = spawn_app(|_| {}).await;
    let mut data = dataset();
    for (content_type, body) in &data.requests {
        assert_eq!(t.post(content_type, body.clone()).await.0, 200);
        t.clock.advance(Duration::seconds(1));
    }
    t.drain().await;
    t.clock.advance(Duration::minutes(6));
    t.end_of_day().await;
    let before = t.summaries().await;

    // A correction and a new point for one series-day, after it was summarized.
    let series = "plant-2/temp";
    let body = format!(
        r#"{{"observations":[{{"series":"{series}","ts":"2026-11-18T06:00:00Z","value":-5}},{{"series":"{series}","ts":"2026-11-18T06:07:00+00:00","value":3.25}}]}}"#
    );
    assert_eq!(t.post("application/json", body).await.0, 200);
    t.drain().await;
    let ts = |s: &str| s.parse().unwrap();
    data.clean
        .insert((series.into(), ts("2026-11-18T06:00:00Z")), -5.0);
    data.clean
        .insert((series.into(), ts("2026-11-18T06:07:00Z")), 3.25);

    // The new epoch is due after the settle time, not before.
    assert_eq!(t.end_of_day().await, 0);
    t.clock.advance(Duration::minutes(6));
    assert_eq!(t.end_of_day().await, 1);

    let after = t.summaries().await;
    assert_rows_match(&after, &expected(&data.clean));
    for (old, new) in before.iter().zip(&after) {
        let changed = new["series"] == series && new["day"] == "2026-11-18";
        // Revisions are 128-bit, shown as decimal strings.
        let revision =
            |row: &serde_json::Value| row["revision"].as_str().unwrap().parse::<u128>().unwrap();
        let (r0, r1) = (revision(old), revision(new));
        if changed {
            assert!(r1 > r0, "revision must grow: {r0} -> {r1}");
        } else {
            assert_eq!(old, new, "untouched rows stay as they were");
        }
    }
    let status = t.app.status().await.unwrap();
    assert_eq!(
        status.counters["summaries_scheduled"],
        before.len() as u64 + 1
    );
    t.server.shutdown().await;
}
