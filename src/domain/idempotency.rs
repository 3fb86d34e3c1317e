//! The `Idempotency-Key` of an ingest request (the IETF httpapi convention) and the fingerprint
//! of the request it names.
//!
//! A client that retries sends the same key with every attempt. Eventide remembers the first
//! attempt's fingerprint and stamp under the key, so a retry is the same write as the first
//! attempt — a no-op if that one got through, however late the retry comes — and the key reused
//! for a different body is refused instead of being taken for a retry.

use sha2::{Digest, Sha256};

use super::parse::BodyFormat;

/// Longest key accepted, in characters: room for a UUID with a prefix, or a hash in hex.
pub const MAX_KEY_CHARS: usize = 128;

/// Why a header value is not an idempotency key; the message tells the client what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("Idempotency-Key must be 1-{MAX_KEY_CHARS} characters, got {0}")]
    Length(usize),
    #[error("Idempotency-Key contains {0:?}; allowed are ASCII letters, digits and . _ - :")]
    Character(char),
}

/// A valid key: 1–128 ASCII letters, digits and `._-:`. The header may carry it bare, as most
/// clients send it, or as the quoted string of the IETF draft's structured field; both forms
/// name the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value.
    pub fn parse(header: &str) -> Result<Self, KeyError> {
        let trimmed = header.trim();
        let text = trimmed
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(trimmed);
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS {
            return Err(KeyError::Length(chars));
        }
        match text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
        {
            Some(bad) => Err(KeyError::Character(bad)),
            None => Ok(Self(text.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request under a key must match for a later one to count as its retry: the body, byte
/// for byte, in the same format. Hex of a SHA-256.
pub fn fingerprint(format: BodyFormat, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{format:?}").as_bytes());
    hasher.update([0]);
    hasher.update(body);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_may_be_quoted() {
        let key = IdempotencyKey::parse("8e03978e-40d5-43e8-bc93-6894a57f9324").unwrap();
        assert_eq!(
            IdempotencyKey::parse("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"").unwrap(),
            key
        );
        assert_eq!(key.as_str(), "8e03978e-40d5-43e8-bc93-6894a57f9324");
        IdempotencyKey::parse(&"k".repeat(MAX_KEY_CHARS)).unwrap();
        assert_eq!(
            IdempotencyKey::parse(&"k".repeat(MAX_KEY_CHARS + 1)),
            Err(KeyError::Length(129))
        );
        assert_eq!(IdempotencyKey::parse(" "), Err(KeyError::Length(0)));
        assert_eq!(IdempotencyKey::parse("\"\""), Err(KeyError::Length(0)));
        assert_eq!(
            IdempotencyKey::parse("a,b"),
            Err(KeyError::Character(',')),
            "two headers joined by the host are not one key"
        );
        assert_eq!(IdempotencyKey::parse("ké"), Err(KeyError::Character('é')));
        assert_eq!(IdempotencyKey::parse("a/b"), Err(KeyError::Character('/')));
    }

    #[test]
    fn fingerprints_follow_the_bytes_and_the_format() {
        let a = fingerprint(BodyFormat::Json, b"[1]");
        assert_eq!(a, fingerprint(BodyFormat::Json, b"[1]"));
        assert_ne!(a, fingerprint(BodyFormat::Json, b"[1] "));
        assert_ne!(a, fingerprint(BodyFormat::Ndjson, b"[1]"));
        assert_eq!(a.len(), 64);
    }
}
