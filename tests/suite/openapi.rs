//! The OpenAPI description (`docs/openapi.json`, served at `/api/openapi.json`) stays in step
//! with the code: every route of the local router is described, and every reply the local API
//! gives here — each status of each operation that can be provoked without a failing
//! dependency — validates against the schema the description gives for it. (schemathesis,
//! run by `scripts/check-api`, adds generated requests on top.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::kit::spawn_app;

fn document() -> Value {
    serde_json::from_str(eventide::drivers::local::openapi::DOCUMENT).unwrap()
}

/// The schema the description gives for a reply: `path`, `method`, `status`, JSON content.
fn reply_schema(doc: &Value, path: &str, method: &str, status: u16) -> Value {
    let mut response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} does not describe a {status} reply"
    );
    if let Some(reference) = response["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        response = &doc["components"]["responses"][name];
    }
    let schema = response["content"]["application/json"]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    // The components travel along, so the schema's `#/components/...` references resolve.
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    })
}

/// Asserts that a reply matches the description.
fn assert_described(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let schema = reply_schema(doc, path, method, status);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:?}\n{body}"
    );
}

/// The routes the local router declares, read from its source: `.route("PATH", ...)`.
fn router_routes() -> BTreeSet<String> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/drivers/local/http.rs");
    let text = std::fs::read_to_string(source).unwrap();
    text.split(".route(\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn every_route_of_the_local_router_is_described() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let described: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routes = router_routes();
    assert!(routes.contains("/api/ingest"), "{routes:?}");
    assert_eq!(described, routes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_matches_the_description() {
    let doc = document();
    let t = spawn_app(|config| config.runtime.max_body_bytes = 10_000).await;
    let ingest = |content_type: &'static str, body: String, key: Option<&'static str>| {
        let mut request = t
            .client
            .post(format!("{}/api/ingest", t.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let good = r#"{"series":"plant-1/temp","ts":"2026-11-19T10:00:00Z","value":21.5}"#.to_string();
    let cases = [
        ("application/json", format!("[{good}, 5]"), None, 200),
        ("application/json", "[1, {}, \"x\"]".to_string(), None, 422),
        (
            "text/csv",
            "series,ts,value\na,b,c\n".to_string(),
            None,
            422,
        ),
        ("application/json", String::new(), None, 400),
        ("application/json", "x".repeat(20_000), None, 413),
        ("text/plain", "hello".to_string(), None, 415),
        ("application/json", good.clone(), Some("k-1"), 200),
        ("application/json", format!("[{good}]"), Some("k-1"), 422),
        ("application/json", good.clone(), Some("not a key!"), 400),
    ];
    for (content_type, body, key, expected) in cases {
        let (status, reply) = ingest(content_type, body, key).await;
        assert_eq!(status, expected, "{reply}");
        assert_described(&doc, "/api/ingest", "post", status, &reply);
    }

    t.drain().await;
    t.clock.advance(chrono::Duration::minutes(6));
    assert!(t.end_of_day().await > 0);
    let get = |path: &'static str| {
        let request = t.client.get(format!("{}{path}", t.base));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, rows) = get("/api/summaries").await;
    assert_eq!(status, 200);
    assert!(!rows.as_array().unwrap().is_empty());
    assert_described(&doc, "/api/summaries", "get", status, &rows);
    for bad in ["/api/summaries?day=tomorrow", "/api/summaries?series=a%20b"] {
        let (status, reply) = get(bad).await;
        assert_eq!(status, 400);
        assert_described(&doc, "/api/summaries", "get", status, &reply);
    }
    let (status, reply) = get("/api/status").await;
    assert_eq!(status, 200);
    assert_described(&doc, "/api/status", "get", status, &reply);
    let (status, served) = get("/api/openapi.json").await;
    assert_eq!(
        (status, &served),
        (200, &doc),
        "the served document is the file"
    );
    assert_described(&doc, "/api/openapi.json", "get", status, &served);
    t.server.shutdown().await;
}
