//! `FakeOtlp`: a loopback HTTP **stand-in** for an OpenTelemetry collector's OTLP/HTTP receiver,
//! for tests and reports only. It is not a collector: it accepts `POST /v1/traces`,
//! `/v1/metrics` and `/v1/logs` with protobuf bodies (`application/x-protobuf`, as the OTLP
//! specification defines them), decodes them with the `opentelemetry-proto` message types,
//! answers 200 with an empty export response, and records what arrived so tests can read back
//! what the exporter put on the wire.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Gauge, Sum, metric, number_data_point};
use prost::Message as _;
use tokio::sync::oneshot;

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Every header, `name: value` per line (to check for secrets).
    pub headers: String,
    /// The protobuf body as it arrived.
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Recorded {
    requests: Vec<Received>,
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
}

/// One exported span, as far as tests look at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
}

/// One exported log record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub severity_text: String,
    pub severity_number: i32,
    pub body: String,
    pub attributes: Vec<(String, String)>,
}

/// The running stand-in; dropped, it stops.
pub struct FakeOtlp {
    addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    _stop: oneshot::Sender<()>,
}

impl FakeOtlp {
    /// Starts the stand-in on 127.0.0.1 (a free port), on the calling tokio runtime.
    pub async fn start() -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let shared = recorded.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = shared.clone();
            async move { receive(&recorded, uri, headers, body) }
        });
        let (addr, stop) = crate::serve_on_loopback(app).await;
        Self {
            addr,
            recorded,
            _stop: stop,
        }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `binary` with no command yet, exporting to this stand-in with the runtime settings every
    /// exporting test shares (see [`crate::exporting_command`]).
    pub fn exporting_command(&self, binary: &Path, dir: &Path, name: &str) -> Command {
        let mut command = crate::exporting_command(binary, dir, name);
        command.env("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint());
        command
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.recorded.lock().unwrap().requests.clone()
    }

    /// Body bytes received so far (protobuf, uncompressed: the exporter sends it so).
    pub fn bytes(&self) -> usize {
        self.requests().iter().map(|r| r.body.len()).sum()
    }

    /// Every span exported so far.
    pub fn spans(&self) -> Vec<Span> {
        let recorded = self.recorded.lock().unwrap();
        recorded
            .traces
            .iter()
            .flat_map(|request| &request.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .map(|span| Span {
                name: span.name.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
            })
            .collect()
    }

    /// Every log record exported so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        let recorded = self.recorded.lock().unwrap();
        recorded
            .logs
            .iter()
            .flat_map(|request| &request.resource_logs)
            .flat_map(|resource| &resource.scope_logs)
            .flat_map(|scope| &scope.log_records)
            .map(|record| LogRecord {
                severity_text: record.severity_text.clone(),
                severity_number: record.severity_number,
                body: record.body.as_ref().map(text).unwrap_or_default(),
                attributes: pairs(&record.attributes),
            })
            .collect()
    }

    /// The sum of every exported data point of the counter (or the count of the histogram)
    /// `name`, with its attributes; the exporter sends deltas.
    pub fn metric_points(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        let recorded = self.recorded.lock().unwrap();
        let mut points = Vec::new();
        for metric in recorded
            .metrics
            .iter()
            .flat_map(|request| &request.resource_metrics)
            .flat_map(|resource| &resource.scope_metrics)
            .flat_map(|scope| &scope.metrics)
            .filter(|metric| metric.name == name)
        {
            match &metric.data {
                Some(
                    metric::Data::Sum(Sum { data_points, .. })
                    | metric::Data::Gauge(Gauge { data_points, .. }),
                ) => {
                    for point in data_points {
                        let value = match point.value {
                            Some(number_data_point::Value::AsInt(v)) => v as f64,
                            Some(number_data_point::Value::AsDouble(v)) => v,
                            None => 0.0,
                        };
                        points.push((pairs(&point.attributes), value));
                    }
                }
                Some(metric::Data::Histogram(histogram)) => {
                    for point in &histogram.data_points {
                        points.push((pairs(&point.attributes), point.count as f64));
                    }
                }
                _ => {}
            }
        }
        points
    }

    /// The sum of [`FakeOtlp::metric_points`]' values.
    pub fn metric_total(&self, name: &str) -> f64 {
        self.metric_points(name).iter().map(|(_, v)| v).sum()
    }

    /// The number of exported metric data points, of any metric.
    pub fn metric_points_count(&self) -> usize {
        let recorded = self.recorded.lock().unwrap();
        recorded
            .metrics
            .iter()
            .flat_map(|request| &request.resource_metrics)
            .flat_map(|resource| &resource.scope_metrics)
            .flat_map(|scope| &scope.metrics)
            .map(|metric| match &metric.data {
                Some(metric::Data::Sum(sum)) => sum.data_points.len(),
                Some(metric::Data::Gauge(gauge)) => gauge.data_points.len(),
                Some(metric::Data::Histogram(histogram)) => histogram.data_points.len(),
                _ => 0,
            })
            .sum()
    }

    /// Every attribute of every exported data point, of any metric.
    pub fn metric_attributes(&self) -> Vec<(String, String)> {
        let names: Vec<String> = {
            let recorded = self.recorded.lock().unwrap();
            recorded
                .metrics
                .iter()
                .flat_map(|request| &request.resource_metrics)
                .flat_map(|resource| &resource.scope_metrics)
                .flat_map(|scope| &scope.metrics)
                .map(|metric| metric.name.clone())
                .collect()
        };
        names
            .iter()
            .flat_map(|name| self.metric_points(name))
            .flat_map(|(attributes, _)| attributes)
            .collect()
    }
}

fn receive(recorded: &Mutex<Recorded>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let mut recorded = recorded.lock().unwrap();
    let decoded = match path.as_str() {
        "/v1/traces" => {
            ExportTraceServiceRequest::decode(&body[..]).map(|r| recorded.traces.push(r))
        }
        "/v1/metrics" => {
            ExportMetricsServiceRequest::decode(&body[..]).map(|r| recorded.metrics.push(r))
        }
        "/v1/logs" => ExportLogsServiceRequest::decode(&body[..]).map(|r| recorded.logs.push(r)),
        _ => return (StatusCode::NOT_FOUND, "not an OTLP/HTTP path").into_response(),
    };
    if let Err(e) = decoded {
        return (StatusCode::BAD_REQUEST, format!("not OTLP protobuf: {e}")).into_response();
    }
    recorded.requests.push(Received {
        path,
        headers: headers
            .iter()
            .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
            .collect(),
        body: body.to_vec(),
    });
    // An empty Export*ServiceResponse: no partial success to report.
    (
        StatusCode::OK,
        [("content-type", "application/x-protobuf")],
        Vec::<u8>::new(),
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}
