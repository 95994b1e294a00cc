//! The Messenger service's domain: what a message is, who it is for, which names may be held,
//! what policy admits, who may do what, and how text from the network is made safe to show.
//! No async runtime, no storage engine, no I/O but the account database lookups of
//! [`access::SystemAccounts`] (which may block, so async callers run them off their runtime):
//! the rest lives in the crates that wire this together.
#![forbid(unsafe_code)]
pub mod access;
pub mod config;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod message;
pub mod names;
pub mod nerr;
pub mod policy;
pub mod samba;
pub mod sanitize;
pub mod shown_time;
pub mod transport;

pub use message::{InboxQuery, NewMessage, StoredMessage, TransportKind};
pub use names::{MessagingName, NameKind, NameRecord, Owner};
pub use sanitize::{sanitize, sanitize_line};
