//! The series-day store on Azure Cosmos DB, built so that this process cannot overrun the
//! container's provisioned throughput.
//!
//! * `layout`: a small header per series-day plus hour buckets (split into 2-minute slots for
//!   fast reporters), partition key `/seriesId`; `codec`: the compact point form inside them.
//! * `store`: the [`SeriesDayStore`](crate::pipeline::ports::SeriesDayStore) port — per trigger
//!   batch, one header read per series-day not known pending and one log document per shard of
//!   a day for pending days; one read and one conditional write per touched bucket for days already summarized.
//! * `day_log`: appending to a day's log, and compacting it into segments before a read.
//! * `pending`: states read as pending, which stand in for header reads until near their due
//!   time.
//! * `client`: client construction (key or Microsoft Entra ID managed identity), container
//!   setup, and the gateway every request passes: budget, timeout, retries, classification.
//! * `keys`: the [`IdempotencyKeys`](crate::pipeline::ports::IdempotencyKeys) port, one
//!   document per key.
//! * `budget`: the per-instance request-unit token bucket with AIMD on 429 and a concurrency cap.
//! * `stats`: RU consumed, requests, 429s, retries.
//!
//! Tested against the SDK's in-memory emulator (throttling on, provisioned throughput) and its
//! fault injection: `tests/cosmos_*.rs`. Figures: `examples/cosmos_ru.rs`.

pub mod budget;
pub mod client;
pub mod codec;
mod day_log;
mod keys;
pub mod layout;
mod pending;
pub mod settings;
pub mod stats;
pub mod store;

pub use settings::{CosmosArgs, CosmosAuth, CosmosSettings};
pub use store::CosmosStore;
