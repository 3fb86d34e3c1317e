//! Bad input gets a clear error and loses nothing else.

use crate::kit::spawn_app;
use chrono::Duration;
use eventide::pipeline::ports::{Clock, MessageSender, OutgoingMessage, Quarantine};
use eventide::pipeline::process::InboundMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_body_errors_have_json_bodies_and_the_right_status() {
    let t = spawn_app(|config| config.runtime.max_body_bytes = 1_000).await;

    let (status, body) = t.post("text/plain", "hello").await;
    assert_eq!(status, 415);
    assert!(
        body["error"].as_str().unwrap().contains("text/csv"),
        "{body}"
    );

    let (status, body) = t.post("application/json", "x".repeat(2_000)).await;
    assert_eq!(status, 413);
    assert!(
        body["error"].as_str().unwrap().contains("1000 bytes"),
        "{body}"
    );

    let (status, body) = t.post("application/json", r#"[{"series":"a""#).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    let (status, body) = t.post("text/csv", "series,value\na,1\n").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing column \"ts\""),
        "{body}"
    );

    let (status, body) = t.post("application/json", "").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("no observations"),
        "{body}"
    );

    let (status, body) = t
        .post(
            "application/json",
            r#"[{"series":"a","ts":"yesterday","value":1}]"#,
        )
        .await;
    assert_eq!(status, 422, "every item rejected");
    assert_eq!(body["accepted"], 0);
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("RFC 3339"),
        "{body}"
    );

    let bad_query = t
        .client
        .get(format!("{}/api/summaries?day=tomorrow", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status().as_u16(), 400);
    let missing = t
        .client
        .get(format!("{}/nothing-here", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert!(missing.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_quarantined_and_do_not_block_the_queue() {
    let t = spawn_app(|_| {}).await;
    let message = |id: &str, body: &str| OutgoingMessage {
        message_id: id.into(),
        session_id: None,
        body: body.as_bytes().to_vec(),
        scheduled_at: None,
        trace_context: None,
    };
    // Any producer may use the observations queue: one observation, an array, the wrapper.
    t.embedded()
        .observations
        .send(vec![
            message("poison-1", "<xml>not json</xml>"),
            message("single", r#"{"series":"ext","ts":"2026-11-18T10:00:00Z","value":2}"#),
            message("mixed", r#"[{"series":"ext","ts":"2026-11-18T12:00:00+01:00","value":4},{"series":"ext","ts":"2026-11-18T12:00:00Z","value":"NaN"}]"#),
            message("wrapped", r#"{"observations":[{"series":"ext","ts":"2026-11-18T12:30:00Z","value":6}]}"#),
        ])
        .await
        .unwrap();
    t.drain().await;

    let kept = t.embedded().quarantine.list(10).await.unwrap();
    let mut reasons: Vec<(String, String)> = kept
        .iter()
        .map(|e| (e.source.clone(), e.reason.clone()))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0].0, "mixed");
    assert!(
        reasons[0].1.contains("item 1") && reasons[0].1.contains("invalid type"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1].0, "poison-1");
    assert!(reasons[1].1.contains("not valid JSON"), "{reasons:?}");
    assert!(
        kept.iter().any(|e| e.body == b"<xml>not json</xml>"),
        "original bytes are kept"
    );

    // The good items went through.
    t.clock.advance(Duration::minutes(6));
    assert_eq!(t.end_of_day().await, 1);
    let rows = t.summaries().await;
    assert_eq!(rows[0]["count"], 3);
    assert_eq!(rows[0]["sum"], 12.0);

    // A redelivered poison message is not quarantined twice.
    let redelivered = InboundMessage {
        message_id: Some("poison-1".into()),
        body: b"<xml>not json</xml>".to_vec(),
        enqueued_at: None,
        trace_context: None,
    };
    let report = t.app.pipeline.process(&[redelivered]).await.unwrap();
    assert_eq!(report.quarantined, 1);
    assert_eq!(t.app.status().await.unwrap().quarantine, Some(2));
    t.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resubmits_quarantined_entries_and_requarantines_what_is_still_bad() {
    use eventide::drivers::quarantine::{Skipped, replay};
    use eventide::pipeline::ports::QuarantineEntry;

    let t = spawn_app(|_| {}).await;
    let entry = |id: &str, body: &str| QuarantineEntry {
        id: id.into(),
        at: t.clock.now(),
        function: "process".into(),
        source: id.into(),
        reason: "delivered 10 times without being completed (max 10)".into(),
        body: body.as_bytes().to_vec(),
    };
    t.embedded()
        .quarantine
        .put(&[
            entry(
                "lost-in-an-outage",
                r#"{"series":"replayed","ts":"2026-11-18T10:00:00Z","value":7}"#,
            ),
            entry(
                "still-bad",
                r#"{"series":"replayed","ts":"noon","value":1}"#,
            ),
        ])
        .await
        .unwrap();
    let report = replay(&t.app.quarantines, &t.app.pipeline.ports, &[])
        .await
        .unwrap();
    assert_eq!(report.replayed.len(), 2);
    t.drain().await;

    let kept = t.embedded().quarantine.list(10).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].reason.contains("not RFC 3339"),
        "{}",
        kept[0].reason
    );
    t.clock.advance(Duration::minutes(6));
    assert_eq!(t.end_of_day().await, 1);
    assert_eq!(t.summaries().await[0]["sum"], 7.0);

    let unknown = replay(
        &t.app.quarantines,
        &t.app.pipeline.ports,
        &["nope".to_string()],
    )
    .await
    .unwrap();
    assert_eq!(
        unknown.skipped,
        vec![Skipped {
            id: "nope".to_string(),
            reason: "no such entry".to_string()
        }]
    );
    t.server.shutdown().await;
}

/// Every row of the validation table in docs/validation.md: what a client sends, the status it
/// gets, and the class and words of the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_validation_table_holds() {
    let t = spawn_app(|_| {}).await;
    let ok = r#"{"series":"a","ts":"2026-11-19T10:00:00Z","value":1}"#;
    // (content type, body, status, class of the first rejection or "" for none, words)
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (
            "application/json",
            r#"{"series":"a","ts":"3000-01-01T00:00:00Z","value":1}"#.into(),
            422,
            "ts",
            "out of the supported range",
        ),
        (
            "application/json",
            r#"{"series":"a","ts":"2026-11-19T10:00:00","value":1}"#.into(),
            422,
            "ts",
            "RFC 3339 with an offset",
        ),
        (
            "application/json",
            r#"{"series":"a","ts":"2026-11-01T10:00:00Z","value":1}"#.into(),
            422,
            "closed_day",
            "closed at",
        ),
        (
            "application/json",
            r#"{"series":"a b","ts":"2026-11-19T10:00:00Z","value":1}"#.into(),
            422,
            "series",
            "allowed are letters",
        ),
        (
            "application/json",
            format!(
                r#"{{"series":"{}","ts":"2026-11-19T10:00:00Z","value":1}}"#,
                "a".repeat(101)
            ),
            422,
            "series",
            "1-100 characters",
        ),
        (
            "application/json",
            r#"{"series":"a","ts":"2026-11-19T10:00:00Z","value":1e400}"#.into(),
            422,
            "undecodable",
            "out of range",
        ),
        (
            "text/csv",
            "series,ts,value\na,2026-11-19T10:00:00Z,1e400\n".into(),
            422,
            "value",
            "finite",
        ),
        (
            "application/json",
            r#"{"series":"a","ts":"2026-11-19T10:00:00Z","value":"1"}"#.into(),
            422,
            "undecodable",
            "invalid type",
        ),
        (
            "application/json",
            format!(
                r#"{{"series":"a","ts":"2026-11-19T10:00:00Z","value":1,"tags":{{{}}}}}"#,
                (0..17)
                    .map(|i| format!(r#""k{i}":"v""#))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            422,
            "tags",
            "at most 16 tags",
        ),
        (
            "application/json",
            r#"{"series":"a","ts":"2026-11-19T10:00:00Z","value":1,"value":2}"#.into(),
            422,
            "undecodable",
            "duplicate field `value`",
        ),
        ("application/json", format!("\u{feff}{ok}"), 200, "", ""),
        (
            "application/x-ndjson",
            format!("{ok}\r\n{ok}\r\n"),
            200,
            "",
            "",
        ),
        (
            "text/csv",
            "series,ts,value\r\n\"a\",\"2026-11-19T10:00:00Z\",\"1\"\r\n".into(),
            200,
            "",
            "",
        ),
        (
            "text/csv",
            " Value , TS ,SERIES\n1,2026-11-19T10:00:00Z,a\n".into(),
            200,
            "",
            "",
        ),
        (
            "text/csv",
            "series,ts,value,colour\n".into(),
            400,
            "",
            "unknown column",
        ),
        (
            "application/json",
            r#"{"series":"a","ts":"2026-11-19T10:00:00Z","value":1,"source":"é"#.into(),
            400,
            "",
            "not valid JSON",
        ),
    ];
    for (content_type, body, status, class, words) in cases {
        let (got, reply) = t.post(content_type, body.clone()).await;
        assert_eq!(got, status, "{body:?}: {reply}");
        let text = match status {
            200 => {
                assert_eq!(reply["rejected_count"], 0, "{body:?}: {reply}");
                continue;
            }
            400 => reply["error"].as_str().unwrap().to_string(),
            _ => {
                assert_eq!(reply["rejected"][0]["class"], class, "{body:?}: {reply}");
                reply["rejected"][0]["reason"].as_str().unwrap().to_string()
            }
        };
        assert!(text.contains(words), "{body:?}: {text:?} lacks {words:?}");
    }
    let (got, reply) = t.post("application/json", vec![b'[', 0xff, b']']).await;
    assert_eq!(got, 400);
    assert!(reply["error"].as_str().unwrap().contains("UTF-8"));
    t.server.shutdown().await;
}
