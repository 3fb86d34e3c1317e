//! Drivers wire adapters into the pipeline and expose it: the local runtime, the demo and the
//! CLI.

pub mod backends;
pub mod cli;
pub mod config;
pub mod demo;
pub mod functions;
pub mod local;
pub mod quarantine;
pub mod timer_schedule;
