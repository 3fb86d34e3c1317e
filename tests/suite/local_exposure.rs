//! The local API has no protection but its key: it listens on loopback unless told otherwise,
//! refuses to listen anywhere else without `EVENTIDE_API_KEY`, and with a key answers 401 to
//! any request that does not carry it.

use std::sync::Arc;

use azure_core::credentials::Secret;
use eventide::app::Driver;
use eventide::drivers::server::Server;
use eventide::pipeline::clock::ManualClock;

use crate::kit::{self, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_address_than_loopback_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = kit::settings(dir.path());
    assert!(config.runtime.bind.is_loopback(), "loopback by default");
    config.runtime.bind = "0.0.0.0".parse().unwrap();
    let clock = Arc::new(ManualClock::new(kit::start()));
    let refused = Server::launch(&config, Driver::Local, clock).await;
    let error = format!("{:#}", refused.err().expect("refused without a key"));
    assert!(error.contains("EVENTIDE_API_KEY"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_every_request_must_carry_it() {
    let t = spawn_app(|config| {
        config.runtime.bind = "0.0.0.0".parse().unwrap();
        config.runtime.api_key = Some(Secret::new("correct horse"));
    })
    .await;
    let status = |key: Option<&'static str>, path: &'static str| {
        let mut request = t.client.get(format!("{}{path}", t.base));
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    for path in [
        "/api/status",
        "/api/summaries",
        "/api/openapi.json",
        "/nothing",
    ] {
        for wrong in [None, Some(""), Some("correct hors"), Some("Correct horse")] {
            let (code, body) = status(wrong, path).await;
            assert_eq!(code, 401, "{path} with {wrong:?}");
            assert!(body["error"].as_str().unwrap().contains("X-API-Key"));
        }
    }
    assert_eq!(status(Some("correct horse"), "/api/status").await.0, 200);
    assert_eq!(status(Some("correct horse"), "/nothing").await.0, 404);
    let (code, _) = kit::post_ingest(&t.client, &t.base, "application/json", "[]").await;
    assert_eq!(code, 401, "ingest too");
    t.server.shutdown().await;
}
