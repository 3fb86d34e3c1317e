//! Telemetry over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT`), through the real exporter crate
//! (`opentelemetry-otlp`, HTTP + protobuf) of the real binary, against `FakeOtlp` — a loopback
//! STAND-IN for a collector's OTLP/HTTP receiver that decodes the protobuf it is sent.

use eventide::pipeline::metrics::{BACKLOG_QUEUES, Export, Metrics};
use eventide_testkit::fake_otlp::FakeOtlp;
use serde_json::json;

use crate::telemetry_app_insights::{binary, child_log, start_embedded_handler};

/// A Service Bus key in the child's settings that no exported payload may contain.
const SERVICE_BUS_KEY: &str = "c2VjcmV0LXNlcnZpY2UtYnVzLWtleS1odW50ZXIy";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_a_trace_and_an_error_arrive_over_otlp_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeOtlp::start().await;
    // The Functions driver, as the host starts it, with every port embedded.
    let mut command = fake.exporting_command(binary(), dir.path(), "otlp");
    command.env("OTEL_TRACES_SAMPLER", "always_on").env(
        "EVENTIDE_SERVICEBUS",
        format!(
            "Endpoint=sb://unused.example/;SharedAccessKeyName=k;SharedAccessKey={SERVICE_BUS_KEY}"
        ),
    );
    let runtime = start_embedded_handler(command);
    let client = reqwest::Client::new();
    // An ingest invocation: three observations and one without a value.
    let body = "{\"series\":\"otlp/temp\",\"ts\":\"2026-01-10T00:00:00Z\",\"value\":1}\n\
                {\"series\":\"otlp/temp\",\"ts\":\"2026-01-10T00:01:00Z\",\"value\":2}\n\
                {\"series\":\"otlp/temp\",\"ts\":\"2026-01-10T00:02:00Z\",\"value\":3}\n\
                {\"series\":\"otlp/temp\",\"ts\":\"2026-01-10T00:03:00Z\"}\n";
    let envelope = json!({
        "Data": {"req": {
            "Method": "POST",
            "Headers": {"Content-Type": ["application/x-ndjson"]},
            "Body": body,
        }},
        "Metadata": {},
    });
    let reply = client
        .post(format!("{}/ingest", runtime.base))
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    // The injected failure: a process invocation whose envelope is not JSON.
    let reply = client
        .post(format!("{}/process", runtime.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    runtime.stop();
    let log = child_log(dir.path());

    // Metrics: the workload's figures, under bounded attributes.
    assert_eq!(
        fake.metric_total("eventide.observations_accepted"),
        3.0,
        "{log}"
    );
    assert_eq!(
        fake.metric_points("eventide.observations_rejected"),
        [(vec![("class".to_string(), "value".to_string())], 1.0)]
    );
    let allowed: Vec<(&str, &str)> = Metrics::counters()
        .filter_map(|c| match c.export {
            Export::Grouped { key, value, .. } => Some((key, value)),
            _ => None,
        })
        .chain(BACKLOG_QUEUES.map(|queue| ("queue", queue)))
        .collect();
    for (key, value) in fake.metric_attributes() {
        assert!(
            allowed.contains(&(key.as_str(), value.as_str())),
            "{key}={value} exported"
        );
    }
    // A trace: the ingest request's span.
    assert!(
        fake.spans()
            .iter()
            .any(|s| s.name == "ingest" && s.parent_span_id.is_empty()),
        "{:?}",
        fake.spans()
    );
    // The error, with its context.
    let errors: Vec<_> = fake
        .logs()
        .into_iter()
        .filter(|l| l.severity_text == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}; {log}");
    assert_eq!(errors[0].body, "invocation failed");
    assert!(
        errors[0]
            .attributes
            .iter()
            .any(|(k, v)| k == "error" && v.starts_with("process: invocation envelope is not JSON")),
        "{:?}",
        errors[0]
    );
    // No secret in any payload.
    for request in fake.requests() {
        let everything = format!(
            "{}\n{}\n{}",
            request.path,
            request.headers,
            String::from_utf8_lossy(&request.body)
        );
        for secret in [SERVICE_BUS_KEY, "SharedAccessKey", "EVENTIDE_SERVICEBUS"] {
            assert!(
                !everything.contains(secret),
                "{secret} sent to {}",
                request.path
            );
        }
    }
}
