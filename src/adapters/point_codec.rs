//! The compact binary form of a part of a series-day: its points, sorted by timestamp, relative
//! to the part's start. Both stores keep points in it — Cosmos DB charges every read and write by
//! document size (a bucket holds it base64'd, where a JSON array of objects would cost about 60
//! bytes a point), and SQLite keeps a row whose points fit in its page without an overflow page
//! of its own. Each point starts with one tag byte that says what follows:
//!
//! * the timestamp step, in the coarsest decimal unit (ns … s) that divides every offset from
//!   the base, only when it differs from the step before (a series reporting every minute
//!   stores its steps once);
//! * the stamp, as a step from the one before, only when it changes (one ingest stamps a whole
//!   chunk);
//! * the value: a short decimal (up to six digits after the point, the usual sensor reading) as
//!   a scaled integer, stored as its step from the previous decimal of the same scale; anything
//!   else as its IEEE 754 bits XORed with the previous value's, without the zero bytes at
//!   either end (neighbouring readings share sign, exponent and leading mantissa bits).
//!
//! A minute-resolution hour of readings like `21.53` costs about 2 bytes a point; full-precision
//! readings about 8, against 11 in the first version of this form, which is still decoded.
//!
//! Every value round-trips bit for bit: the decimal form is used only when decoding it gives
//! back exactly the same `f64`.

use crate::domain::series_day::Point;

/// The version written: tagged points.
const VERSION: u8 = 2;
/// The first version: every step, stamp and value in full. Still read.
const VERSION_1: u8 = 1;
/// The tag of a value stored as its raw IEEE 754 bits (version 1).
const RAW: u64 = 7;
/// The most digits after the decimal point a value is tried with.
const MAX_SCALE: u32 = 6;
/// Values whose scaled integer is at most this large are exact in an `f64`.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// Tag bit: the timestamp step follows (otherwise it is the step before).
const NEW_STEP: u8 = 0x80;
/// Tag bit: the stamp's change follows (otherwise it is the stamp before).
const NEW_STAMP: u8 = 0x40;
/// The tag's low bits: the value's form. 0..=6: a decimal of that scale; from `XOR_FORMS` on,
/// XORed bits without `leading` and `trailing` zero bytes ([`xor_form`]).
const VALUE_FORM: u8 = 0x3f;
const XOR_FORMS: u8 = 7;
// The 45 XOR forms fit in the tag's low bits.
const _: () = assert!(XOR_FORMS + 44 <= VALUE_FORM);

/// A payload that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("bucket payload is not valid: {0}")]
pub struct CodecError(pub(crate) &'static str);

/// What each point is stored relative to: the point before it.
#[derive(Default)]
struct Previous {
    ts_step: u64,
    stamp: i64,
    value_bits: u64,
    /// The scale and scaled integer of the last value stored as a decimal.
    decimal: Option<(u32, i64)>,
}

impl Previous {
    /// The integer a decimal of `scale` is stored as a step from.
    fn decimal_base(&self, scale: u32) -> i64 {
        match self.decimal {
            Some((last_scale, scaled)) if last_scale == scale => scaled,
            _ => 0,
        }
    }
}

/// Encodes sorted, unique points of a part that starts at `base` (ns since the epoch; every
/// point is at or after it).
pub fn encode(base: i64, points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + points.len() * 9);
    out.push(VERSION);
    put_varint(&mut out, points.len() as u64);
    let exponent = common_exponent(base, points);
    out.push(exponent as u8);
    let unit = 10u64.pow(exponent);
    let mut prev = Previous::default();
    let mut prev_ts = base;
    let mut fields = Vec::with_capacity(16);
    for p in points {
        fields.clear();
        // Unsigned: from a base before 1970 to a point after it, the step may pass i64::MAX.
        let step = p.ts.abs_diff(prev_ts) / unit;
        let mut tag = 0;
        if step != prev.ts_step {
            tag |= NEW_STEP;
            put_varint(&mut fields, step);
        }
        if p.stamp != prev.stamp {
            tag |= NEW_STAMP;
            put_varint(&mut fields, zigzag(p.stamp.wrapping_sub(prev.stamp)));
        }
        tag |= put_value(&mut fields, p.value, &mut prev);
        out.push(tag);
        out.extend_from_slice(&fields);
        prev.ts_step = step;
        prev.stamp = p.stamp;
        prev.value_bits = p.value.to_bits();
        prev_ts = p.ts;
    }
    out
}

/// Decodes points written by [`encode`] (this version or the first) with the same `base`.
pub fn decode(base: i64, bytes: &[u8]) -> Result<Vec<Point>, CodecError> {
    let mut input = bytes;
    let version = take_byte(&mut input)?;
    if version != VERSION && version != VERSION_1 {
        return Err(CodecError("unknown version"));
    }
    let count = take_varint(&mut input)?;
    // Each point takes at least one byte: a bad count cannot make us allocate much.
    if count > input.len() as u64 {
        return Err(CodecError("count larger than the payload"));
    }
    let exponent = u32::from(take_byte(&mut input)?);
    if exponent > 9 {
        return Err(CodecError("bad time unit"));
    }
    let unit = 10u64.pow(exponent);
    let mut points = Vec::with_capacity(count as usize);
    let mut prev = Previous::default();
    let mut ts = base;
    for i in 0..count {
        let point = if version == VERSION_1 {
            take_point_v1(&mut input, &mut prev)?
        } else {
            take_point(&mut input, &mut prev)?
        };
        let delta = point
            .ts_step
            .checked_mul(unit)
            .ok_or(CodecError("timestamp out of range"))?;
        if i > 0 && delta == 0 {
            return Err(CodecError("timestamps not increasing"));
        }
        ts = ts
            .checked_add_unsigned(delta)
            .ok_or(CodecError("timestamp out of range"))?;
        points.push(Point {
            ts,
            value: point.value,
            stamp: point.stamp,
        });
    }
    if !input.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(points)
}

/// One point as stored: its timestamp as a step in the payload's unit.
struct Stored {
    ts_step: u64,
    value: f64,
    stamp: i64,
}

fn take_point(input: &mut &[u8], prev: &mut Previous) -> Result<Stored, CodecError> {
    let tag = take_byte(input)?;
    if tag & NEW_STEP != 0 {
        prev.ts_step = take_varint(input)?;
    }
    if tag & NEW_STAMP != 0 {
        prev.stamp = prev.stamp.wrapping_add(unzigzag(take_varint(input)?));
    }
    let form = tag & VALUE_FORM;
    let value = if form < XOR_FORMS {
        let scale = u32::from(form);
        let scaled = prev
            .decimal_base(scale)
            .wrapping_add(unzigzag(take_varint(input)?));
        prev.decimal = Some((scale, scaled));
        scaled as f64 / 10f64.powi(scale as i32)
    } else {
        let (leading, trailing) =
            xor_zeros(form - XOR_FORMS).ok_or(CodecError("bad value form"))?;
        let width = usize::from(8 - leading - trailing);
        if input.len() < width {
            return Err(CodecError("truncated value"));
        }
        let (kept, rest) = input.split_at(width);
        *input = rest;
        let mut bytes = [0u8; 8];
        bytes[usize::from(trailing)..usize::from(trailing) + width].copy_from_slice(kept);
        f64::from_bits(prev.value_bits ^ u64::from_le_bytes(bytes))
    };
    prev.value_bits = value.to_bits();
    Ok(Stored {
        ts_step: prev.ts_step,
        value,
        stamp: prev.stamp,
    })
}

fn take_point_v1(input: &mut &[u8], prev: &mut Previous) -> Result<Stored, CodecError> {
    let ts_step = take_varint(input)?;
    prev.stamp = prev.stamp.wrapping_add(unzigzag(take_varint(input)?));
    let tagged = take_varint(input)?;
    let scale = tagged & 7;
    let value = if scale == RAW {
        if input.len() < 8 {
            return Err(CodecError("truncated value"));
        }
        let (raw, rest) = input.split_at(8);
        *input = rest;
        f64::from_bits(u64::from_le_bytes(raw.try_into().unwrap()))
    } else if scale > u64::from(MAX_SCALE) {
        return Err(CodecError("bad value scale"));
    } else {
        unzigzag(tagged >> 3) as f64 / 10f64.powi(scale as i32)
    };
    Ok(Stored {
        ts_step,
        value,
        stamp: prev.stamp,
    })
}

/// The largest `e ≤ 9` such that every offset from `base` is a multiple of `10^e`.
fn common_exponent(base: i64, points: &[Point]) -> u32 {
    let mut exponent = 9;
    for p in points {
        // Unsigned, as in `encode_bytes`: an offset may exceed i64::MAX.
        let offset = p.ts.abs_diff(base);
        while exponent > 0 && offset % 10u64.pow(exponent) != 0 {
            exponent -= 1;
        }
    }
    exponent
}

/// Writes `value` relative to `prev` and answers its form (the tag's low bits).
fn put_value(out: &mut Vec<u8>, value: f64, prev: &mut Previous) -> u8 {
    for scale in 0..=MAX_SCALE {
        let factor = 10f64.powi(scale as i32);
        let scaled = value * factor;
        // Checked through the decoding path itself, so `-0.0` (which would come back as
        // `0.0`) and anything inexact fall through to the raw form.
        if scaled.fract() == 0.0
            && scaled.abs() < MAX_EXACT
            && ((scaled as i64) as f64 / factor).to_bits() == value.to_bits()
        {
            let scaled = scaled as i64;
            put_varint(out, zigzag(scaled.wrapping_sub(prev.decimal_base(scale))));
            prev.decimal = Some((scale, scaled));
            return scale as u8;
        }
    }
    let xor = value.to_bits() ^ prev.value_bits;
    let (leading, trailing) = if xor == 0 {
        (8, 0)
    } else {
        (
            (xor.leading_zeros() / 8) as u8,
            (xor.trailing_zeros() / 8) as u8,
        )
    };
    let bytes = xor.to_le_bytes();
    out.extend_from_slice(&bytes[usize::from(trailing)..usize::from(8 - leading)]);
    XOR_FORMS + xor_form(leading, trailing)
}

/// Numbers the pairs of zero-byte counts a 64-bit XOR can drop (`leading + trailing ≤ 8`),
/// 0..=44.
fn xor_form(leading: u8, trailing: u8) -> u8 {
    (0..leading).map(|l| 9 - l).sum::<u8>() + trailing
}

/// The zero-byte counts of an [`xor_form`] number, `None` past the last.
fn xor_zeros(form: u8) -> Option<(u8, u8)> {
    let mut first = 0;
    for leading in 0..=8 {
        let pairs = 9 - leading;
        if form < first + pairs {
            return Some((leading, form - first));
        }
        first += pairs;
    }
    None
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_byte(input: &mut &[u8]) -> Result<u8, CodecError> {
    let (&first, rest) = input.split_first().ok_or(CodecError("truncated"))?;
    *input = rest;
    Ok(first)
}

fn take_varint(input: &mut &[u8]) -> Result<u64, CodecError> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take_byte(input)?;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(CodecError("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000_000_000;

    #[test]
    fn a_minute_resolution_hour_is_small() {
        let base = 491_234 * HOUR;
        let points: Vec<Point> = (0..60)
            .map(|m| Point {
                ts: base + m * 60_000_000_000,
                value: 15.0 + (m as f64) * 0.17,
                stamp: 217_000_000_000 + m / 10,
            })
            .collect();
        let payload = encode(base, &points);
        // The first version took 420 bytes; now mostly a tag and the decimal's step (some of
        // these sums are not short decimals, and take their changed bytes).
        assert!(payload.len() < 300, "{} bytes", payload.len());
        assert_eq!(decode(base, &payload).unwrap(), points);
    }

    #[test]
    fn full_precision_readings_cost_a_tag_and_their_changed_bytes() {
        // W1's readings: a full-precision sine plus noise in thousandths, one a minute.
        let base = 491_234 * HOUR;
        let points: Vec<Point> = (0..60)
            .map(|m| Point {
                ts: base + m * 60_000_000_000,
                value: 20.0 + 5.0 * (m as f64 * 0.004_363).sin() + ((m * 37) % 1000) as f64 / 1e3,
                stamp: 217_000_000_000,
            })
            .collect();
        let bytes = encode(base, &points);
        // First version: 11 bytes a point (step, stamp, tag, 8 bytes).
        assert!(bytes.len() <= 60 * 8 + 16, "{} bytes", bytes.len());
        assert_eq!(decode(base, &bytes).unwrap(), points);
    }

    #[test]
    fn the_first_version_is_still_read() {
        // Written by the first version's encoder: 21.53, 0.1 + 0.2 and -0.0 at 0, 60 and 150 s
        // into an hour, the last with a later stamp.
        let base = 491_234 * HOUR;
        use base64::Engine as _;
        let written = base64::engine::general_purpose::STANDARD
            .decode("AQMJAIDoqePQDJKNAjwABzQzMzMzM9M/Wg4HAAAAAAAAAIA=")
            .unwrap();
        let points = decode(base, &written).unwrap();
        let bits: Vec<(i64, u64, i64)> = points
            .iter()
            .map(|p| (p.ts - base, p.value.to_bits(), p.stamp))
            .collect();
        assert_eq!(
            bits,
            [
                (0, 21.53f64.to_bits(), 217_000_000_000),
                (60_000_000_000, (0.1f64 + 0.2).to_bits(), 217_000_000_000),
                (150_000_000_000, (-0.0f64).to_bits(), 217_000_000_007),
            ]
        );
    }

    #[test]
    fn every_xor_form_is_numbered_once() {
        let mut seen = std::collections::BTreeSet::new();
        for leading in 0..=8u8 {
            for trailing in 0..=8 - leading {
                let form = xor_form(leading, trailing);
                assert_eq!(xor_zeros(form), Some((leading, trailing)));
                assert!(seen.insert(form));
            }
        }
        assert_eq!(seen.len(), 45);
        assert_eq!(xor_zeros(45), None);
    }

    #[test]
    fn awkward_values_round_trip_bit_for_bit() {
        let base = 0;
        let values = [
            -0.0,
            0.1 + 0.2,
            f64::MAX,
            f64::MIN_POSITIVE,
            -1e-300,
            123456.123456,
            9.007199254740993e15,
        ];
        let points: Vec<Point> = values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                ts: i as i64 * 7,
                value,
                stamp: 1 << 40,
            })
            .collect();
        let decoded = decode(base, &encode(base, &points)).unwrap();
        for (a, b) in decoded.iter().zip(&points) {
            assert_eq!(a.value.to_bits(), b.value.to_bits());
            assert_eq!((a.ts, a.stamp), (b.ts, b.stamp));
        }
    }

    #[test]
    fn points_spanning_the_whole_timestamp_range_round_trip() {
        // Found by the cosmos_codec fuzz target: from a base before 1970, offsets and steps
        // pass i64::MAX, which the signed arithmetic overflowed on.
        let base = i64::MIN + 10;
        let points: Vec<Point> = [base, -1, 0, i64::MAX - 1, i64::MAX]
            .iter()
            .map(|&ts| Point {
                ts,
                value: 0.5,
                stamp: 1,
            })
            .collect();
        assert_eq!(decode(base, &encode(base, &points)).unwrap(), points);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(0, &[1u8, 200, 1, 0]).is_err());
        assert!(decode(0, &[9u8, 0, 0]).is_err());
        // A value form past the last XOR form.
        assert!(decode(0, &[2u8, 1, 0, 60]).is_err());
        let good = encode(
            0,
            &[Point {
                ts: 5,
                value: 1.5,
                stamp: 3,
            }],
        );
        let mut bytes = good;
        bytes.push(0);
        assert!(decode(0, &bytes).is_err());
        bytes.truncate(bytes.len() - 3);
        assert!(decode(0, &bytes).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(
            mut offsets in prop::collection::btree_set(0i64..HOUR, 0..200),
            values in prop::collection::vec(any::<f64>().prop_filter("finite", |v| v.is_finite()), 200),
            stamps in prop::collection::vec(1i64..(1 << 45), 200),
            base_hour in 0i64..1_000_000,
        ) {
            let base = base_hour * HOUR;
            let points: Vec<Point> = std::mem::take(&mut offsets)
                .into_iter()
                .enumerate()
                .map(|(i, off)| Point { ts: base + off, value: values[i], stamp: stamps[i] })
                .collect();
            let decoded = decode(base, &encode(base, &points)).unwrap();
            prop_assert_eq!(decoded.len(), points.len());
            for (a, b) in decoded.iter().zip(&points) {
                prop_assert_eq!((a.ts, a.stamp, a.value.to_bits()), (b.ts, b.stamp, b.value.to_bits()));
            }
        }
    }
}
