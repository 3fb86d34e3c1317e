//! The summarize timer's schedule, read from `functions/summarize/function.json` so the local
//! runtime and the Functions host fire on the same NCRONTAB expression.

use std::path::Path;

use anyhow::{Context, anyhow};

use crate::domain::schedule::Schedule;

/// The repository's function.json, compiled in for binaries run away from a checkout.
const BUILT_IN: &str = include_str!("../../functions/summarize/function.json");

/// Reads the timer binding's schedule from `functions_dir/summarize/function.json` (falling back
/// to the built-in copy when the file is absent). A `%Setting%` schedule is resolved from the
/// environment, as the host resolves it from app settings.
pub fn summarize_schedule(functions_dir: &Path) -> anyhow::Result<Schedule> {
    let path = functions_dir.join("summarize").join("function.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BUILT_IN.to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    schedule_from_function_json(&text)
        .with_context(|| format!("reading the timer schedule of {}", path.display()))
}

fn schedule_from_function_json(text: &str) -> anyhow::Result<Schedule> {
    let json: serde_json::Value =
        serde_json::from_str(text).context("function.json is not JSON")?;
    let expression = json["bindings"]
        .as_array()
        .and_then(|bindings| bindings.iter().find(|b| b["type"] == "timerTrigger"))
        .and_then(|b| b["schedule"].as_str())
        .ok_or_else(|| anyhow!("no timerTrigger binding with a schedule"))?;
    let resolved = match expression
        .strip_prefix('%')
        .and_then(|s| s.strip_suffix('%'))
    {
        Some(setting) => std::env::var(setting).with_context(|| {
            format!("schedule refers to app setting {setting}, which is not set")
        })?,
        None => expression.to_string(),
    };
    resolved.parse::<Schedule>().map_err(|e| anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_schedule_parses() {
        let schedule = schedule_from_function_json(BUILT_IN).unwrap();
        assert_eq!(schedule.expression(), "0 */5 * * * *");
    }

    #[test]
    fn missing_binding_is_an_error() {
        let err =
            schedule_from_function_json(r#"{"bindings":[{"type":"httpTrigger"}]}"#).unwrap_err();
        assert!(err.to_string().contains("no timerTrigger"));
    }
}
