//! Eventide: time-series observations ingested one piece at a time, kept per series and day, and
//! summarised into daily statistics at the end of the day.
//!
//! Layers (see docs/architecture.md): [`domain`] holds pure types and math; [`pipeline`] the use
//! cases over small port traits; [`adapters`] the backends; [`app`] builds the application from
//! its configuration, in one place; [`drivers`] expose it as the local runtime, the Functions
//! custom handler and the CLI.

pub mod adapters;
pub mod app;
pub mod domain;
pub mod drivers;
/// The fuzz targets' harnesses (docs/fuzzing.md); not part of the crate's interface.
#[doc(hidden)]
pub mod fuzzing;
pub mod infra_settings;
pub mod pipeline;
pub mod telemetry;
