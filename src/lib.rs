//! Eventide: time-series observations ingested one piece at a time, kept per series and day, and
//! summarised into daily statistics at the end of the day.
//!
//! Layers (see DESIGN.md): [`domain`] holds pure types and math; [`pipeline`] the use cases over
//! small port traits; [`adapters`] the backends; [`drivers`] wire them into the local runtime,
//! the Functions custom handler and the CLI.

pub mod adapters;
pub mod domain;
pub mod drivers;
pub mod pipeline;
