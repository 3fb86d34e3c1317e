//! The custom-handler harness: the runtime behind the Functions driver on a temporary file and
//! a manual clock, invoked over HTTP exactly as the host invokes it.

use chrono::Duration;
use eventide::app::{Config, Driver};
use eventide::pipeline::ports::Quarantine;
use serde_json::{Value, json};

use super::{TestApp, launch};

/// The runtime behind the Functions driver: the same harness as the local runtime's.
pub type Handler = TestApp;

/// Starts the runtime behind the Functions driver; `configure` adjusts its settings first.
///
/// Every port is chosen explicitly, as the Functions driver requires: embedded, unless
/// `configure` points one elsewhere.
pub async fn handler_with(configure: impl FnOnce(&mut Config)) -> Handler {
    let dir = tempfile::tempdir().unwrap();
    let mut config = super::settings(dir.path());
    eventide_testkit::every_port_embedded(&mut config);
    configure(&mut config);
    launch(dir, &config, Driver::Functions).await
}

pub async fn handler() -> Handler {
    handler_with(|_| {}).await
}

impl TestApp {
    /// The runtime's SQLite file, for a second process on the same settings.
    pub fn app_db(&self) -> std::path::PathBuf {
        self._dir.path().join("eventide.db")
    }

    /// POSTs an envelope as the host does; returns the status, content type and parsed body.
    pub async fn invoke(&self, function: &str, envelope: String) -> (u16, String, Value) {
        let response = self
            .client
            .post(format!("{}/{function}", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .body(envelope)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let text = response.text().await.unwrap();
        assert!(
            !text.is_empty() && text != "null",
            "never an empty or null body"
        );
        (status, content_type, serde_json::from_str(&text).unwrap())
    }

    pub async fn quarantine_reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self
            .embedded()
            .quarantine
            .list(10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.reason)
            .collect();
        reasons.sort();
        reasons
    }

    pub async fn drain_and_summarize(&self) -> Vec<Value> {
        self.clock.advance(Duration::minutes(6));
        loop {
            let tick = self.server.summarize_now().await;
            assert_eq!(tick.error, None);
            if tick.received == 0 {
                break;
            }
        }
        super::sink_rows(self.app.pipeline.ports.sink.as_ref()).await
    }
}

pub fn empty_reply() -> Value {
    json!({"Outputs": {}, "Logs": [], "ReturnValue": null})
}

/// A batch envelope in the host's encoding: `Data.messages` is a string holding a JSON array of
/// the raw bodies, and the `…Array` metadata are strings holding JSON arrays.
pub fn batch_envelope(bodies: &[String], ids: &[String]) -> String {
    json!({
        "Data": { "messages": serde_json::to_string(bodies).unwrap() },
        "Metadata": {
            "MessageIdArray": serde_json::to_string(ids).unwrap(),
            "DeliveryCountArray": serde_json::to_string(&vec![1; bodies.len()]).unwrap(),
            "EnqueuedTimeUtcArray": serde_json::to_string(&vec!["2026-11-20T11:59:00.5"; bodies.len()]).unwrap(),
            "sys": { "MethodName": "process", "UtcNow": "2026-11-20T12:00:00Z", "RandGuid": "00000000-0000-4000-8000-000000000000" }
        }
    })
    .to_string()
}

/// An HTTP-trigger envelope carrying `body` with the given content type.
pub fn ingest_envelope(content_type: &str, body: &str) -> String {
    json!({
        "Data": { "req": {
            "Url": "https://example.invalid/api/ingest", "Method": "POST", "Query": {},
            "Headers": { "Content-Type": [content_type] }, "Params": {}, "Identities": [],
            "Body": body
        }},
        "Metadata": {}
    })
    .to_string()
}

pub fn observation(series: &str, minute: u32, value: f64) -> String {
    format!(r#"{{"series":"{series}","ts":"2026-11-18T10:{minute:02}:00Z","value":{value}}}"#)
}
