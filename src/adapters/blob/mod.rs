//! Azure Blob Storage: the quarantine of Azure mode, one blob per quarantined item or message.

pub mod account;
pub mod quarantine;

pub use account::{AccountKey, StorageConnection};
pub use quarantine::{BlobAccess, BlobQuarantine};
