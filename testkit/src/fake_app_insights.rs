//! `FakeAppInsights`: a loopback HTTP **stand-in** for the Application Insights endpoints, for
//! tests and reports only. It is not Azure Monitor: it accepts what the documented ingestion
//! contract sends and records it, so tests can read back what an exporter put on the wire.
//!
//! - ingestion: `POST {IngestionEndpoint}/v2/track` or `/v2.1/track`, a JSON array of envelopes
//!   (`name`, `time`, `iKey`, `tags`, `data.baseType`, `data.baseData`), optionally gzip'd
//!   (`Content-Encoding: gzip`); answered `200 {"itemsReceived":n,"itemsAccepted":n,"errors":[]}`;
//! - Live Metrics (QuickPulse): `POST {LiveEndpoint}/QuickPulseService.svc/ping` and `…/post`
//!   (gzip'd JSON); a ping is answered `x-ms-qps-subscribed: true`, as when a portal session
//!   watches, so the exporter goes on to post samples.
//!
//! The bytes recorded per request are those on the wire (after compression): what Azure
//! Monitor would ingest and bill is the decompressed size, and both are kept.
//!
//! It serves HTTPS, because the exporter rewrites every endpoint of a connection string to
//! `https://`: with the test certificate in `testkit/tls/` (a CA made for this stand-in only, and
//! a leaf for 127.0.0.1 it signed). A child process trusts it through `SSL_CERT_FILE`
//! ([`FakeAppInsights::CA_FILE`]), which the TLS stack's native root store honours.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::oneshot;

/// The instrumentation key of [`FakeAppInsights::local_command`]'s connection string.
pub const INSTRUMENTATION_KEY: &str = "00000000-test-ikey-0000-000000000000";

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query, as sent.
    pub uri: String,
    /// Every header value, `name: value` per line (to check for secrets).
    pub headers: String,
    /// Body bytes on the wire.
    pub wire_bytes: usize,
    /// The body after decompression.
    pub body: String,
}

#[derive(Default)]
struct Recorded {
    track: Vec<Received>,
    live: Vec<Received>,
}

/// The envelopes of one type (`data.baseType`) the stand-in ingested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeTotals {
    pub items: usize,
    /// Their JSON, serialized one envelope at a time (the body's brackets and commas aside).
    pub json_bytes: usize,
}

/// The running stand-in; dropped, it stops.
pub struct FakeAppInsights {
    addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    _stop: oneshot::Sender<()>,
}

impl FakeAppInsights {
    /// Starts the stand-in on 127.0.0.1 (a free port), on the calling tokio runtime.
    pub async fn start() -> Self {
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let shared = recorded.clone();
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = shared.clone();
            async move { receive(&recorded, uri, headers, body) }
        });
        let listener = TlsListener {
            tcp: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: tls_acceptor(),
        };
        let addr = listener.tcp.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            recorded,
            _stop: stop,
        }
    }

    /// The CA certificate that signed the stand-in's: a child process trusts it with
    /// `SSL_CERT_FILE` set to this path.
    pub const CA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tls/ca.pem");

    /// A connection string whose ingestion and live endpoints are this stand-in.
    pub fn connection_string(&self, instrumentation_key: &str) -> String {
        format!(
            "InstrumentationKey={instrumentation_key};IngestionEndpoint=https://{addr}/;LiveEndpoint=https://{addr}/",
            addr = self.addr
        )
    }

    /// `binary` with no command yet, exporting to this stand-in with the runtime settings every
    /// exporting test shares (see [`crate::exporting_command`]); the tests and the
    /// `telemetry_bytes` report start their runtimes from this one command.
    pub fn exporting_command(&self, binary: &Path, dir: &Path, name: &str) -> Command {
        let mut command = crate::exporting_command(binary, dir, name);
        command
            .env(
                "APPLICATIONINSIGHTS_CONNECTION_STRING",
                self.connection_string(INSTRUMENTATION_KEY),
            )
            .env("SSL_CERT_FILE", Self::CA_FILE);
        command
    }

    /// Every ingestion request so far.
    pub fn track_requests(&self) -> Vec<Received> {
        self.recorded.lock().unwrap().track.clone()
    }

    /// Every Live Metrics request (pings and posts) so far.
    pub fn live_requests(&self) -> Vec<Received> {
        self.recorded.lock().unwrap().live.clone()
    }

    /// Every envelope ingested so far, in arrival order.
    pub fn envelopes(&self) -> Vec<Value> {
        self.track_requests()
            .iter()
            .flat_map(|request| envelopes_of(&request.body))
            .collect()
    }

    /// The sum of every exported value of the metric `name` (the exporter sends deltas).
    pub fn metric_total(&self, name: &str) -> f64 {
        self.metrics_named(name)
            .map(|m| m["value"].as_f64().unwrap_or_default())
            .sum()
    }

    /// The number of observations behind every exported value of the metric `name` (a
    /// histogram's `count`; 1 per item for a counter).
    pub fn metric_count(&self, name: &str) -> f64 {
        self.metrics_named(name)
            .map(|m| m["count"].as_f64().unwrap_or(1.0))
            .sum()
    }

    fn metrics_named(&self, name: &str) -> impl Iterator<Item = Value> {
        let name = name.to_string();
        self.envelopes()
            .into_iter()
            .filter(|e| e["data"]["baseType"] == "MetricData")
            .flat_map(|e| {
                e["data"]["baseData"]["metrics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(move |m| m["name"] == name)
    }

    /// Every envelope ingested so far, by `data.baseType` (`MetricData`, `RequestData`,
    /// `RemoteDependencyData`, `MessageData`, `ExceptionData`): what Application Insights would
    /// store as customMetrics, requests, dependencies, traces and exceptions.
    pub fn by_type(&self) -> BTreeMap<String, TypeTotals> {
        let mut totals = BTreeMap::<String, TypeTotals>::new();
        for envelope in self.envelopes() {
            let kind = envelope["data"]["baseType"].as_str().unwrap_or("?");
            let total = totals.entry(kind.to_string()).or_default();
            total.items += 1;
            total.json_bytes += envelope.to_string().len();
        }
        totals
    }

    /// Ingestion bytes on the wire and decompressed, over every request so far.
    pub fn track_bytes(&self) -> (usize, usize) {
        self.track_requests()
            .iter()
            .fold((0, 0), |(wire, plain), r| {
                (wire + r.wire_bytes, plain + r.body.len())
            })
    }
}

/// The envelopes of one ingestion body: a JSON array (or newline-delimited envelopes).
fn envelopes_of(body: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(item) => vec![item],
        Err(_) => body
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect(),
    }
}

/// TLS over a loopback listener: handshakes one connection at a time (enough for one
/// exporter), skipping connections whose handshake fails.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The stand-in's server certificate and key (testkit/tls), on aws-lc-rs.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(include_bytes!("../tls/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .expect("the test certificate parses");
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../tls/server.key"))
        .expect("the test key parses");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS 1.2 and 1.3 are supported")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the test certificate matches its key");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn receive(recorded: &Mutex<Recorded>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let text = if gzip {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .is_err()
        {
            return (StatusCode::BAD_REQUEST, "body is not gzip'd UTF-8").into_response();
        }
        text
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let received = Received {
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
            .collect(),
        wire_bytes: body.len(),
        body: text,
    };
    let path = uri.path().to_ascii_lowercase();
    if path.ends_with("/track") {
        let items = envelopes_of(&received.body).len();
        recorded.lock().unwrap().track.push(received);
        let reply = format!(r#"{{"itemsReceived":{items},"itemsAccepted":{items},"errors":[]}}"#);
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            reply,
        )
            .into_response();
    }
    if path.contains("quickpulseservice.svc") {
        recorded.lock().unwrap().live.push(received);
        return (StatusCode::OK, [("x-ms-qps-subscribed", "true")], "").into_response();
    }
    (
        StatusCode::NOT_FOUND,
        "not an Application Insights endpoint",
    )
        .into_response()
}
