//! Choosing each port's backend by its own setting. With nothing set, every port uses the
//! embedded SQLite adapters, so any driver runs on a bare machine; any mix of backends is
//! configuration, not code.

use std::sync::Arc;

use anyhow::bail;

use crate::adapters::cosmos::{CosmosArgs, CosmosStore};
use crate::adapters::embedded::EmbeddedDb;
use crate::adapters::sql::sqlite::SqliteSink;
use crate::pipeline::ports::{SeriesDayStore, SummarySink};

/// Backend settings. Connection strings are secrets: they are never logged or echoed.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BackendArgs {
    /// Where daily summaries go: `sqlite:PATH` for a separate SQLite file; unset for the
    /// `daily_summary` table of the embedded database.
    #[arg(long, env = "EVENTIDE_SUMMARY_SINK", hide_env_values = true)]
    pub summary_sink: Option<String>,
    /// Where series-day documents live: `embedded` (the default) or `cosmos` (Azure Cosmos DB,
    /// configured by the `EVENTIDE_COSMOS_*` settings).
    #[arg(long, env = "EVENTIDE_SERIES_DAY_STORE")]
    pub series_day_store: Option<String>,
    #[command(flatten)]
    pub cosmos: CosmosArgs,
}

/// The series-day store the settings ask for; `embedded` is used when none is chosen.
pub async fn series_day_store(
    args: &BackendArgs,
    embedded: Arc<dyn SeriesDayStore>,
) -> anyhow::Result<Arc<dyn SeriesDayStore>> {
    match args.series_day_store.as_deref().unwrap_or("embedded") {
        "" | "embedded" => Ok(embedded),
        "cosmos" => {
            let Some(settings) = args.cosmos.settings().map_err(anyhow::Error::msg)? else {
                bail!("EVENTIDE_SERIES_DAY_STORE=cosmos needs EVENTIDE_COSMOS_ENDPOINT");
            };
            Ok(Arc::new(CosmosStore::connect(&settings).await?))
        }
        other => bail!(
            "EVENTIDE_SERIES_DAY_STORE: unsupported backend {other:?} (supported: embedded, cosmos)"
        ),
    }
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
