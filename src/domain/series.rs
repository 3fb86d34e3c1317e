//! The name of a series, checked once where it enters the process.
//!
//! A series name becomes a queue SessionId, part of a MessageId, a Cosmos DB partition key and
//! a SQL key column, so every layer relies on the same rules. Holding it as a [`SeriesId`], which
//! can only be made by [`SeriesId::parse`] (or by deserializing, which parses), lets the code
//! behind the edges trust a name instead of checking it again.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// Longest series name accepted, in characters. The summary tables' key column is sized for it
/// and `summarize:{series}:{day}:{epoch}` stays within a MessageId's 128 characters up to epoch
/// 999,999 (beyond, the id is a digest: `SummarizeRequest::message_id`).
pub const MAX_SERIES_CHARS: usize = 100;

/// Why a text is not a series name; the message tells the producer what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("series must be 1-{MAX_SERIES_CHARS} characters, got {0}")]
    Length(usize),
    #[error("series contains {0:?}; allowed are letters, digits and . _ - : /")]
    Character(char),
}

/// A valid series name: 1–100 characters, letters, digits and `._-:/`. Serializes as the plain
/// string, so wire formats and stored documents do not change.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct SeriesId(String);

impl SeriesId {
    /// Applies the naming rules; the only way to make a `SeriesId` from text.
    pub fn parse(text: &str) -> Result<Self, SeriesError> {
        check(text)?;
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(text: &str) -> Result<(), SeriesError> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_SERIES_CHARS {
        return Err(SeriesError::Length(chars));
    }
    match text
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/')))
    {
        Some(bad) => Err(SeriesError::Character(bad)),
        None => Ok(()),
    }
}

/// Takes the string over without copying it (decoded messages and stored rows own theirs).
impl TryFrom<String> for SeriesId {
    type Error = SeriesError;

    fn try_from(text: String) -> Result<Self, SeriesError> {
        check(&text)?;
        Ok(Self(text))
    }
}

/// Gives the name back without copying it (for a SessionId, say).
impl From<SeriesId> for String {
    fn from(id: SeriesId) -> String {
        id.0
    }
}

/// Shown as the quoted name, like the string it stands for, so error messages and test
/// failures read the same as before series names had their own type.
impl fmt::Debug for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The bare name; width and alignment apply as to a string, so tables line up.
impl fmt::Display for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl Serialize for SeriesId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_series_names_are_letters_too() {
        SeriesId::parse("température/zürich:室温").unwrap();
        let long = "x".repeat(101);
        assert_eq!(SeriesId::parse(&long), Err(SeriesError::Length(101)));
        SeriesId::parse(&"ü".repeat(100)).unwrap();
    }

    #[test]
    fn each_rule_has_its_own_reason() {
        assert_eq!(
            SeriesId::parse("").unwrap_err().to_string(),
            "series must be 1-100 characters, got 0"
        );
        assert_eq!(
            SeriesId::parse("a b").unwrap_err().to_string(),
            "series contains ' '; allowed are letters, digits and . _ - : /"
        );
    }

    #[test]
    fn serde_is_the_plain_string_and_deserializing_validates() {
        let id = SeriesId::parse("plant-1/temp").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""plant-1/temp""#);
        assert_eq!(
            serde_json::from_str::<SeriesId>(r#""plant-1/temp""#).unwrap(),
            id
        );
        let bad = serde_json::from_str::<SeriesId>(r#""a b""#).unwrap_err();
        assert!(bad.to_string().contains("series contains ' '"), "{bad}");
        assert_eq!(id.to_string(), "plant-1/temp");
        assert_eq!(format!("{id:<14}|"), "plant-1/temp  |");
        assert_eq!(format!("{id:?}"), r#""plant-1/temp""#);
        assert_eq!(id.as_str(), "plant-1/temp");
    }
}
