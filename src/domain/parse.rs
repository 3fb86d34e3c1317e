//! Decoding request and message bodies into per-item results.
//!
//! A body is split into items first and each item is decoded and validated on its own, so one bad
//! item (a wrong type, an out-of-range number, a broken CSV row) never takes the others down. Only
//! a body whose framing is broken (not JSON at all, a CSV without the required header) fails as a
//! whole.

use std::collections::BTreeMap;

use serde::de::{Deserializer as _, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::observation::{Invalid, Observation, RawObservation};

/// The body formats Eventide accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One observation, an array of them, or `{"observations": [...]}`.
    Json,
    /// One JSON observation per line.
    Ndjson,
    /// A header `series,ts,value[,source,unit]` (any order) and one row per observation.
    Csv,
}

impl BodyFormat {
    /// Maps a `Content-Type` header to a format; `None` for types Eventide does not accept.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "text/json" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/jsonlines" => Some(Self::Ndjson),
            "text/csv" | "application/csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Content types listed in the 415 reply.
pub const SUPPORTED_CONTENT_TYPES: &str = "application/json, application/x-ndjson, text/csv";

/// Longest reason kept for one rejection, in characters: a reason may quote the item (a bad
/// `ts`, say), and an item may be as long as the body.
pub const MAX_REASON_CHARS: usize = 300;

/// Why one item was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Zero-based position of the item in the body.
    pub index: usize,
    /// One-based line of the item, for line-oriented formats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The rule the item broke (see [`Invalid::class`]).
    pub class: &'static str,
    pub reason: String,
    /// The item's original text, kept so that quarantine holds what was actually sent.
    #[serde(skip)]
    pub original: String,
}

/// Every rejection of a body counted by class, including those not kept in detail.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionCounts {
    pub total: usize,
    pub by_class: BTreeMap<&'static str, usize>,
}

impl RejectionCounts {
    fn count(&mut self, class: &'static str) {
        self.total += 1;
        *self.by_class.entry(class).or_default() += 1;
    }
}

/// A body split into valid observations and rejections.
#[derive(Debug, Default)]
pub struct ParsedBody {
    pub accepted: Vec<Observation>,
    /// The first rejections in body order, with reason and original text; at most the number
    /// the caller asked for, so that a body of millions of bad items costs counters, not
    /// millions of strings.
    pub rejected: Vec<Rejection>,
    /// Every rejection, counted by class.
    pub rejections: RejectionCounts,
    /// The ingest stamp carried by Eventide's own chunks (milliseconds; see `series_day::Stamp`).
    pub stamp: Option<i64>,
}

/// Why a whole body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body is not valid UTF-8")]
    Utf8,
    #[error("CSV header is invalid: {0}")]
    CsvHeader(String),
    #[error("body holds no observations")]
    Empty,
    #[error("{0}")]
    Invalid(String),
}

/// A rule beyond the envelope's own that every valid item must pass, such as "its day is still
/// open"; an item that fails it is rejected with the rule's class and reason, like any invalid
/// item.
pub type ItemRule<'a> = &'a dyn Fn(&Observation) -> Result<(), Invalid>;

/// How a body is decoded beyond its format.
#[derive(Clone, Copy)]
pub struct ParseRules<'a> {
    /// Held against every valid item.
    pub rule: ItemRule<'a>,
    /// Rejections kept in detail; the rest are only counted.
    pub detailed: usize,
}

/// Decodes a body of the given format into per-item results, keeping every rejection in detail
/// (for bodies whose size a queue bounds: each rejected item is quarantined).
pub fn parse_body(format: BodyFormat, body: &[u8]) -> Result<ParsedBody, BodyError> {
    parse_body_with(
        format,
        body,
        ParseRules {
            rule: &|_| Ok(()),
            detailed: usize::MAX,
        },
    )
}

/// Decodes a body into per-item results under `rules`. Items are decoded one at a time as the
/// body is read: no index of the items is built, so the memory a body costs beyond itself is
/// its accepted observations and a counter per rejection class.
pub fn parse_body_with(
    format: BodyFormat,
    body: &[u8],
    rules: ParseRules<'_>,
) -> Result<ParsedBody, BodyError> {
    let mut accepted = Vec::new();
    let mut parsed = parse_body_each(format, body, rules, &mut |obs| accepted.push(obs))?;
    parsed.accepted = accepted;
    Ok(parsed)
}

/// [`parse_body_with`], handing each accepted observation to `accept` as it is decoded instead
/// of collecting them (`accepted` stays empty), for a caller that keeps less of each.
pub fn parse_body_each(
    format: BodyFormat,
    body: &[u8],
    rules: ParseRules<'_>,
    accept: &mut dyn FnMut(Observation),
) -> Result<ParsedBody, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::Utf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    let mut parsed = ParsedBody::default();
    let mut sink = ItemSink {
        parsed: &mut parsed,
        accept,
        rules,
        index: 0,
    };
    match format {
        BodyFormat::Json => sink.parsed.stamp = parse_json(text, &mut sink)?,
        BodyFormat::Ndjson => parse_ndjson(text, &mut sink),
        BodyFormat::Csv => parse_csv(text, &mut sink)?,
    }
    Ok(parsed)
}

/// The top level of a JSON object body: either the wrapper or a single observation. The
/// wrapper's array is kept as raw text and streamed item by item.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    observations: Option<&'a RawValue>,
    #[serde(default)]
    stamp: Option<i64>,
}

/// Parses a JSON body, handing each item to `sink`; returns the wrapper's stamp.
fn parse_json(text: &str, sink: &mut ItemSink<'_, '_>) -> Result<Option<i64>, BodyError> {
    let json_error = |e: serde_json::Error| BodyError::Json(e.to_string());
    if text.trim_start().starts_with('[') {
        stream_array(text, sink)?;
        return Ok(None);
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(json_error)?;
    match envelope.observations {
        Some(items) => {
            stream_array(items.get(), sink)?;
            Ok(envelope.stamp)
        }
        None => {
            let single: &RawValue = serde_json::from_str(text).map_err(json_error)?;
            sink.push(None, single.get(), decode_json_item(single.get()));
            Ok(None)
        }
    }
}

/// Decodes a JSON array, handing each element to `sink` as soon as it is read.
fn stream_array(text: &str, sink: &mut ItemSink<'_, '_>) -> Result<(), BodyError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer
        .deserialize_seq(ArrayItems { sink })
        .and_then(|()| deserializer.end())
        .map_err(|e| BodyError::Json(e.to_string()))
}

/// A serde visitor that hands every element of a JSON array to the sink as raw text.
struct ArrayItems<'s, 'p, 'r> {
    sink: &'s mut ItemSink<'p, 'r>,
}

impl<'de> Visitor<'de> for ArrayItems<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of observations")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while let Some(item) = items.next_element::<&'de RawValue>()? {
            self.sink
                .push(None, item.get(), decode_json_item(item.get()));
        }
        Ok(())
    }
}

fn parse_ndjson(text: &str, sink: &mut ItemSink<'_, '_>) {
    let lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    for (line_no, line) in lines {
        let result = if line.trim_start().starts_with('{') {
            decode_json_item(line)
        } else {
            Err(Invalid::new(
                "not_an_object",
                "each NDJSON line must be one JSON object",
            ))
        };
        sink.push(Some(line_no + 1), line, result);
    }
}

fn decode_json_item(text: &str) -> Result<Observation, Invalid> {
    if !text.trim_start().starts_with('{') {
        return Err(Invalid::new(
            "not_an_object",
            "an observation must be a JSON object",
        ));
    }
    serde_json::from_str::<RawObservation<'_>>(text)
        .map_err(|e| {
            Invalid::new(
                "undecodable",
                format!("observation could not be decoded: {e}"),
            )
        })?
        .validate()
}

/// Column positions of a CSV body.
struct CsvColumns {
    series: usize,
    ts: usize,
    value: usize,
    source: Option<usize>,
    unit: Option<usize>,
}

impl CsvColumns {
    fn from_header(header: &csv::StringRecord) -> Result<Self, BodyError> {
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        if let Some(unknown) = header.iter().find(|h| {
            !["series", "ts", "value", "source", "unit"]
                .iter()
                .any(|k| h.trim().eq_ignore_ascii_case(k))
        }) {
            return Err(BodyError::CsvHeader(format!(
                "unknown column {unknown:?}; expected series,ts,value[,source,unit]"
            )));
        }
        let required = |name: &str| {
            find(name).ok_or_else(|| {
                BodyError::CsvHeader(format!(
                    "missing column {name:?}; expected series,ts,value[,source,unit]"
                ))
            })
        };
        Ok(Self {
            series: required("series")?,
            ts: required("ts")?,
            value: required("value")?,
            source: find("source"),
            unit: find("unit"),
        })
    }

    fn decode(&self, record: &csv::StringRecord) -> Result<Observation, Invalid> {
        let field = |i: usize| record.get(i).map(str::trim);
        let value =
            match field(self.value) {
                None | Some("") => None,
                Some(text) => Some(text.parse::<f64>().map_err(|_| {
                    Invalid::new("value", format!("value {text:?} is not a number"))
                })?),
            };
        RawObservation {
            series: field(self.series).filter(|s| !s.is_empty()).map(Into::into),
            ts: field(self.ts).filter(|s| !s.is_empty()).map(Into::into),
            value,
            source: self.source.and_then(field).map(Into::into),
            unit: self.unit.and_then(field).map(Into::into),
            tags: None,
        }
        .validate()
    }
}

fn parse_csv(text: &str, sink: &mut ItemSink<'_, '_>) -> Result<(), BodyError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| BodyError::CsvHeader(e.to_string()))?
        .clone();
    let columns = CsvColumns::from_header(&header)?;
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() as usize;
        let result = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.iter().all(|f| f.trim().is_empty()) => continue,
            Ok(true) => columns.decode(&record),
            Err(e) => Err(Invalid::new(
                "undecodable",
                format!("CSV row could not be read: {e}"),
            )),
        };
        sink.push_with(
            Some(line),
            || record.iter().collect::<Vec<_>>().join(","),
            result,
        );
    }
    Ok(())
}

/// Where decoded items go, in body order: accepted ones to `accept`, rejected ones to the
/// counters and, while there is room, to the detailed list.
struct ItemSink<'p, 'r> {
    parsed: &'p mut ParsedBody,
    accept: &'p mut dyn FnMut(Observation),
    rules: ParseRules<'r>,
    /// Position of the next item.
    index: usize,
}

impl ItemSink<'_, '_> {
    fn push(&mut self, line: Option<usize>, original: &str, result: Result<Observation, Invalid>) {
        self.push_with(line, || original.to_string(), result);
    }

    /// Like `push`, with the original text made only if the rejection is kept in detail.
    fn push_with(
        &mut self,
        line: Option<usize>,
        original: impl FnOnce() -> String,
        result: Result<Observation, Invalid>,
    ) {
        let index = self.index;
        self.index += 1;
        match result.and_then(|obs| (self.rules.rule)(&obs).map(|()| obs)) {
            Ok(obs) => (self.accept)(obs),
            Err(Invalid { class, reason }) => {
                self.parsed.rejections.count(class);
                if self.parsed.rejected.len() < self.rules.detailed {
                    self.parsed.rejected.push(Rejection {
                        index,
                        line,
                        class,
                        reason: clip(reason),
                        original: original(),
                    });
                }
            }
        }
    }
}

/// Cuts a reason to [`MAX_REASON_CHARS`], marking the cut.
fn clip(mut reason: String) -> String {
    if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
        reason.truncate(cut);
        reason.push('…');
    }
    reason
}

impl ParsedBody {
    /// Items seen in the body, accepted or not.
    pub fn item_count(&self) -> usize {
        self.accepted.len() + self.rejections.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_rejects_valid_items_with_its_reason_and_position() {
        let body = b"series,ts,value\na,2026-11-25T00:00:00Z,1\nb,2026-11-25T00:00:00Z,2\n";
        let only_a = |obs: &Observation| match obs.series.as_str() {
            "a" => Ok(()),
            other => Err(Invalid::new("taken", format!("{other} is not taken"))),
        };
        let rules = ParseRules {
            rule: &only_a,
            detailed: 10,
        };
        let parsed = parse_body_with(BodyFormat::Csv, body, rules).unwrap();
        assert_eq!(parsed.accepted.len(), 1);
        assert_eq!(
            parsed.rejected,
            vec![Rejection {
                index: 1,
                line: Some(3),
                class: "taken",
                reason: "b is not taken".into(),
                original: "b,2026-11-25T00:00:00Z,2".into(),
            }]
        );
    }

    fn reasons(parsed: &ParsedBody) -> Vec<(usize, String)> {
        parsed
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.clone()))
            .collect()
    }

    #[test]
    fn json_array_keeps_good_items_beside_bad_ones() {
        let body = br#"[
            {"series":"a","ts":"2026-11-25T00:00:00Z","value":1.5},
            {"series":"a","ts":"2026-11-25T00:01:00Z","value":"high"},
            {"series":"a","ts":"2026-11-25T00:02:00Z","value":1e400},
            42,
            {"series":"b","ts":"2026-11-25T00:03:00+01:00","value":-2}
        ]"#;
        let parsed = parse_body(BodyFormat::Json, body).unwrap();
        assert_eq!(parsed.accepted.len(), 2);
        let rejected = reasons(&parsed);
        assert_eq!(
            rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(rejected[0].1.contains("invalid type"), "{:?}", rejected[0]);
        assert!(rejected[1].1.contains("out of range"), "{:?}", rejected[1]);
        assert!(rejected[2].1.contains("must be a JSON object"));
    }

    #[test]
    fn json_wrapper_single_object_and_stamp() {
        let wrapped =
            br#"{"stamp":7,"observations":[{"series":"a","ts":"2026-11-25T00:00:00Z","value":1}]}"#;
        let parsed = parse_body(BodyFormat::Json, wrapped).unwrap();
        assert_eq!((parsed.accepted.len(), parsed.stamp), (1, Some(7)));
        let single = br#"{"series":"a","ts":"2026-11-25T00:00:00Z","value":1}"#;
        let parsed = parse_body(BodyFormat::Json, single).unwrap();
        assert_eq!((parsed.accepted.len(), parsed.stamp), (1, None));
        let foreign = br#"{"temperature":21}"#;
        let parsed = parse_body(BodyFormat::Json, foreign).unwrap();
        assert_eq!(reasons(&parsed), vec![(0, "series is missing".to_string())]);
    }

    #[test]
    fn broken_json_fails_the_body() {
        for body in [&b"[{"[..], b"not json", b"{\"observations\": 5}"] {
            assert!(matches!(
                parse_body(BodyFormat::Json, body),
                Err(BodyError::Json(_))
            ));
        }
        assert_eq!(
            parse_body(BodyFormat::Json, b"  ").unwrap_err(),
            BodyError::Empty
        );
        assert_eq!(
            parse_body(BodyFormat::Json, &[0xff, 0xfe]).unwrap_err(),
            BodyError::Utf8
        );
    }

    #[test]
    fn ndjson_reports_lines() {
        let body = b"{\"series\":\"a\",\"ts\":\"2026-11-25T00:00:00Z\",\"value\":1}\n\nnot json\n{\"series\":\"a\",\"ts\":\"2026-11-25T00:00:01Z\",\"value\":2}\n";
        let parsed = parse_body(BodyFormat::Ndjson, body).unwrap();
        assert_eq!(parsed.accepted.len(), 2);
        assert_eq!(parsed.rejected.len(), 1);
        assert_eq!(
            (parsed.rejected[0].index, parsed.rejected[0].line),
            (1, Some(3))
        );
        assert_eq!(parsed.rejected[0].original, "not json");
    }

    #[test]
    fn csv_columns_by_header_and_row_errors() {
        let body = b"ts,series,value,unit\n2026-11-25T00:00:00Z,a,1.5,C\n2026-11-25T00:01:00Z,a,NaN,C\n2026-11-25T00:02:00Z,a,abc\n2026-11-25T00:03:00Z,,1\n2026-11-25T00:04:00Z,b,2\n";
        let parsed = parse_body(BodyFormat::Csv, body).unwrap();
        assert_eq!(parsed.accepted.len(), 2);
        assert_eq!(parsed.accepted[0].unit.as_deref(), Some("C"));
        let rejected = reasons(&parsed);
        assert_eq!(
            rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(rejected[0].1.contains("finite"));
        assert!(rejected[1].1.contains("not a number"));
        assert!(rejected[2].1.contains("series is missing"));
        assert_eq!(parsed.rejected[0].line, Some(3));
    }

    #[test]
    fn csv_header_must_name_the_required_columns() {
        let err = parse_body(BodyFormat::Csv, b"series,value\na,1\n").unwrap_err();
        assert!(err.to_string().contains("missing column \"ts\""));
        let err = parse_body(BodyFormat::Csv, b"series,ts,value,colour\n").unwrap_err();
        assert!(err.to_string().contains("unknown column"));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BodyFormat::from_content_type("application/json; charset=utf-8"),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type("text/CSV"),
            Some(BodyFormat::Csv)
        );
        assert_eq!(BodyFormat::from_content_type("application/xml"), None);
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            for format in [BodyFormat::Json, BodyFormat::Ndjson, BodyFormat::Csv] {
                let _ = parse_body(format, &bytes);
            }
        }

        #[test]
        fn on_json_shaped_text(text in r#"[\[\]{}",:0-9a-z\- .eE+]{0,200}"#) {
            for format in [BodyFormat::Json, BodyFormat::Ndjson, BodyFormat::Csv] {
                if let Ok(parsed) = parse_body(format, text.as_bytes()) {
                    // Every item is accounted for exactly once.
                    let mut indexes: Vec<usize> = parsed.rejected.iter().map(|r| r.index).collect();
                    indexes.dedup();
                    prop_assert_eq!(indexes.len(), parsed.rejected.len());
                }
            }
        }
    }
}
