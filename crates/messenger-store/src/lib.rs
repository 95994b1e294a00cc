//! The Messenger service's durable state: the inbox of received messages and the table of
//! added messaging names, in one SQLite database in WAL mode.
//!
//! A message is acknowledged to its sender only once it is committed with `synchronous =
//! FULL`, so an acknowledged message survives a crash of the daemon, the OS or the power.
//! [`GroupCommitter`] keeps that affordable under load by sharing each commit among all the
//! messages waiting for it.
//!
//! The inbox keeps text as received (decoded, not sanitized); display paths sanitize.
#![forbid(unsafe_code)]

mod committer;
mod error;
mod schema;
mod store;

pub use committer::{CommitStats, Done, GroupCommitter, QUEUE_CAPACITY};
pub use error::{ErrorKind, StoreError};
pub use messenger_core::{
    InboxQuery, NameKind, NameRecord, NewMessage, StoredMessage, TransportKind,
};
pub use store::{ExpiredMessage, PrunePlan, Store, BUSY_TIMEOUT};
