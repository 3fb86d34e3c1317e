//! Series names read back from storage.
//!
//! Adapters only ever write names that were parsed at the edge, so a stored name that does not
//! parse was written by something else (another tool, a manual edit). Reading it fails, naming
//! the text, rather than letting it travel on as if it were valid; retrying cannot fix it.

use crate::domain::series::{SeriesError, SeriesId};

/// A stored series name that breaks the naming rules.
#[derive(Debug, thiserror::Error)]
#[error("stored series {text:?} is not a valid series name: {reason}")]
pub struct InvalidStoredSeries {
    pub text: String,
    pub reason: SeriesError,
}

/// Parses a series name as read from a store or sink.
pub fn parse(text: &str) -> Result<SeriesId, InvalidStoredSeries> {
    SeriesId::parse(text).map_err(|reason| InvalidStoredSeries {
        text: text.to_owned(),
        reason,
    })
}
