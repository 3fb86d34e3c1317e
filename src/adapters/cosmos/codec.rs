//! The compact form of a bucket's points inside a Cosmos DB document.
//!
//! Cosmos DB charges every read and write by document size, so a bucket stores its points as one
//! base64 string of a small binary form instead of a JSON array of objects (which would cost
//! about 60 bytes a point). Points are sorted by timestamp, so timestamps are stored as deltas in
//! the coarsest decimal unit (ns … s) that divides all of them; stamps as deltas (one ingest
//! stamps a whole chunk, so the delta is mostly 0); values that are short decimals (up to six
//! digits after the point, the usual sensor reading) as a scaled integer, anything else as the
//! raw 8 bytes. A minute-resolution hour of readings like `21.53` costs about 5 bytes a point.
//!
//! Every value round-trips bit for bit: the decimal form is used only when decoding it gives
//! back exactly the same `f64`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::domain::series_day::Point;

const VERSION: u8 = 1;
/// The tag of a value stored as its raw IEEE 754 bits.
const RAW: u64 = 7;
/// The most digits after the decimal point a value is tried with.
const MAX_SCALE: u32 = 6;
/// Values whose scaled integer is at most this large are exact in an `f64`.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0; // 2^53

/// A payload that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("bucket payload is not valid: {0}")]
pub struct CodecError(&'static str);

/// Encodes sorted, unique points of a bucket that starts at `base` (ns since the epoch; every
/// point is at or after it) into the base64 payload.
pub fn encode(base: i64, points: &[Point]) -> String {
    STANDARD.encode(encode_bytes(base, points))
}

/// Decodes a payload written by [`encode`] with the same `base`.
pub fn decode(base: i64, payload: &str) -> Result<Vec<Point>, CodecError> {
    let bytes = STANDARD
        .decode(payload)
        .map_err(|_| CodecError("not base64"))?;
    decode_bytes(base, &bytes)
}

fn encode_bytes(base: i64, points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + points.len() * 6);
    out.push(VERSION);
    put_varint(&mut out, points.len() as u64);
    let exponent = common_exponent(base, points);
    out.push(exponent as u8);
    let unit = 10u64.pow(exponent);
    let (mut prev_ts, mut prev_stamp) = (base, 0i64);
    for p in points {
        // Unsigned: from a base before 1970 to a point after it, the step may pass i64::MAX.
        put_varint(&mut out, p.ts.abs_diff(prev_ts) / unit);
        put_varint(&mut out, zigzag(p.stamp.wrapping_sub(prev_stamp)));
        put_value(&mut out, p.value);
        prev_ts = p.ts;
        prev_stamp = p.stamp;
    }
    out
}

fn decode_bytes(base: i64, bytes: &[u8]) -> Result<Vec<Point>, CodecError> {
    let mut input = bytes;
    if take_byte(&mut input)? != VERSION {
        return Err(CodecError("unknown version"));
    }
    let count = take_varint(&mut input)?;
    // Each point takes at least three bytes: a bad count cannot make us allocate much.
    if count > input.len() as u64 {
        return Err(CodecError("count larger than the payload"));
    }
    let exponent = u32::from(take_byte(&mut input)?);
    if exponent > 9 {
        return Err(CodecError("bad time unit"));
    }
    let unit = 10u64.pow(exponent);
    let mut points = Vec::with_capacity(count as usize);
    let (mut ts, mut stamp) = (base, 0i64);
    for i in 0..count {
        let delta = take_varint(&mut input)?
            .checked_mul(unit)
            .ok_or(CodecError("timestamp out of range"))?;
        if i > 0 && delta == 0 {
            return Err(CodecError("timestamps not increasing"));
        }
        ts = ts
            .checked_add_unsigned(delta)
            .ok_or(CodecError("timestamp out of range"))?;
        stamp = stamp.wrapping_add(unzigzag(take_varint(&mut input)?));
        let value = take_value(&mut input)?;
        points.push(Point { ts, value, stamp });
    }
    if !input.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(points)
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

fn put_value(out: &mut Vec<u8>, value: f64) {
    for scale in 0..=MAX_SCALE {
        let factor = 10f64.powi(scale as i32);
        let scaled = value * factor;
        // Checked through the decoding path itself, so `-0.0` (which would come back as
        // `0.0`) and anything inexact fall through to the raw form.
        if scaled.fract() == 0.0
            && scaled.abs() < MAX_EXACT
            && ((scaled as i64) as f64 / factor).to_bits() == value.to_bits()
        {
            put_varint(out, (zigzag(scaled as i64) << 3) | u64::from(scale));
            return;
        }
    }
    put_varint(out, RAW);
    out.extend_from_slice(&value.to_bits().to_le_bytes());
}

fn take_value(input: &mut &[u8]) -> Result<f64, CodecError> {
    let tagged = take_varint(input)?;
    let scale = tagged & 7;
    if scale == RAW {
        if input.len() < 8 {
            return Err(CodecError("truncated value"));
        }
        let (raw, rest) = input.split_at(8);
        *input = rest;
        return Ok(f64::from_bits(u64::from_le_bytes(raw.try_into().unwrap())));
    }
    if scale > u64::from(MAX_SCALE) {
        return Err(CodecError("bad value scale"));
    }
    let scaled = unzigzag(tagged >> 3) as f64;
    Ok(scaled / 10f64.powi(scale as i32))
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
        assert!(payload.len() < 480, "{} bytes", payload.len());
        assert_eq!(decode(base, &payload).unwrap(), points);
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
        assert!(decode(0, "not base64!").is_err());
        assert!(decode(0, &STANDARD.encode([1u8, 200, 1, 0])).is_err());
        assert!(decode(0, &STANDARD.encode([9u8, 0, 0])).is_err());
        let good = encode(
            0,
            &[Point {
                ts: 5,
                value: 1.5,
                stamp: 3,
            }],
        );
        let mut bytes = STANDARD.decode(&good).unwrap();
        bytes.push(0);
        assert!(decode(0, &STANDARD.encode(&bytes)).is_err());
        bytes.truncate(bytes.len() - 3);
        assert!(decode(0, &STANDARD.encode(&bytes)).is_err());
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
