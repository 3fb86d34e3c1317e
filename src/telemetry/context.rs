//! W3C trace context carried on queue messages, so one observation can be followed from the
//! ingest request through the `process` batch that merged it to the summary that read it.
//!
//! A message carries the `traceparent` of the span that sent it (ingest's request, or the
//! `process` invocation that opened a summarize epoch). The span that handles messages takes
//! that context back: as its **parent** when it handles exactly one message and has no parent of
//! its own, as **links** otherwise — a batch has many parents, and a summarize batch belongs to
//! its timer tick.
//!
//! Nothing is carried when no exporter is configured: without the OpenTelemetry layer no span
//! has a context, so [`TraceContext::current`] is `None` and messages stay as they were.

use opentelemetry::Context;
use opentelemetry::trace::TraceState;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The most links one span gets: a batch of a thousand messages links to the first ones only
/// (each link is a few dozen exported bytes, and the SDK's own limit is 128).
pub const MAX_LINKS: usize = 32;

/// The message property holding the sender's trace context, as OpenTelemetry's messaging
/// conventions name it.
const TRACEPARENT_PROPERTY: &str = "traceparent";

/// The message property Azure's Service Bus SDKs (and so the Functions host's trigger) read and
/// write the sender's trace context in; with W3C tracing its value is a `traceparent`.
const DIAGNOSTIC_ID_PROPERTY: &str = "Diagnostic-Id";

/// A valid W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`): parsed once where it enters
/// (a header, a message property, a database column), so everything downstream can rely on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceContext(String);

impl TraceContext {
    /// The length of a version-00 `traceparent`.
    const LEN: usize = 55;

    /// Parses a `traceparent` value; `None` for anything that is not a valid one (an all-zero
    /// id, upper-case hex, the forbidden version `ff`). A later version's value is read by its
    /// first four fields, as the recommendation says, and kept in the version-00 form.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let head = text.get(..Self::LEN)?;
        let rest = &text[Self::LEN..];
        let mut fields = head.split('-');
        let (version, trace, parent, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let hex = |field: &str, len: usize| {
            field.len() == len
                && field
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let zero = |field: &str| field.bytes().all(|b| b == b'0');
        let valid = hex(version, 2)
            && version != "ff"
            && (rest.is_empty() || (version != "00" && rest.starts_with('-')))
            && hex(trace, 32)
            && !zero(trace)
            && hex(parent, 16)
            && !zero(parent)
            && hex(flags, 2);
        valid.then(|| Self(format!("00-{trace}-{parent}-{flags}")))
    }

    /// The `traceparent` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The message properties carrying this context: `traceparent` and `Diagnostic-Id`.
    pub fn as_properties(&self) -> [(&'static str, &str); 2] {
        [
            (TRACEPARENT_PROPERTY, self.as_str()),
            (DIAGNOSTIC_ID_PROPERTY, self.as_str()),
        ]
    }

    /// The context a received message carries, from its properties as `property` reads them:
    /// `traceparent`, else a `Diagnostic-Id` in the W3C form (the older hierarchical
    /// `Request-Id` form is not followed).
    pub fn from_properties(property: impl Fn(&str) -> Option<String>) -> Option<Self> {
        [TRACEPARENT_PROPERTY, DIAGNOSTIC_ID_PROPERTY]
            .into_iter()
            .find_map(|name| property(name).as_deref().and_then(Self::parse))
    }

    /// The context of the current `tracing` span, when it has one (only when exporting).
    pub fn current() -> Option<Self> {
        let context = tracing::Span::current().context();
        let span = context.span();
        let span = span.span_context();
        span.is_valid().then(|| {
            Self(format!(
                "00-{}-{}-{:02x}",
                span.trace_id(),
                span.span_id(),
                span.trace_flags().to_u8()
            ))
        })
    }

    /// The remote span this context names.
    fn span_context(&self) -> SpanContext {
        let field = |range: std::ops::Range<usize>| &self.0[range];
        let flags = u8::from_str_radix(field(53..55), 16).unwrap_or_default();
        SpanContext::new(
            TraceId::from_hex(field(3..35)).unwrap_or(TraceId::INVALID),
            SpanId::from_hex(field(36..52)).unwrap_or(SpanId::INVALID),
            TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
            true,
            TraceState::default(),
        )
    }

    /// This context as a parent for new spans.
    fn as_parent(&self) -> Context {
        Context::new().with_remote_span_context(self.span_context())
    }
}

impl std::fmt::Display for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes `span` (not yet entered) the child of the one context given, or links it to each of
/// several distinct ones (at most [`MAX_LINKS`]).
pub fn adopt_or_link<'a>(
    span: &tracing::Span,
    contexts: impl IntoIterator<Item = &'a TraceContext>,
) {
    let distinct = distinct(contexts);
    match distinct.as_slice() {
        [only] => {
            // Fails only for a span that was entered already or is disabled: then it keeps
            // the parent it has, which loses nothing but the link.
            let _ = span.set_parent(only.as_parent());
        }
        many => link_all(span, many),
    }
}

/// Links `span` to each distinct context given (at most [`MAX_LINKS`]), keeping its parent.
pub fn link<'a>(span: &tracing::Span, contexts: impl IntoIterator<Item = &'a TraceContext>) {
    link_all(span, &distinct(contexts));
}

fn link_all(span: &tracing::Span, contexts: &[&TraceContext]) {
    for context in contexts {
        span.add_link(context.span_context());
    }
}

fn distinct<'a>(contexts: impl IntoIterator<Item = &'a TraceContext>) -> Vec<&'a TraceContext> {
    let mut distinct: Vec<&TraceContext> = Vec::new();
    for context in contexts {
        if distinct.len() == MAX_LINKS {
            break;
        }
        if !distinct.contains(&context) {
            distinct.push(context);
        }
    }
    distinct
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparents_parse_and_round_trip() {
        let context = TraceContext::parse(VALID).unwrap();
        assert_eq!(context.as_str(), VALID);
        let span = context.span_context();
        assert_eq!(
            span.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.is_sampled() && span.is_remote());
        // A later version is read by its first four fields.
        let later = format!("cc{}-extra", &VALID[2..]);
        assert_eq!(TraceContext::parse(&later).unwrap().as_str(), VALID);
        assert_eq!(
            TraceContext::parse(&format!(" {VALID} ")).unwrap().as_str(),
            VALID
        );
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "|4bf92f3577b34da6a3ce929d0e0e4736.00f067aa0ba902b7.",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn message_properties_prefer_traceparent_then_a_w3c_diagnostic_id() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let read = |pairs: &[(&str, &str)]| {
            TraceContext::from_properties(|name| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            })
            .map(|c| c.to_string())
        };
        assert_eq!(
            read(&[("Diagnostic-Id", other), ("traceparent", VALID)]).unwrap(),
            VALID
        );
        assert_eq!(read(&[("Diagnostic-Id", other)]).unwrap(), other);
        assert_eq!(
            read(&[("traceparent", "bad"), ("Diagnostic-Id", other)]).unwrap(),
            other
        );
        assert_eq!(read(&[("Diagnostic-Id", "|4bf92f35.1.")]), None);
        let context = TraceContext::parse(VALID).unwrap();
        assert_eq!(
            context.as_properties(),
            [("traceparent", VALID), ("Diagnostic-Id", VALID)]
        );
    }

    #[test]
    fn no_context_without_an_exporting_subscriber() {
        let _span = tracing::info_span!("no subscriber").entered();
        assert_eq!(TraceContext::current(), None);
    }

    #[test]
    fn links_are_distinct_and_bounded() {
        let many: Vec<TraceContext> = (1..=MAX_LINKS as u64 + 5)
            .map(|i| TraceContext::parse(&format!("00-{i:032x}-{i:016x}-01")).unwrap())
            .collect();
        let repeated = [&many[0], &many[0], &many[1]];
        assert_eq!(distinct(repeated).len(), 2);
        assert_eq!(distinct(&many).len(), MAX_LINKS);
    }
}
