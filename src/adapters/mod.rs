//! Backends for the pipeline's ports. Adapters never call each other; drivers wire them.

pub mod blob;
pub mod connection_string;
pub mod cosmos;
pub mod embedded;
pub mod point_codec;
pub mod servicebus;
pub mod sql;
pub mod stored_series;

use azure_core::credentials::Secret;

/// A secret setting (a key, a connection string) as a flag or app setting gives it: trimmed,
/// never empty, and from then on a [`Secret`], which `Debug` never shows.
pub fn secret_setting(text: &str) -> Result<Secret, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    Ok(Secret::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_settings_are_trimmed_never_empty_and_never_shown() {
        assert_eq!(secret_setting("  key==  ").unwrap().secret(), "key==");
        assert_eq!(secret_setting("   ").unwrap_err(), "is empty");
        let shown = format!("{:?}", secret_setting("hunter2").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
