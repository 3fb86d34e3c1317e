//! The observation envelope and its validation rules (docs/architecture.md, "Data model").
//!
//! Validation happens once per item and returns a human-readable reason, because every rejected
//! record must tell the producer exactly what to fix while the rest of its request goes through.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::series::SeriesId;

/// Longest `source` or `unit` accepted.
pub const MAX_LABEL_CHARS: usize = 100;
/// Most tags one observation may carry; tags are for routing and lineage, not payload.
pub const MAX_TAGS: usize = 16;
/// Longest tag key.
pub const MAX_TAG_KEY_CHARS: usize = 64;
/// Longest tag value.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// A validated observation: one value of one series at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub series: SeriesId,
    /// Nanoseconds since the Unix epoch, UTC. The identity of a point within its series.
    pub ts: i64,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// An observation as it arrives, before validation. Fields are optional so that a missing field
/// produces a precise reason instead of a generic decoding error.
#[derive(Debug, Default, Deserialize)]
pub struct RawObservation<'a> {
    #[serde(borrow, default)]
    pub series: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub ts: Option<Cow<'a, str>>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(borrow, default)]
    pub source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub unit: Option<Cow<'a, str>>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Why one item is not a valid observation: the rule it broke (a short, stable class such as
/// `ts` or `not_an_object`, which replies count rejections by) and the reason shown to the
/// producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub class: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(class: &'static str, reason: impl Into<String>) -> Self {
        Self {
            class,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Tags an error text with the field whose rule it reports.
fn field(class: &'static str) -> impl Fn(String) -> Invalid {
    move |reason| Invalid::new(class, reason)
}

impl RawObservation<'_> {
    /// Applies every rule of the envelope; the error names the rule and the reason shown to the
    /// producer.
    pub fn validate(self) -> Result<Observation, Invalid> {
        let series = self
            .series
            .ok_or_else(|| Invalid::new("series", "series is missing"))?;
        let series = SeriesId::parse(&series).map_err(|e| Invalid::new("series", e.to_string()))?;
        let ts = self.ts.ok_or_else(|| Invalid::new("ts", "ts is missing"))?;
        let ts = parse_ts(&ts).map_err(field("ts"))?;
        let value = self
            .value
            .ok_or_else(|| Invalid::new("value", "value is missing"))?;
        if !value.is_finite() {
            return Err(Invalid::new("value", "value must be a finite number"));
        }
        let source = optional_label("source", self.source).map_err(field("source"))?;
        let unit = optional_label("unit", self.unit).map_err(field("unit"))?;
        let tags = self.tags.unwrap_or_default();
        validate_tags(&tags).map_err(field("tags"))?;
        Ok(Observation {
            series,
            ts,
            value,
            source,
            unit,
            tags,
        })
    }
}

/// The accepted range: every instant a signed 64-bit count of nanoseconds since the Unix epoch
/// can hold. Every store and sink handles all of it.
pub const TS_RANGE: &str = "1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z";

/// Parses an RFC 3339 timestamp that carries an explicit offset; returns UTC nanoseconds.
pub fn parse_ts(text: &str) -> Result<i64, String> {
    let parsed = DateTime::parse_from_rfc3339(text.trim()).map_err(|e| {
        format!("ts {text:?} is not RFC 3339 with an offset (e.g. 2026-11-25T10:00:00Z): {e}")
    })?;
    parsed
        .with_timezone(&Utc)
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("ts {text:?} is out of the supported range ({TS_RANGE})"))
}

/// Formats UTC nanoseconds as RFC 3339 with a `Z` suffix and only the fractional digits needed.
pub fn format_ts(ts: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ts).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn optional_label(field: &str, value: Option<Cow<'_, str>>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > MAX_LABEL_CHARS => Err(format!(
            "{field} must be at most {MAX_LABEL_CHARS} characters"
        )),
        Some(v) => Ok(Some(v.into_owned())),
    }
}

fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "at most {MAX_TAGS} tags are allowed, got {}",
            tags.len()
        ));
    }
    for (key, value) in tags {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS {
            return Err(format!(
                "tag keys must be 1-{MAX_TAG_KEY_CHARS} characters, got {key:?}"
            ));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(format!(
                "tag {key:?} is longer than {MAX_TAG_VALUE_CHARS} characters"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(series: &'a str, ts: &'a str, value: f64) -> RawObservation<'a> {
        RawObservation {
            series: Some(series.into()),
            ts: Some(ts.into()),
            value: Some(value),
            ..Default::default()
        }
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let obs = raw("a", "2026-11-24T23:30:00-05:00", 1.0)
            .validate()
            .unwrap();
        assert_eq!(format_ts(obs.ts), "2026-11-25T04:30:00Z");
    }

    #[test]
    fn the_whole_range_is_accepted() {
        let first = parse_ts("1677-09-21T00:12:43.145224192Z").unwrap();
        let last = parse_ts("2262-04-11T23:47:16.854775807Z").unwrap();
        assert_eq!((first, last), (i64::MIN, i64::MAX));
        assert_eq!(format_ts(first), "1677-09-21T00:12:43.145224192Z");
    }

    #[test]
    fn fractional_seconds_survive_a_round_trip() {
        let ts = parse_ts("2026-11-25T04:30:00.123456789Z").unwrap();
        assert_eq!(format_ts(ts), "2026-11-25T04:30:00.123456789Z");
    }

    #[test]
    fn each_rule_has_its_own_reason() {
        let cases = [
            (raw("", "2026-11-25T00:00:00Z", 1.0), "series must be 1-100"),
            (
                raw("a b", "2026-11-25T00:00:00Z", 1.0),
                "series contains ' '",
            ),
            (raw("a", "2026-11-25T00:00:00", 1.0), "not RFC 3339"),
            (raw("a", "yesterday", 1.0), "not RFC 3339"),
            (raw("a", "2026-11-25T00:00:00Z", f64::NAN), "finite"),
            (raw("a", "2026-11-25T00:00:00Z", f64::INFINITY), "finite"),
            (
                raw("a", "3000-01-01T00:00:00Z", 1.0),
                "out of the supported range",
            ),
            (
                raw("a", "1677-09-21T00:12:43.145224191Z", 1.0),
                "out of the supported range (1677-09-21T00:12:43.145224192Z to",
            ),
        ];
        for (input, expected) in cases {
            let reason = input.validate().unwrap_err().reason;
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
        }
        let missing = RawObservation::default().validate().unwrap_err();
        assert_eq!(missing, Invalid::new("series", "series is missing"));
    }

    #[test]
    fn tags_are_bounded() {
        let mut obs = raw("a", "2026-11-25T00:00:00Z", 1.0);
        obs.tags = Some((0..17).map(|i| (format!("k{i}"), "v".into())).collect());
        let invalid = obs.validate().unwrap_err();
        assert_eq!(invalid.class, "tags");
        assert!(invalid.reason.contains("at most 16 tags"));
    }
}
