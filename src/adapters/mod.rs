//! Backends for the pipeline's ports. Adapters never call each other; drivers wire them.

pub mod blob;
pub mod connection_string;
pub mod cosmos;
pub mod embedded;
pub mod retry;
pub mod servicebus;
pub mod sql;
pub mod stored_series;
