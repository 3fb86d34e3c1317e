//! The compact form of stored points: 24 bytes each (timestamp, value bits, stamp), little
//! endian, sorted by timestamp. A day of per-minute data is 34 KB; a day of per-second data,
//! split into hour parts, is 86 KB per part.

use crate::domain::series_day::Point;

const POINT_BYTES: usize = 24;

pub fn encode(points: &[Point]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * POINT_BYTES);
    for p in points {
        out.extend_from_slice(&p.ts.to_le_bytes());
        out.extend_from_slice(&p.value.to_bits().to_le_bytes());
        out.extend_from_slice(&p.stamp.to_le_bytes());
    }
    out
}

/// Decodes a blob written by [`encode`]; a trailing partial record (never written by us) is
/// reported rather than guessed at.
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, String> {
    if !bytes.len().is_multiple_of(POINT_BYTES) {
        return Err(format!(
            "stored points blob has {} bytes, not a multiple of {POINT_BYTES}",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(POINT_BYTES)
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

    #[test]
    fn round_trip() {
        let points = vec![
            Point {
                ts: -5,
                value: -0.0,
                stamp: 1,
            },
            Point {
                ts: 1_764_028_800_000_000_000,
                value: 1e-300,
                stamp: i64::MAX,
            },
        ];
        let decoded = decode(&encode(&points)).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(decoded[1], points[1]);
        assert!(decode(&[0; 25]).is_err());
    }
}
