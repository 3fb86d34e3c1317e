//! Harnesses for the fuzz targets in `fuzz/` (see docs/fuzzing.md), one function per target.
//!
//! They live in the library, not in the fuzz crate, so that the same code runs in two places: the
//! libFuzzer targets (nightly, coverage-guided) call them with generated inputs, and the test
//! suite (`tests/suite/fuzz_regressions.rs`, stable) replays every kept corpus and crash input
//! through them. Each one takes raw bytes, calls the crate's real entry points for untrusted input
//! and panics when an invariant breaks: a panic in the code under test, a codec that does not
//! round-trip, an accepted item outside the documented limits, an error message quoting a secret.
//!
//! Nothing else in the crate calls this module; it is hidden from the documentation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::adapters::connection_string::Pairs;
use crate::adapters::cosmos::codec;
use crate::adapters::cosmos::layout::{HOUR_NS, Part};
use crate::app::config::SinkTarget;
use crate::domain::calendar::Calendar;
use crate::domain::message::{
    MAX_CHUNK_BYTES, MAX_MESSAGE_ID_CHARS, SummarizeRequest, chunk_observations,
    decode_observations_message, public_form,
};
use crate::domain::observation::{
    MAX_LABEL_CHARS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS, Observation, format_ts,
    parse_ts,
};
use crate::domain::parse::{BodyFormat, ParsedBody, parse_body};
use crate::domain::series::{MAX_SERIES_CHARS, SeriesId};
use crate::domain::series_day::{MAX_STAMP, Point, check_stamp};
use crate::drivers::functions::envelope::{HttpInvocation, Invocation, unquote};
use crate::drivers::functions::{BATCH_BINDING, SINGLE_MESSAGE_BINDING, TIMER_BINDING};

/// A fixed instant for the checks that compare with a clock, so a replay is deterministic.
fn fixed_now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_028_800, 0).expect("a valid instant")
}

/// Ingest bodies: the first byte picks JSON, NDJSON or CSV, the rest is the body.
///
/// Every item is accounted for once; every accepted observation obeys the envelope's limits;
/// accepted observations survive ingest's chunking and `process`'s decoding unchanged.
pub fn body(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let format = match selector % 3 {
        0 => BodyFormat::Json,
        1 => BodyFormat::Ndjson,
        _ => BodyFormat::Csv,
    };
    let Ok(parsed) = parse_body(format, body) else {
        return;
    };
    check_accounting(&parsed);
    for obs in &parsed.accepted {
        check_limits(obs);
    }
    check_chunks_round_trip(&parsed.accepted, parsed.stamp.unwrap_or(1));
}

fn check_accounting(parsed: &ParsedBody) {
    let mut indexes: Vec<usize> = parsed.rejected.iter().map(|r| r.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(
        indexes.len(),
        parsed.rejected.len(),
        "an item rejected twice"
    );
    assert!(
        indexes
            .last()
            .is_none_or(|&last| last < parsed.item_count()),
        "a rejection points past the items"
    );
}

/// The envelope's documented limits (docs/architecture.md, "Data model").
fn check_limits(obs: &Observation) {
    assert!(obs.value.is_finite(), "accepted a non-finite value");
    let series = obs.series.as_str();
    assert!((1..=MAX_SERIES_CHARS).contains(&series.chars().count()));
    assert_eq!(SeriesId::parse(series).as_ref(), Ok(&obs.series));
    for label in [&obs.source, &obs.unit].into_iter().flatten() {
        assert!((1..=MAX_LABEL_CHARS).contains(&label.chars().count()));
    }
    assert!(obs.tags.len() <= MAX_TAGS);
    for (key, value) in &obs.tags {
        assert!((1..=MAX_TAG_KEY_CHARS).contains(&key.chars().count()));
        assert!(value.chars().count() <= MAX_TAG_VALUE_CHARS);
    }
    // The timestamp's text form reads back as the same instant.
    assert_eq!(parse_ts(&format_ts(obs.ts)), Ok(obs.ts));
}

/// What ingest queues is what `process` reads: per series, the last value of each timestamp.
fn check_chunks_round_trip(accepted: &[Observation], stamp: i64) {
    let mut want: BTreeMap<(SeriesId, i64), u64> = BTreeMap::new();
    for obs in accepted {
        want.insert((obs.series.clone(), obs.ts), obs.value.to_bits());
    }
    let mut got: BTreeMap<(SeriesId, i64), u64> = BTreeMap::new();
    for chunk in chunk_observations(accepted.to_vec(), stamp, MAX_CHUNK_BYTES) {
        assert!(chunk.body.len() <= MAX_CHUNK_BYTES, "chunk over the limit");
        assert!(chunk.message_id.chars().count() <= MAX_MESSAGE_ID_CHARS);
        let message = decode_observations_message(&chunk.body).expect("a chunk decodes");
        assert!(message.rejected.is_empty());
        assert_eq!(message.stamp, Some(stamp));
        for series in message.series {
            for point in series.points {
                let previous = got.insert((series.series.clone(), point.ts), point.value.to_bits());
                assert!(previous.is_none(), "a timestamp queued twice");
            }
        }
    }
    assert_eq!(got, want, "chunks changed the observations");
}

/// Observations-queue messages (compact chunks and the public forms), as `process` reads them.
///
/// Decoded points are finite and their series valid; the public form an operator gets back for
/// them decodes to the same points; stamps and days are computed without a panic.
pub fn observations_message(data: &[u8]) {
    let Ok(message) = decode_observations_message(data) else {
        return;
    };
    let _ = check_stamp(message.stamp, fixed_now());
    let zurich = Calendar::from_name("Europe/Zurich").expect("a known zone");
    for series in &message.series {
        assert_eq!(
            SeriesId::parse(series.series.as_str()).as_ref(),
            Ok(&series.series)
        );
        for point in &series.points {
            assert!(point.value.is_finite(), "decoded a non-finite value");
            let _ = (
                Calendar::default().day_of(point.ts),
                zurich.day_of(point.ts),
            );
        }
        let replayed = decode_observations_message(&public_form(&series.series, &series.points))
            .expect("the public form decodes");
        assert!(replayed.rejected.is_empty(), "the public form lost points");
        // A chunk may carry no points; its public form `[]` then names no series.
        let bits: Vec<(&SeriesId, i64, u64)> = replayed
            .series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(move |p| (&s.series, p.ts, p.value.to_bits()))
            })
            .collect();
        let want: Vec<(&SeriesId, i64, u64)> = series
            .points
            .iter()
            .map(|p| (&series.series, p.ts, p.value.to_bits()))
            .collect();
        assert_eq!(bits, want, "the public form changed the points");
    }
}

/// The Functions host's invocation envelope, decoded for every binding Eventide reads.
///
/// A batch yields one message per body; the host's string encoding is undone exactly once.
pub fn functions_envelope(data: &[u8]) {
    let Ok(invocation) = serde_json::from_slice::<Invocation>(data) else {
        return;
    };
    if let Ok(http) = HttpInvocation::decode(data)
        && let Ok(request) = http.request()
    {
        let _ = (request.header("Content-Type"), request.body());
    }
    if let Ok(messages) = invocation.service_bus_batch(BATCH_BINDING) {
        let bodies = match &invocation.data[BATCH_BINDING] {
            Value::String(text) => serde_json::from_str::<Value>(&unquote(text)).ok(),
            other => Some(other.clone()),
        };
        let count = bodies.as_ref().and_then(Value::as_array).map(Vec::len);
        assert_eq!(
            Some(messages.len()),
            count,
            "a batch lost or gained messages"
        );
    }
    let _ = invocation.service_bus_message(SINGLE_MESSAGE_BINDING);
    let _ = invocation.timer_is_past_due(TIMER_BINDING);
    if let Ok(text) = std::str::from_utf8(data) {
        let encoded = serde_json::to_string(text).expect("strings serialize");
        assert_eq!(
            unquote(&encoded),
            text,
            "unquote is not the inverse of quoting"
        );
    }
}

/// Summarize-queue messages: what decodes encodes back to itself, with a bounded MessageId.
pub fn summarize_request(data: &[u8]) {
    let Ok(request) = SummarizeRequest::from_body(data) else {
        return;
    };
    let id = request.message_id();
    assert!(
        id.chars().count() <= MAX_MESSAGE_ID_CHARS,
        "MessageId over the limit: {id}"
    );
    let again = SummarizeRequest::from_body(&request.to_body()).expect("its own body decodes");
    assert_eq!(again, request);
}

/// The Cosmos DB bucket codec, both ways.
///
/// The first byte picks the test: a payload (the rest as base64 and as text) that decodes must
/// encode back to the same points; or points built from the bytes inside one hour bucket, as the
/// store writes them, must come back bit for bit.
pub fn cosmos_codec(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut input = Bytes(rest);
    let ts = input.i64();
    let part = match selector % 3 {
        0 => Part::Hour(Part::hour_of(ts)),
        1 => Part::slot_of(ts),
        _ => {
            use base64::Engine as _;
            let base = ts;
            let payload = base64::engine::general_purpose::STANDARD.encode(input.0);
            for payload in [payload.as_str(), std::str::from_utf8(input.0).unwrap_or("")] {
                if let Ok(points) = codec::decode(base, payload) {
                    check_codec_round_trip(base, &points);
                }
            }
            return;
        }
    };
    let base = part.base();
    let span = match part {
        Part::Slot(..) => crate::adapters::cosmos::layout::SLOT_NS,
        _ => HOUR_NS,
    };
    let mut points: Vec<Point> = Vec::new();
    while input.0.len() >= 24 {
        let offset = input.i64().rem_euclid(span);
        let value = f64::from_bits(input.u64());
        let stamp = input.i64().rem_euclid(MAX_STAMP) + 1;
        if let Some(ts) = base.checked_add(offset) {
            points.push(Point { ts, value, stamp });
        }
    }
    points.sort_by_key(|p| p.ts);
    points.dedup_by_key(|p| p.ts);
    check_codec_round_trip(base, &points);
}

fn check_codec_round_trip(base: i64, points: &[Point]) {
    let decoded = codec::decode(base, &codec::encode(base, points)).expect("own payload decodes");
    let bits = |points: &[Point]| -> Vec<(i64, u64, i64)> {
        points
            .iter()
            .map(|p| (p.ts, p.value.to_bits(), p.stamp))
            .collect()
    };
    assert_eq!(bits(&decoded), bits(points), "codec changed the points");
}

/// Connection strings and sink settings: the shared `Key=Value;…` parser and every parser built
/// on it, plus the summary-sink setting and the PostgreSQL URL.
///
/// The parsers never panic; their errors never quote a secret value; key/value pairs written by
/// the documented quoting rules parse back to the same values.
pub fn connection_strings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_errors(text);
    // An error may hold text that a secret happens to equal ("is not a URL" holds a key
    // "is not a U"), so each secret is swapped for a marker no message could hold by itself; a
    // secret that also occurs elsewhere in the string (where an error may rightly name it, as a
    // key or an `Authentication` method) is left out.
    if let Ok(pairs) = Pairs::parse(text) {
        for key in ["password", "pwd", "sharedaccesskey", "accountkey"] {
            let Some(secret) = pairs.get(key).filter(|v| !v.is_empty()) else {
                continue;
            };
            if text.matches(secret).count() != 1 || text.contains(SECRET_MARKER) {
                continue;
            }
            let marked = text.replace(secret, SECRET_MARKER);
            for error in parse_errors(&marked) {
                assert!(
                    !error.contains(SECRET_MARKER),
                    "an error quotes {key}: {error}"
                );
            }
        }
    }
    check_pairs_round_trip(text);
}

/// Stands for a secret value: upper case, so no lower-cased key name in an error can equal it.
const SECRET_MARKER: &str = "SECRETvalueMARKER7";

/// What each parser of a connection string or sink setting says about `text`, for the errors.
fn parse_errors(text: &str) -> Vec<String> {
    [
        crate::adapters::servicebus::ConnectionString::parse(text)
            .err()
            .map(|e| e.to_string()),
        crate::adapters::blob::StorageConnection::parse(text)
            .err()
            .map(|e| e.to_string()),
        crate::adapters::sql::mssql::parse_connection_string(text)
            .err()
            .map(|e| e.to_string()),
        crate::adapters::sql::postgres::connect_options(text)
            .err()
            .map(|e| e.to_string()),
        SinkTarget::parse(text).err(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Reads the text as `key\0value\0key\0value…`, writes those pairs as a connection string by
/// the documented rules (`==` for `=` in a key, values in double quotes with `""` for `"`), and
/// checks that the parser reads every value back.
fn check_pairs_round_trip(text: &str) {
    let tokens: Vec<&str> = text.split('\0').collect();
    let mut written = String::new();
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    for pair in tokens.chunks_exact(2) {
        let (key, value) = (pair[0].trim(), pair[1]);
        // A key cannot hold `;` and must not be empty; keys are compared in lower case.
        if key.is_empty() || key.contains(';') || want.contains_key(&key.to_lowercase()) {
            continue;
        }
        want.insert(key.to_lowercase(), value.to_string());
        written.push_str(&key.replace('=', "=="));
        written.push_str("=\"");
        written.push_str(&value.replace('"', "\"\""));
        written.push_str("\";");
    }
    let pairs = Pairs::parse(&written).unwrap_or_else(|e| panic!("{written:?}: {e}"));
    for (key, value) in &want {
        assert_eq!(pairs.get(key), Some(value.as_str()), "{written:?}");
    }
}

/// Fixed-width numbers from the front of a byte string, zero once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u64(&mut self) -> u64 {
        let mut word = [0u8; 8];
        let taken = self.0.len().min(8);
        word[..taken].copy_from_slice(&self.0[..taken]);
        self.0 = &self.0[taken..];
        u64::from_le_bytes(word)
    }

    fn i64(&mut self) -> i64 {
        self.u64() as i64
    }
}
