//! The directory: which host holds which messaging name, and where each user is logged in.
//!
//! A replicated JetStream key-value bucket ([`DIRECTORY_BUCKET`]). A unique name is taken with
//! `create`, which fails when the key exists, so two hosts cannot both hold it: the loser gets
//! NERR_DuplicateName as with NBNS. The holder refreshes its entry with compare-and-set on the
//! revision it last wrote ([`Directory::refresh`]), which also tells it when the name was
//! taken from it. Servers before 2.11 have no per-key TTL, so entries expire with the bucket's
//! `max_age` ([`NatsSettings::directory_max_age`](crate::NatsSettings)); a host refreshes
//! several times per lifetime ([`NatsSettings::refresh_interval`](crate::NatsSettings)).
//! Values are host names and are validated as names when read: the bucket is as untrusted as
//! the network.

use std::net::Ipv4Addr;

use async_nats::jetstream::{kv, stream};

use bytes::Bytes;

use messenger_core::nerr::{ERROR_INVALID_NAME, NERR_DUPLICATE_NAME, NERR_NETWORK_ERROR};

use crate::connection::{Nats, NatsError};
use crate::subject::{EncodedName, DIRECTORY_BUCKET};

/// Most addresses a host records: hosts with more interfaces are rare, and the entry must
/// stay within [`MAX_DIRECTORY_MESSAGE`] (16 addresses take at most 255 bytes).
pub const MAX_HOST_ADDRESSES: usize = 16;
/// Versions of each key the bucket keeps: only the current holder matters.
pub const DIRECTORY_HISTORY: i64 = 1;
/// Largest directory message the server accepts, in bytes. The limit counts headers too: a
/// value is a host name of at most 15 bytes, but a compare-and-set carries
/// `Nats-Expected-Last-Subject-Sequence` and a delete marker `KV-Operation`, so the bound is
/// the headers with room to spare; anything larger is not ours and is refused.
pub const MAX_DIRECTORY_MESSAGE: i32 = 512;

/// A directory entry this host wrote, with the revision it last wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The name.
    pub name: EncodedName,
    /// The revision of this host's entry.
    pub revision: u64,
    /// Which entry: a messaging name this host holds, or a user logged in here.
    pub kind: HoldingKind,
}

/// What a [`Holding`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldingKind {
    /// A unique messaging name held by this host.
    Name,
    /// A user logged in on this host now.
    User,
}

impl Holding {
    fn key(&self) -> String {
        match self.kind {
            HoldingKind::Name => self.name.name_key(),
            HoldingKind::User => self.name.user_key(),
        }
    }
}

/// The directory bucket, as seen by one host.
#[derive(Clone)]
pub struct Directory {
    store: kv::Store,
    host: EncodedName,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("host", &self.host.display())
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Opens (creating if needed) the directory bucket for the host named `host`.
    ///
    /// The bucket's backing stream is created here rather than with async-nats'
    /// `create_key_value`, which first reads the account's limits in a form nats-server 2.9
    /// does not send. The stream is what a key-value bucket is on every server version: one
    /// subject per key under `$KV.<bucket>.`, the last [`DIRECTORY_HISTORY`] values per key,
    /// roll-ups allowed, deletes only as markers, direct reads from any replica.
    pub async fn open(nats: &Nats, host: EncodedName) -> Result<Self, DirectoryError> {
        let settings = nats.settings();
        nats.jetstream
            .get_or_create_stream(stream::Config {
                name: format!("KV_{DIRECTORY_BUCKET}"),
                description: Some(
                    "Messenger: messaging names and the hosts holding them".to_owned(),
                ),
                subjects: vec![format!("$KV.{DIRECTORY_BUCKET}.>")],
                max_messages_per_subject: DIRECTORY_HISTORY,
                max_age: settings.directory_max_age,
                max_message_size: MAX_DIRECTORY_MESSAGE,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: settings.replicas,
                ..Default::default()
            })
            .await
            .map_err(jetstream)?;
        let store = nats
            .jetstream
            .get_key_value(DIRECTORY_BUCKET)
            .await
            .map_err(jetstream)?;
        Ok(Self { store, host })
    }

    /// This host's name.
    pub fn host(&self) -> &EncodedName {
        &self.host
    }

    fn host_value(&self) -> Bytes {
        Bytes::copy_from_slice(self.host.display().as_bytes())
    }

    /// Takes the unique name `name` for this host. Fails with
    /// [`DirectoryError::Duplicate`] when another host holds it; a name this host already
    /// holds (after a restart) is taken back.
    pub async fn claim(&self, name: &str) -> Result<Holding, DirectoryError> {
        let name = EncodedName::new(name).map_err(|_| DirectoryError::InvalidName)?;
        let key = name.name_key();
        match self.store.create(&key, self.host_value()).await {
            Ok(revision) => Ok(Holding {
                name,
                revision,
                kind: HoldingKind::Name,
            }),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let entry = self.store.entry(&key).await.map_err(jetstream)?;
                match entry {
                    Some(entry) if parse_host(&entry.value).as_ref() == Some(&self.host) => {
                        let revision = self
                            .store
                            .update(&key, self.host_value(), entry.revision)
                            .await
                            .map_err(|_| DirectoryError::Duplicate {
                                name: name.display().to_owned(),
                            })?;
                        Ok(Holding {
                            name,
                            revision,
                            kind: HoldingKind::Name,
                        })
                    }
                    _ => Err(DirectoryError::Duplicate {
                        name: name.display().to_owned(),
                    }),
                }
            }
            Err(e) => Err(jetstream(e)),
        }
    }

    /// Refreshes an entry this host wrote (a name it holds, a user logged in here), so that
    /// it does not expire. Fails with [`DirectoryError::Lost`] when the entry is no longer
    /// the one this host wrote (it expired and another host took the name; the user logged
    /// in on another host since).
    pub async fn refresh(&self, holding: &mut Holding) -> Result<(), DirectoryError> {
        match self
            .store
            .update(holding.key(), self.host_value(), holding.revision)
            .await
        {
            Ok(revision) => {
                holding.revision = revision;
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(DirectoryError::Lost {
                    name: holding.name.display().to_owned(),
                })
            }
            Err(e) => Err(jetstream(e)),
        }
    }

    /// Gives up a name this host holds, unless another host holds it by now.
    pub async fn release(&self, holding: Holding) -> Result<(), DirectoryError> {
        self.store
            .delete_expect_revision(holding.key(), Some(holding.revision))
            .await
            .map_err(jetstream)
    }

    /// Records that `user` is logged in on this host now (the last login wins). The entry
    /// expires like a name unless [refreshed](Self::refresh) while the user stays.
    pub async fn set_user_here(&self, user: &str) -> Result<Holding, DirectoryError> {
        let user = EncodedName::new(user).map_err(|_| DirectoryError::InvalidName)?;
        let revision = self
            .store
            .put(user.user_key(), self.host_value())
            .await
            .map_err(jetstream)?;
        Ok(Holding {
            name: user,
            revision,
            kind: HoldingKind::User,
        })
    }

    /// Records that `user` is no longer logged in on this host, unless the directory has them
    /// on another host by now.
    pub async fn clear_user_here(&self, user: &str) -> Result<(), DirectoryError> {
        let user = EncodedName::new(user).map_err(|_| DirectoryError::InvalidName)?;
        let key = user.user_key();
        match self.store.entry(&key).await.map_err(jetstream)? {
            Some(entry)
                if entry.operation == kv::Operation::Put
                    && parse_host(&entry.value).as_ref() == Some(&self.host) =>
            {
                match self
                    .store
                    .delete_expect_revision(&key, Some(entry.revision))
                    .await
                {
                    Ok(()) => Ok(()),
                    // Another host wrote the key in the meantime: the user is there now.
                    Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
                    Err(e) => Err(jetstream(e)),
                }
            }
            _ => Ok(()),
        }
    }

    /// Records this host's IPv4 addresses (the last write wins; written again with every
    /// refresh, as the entry expires like the others).
    pub async fn set_addresses(&self, addresses: &[Ipv4Addr]) -> Result<(), DirectoryError> {
        let text = addresses
            .iter()
            .take(MAX_HOST_ADDRESSES)
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        self.store
            .put(self.host.host_key(), Bytes::from(text))
            .await
            .map(|_| ())
            .map_err(jetstream)
    }

    /// Removes this host's addresses (at shutdown).
    pub async fn clear_addresses(&self) -> Result<(), DirectoryError> {
        self.store
            .delete(self.host.host_key())
            .await
            .map_err(jetstream)
    }

    /// The addresses `host` recorded; empty when it recorded none, or the entry is not a
    /// list of addresses (the bucket is as untrusted as the network).
    pub async fn addresses(&self, host: &EncodedName) -> Result<Vec<Ipv4Addr>, DirectoryError> {
        let value = self.store.get(host.host_key()).await.map_err(jetstream)?;
        Ok(value.as_deref().map(parse_addresses).unwrap_or_default())
    }

    /// The host holding `name`, if the directory knows one.
    pub async fn holder(&self, name: &str) -> Result<Option<EncodedName>, DirectoryError> {
        let name = EncodedName::new(name).map_err(|_| DirectoryError::InvalidName)?;
        self.lookup(&name.name_key()).await
    }

    /// The host where `user` is logged in now, if any.
    pub async fn user_host(&self, user: &str) -> Result<Option<EncodedName>, DirectoryError> {
        let user = EncodedName::new(user).map_err(|_| DirectoryError::InvalidName)?;
        self.lookup(&user.user_key()).await
    }

    async fn lookup(&self, key: &str) -> Result<Option<EncodedName>, DirectoryError> {
        let value = self.store.get(key).await.map_err(jetstream)?;
        Ok(value.as_deref().and_then(parse_host))
    }
}

/// A host's addresses read from the bucket: space-separated IPv4 addresses, at most
/// [`MAX_HOST_ADDRESSES`]; anything else is no addresses.
fn parse_addresses(value: &[u8]) -> Vec<Ipv4Addr> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Vec::new();
    };
    let parsed: Option<Vec<Ipv4Addr>> = text
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect();
    match parsed {
        Some(addresses) if addresses.len() <= MAX_HOST_ADDRESSES => addresses,
        _ => Vec::new(),
    }
}

/// A host name read from the bucket, or `None` when it is not a valid name.
fn parse_host(value: &[u8]) -> Option<EncodedName> {
    let text = std::str::from_utf8(value).ok()?;
    let host = EncodedName::new(text).ok()?;
    // The stored form is the canonical one; anything else was not written by this crate.
    (host.display() == text).then_some(host)
}

fn jetstream(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Nats(NatsError::JetStream(e.to_string()))
}

/// Why a directory operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// Another host holds the name.
    #[error("{name} is held by another computer of the organisation")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// The name this host held has been taken by another.
    #[error("{name} is no longer held by this computer")]
    Lost {
        /// The name.
        name: String,
    },
    /// Not a messaging name.
    #[error("not a valid messaging name")]
    InvalidName,
    /// NATS failed.
    #[error(transparent)]
    Nats(#[from] NatsError),
}

impl DirectoryError {
    /// The NET error number the user is shown.
    pub fn nerr(&self) -> u32 {
        match self {
            DirectoryError::Duplicate { .. } | DirectoryError::Lost { .. } => NERR_DUPLICATE_NAME,
            DirectoryError::InvalidName => ERROR_INVALID_NAME,
            DirectoryError::Nats(_) => NERR_NETWORK_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_are_read_strictly() {
        let two = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 7)];
        assert_eq!(parse_addresses(b"10.0.0.1 192.0.2.7"), two);
        assert!(parse_addresses(b"").is_empty());
        for hostile in [&b"10.0.0.1 x"[..], b"10.0.0.256", b"\xff", b"10.0.0.1;rm"] {
            assert!(parse_addresses(hostile).is_empty(), "{hostile:?}");
        }
        let many = vec!["10.0.0.1"; MAX_HOST_ADDRESSES + 1].join(" ");
        assert!(parse_addresses(many.as_bytes()).is_empty());
    }
}
