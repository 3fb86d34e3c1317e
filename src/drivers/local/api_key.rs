//! The local API's key: when `EVENTIDE_API_KEY` is set, every request must carry it in the
//! `X-API-Key` header, or it is answered 401 before any route runs. The local API has no other
//! protection, so it may listen beyond loopback only with a key (see
//! `RuntimeConfig::check_exposure`).
//!
//! The comparison takes the same time whatever the guess: both sides are hashed with SHA-256
//! (so neither the length nor a common prefix shows) and the digests are compared byte for byte
//! without stopping at the first difference.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use azure_core::credentials::Secret;
use sha2::{Digest, Sha256};

use crate::drivers::reply::ApiError;

/// The header the key travels in.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// The expected key, kept only as its digest.
pub struct ApiKey {
    digest: [u8; 32],
}

impl ApiKey {
    pub fn new(key: &Secret) -> Self {
        Self {
            digest: Sha256::digest(key.secret().as_bytes()).into(),
        }
    }

    /// Whether `offered` is the key, in time independent of where they differ.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let offered: [u8; 32] = Sha256::digest(offered).into();
        let difference = self
            .digest
            .iter()
            .zip(offered.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // Read through black_box so the fold cannot be cut short as an optimisation.
        std::hint::black_box(difference) == 0
    }
}

/// Lets a request through only with the key.
pub async fn require(State(key): State<Arc<ApiKey>>, request: Request, next: Next) -> Response {
    let offered = request.headers().get(API_KEY_HEADER);
    if offered.is_some_and(|v| key.matches(v.as_bytes())) {
        return next.run(request).await;
    }
    ApiError::unauthorized(format!(
        "this API requires its key in the {API_KEY_HEADER} header"
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_itself_matches() {
        let key = ApiKey::new(&Secret::new("s3cret-key"));
        assert!(key.matches(b"s3cret-key"));
        for other in [&b""[..], b"s3cret-ke", b"s3cret-key ", b"S3CRET-KEY", b"x"] {
            assert!(!key.matches(other), "{other:?}");
        }
    }
}
