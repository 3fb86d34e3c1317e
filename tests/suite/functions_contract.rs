//! The custom-handler contract, driven exactly as the Functions host drives it: the payloads in
//! `tests/fixtures/functions-host/` replayed against the running router with their exact replies
//! asserted, plus Eventide-shaped variants in the same encodings. (The Functions host itself
//! cannot run on these machines; these payloads follow its serializer.)

use std::path::PathBuf;

use crate::kit::handler::{
    batch_envelope, empty_reply, handler, handler_with, ingest_envelope, observation,
};
use eventide::pipeline::ports::Quarantine;
use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/functions-host")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_every_fixture_with_the_exact_reply() {
    let h = handler().await;

    // HTTP ingest: the fixture's body has no series (its series is a route value of another
    // app), so its one item is rejected with the reason, in the `res` object.
    let (status, content_type, reply) = h
        .invoke("ingest", fixture("http-trigger-request.json"))
        .await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(
        reply,
        json!({
            "Outputs": { "res": {
                "statusCode": 422,
                "headers": { "Content-Type": "application/json" },
                "body": r#"{"accepted":0,"rejected":[{"index":0,"class":"series","reason":"series is missing"}],"messages":0,"rejected_count":1,"rejected_by_class":{"series":1}}"#
            }},
            "Logs": [],
            "ReturnValue": null
        })
    );

    // The GET fixture is for a function this app does not have.
    let (status, _, reply) = h
        .invoke("health", fixture("http-trigger-get-request.json"))
        .await;
    assert_eq!((status, reply), (404, json!({"error": "no such function"})));

    // Service Bus, single message and batch: foreign bodies are quarantined with the reason and
    // the invocation succeeds, so the host completes instead of redelivering ten times.
    let (status, _, reply) = h
        .invoke("process", fixture("servicebus-trigger-request.json"))
        .await;
    assert_eq!((status, reply), (200, empty_reply()));
    let (status, _, reply) = h
        .invoke("process", fixture("servicebus-batch-trigger-request.json"))
        .await;
    assert_eq!((status, reply), (200, empty_reply()));
    assert_eq!(
        h.quarantine_reasons().await,
        vec!["item 0: series is missing"; 3]
    );

    let (status, _, reply) = h
        .invoke("summarize", fixture("timer-trigger-request.json"))
        .await;
    assert_eq!((status, reply), (200, empty_reply()));
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_every_encoding_apply_good_messages_and_quarantine_bad_ones() {
    let h = handler().await;
    let bodies: Vec<String> = (0..4)
        .map(|i| observation("plant-1/temp", i, f64::from(i)))
        .collect();
    let ids: Vec<String> = (0..4).map(|i| format!("m-{i}")).collect();

    // Double-encoded, as the host sends it.
    let envelope = batch_envelope(&bodies[..2], &ids[..2]);
    let wrapped: Value = serde_json::from_str(&envelope).unwrap();
    let twice = json!({"Data": {"messages": serde_json::to_string(&wrapped["Data"]["messages"]).unwrap()}, "Metadata": wrapped["Metadata"]});
    assert_eq!(h.invoke("process", twice.to_string()).await.0, 200);

    // Single-encoded, and one non-JSON message among good ones.
    let mixed = vec![
        bodies[2].clone(),
        "<not json>".to_string(),
        bodies[3].clone(),
    ];
    let mixed_ids = vec!["m-2".to_string(), "m-poison".to_string(), "m-3".to_string()];
    let (status, _, reply) = h
        .invoke("process", batch_envelope(&mixed, &mixed_ids))
        .await;
    assert_eq!((status, reply), (200, empty_reply()));
    let reasons = h.quarantine_reasons().await;
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");

    // An empty batch.
    let (status, _, reply) = h.invoke("process", batch_envelope(&[], &[])).await;
    assert_eq!((status, reply), (200, empty_reply()));

    // A single message, single-encoded (no extra quotes).
    let single = json!({"Data": {"message": observation("plant-1/temp", 4, 4.0)}, "Metadata": {}});
    assert_eq!(h.invoke("process", single.to_string()).await.0, 200);

    let rows = h.drain_and_summarize().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["count"].as_u64(), rows[0]["sum"].as_f64()),
        (Some(5), Some(10.0))
    );
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_message_batch_is_applied_in_one_invocation() {
    let h = handler().await;
    let bodies: Vec<String> = (0..1000)
        .map(|i| observation(&format!("s-{:03}", i % 100), (i / 100) as u32, f64::from(i)))
        .collect();
    let ids: Vec<String> = (0..1000).map(|i| format!("m-{i}")).collect();
    let (status, _, reply) = h.invoke("process", batch_envelope(&bodies, &ids)).await;
    assert_eq!((status, reply), (200, empty_reply()));
    let rows = h.drain_and_summarize().await;
    assert_eq!(rows.len(), 100);
    assert!(rows.iter().all(|r| r["count"] == 10));
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_message_id_overwritten_by_a_body_field_is_not_used_for_identity() {
    let h = handler().await;
    // Two different poison messages whose bodies both carry "MessageId": the host copies that
    // field over Metadata.MessageId for both. Trusting it would merge their quarantine entries.
    for body in [
        r#"{"MessageId":"same","reading":1}"#,
        r#"{"MessageId":"same","reading":2}"#,
    ] {
        let envelope = json!({
            "Data": { "message": serde_json::to_string(body).unwrap() },
            "Metadata": { "MessageId": "\"same\"", "DeliveryCount": "1" }
        });
        assert_eq!(h.invoke("process", envelope.to_string()).await.0, 200);
    }
    let kept = h.embedded().quarantine.list(10).await.unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().all(|e| e.source.starts_with("body-sha256:")));
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_through_the_contract_reaches_the_summary_table() {
    let h = handler().await;
    let body = format!(
        "[{},{}]",
        observation("line-7", 0, 2.5),
        observation("line-7", 1, 3.5)
    );
    let (status, _, reply) = h
        .invoke("ingest", ingest_envelope("application/json", &body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 200);
    let report: Value =
        serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(report["accepted"], 2);
    assert_eq!(reply["Logs"], json!([]));

    // The embedded observations queue is pumped in-process even behind the contract.
    for _ in 0..500 {
        if h.app.status().await.unwrap().counters["points_merged"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let rows = h.drain_and_summarize().await;
    assert_eq!(rows[0]["mean"], 3.0);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_body_over_the_limit_is_answered_413_in_the_http_output() {
    let h = handler_with(|config| config.runtime.max_body_bytes = 100).await;
    let body = format!("[{}]", vec![observation("big", 0, 1.0); 3].join(","));
    assert!(body.len() > 100);
    let (status, _, reply) = h
        .invoke("ingest", ingest_envelope("application/json", &body))
        .await;
    assert_eq!(status, 200, "the invocation itself succeeds");
    assert_eq!(reply["Outputs"]["res"]["statusCode"], 413);
    let error: Value =
        serde_json::from_str(reply["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(error["error"], "body exceeds the limit of 100 bytes");
    h.server.shutdown().await;
}
