//! The Service Bus REST wire format: the `BrokerProperties` header, the batch body and HTTP
//! dates. Only what Eventide sends and reads is modelled; unknown fields are ignored.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::pipeline::ports::OutgoingMessage;
use crate::telemetry::TraceContext;

/// Content type of a batch send: a JSON array of messages (send-message-batch).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";

/// Content type of the bodies Eventide sends (JSON text).
pub const BODY_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// The documented RFC 1123 form, always in GMT: `Sun, 06 Nov 1994 08:49:37 GMT`.
const RFC1123: &str = "%a, %d %b %Y %H:%M:%S GMT";

/// Formats an instant the way `ScheduledEnqueueTimeUtc` is documented (whole seconds, GMT).
pub fn rfc1123(at: DateTime<Utc>) -> String {
    at.format(RFC1123).to_string()
}

/// Parses an RFC 1123 date as the service writes it (`EnqueuedTimeUtc`, `LockedUntilUtc`).
pub fn parse_rfc1123(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text.trim(), RFC1123)
        .ok()
        .map(|naive| naive.and_utc())
}

/// Broker properties set on a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendProperties {
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_enqueue_time_utc: Option<String>,
}

impl SendProperties {
    pub fn of(message: &OutgoingMessage) -> Self {
        Self {
            message_id: message.message_id.clone(),
            session_id: message.session_id.clone(),
            scheduled_enqueue_time_utc: message.scheduled_at.map(rfc1123),
        }
    }
}

/// Broker properties of a peek-locked message, from the response's `BrokerProperties` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LockedProperties {
    #[serde(default)]
    pub message_id: String,
    /// 64-bit: partitioned entities put the partition in the top bits, so values beyond
    /// `i32::MAX` are normal.
    pub sequence_number: i64,
    pub lock_token: String,
    #[serde(default)]
    pub delivery_count: u32,
    #[serde(default)]
    pub enqueued_time_utc: Option<String>,
    #[serde(default)]
    pub locked_until_utc: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
}

/// The path of a queue's dead-letter sub-queue, which takes the same peek-lock, complete and
/// unlock calls as the queue itself.
pub fn dead_letter_path(queue: &str) -> String {
    format!("{queue}{DEAD_LETTER_SUFFIX}")
}

/// What a queue's path is followed by to name its dead-letter sub-queue.
pub const DEAD_LETTER_SUFFIX: &str = "/$DeadLetterQueue";

/// The custom property the broker sets on a message it dead-letters: why (for example
/// `MaxDeliveryCountExceeded`).
pub const DEAD_LETTER_REASON: &str = "DeadLetterReason";

/// The custom property with the dead-lettering's description.
pub const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// The value of a custom property as REST carries it, one HTTP header per property: a string
/// value is documented to arrive in double quotes, which are taken off; anything else (a
/// number, `true`) is kept as written.
pub fn custom_property_text(header: &[u8]) -> String {
    let text = String::from_utf8_lossy(header);
    let trimmed = text.trim();
    trimmed
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(trimmed)
        .to_string()
}

/// The custom properties of a sent message: its trace context, when it has one.
pub fn trace_properties(message: &OutgoingMessage) -> Vec<(&'static str, String)> {
    message
        .trace_context
        .iter()
        .flat_map(TraceContext::as_properties)
        .map(|(name, value)| (name, value.to_string()))
        .collect()
}

/// One element of a batch-send body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchEntry {
    /// The body as text: the batch format carries bodies as JSON strings.
    pub body: String,
    pub broker_properties: SendProperties,
    /// Custom properties (the batch format's `UserProperties` object); absent when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_properties: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_times_use_the_documented_gmt_form() {
        let at: DateTime<Utc> = "1994-11-06T08:49:37.250Z".parse().unwrap();
        assert_eq!(rfc1123(at), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_rfc1123("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some("1994-11-06T08:49:37Z".parse().unwrap())
        );
        assert_eq!(parse_rfc1123("Sun, 06 Nov 1994 08:49:37 +0000"), None);
    }

    #[test]
    fn send_properties_serialize_with_documented_names() {
        let message = OutgoingMessage {
            message_id: "summarize:s:2026-11-24:1".into(),
            session_id: Some("s".into()),
            body: b"{}".to_vec(),
            scheduled_at: Some("2026-11-25T00:10:00Z".parse().unwrap()),
            trace_context: None,
        };
        let json = serde_json::to_string(&SendProperties::of(&message)).unwrap();
        assert_eq!(
            json,
            r#"{"MessageId":"summarize:s:2026-11-24:1","SessionId":"s","ScheduledEnqueueTimeUtc":"Wed, 25 Nov 2026 00:10:00 GMT"}"#
        );
    }

    #[test]
    fn trace_context_travels_as_custom_properties() {
        let context =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let message = OutgoingMessage {
            message_id: "m".into(),
            session_id: None,
            body: Vec::new(),
            scheduled_at: None,
            trace_context: context.clone(),
        };
        let sent: BTreeMap<_, _> = trace_properties(&message).into_iter().collect();
        assert_eq!(
            sent.keys().copied().collect::<Vec<_>>(),
            ["Diagnostic-Id", "traceparent"]
        );
        assert_eq!(
            TraceContext::from_properties(|name| sent.get(name).cloned()),
            context
        );
        let none = OutgoingMessage {
            trace_context: None,
            ..message
        };
        assert!(trace_properties(&none).is_empty());
    }

    #[test]
    fn custom_properties_lose_the_quotes_of_a_string_value() {
        assert_eq!(
            custom_property_text(b"\"MaxDeliveryCountExceeded\""),
            "MaxDeliveryCountExceeded"
        );
        assert_eq!(custom_property_text(b" plain text "), "plain text");
        assert_eq!(custom_property_text(b"10"), "10");
        assert_eq!(custom_property_text(b"\""), "\"");
        assert_eq!(dead_letter_path("obs"), "obs/$DeadLetterQueue");
    }

    #[test]
    fn locked_properties_take_64_bit_sequence_numbers() {
        let header = r#"{"DeliveryCount":2,"EnqueuedSequenceNumber":0,"EnqueuedTimeUtc":"Wed, 25 Nov 2026 00:10:00 GMT","LockToken":"7da9cfd5-40d5-4bb1-8d64-ec5a52e1c547","LockedUntilUtc":"Wed, 25 Nov 2026 00:11:00 GMT","MessageId":"m1","SequenceNumber":844424930131969,"State":"Active","TimeToLive":922337203685.47754}"#;
        let props: LockedProperties = serde_json::from_str(header).unwrap();
        assert_eq!(props.sequence_number, 844_424_930_131_969);
        assert_eq!(props.delivery_count, 2);
        assert_eq!(
            props
                .enqueued_time_utc
                .as_deref()
                .and_then(parse_rfc1123)
                .unwrap(),
            "2026-11-25T00:10:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // A response without EnqueuedTimeUtc still parses (the legacy crate's failure).
        let minimal: LockedProperties =
            serde_json::from_str(r#"{"SequenceNumber":3000000000,"LockToken":"t"}"#).unwrap();
        assert_eq!(minimal.sequence_number, 3_000_000_000);
    }
}
