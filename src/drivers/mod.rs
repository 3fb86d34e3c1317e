//! Drivers wire adapters into the pipeline and expose it: the local runtime and the CLI.

pub mod local;
