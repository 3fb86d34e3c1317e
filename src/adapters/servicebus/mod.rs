//! Azure Service Bus over its REST API: a small client of our own (see docs/decisions.md for why not
//! the legacy crate) and the queue adapter behind the pipeline's message ports.
//!
//! - [`auth`]: SAS from a connection string, or Microsoft Entra ID through `azure_identity`.
//! - [`client`]: the REST calls, each with a timeout and the shared retry policy.
//! - [`queue`]: one queue as a `MessageSender` and `MessageReceiver`.
//! - [`dead_letter`]: one queue's dead-letter sub-queue as a `QuarantineSource`, so operators
//!   list and replay what the broker dead-lettered.
//!
//! The queue settings this adapter assumes (duplicate detection on the summaries queue with a
//! window of at least two days, no sessions on the summaries queue, lock duration and maximum
//! delivery count) are listed in the README's "Service Bus" section. Tests run against a
//! loopback fake of the documented REST semantics (`testkit/src/fake_service_bus.rs`); live
//! tests against a real namespace run only when `EVENTIDE_LIVE_SERVICEBUS` is set.

pub mod auth;
pub mod client;
pub mod dead_letter;
pub mod queue;
mod wire;

pub use auth::{ConnectionString, Credential, SasKey};
pub use client::{
    ClientOptions, DeadLetterCause, LockRef, LockedMessage, ServiceBusClient, ServiceBusError,
    Settlement,
};
pub use dead_letter::DeadLetterQueue;
pub use queue::ServiceBusQueue;
pub use wire::{dead_letter_path, parse_rfc1123, rfc1123};
