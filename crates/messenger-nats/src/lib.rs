//! Organisation-wide delivery for the Messenger service over NATS JetStream.
//!
//! NetBIOS ends at the broadcast domain; this crate carries messages beyond it through an
//! existing NATS cluster with JetStream (Debian's nats-server 2.9 and newer):
//!
//! - [`config`]: the `[nats]` table, validated once into [`NatsSettings`].
//! - [`subject`]: subjects and directory keys, built only from validated, hex-encoded names,
//!   so no name can add a subject token or a wildcard.
//! - [`directory`]: a replicated key-value bucket mapping messaging names to the host that
//!   holds them; taking a name is `create`, refreshing is compare-and-set on the revision,
//!   and a dead host's names expire with the bucket's `max_age`.
//! - [`transport`]: directed messages published to the holding host's subject with a
//!   `Nats-Msg-Id` (JetStream drops retried duplicates), acknowledged by JetStream once on a
//!   quorum; a [`messenger_core::transport::Transport`] for the service's router.
//! - [`consumer`]: the receiving host's durable pull consumer, which commits each message to
//!   the inbox (de-duplicated by message id) before acknowledging it; and each user's queue
//!   (`messenger.user.<hex>`, durable consumer `user-<hex>`), where a message for a user
//!   logged in nowhere waits for the stream's retention (7 days by default) until the host
//!   they next log in on pulls it; and each host's consumer of its workgroup's broadcasts
//!   (stream `MESSENGER_BCAST`, `messenger.workgroup.<hex>`, kept an hour).
//!
//! - [`permissions`]: what one host may do on the cluster, as nats-server permissions.
//!
//! Everything read from NATS is as untrusted as a packet from the network.
#![forbid(unsafe_code)]

pub mod config;
pub mod connection;
pub mod consumer;
pub mod directory;
pub mod permissions;
pub mod subject;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod transport;
pub mod wire;

pub use config::{NatsConfigError, NatsSettings};
pub use connection::{Nats, NatsError};
pub use directory::{Directory, DirectoryError, Holding, HoldingKind};
pub use transport::NatsTransport;
