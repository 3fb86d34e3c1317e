//! The quarantine on Azure Blob Storage, against a real Azurite (`scripts/test` starts one and
//! exports `EVENTIDE_TEST_AZURITE`, a storage connection string; unset, these tests report
//! themselves skipped). The handler runs behind the Functions driver with only the quarantine
//! moved to Blob, as under `func start` with Azurite; the container is read back with the Blob
//! SDK independently of the adapter.

use std::time::Duration;

use crate::kit;
use crate::kit::handler::{Handler, batch_envelope, empty_reply, handler_with, observation};
use azure_core::http::Url;
use azure_storage_blob::BlobContainerClient;
use eventide::adapters::blob::StorageConnection;
use eventide::adapters::blob::account::sas_protocols;
use eventide::app::config::QuarantineTarget;
use eventide::drivers::quarantine::replay;
use eventide::pipeline::ports::{Clock, Quarantine, QuarantineEntry};
use futures::TryStreamExt;
use serde_json::Value;

fn azurite(test: &str) -> Option<String> {
    let connection = std::env::var("EVENTIDE_TEST_AZURITE").ok();
    if connection.is_none() {
        eprintln!("SKIPPED {test}: EVENTIDE_TEST_AZURITE is not set (scripts/test sets it)");
    }
    connection
}

/// A fresh container per test, so tests sharing one Azurite never see each other's blobs.
fn container_name(test: &str) -> String {
    format!("{test}-{:016x}", rand::random::<u64>())
}

async fn quarantine_handler(connection: &str, container: &str) -> Handler {
    handler_with(|config| {
        config.backends.quarantine = Some(QuarantineTarget::parse(connection).unwrap());
        config.backends.quarantine_container = container.to_string();
    })
    .await
}

/// Every blob in the container as (name, parsed JSON), read with the Blob SDK directly.
async fn blobs(connection: &str, container: &str) -> Vec<(String, Value)> {
    let account = StorageConnection::parse(connection).unwrap();
    let mut url: Url = account.blob_endpoint.clone();
    url.path_segments_mut().unwrap().push(container);
    url.set_query(Some(&account.key.container_sas(
        container,
        chrono::Utc::now() + chrono::Duration::hours(1),
        sas_protocols(&account.blob_endpoint),
    )));
    let client = BlobContainerClient::new(url, None, None).unwrap();
    let mut names = Vec::new();
    let mut pager = client.list_blobs(None).unwrap();
    while let Some(blob) = pager.try_next().await.unwrap() {
        names.push(blob.name.unwrap());
    }
    let mut out = Vec::new();
    for name in names {
        let body = client
            .blob_client(&name)
            .download(None)
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        out.push((name, serde_json::from_slice(&body).unwrap()));
    }
    out
}

/// Waits until the in-process workers processed `count` observation messages in all.
async fn processed(h: &Handler, count: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done = h.app.pipeline.metrics.snapshot()["messages_processed"];
        if done >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} of {count} messages processed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_message_lands_once_with_its_reason_and_bytes() {
    let Some(connection) = azurite("a_poisoned_message_lands_once_with_its_reason_and_bytes")
    else {
        return;
    };
    let container = container_name("poison");
    let h = quarantine_handler(&connection, &container).await;

    let poison = "<not json> café".to_string();
    let bodies = vec![observation("plant-1/temp", 0, 1.5), poison.clone()];
    let ids = vec!["m-good".to_string(), "m-poison".to_string()];
    let envelope = batch_envelope(&bodies, &ids);
    // Delivered, then redelivered twice (as after lost completions): one blob only.
    for _ in 0..3 {
        let (status, _, reply) = h.invoke("process", envelope.clone()).await;
        assert_eq!((status, reply), (200, empty_reply()));
    }

    let kept = blobs(&connection, &container).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (name, entry) = &kept[0];
    assert_eq!(name, "process:m-poison.json");
    assert_eq!(entry["function"], "process");
    assert_eq!(entry["source"], "m-poison");
    assert_eq!(entry["body"], poison.as_str(), "the original bytes");
    let reason = entry["reason"].as_str().unwrap();
    assert!(reason.contains("not valid JSON"), "{reason}");
    let at: chrono::DateTime<chrono::Utc> = entry["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, h.clock.now());
    assert!(
        h.embedded().quarantine.list(10).await.unwrap().is_empty(),
        "nothing went to the embedded table"
    );

    // The good message of the batch was applied.
    let rows = h.drain_and_summarize().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["series"], "plant-1/temp");
    assert_eq!(rows[0]["count"], 1);
    h.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_replay_work_on_the_blob_quarantine() {
    let Some(connection) = azurite("list_and_replay_work_on_the_blob_quarantine") else {
        return;
    };
    let container = container_name("replay");
    let h = quarantine_handler(&connection, &container).await;

    // A message that could not be processed while a dependency was down (what max deliveries
    // leaves behind), and one whose bytes are bad.
    let lost = observation("replayed", 7, 7.0);
    h.app
        .pipeline
        .ports
        .quarantine
        .put(&[QuarantineEntry {
            id: "process:lost-in-an-outage".into(),
            at: h.clock.now(),
            function: "process".into(),
            source: "lost-in-an-outage".into(),
            reason: "delivered 10 times without being completed (max 10)".into(),
            body: lost.clone().into_bytes(),
        }])
        .await
        .unwrap();
    let envelope = batch_envelope(&["{\"series\":".to_string()], &["m-cut".to_string()]);
    assert_eq!(h.invoke("process", envelope).await.0, 200);
    processed(&h, 1).await;

    // `eventide quarantine list`, the real binary, on the same settings.
    let db = h.app_db();
    let listed = kit::quarantine_list_cli(&[
        ("EVENTIDE_DB", db.as_os_str()),
        ("EVENTIDE_QUARANTINE", connection.as_ref()),
        ("EVENTIDE_QUARANTINE_CONTAINER", container.as_ref()),
    ]);
    let mut ids: Vec<&str> = listed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["process:lost-in-an-outage", "process:m-cut"]);
    assert!(listed.iter().any(|e| e["body"] == lost.as_str()));

    // The dependency is back: replay everything. The lost message is applied; the cut one is
    // quarantined again, under the replay's message id, with its reason.
    let report = replay(&h.app.quarantines, &h.app.pipeline.ports, &[])
        .await
        .unwrap();
    assert_eq!(report.replayed.len(), 2, "{report:?}");
    assert!(report.skipped.is_empty(), "{report:?}");
    processed(&h, 3).await;

    let kept = blobs(&connection, &container).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let entry = &kept[0].1;
    assert!(
        entry["source"]
            .as_str()
            .unwrap()
            .starts_with("replay:process:m-cut:"),
        "{entry}"
    );
    assert_eq!(entry["body"], "{\"series\":");
    assert!(entry["reason"].as_str().unwrap().contains("not valid JSON"));

    let rows = h.drain_and_summarize().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["series"], "replayed");
    assert_eq!(rows[0]["mean"], 7.0);
    h.server.shutdown().await;
}

/// The quarantine's token opens its own container and no other: with the account key in hand,
/// Eventide still only signs SAS tokens scoped to the quarantine container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_token_opens_its_container_and_no_other() {
    let Some(connection) = azurite("the_quarantine_token_opens_its_container_and_no_other") else {
        return;
    };
    let (own, other) = (container_name("own"), container_name("other"));
    // Both containers exist (the handlers create them at start-up).
    let _own = quarantine_handler(&connection, &own).await;
    let _other = quarantine_handler(&connection, &other).await;
    let account = StorageConnection::parse(&connection).unwrap();
    let token = account.key.container_sas(
        &own,
        chrono::Utc::now() + chrono::Duration::hours(1),
        sas_protocols(&account.blob_endpoint),
    );
    let listing = |container: &str| {
        let mut url: Url = account.blob_endpoint.clone();
        url.path_segments_mut().unwrap().push(container);
        url.set_query(Some(&token));
        async move {
            let client = BlobContainerClient::new(url, None, None).unwrap();
            let mut pager = client.list_blobs(None).unwrap();
            pager.try_next().await.map(|_| ())
        }
    };
    assert!(listing(&own).await.is_ok());
    let refused = listing(&other).await.unwrap_err();
    assert!(
        refused.to_string().contains("403") || refused.http_status().map(u16::from) == Some(403),
        "{refused}"
    );
}
