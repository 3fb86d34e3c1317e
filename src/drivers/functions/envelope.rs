//! The Functions host's invocation envelope, decoded exactly as the host encodes it (its payloads
//! are in `tests/fixtures/functions-host/`, with their provenance) and the reply it accepts.
//!
//! Quirks handled here so nothing else has to know them:
//! - trigger strings arrive encoded twice (a JSON string holding a JSON string literal), or once
//!   from some hosts; both are accepted;
//! - a Service Bus batch with `dataType: string` is one string holding a JSON array of raw bodies;
//! - metadata numbers come as strings, `…Array` metadata as strings holding JSON arrays, dates
//!   without a zone;
//! - top-level JSON body fields of a single message leak into `Metadata` and may overwrite keys
//!   such as `MessageId`, so single-message metadata is never used for identity.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::drivers::reply::Reply;
use crate::pipeline::process::InboundMessage;
use crate::telemetry::TraceContext;

/// `{"Data": {...}, "Metadata": {...}}` as POSTed by the host.
#[derive(Debug, Default, Deserialize)]
pub struct Invocation {
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

/// Why an envelope could not be decoded (a host/contract mismatch, not bad user data).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("binding {0:?} is missing from Data")]
    MissingBinding(String),
    #[error("binding {binding:?} is not in the expected form: {reason}")]
    Malformed { binding: String, reason: String },
}

fn malformed(binding: &str, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::Malformed {
        binding: binding.to_string(),
        reason: reason.into(),
    }
}

/// Undoes the host's string encoding: a string whose content is itself a JSON string literal is
/// decoded once more; anything else is taken as it is.
pub fn unquote(text: &str) -> String {
    if text.starts_with('"')
        && let Ok(inner) = serde_json::from_str::<String>(text)
    {
        return inner;
    }
    text.to_string()
}

/// An `/ingest` invocation as the host POSTs it, decoded from the envelope's bytes without a
/// copy of the body where the host did not escape it: only the HTTP trigger's request is read.
/// `Metadata` repeats the body's top-level JSON properties (encoded twice), so it is skipped
/// unread instead of being built into a tree.
#[derive(Debug, Deserialize)]
pub struct HttpInvocation<'a> {
    #[serde(rename = "Data", borrow)]
    data: HttpData<'a>,
}

#[derive(Debug, Deserialize)]
struct HttpData<'a> {
    /// The `httpTrigger` binding, named `req` in `functions/ingest/function.json`
    /// ([`super::HTTP_REQUEST_BINDING`]).
    #[serde(rename = "req", borrow, default)]
    req: Option<HttpRequestData<'a>>,
}

impl<'a> HttpInvocation<'a> {
    /// Decodes an envelope; the request borrows from `envelope`.
    pub fn decode(envelope: &'a [u8]) -> Result<Self, EnvelopeError> {
        serde_json::from_slice(envelope)
            .map_err(|e| malformed("Data", format!("not an HTTP invocation envelope: {e}")))
    }

    /// The HTTP trigger's request.
    pub fn request(&self) -> Result<&HttpRequestData<'a>, EnvelopeError> {
        self.data
            .req
            .as_ref()
            .ok_or_else(|| EnvelopeError::MissingBinding(super::HTTP_REQUEST_BINDING.into()))
    }
}

/// The HTTP request of an `httpTrigger` binding.
#[derive(Debug, Default, Deserialize)]
pub struct HttpRequestData<'a> {
    #[serde(rename = "Method", default)]
    pub method: String,
    #[serde(rename = "Headers", default)]
    pub headers: BTreeMap<String, Vec<String>>,
    #[serde(rename = "Query", default)]
    pub query: BTreeMap<String, String>,
    /// Present only when the request had a body; kept as the envelope's raw text.
    #[serde(rename = "Body", borrow, default)]
    body: Option<&'a RawValue>,
}

impl<'a> HttpRequestData<'a> {
    /// A header by case-insensitive name; repeated values joined as the host joins them.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.join(","))
    }

    /// The body: text for text types (the host sends a string, borrowed unless it holds
    /// escapes), or the raw JSON text of an object or array (a host that parsed JSON itself).
    pub fn body(&self) -> Result<Cow<'a, str>, EnvelopeError> {
        let Some(raw) = self.body else {
            return Ok(Cow::Borrowed(""));
        };
        let text = raw.get();
        if text == "null" {
            Ok(Cow::Borrowed(""))
        } else if text.starts_with('"') {
            match serde_json::from_str::<&'a str>(text) {
                Ok(plain) => Ok(Cow::Borrowed(plain)),
                Err(_) => serde_json::from_str::<String>(text)
                    .map(Cow::Owned)
                    .map_err(|e| malformed("req", format!("Body is not a string: {e}"))),
            }
        } else {
            Ok(Cow::Borrowed(text))
        }
    }
}

impl Invocation {
    fn binding(&self, name: &str) -> Result<&Value, EnvelopeError> {
        self.data
            .get(name)
            .ok_or_else(|| EnvelopeError::MissingBinding(name.to_string()))
    }

    /// The messages of a Service Bus batch trigger (`cardinality: many`, `dataType: string`):
    /// `Data.<binding>` is a string holding a JSON array of the raw bodies (quoted once more by
    /// some hosts; an actual array is accepted too).
    pub fn service_bus_batch(&self, binding: &str) -> Result<Vec<InboundMessage>, EnvelopeError> {
        match self.binding(binding)? {
            Value::String(text) => {
                let array: Value = serde_json::from_str(&unquote(text)).map_err(|e| {
                    malformed(binding, format!("not a JSON array of message bodies: {e}"))
                })?;
                self.batch_from_array(binding, &array)
            }
            array @ Value::Array(_) => self.batch_from_array(binding, array),
            other => Err(malformed(
                binding,
                format!("expected a string holding a JSON array, found {other}"),
            )),
        }
    }

    /// The message of a single-message Service Bus trigger. Body fields overwrite metadata keys
    /// (`MessageId` included), so the message's identity comes from its body, not `Metadata`.
    pub fn service_bus_message(&self, binding: &str) -> Result<InboundMessage, EnvelopeError> {
        match self.binding(binding)? {
            Value::String(text) => Ok(InboundMessage {
                message_id: None,
                body: unquote(text).into_bytes(),
                enqueued_at: None,
                trace_context: self
                    .metadata
                    .get("ApplicationProperties")
                    .and_then(trace_context_of),
            }),
            other => Err(malformed(
                binding,
                format!("expected a string, found {other}"),
            )),
        }
    }

    fn batch_from_array(
        &self,
        binding: &str,
        array: &Value,
    ) -> Result<Vec<InboundMessage>, EnvelopeError> {
        let bodies = array
            .as_array()
            .ok_or_else(|| malformed(binding, "expected a JSON array of bodies"))?;
        let ids = self.metadata_array("MessageIdArray");
        let enqueued = self.metadata_array("EnqueuedTimeUtcArray");
        let properties = self.metadata_array("ApplicationPropertiesArray");
        let aligned = |column: &Option<Vec<Value>>| {
            column.as_ref().filter(|c| c.len() == bodies.len()).cloned()
        };
        let (ids, enqueued, properties) = (aligned(&ids), aligned(&enqueued), aligned(&properties));
        Ok(bodies
            .iter()
            .enumerate()
            .map(|(i, body)| InboundMessage {
                message_id: ids
                    .as_ref()
                    .and_then(|ids| ids[i].as_str().map(str::to_string)),
                body: match body {
                    Value::String(text) => text.clone().into_bytes(),
                    other => other.to_string().into_bytes(),
                },
                enqueued_at: enqueued
                    .as_ref()
                    .and_then(|e| e[i].as_str().and_then(parse_host_utc)),
                trace_context: properties.as_ref().and_then(|p| trace_context_of(&p[i])),
            })
            .collect())
    }

    /// A `…Array` metadata entry: a string holding a JSON array (or, leniently, an array).
    fn metadata_array(&self, key: &str) -> Option<Vec<Value>> {
        match self.metadata.get(key)? {
            Value::String(text) => serde_json::from_str(text).ok(),
            Value::Array(values) => Some(values.clone()),
            _ => None,
        }
    }

    /// The timer binding's `IsPastDue`.
    pub fn timer_is_past_due(&self, binding: &str) -> Result<bool, EnvelopeError> {
        let timer = self.binding(binding)?;
        Ok(timer
            .get("IsPastDue")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }
}

/// The sender's trace context among a message's application properties (an object, as the
/// host passes them).
fn trace_context_of(properties: &Value) -> Option<TraceContext> {
    TraceContext::from_properties(|name| properties.get(name)?.as_str().map(str::to_string))
}

/// Host dates without a zone are UTC (`EnqueuedTimeUtc`); dates with an offset are honoured.
fn parse_host_utc(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(with_zone) = DateTime::parse_from_rfc3339(text) {
        return Some(with_zone.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

/// The reply the host reads: `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`. Always a
/// JSON object — an empty or `null` 2xx reply would hang the invocation until its timeout.
#[derive(Debug, Serialize, PartialEq)]
pub struct InvocationReply {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// Empty on success: telemetry is quiet by default.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvocationReply {
    /// A reply with no outputs.
    pub fn empty() -> Self {
        Self {
            outputs: Map::new(),
            logs: Vec::new(),
            return_value: Value::Null,
        }
    }

    /// A reply carrying the HTTP output binding `binding` as an object with `statusCode`,
    /// `headers` and a JSON text `body` (the host writes a string body as it is).
    pub fn http(binding: &str, reply: &Reply) -> Self {
        let mut headers = Map::new();
        headers.insert("Content-Type".into(), json!("application/json"));
        if let Some(seconds) = reply.retry_after {
            headers.insert("Retry-After".into(), json!(seconds.to_string()));
        }
        let mut invocation = Self::empty();
        invocation.outputs.insert(
            binding.to_string(),
            json!({
                "statusCode": reply.status.as_u16(),
                "headers": headers,
                "body": reply.body,
            }),
        );
        invocation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_decoded_twice_or_once() {
        assert_eq!(unquote(r#""{\"a\":1}""#), r#"{"a":1}"#);
        assert_eq!(unquote(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(unquote(r#""not closed"#), r#""not closed"#);
    }

    #[test]
    fn http_bodies_are_borrowed_unless_escaped() {
        let envelope =
            br#"{"Data":{"req":{"Method":"POST","Body":"a,b"}},"Metadata":{"x":"\"1\""}}"#;
        let invocation = HttpInvocation::decode(envelope).unwrap();
        let body = invocation.request().unwrap().body().unwrap();
        assert!(matches!(body, Cow::Borrowed("a,b")));
        let escaped = br#"{"Data":{"req":{"Body":"{\"a\":1}"}}}"#;
        let invocation = HttpInvocation::decode(escaped).unwrap();
        assert_eq!(invocation.request().unwrap().body().unwrap(), r#"{"a":1}"#);
        let parsed_by_host = br#"{"Data":{"req":{"Body":[1, 2]}}}"#;
        let invocation = HttpInvocation::decode(parsed_by_host).unwrap();
        assert_eq!(invocation.request().unwrap().body().unwrap(), "[1, 2]");
        let no_body = br#"{"Data":{"req":{"Method":"POST"}}}"#;
        let invocation = HttpInvocation::decode(no_body).unwrap();
        assert_eq!(invocation.request().unwrap().body().unwrap(), "");
        let no_request = br#"{"Data":{}}"#;
        assert_eq!(
            HttpInvocation::decode(no_request)
                .unwrap()
                .request()
                .unwrap_err(),
            EnvelopeError::MissingBinding("req".into())
        );
    }

    #[test]
    fn batch_messages_carry_the_trace_context_of_their_application_properties() {
        let traced = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let sdk = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let properties = serde_json::to_string(&json!([
            {"traceparent": traced, "Diagnostic-Id": traced},
            {"Diagnostic-Id": sdk, "source": "gateway-9"},
            {"traceparent": "not one"},
        ]))
        .unwrap();
        let envelope = json!({
            "Data": {"messages": "[\"a\",\"b\",\"c\"]"},
            "Metadata": {"ApplicationPropertiesArray": properties},
        });
        let invocation: Invocation = serde_json::from_value(envelope).unwrap();
        let contexts: Vec<Option<String>> = invocation
            .service_bus_batch("messages")
            .unwrap()
            .into_iter()
            .map(|m| m.trace_context.map(|c| c.to_string()))
            .collect();
        assert_eq!(contexts, [Some(traced.into()), Some(sdk.into()), None]);
    }

    #[test]
    fn host_dates() {
        assert_eq!(
            parse_host_utc("2025-06-03T09:14:58.612")
                .unwrap()
                .to_rfc3339(),
            "2025-06-03T09:14:58.612+00:00"
        );
        assert_eq!(
            parse_host_utc("2025-06-03T09:14:58+02:00")
                .unwrap()
                .to_rfc3339(),
            "2025-06-03T07:14:58+00:00"
        );
        assert!(parse_host_utc("06/03/2025 09:14:58").is_none());
    }
}
