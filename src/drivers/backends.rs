//! Choosing each port's backend by its own setting. With nothing set, every port uses the
//! embedded SQLite adapters, so any driver runs on a bare machine; any mix of backends is
//! configuration, not code.

use std::sync::Arc;

use anyhow::bail;

use crate::adapters::embedded::EmbeddedDb;
use crate::adapters::sql::sqlite::SqliteSink;
use crate::pipeline::ports::SummarySink;

/// Backend settings. Connection strings are secrets: they are never logged or echoed.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BackendArgs {
    /// Where daily summaries go: `sqlite:PATH` for a separate SQLite file; unset for the
    /// `daily_summary` table of the embedded database.
    #[arg(long, env = "EVENTIDE_SUMMARY_SINK", hide_env_values = true)]
    pub summary_sink: Option<String>,
}

/// The summary sink the settings ask for.
pub async fn summary_sink(
    args: &BackendArgs,
    embedded: &EmbeddedDb,
) -> anyhow::Result<Arc<dyn SummarySink>> {
    let Some(target) = args.summary_sink.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Arc::new(SqliteSink::new(embedded.clone())));
    };
    if let Some(path) = target.strip_prefix("sqlite:") {
        let db = EmbeddedDb::open(std::path::Path::new(path))?;
        return Ok(Arc::new(SqliteSink::new(db)));
    }
    let scheme = target.split([':', ';', '=']).next().unwrap_or("");
    bail!("EVENTIDE_SUMMARY_SINK: unsupported backend {scheme:?} (supported: sqlite:PATH)")
}
