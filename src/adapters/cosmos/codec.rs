//! A bucket's points inside a Cosmos DB document: the shared binary form
//! ([`crate::adapters::point_codec`]) as one base64 string, the cheapest way JSON carries bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::adapters::point_codec;
pub use crate::adapters::point_codec::CodecError;
use crate::domain::series_day::Point;

/// Encodes sorted, unique points of a bucket that starts at `base` into the base64 payload.
pub fn encode(base: i64, points: &[Point]) -> String {
    STANDARD.encode(point_codec::encode(base, points))
}

/// Decodes a payload written by [`encode`] with the same `base`.
pub fn decode(base: i64, payload: &str) -> Result<Vec<Point>, CodecError> {
    let bytes = STANDARD
        .decode(payload)
        .map_err(|_| CodecError("not base64"))?;
    point_codec::decode(base, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_text_that_is_not_base64_is_an_error() {
        let points = [Point {
            ts: 7_200_000_000_000,
            value: 21.5,
            stamp: 9,
        }];
        let payload = encode(3_600_000_000_000, &points);
        assert_eq!(decode(3_600_000_000_000, &payload).unwrap(), points);
        assert!(decode(0, "not base64!").is_err());
    }
}
