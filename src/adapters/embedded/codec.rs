//! How an hour row keeps its points in its `points` BLOB, by the row's `codec` column:
//! * [`TAGGED`], written since schema 6: the shared compact form (`adapters::point_codec`),
//!   relative to the hour's start — about 8 bytes a full-precision reading, 2 a short decimal;
//! * [`RAW`], rows written before: 24 bytes a point (timestamp, value bits, stamp), little
//!   endian, sorted by timestamp.
//!
//! At 24 bytes a point a minute-resolution hour (1,440 bytes) did not fit in a 4 KB page beside
//! its key, so SQLite gave every hour row an overflow page of its own, and every rewrite of an
//! hour wrote two pages to the WAL and, later, to the file.

use crate::adapters::point_codec;
use crate::domain::series_day::Point;

/// The `codec` of rows written before schema 6.
pub const RAW: i64 = 1;
/// The `codec` written now.
pub const TAGGED: i64 = 2;

const RAW_POINT_BYTES: usize = 24;

/// Encodes sorted, unique points of the hour that starts at `base` (UTC ns), as [`TAGGED`].
pub fn encode(base: i64, points: &[Point]) -> Vec<u8> {
    point_codec::encode(base, points)
}

/// Decodes a row's points by its `codec`; what does not decode is reported, never guessed at.
pub fn decode(codec: i64, base: i64, bytes: &[u8]) -> Result<Vec<Point>, String> {
    match codec {
        TAGGED => point_codec::decode(base, bytes).map_err(|e| e.to_string()),
        RAW => decode_raw(bytes),
        other => Err(format!("stored points use an unknown codec {other}")),
    }
}

/// Points as rows written before schema 6 hold them: what tests put in place of such a row.
#[cfg(test)]
pub fn encode_raw(points: &[Point]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(points.len() * RAW_POINT_BYTES);
    for p in points {
        raw.extend_from_slice(&p.ts.to_le_bytes());
        raw.extend_from_slice(&p.value.to_bits().to_le_bytes());
        raw.extend_from_slice(&p.stamp.to_le_bytes());
    }
    raw
}

fn decode_raw(bytes: &[u8]) -> Result<Vec<Point>, String> {
    if !bytes.len().is_multiple_of(RAW_POINT_BYTES) {
        return Err(format!(
            "stored points blob has {} bytes, not a multiple of {RAW_POINT_BYTES}",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(RAW_POINT_BYTES)
        .map(|c| {
            let word = |i: usize| <[u8; 8]>::try_from(&c[i * 8..i * 8 + 8]).expect("8-byte slice");
            Point {
                ts: i64::from_le_bytes(word(0)),
                value: f64::from_bits(u64::from_le_bytes(word(1))),
                stamp: i64::from_le_bytes(word(2)),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<Point> {
        vec![
            Point {
                ts: 3_600_000_000_000,
                value: -0.0,
                stamp: 1,
            },
            Point {
                ts: 3_600_000_000_001,
                value: 1e-300,
                stamp: i64::MAX,
            },
        ]
    }

    #[test]
    fn tagged_rows_round_trip_bit_for_bit() {
        let points = points();
        let decoded = decode(
            TAGGED,
            3_600_000_000_000,
            &encode(3_600_000_000_000, &points),
        );
        let decoded = decoded.unwrap();
        assert_eq!(decoded[0].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(decoded, points);
    }

    #[test]
    fn rows_written_before_schema_6_still_decode() {
        let points = points();
        let raw = encode_raw(&points);
        assert_eq!(decode(RAW, 0, &raw).unwrap(), points);
        assert!(decode(RAW, 0, &[0; 25]).is_err());
        assert!(decode(3, 0, &raw).is_err());
    }
}
