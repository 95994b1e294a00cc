//! What a received message is, as the inbox keeps it and the control socket carries it.
//!
//! Times are passed in (unix microseconds), never read here: the daemon stamps a message when
//! it accepts it and formats the time for people.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a message reached us. Kept with each message because the transports differ in trust:
/// a session message came over a TCP connection (the source address is real), a mailslot
/// broadcast is one UDP datagram whose source can be forged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TransportKind {
    /// NetBIOS session service (TCP 139), SMB commands 0xD0 or 0xD5/0xD7/0xD6.
    Session,
    /// NetBIOS datagram service (UDP 138), `\MAILSLOT\MESSNGR`.
    Mailslot,
    /// Sent by a local user through the control socket; never touched the network.
    Local,
    /// Organisation-wide delivery over NATS JetStream.
    Nats,
}

impl TransportKind {
    /// The stable lower-case name used in storage and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::Session => "session",
            TransportKind::Mailslot => "mailslot",
            TransportKind::Local => "local",
            TransportKind::Nats => "nats",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`TransportKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?}")]
pub struct UnknownTransport(pub String);

impl FromStr for TransportKind {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(TransportKind::Session),
            "mailslot" => Ok(TransportKind::Mailslot),
            "nats" => Ok(TransportKind::Nats),
            "local" => Ok(TransportKind::Local),
            other => Err(UnknownTransport(other.to_owned())),
        }
    }
}

/// A message accepted from a sender and not yet stored.
///
/// `text` is the decoded text (OEM code page to UTF-8, line breaks folded to `\n`), *not yet
/// sanitized*: the inbox keeps what was sent, and every display path runs
/// [`crate::sanitize::sanitize`] on the way out, so a better sanitizer later also protects old
/// messages. `raw` keeps the bytes exactly as received, for forensics of spam and for decoding
/// again with another code page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    /// When the message was accepted, in microseconds since the Unix epoch (UTC).
    pub received_at: i64,
    /// The originator as the sender stated it (SMB originator or mailslot `From`). Unverified.
    pub from: String,
    /// The destination as the sender stated it (a name of ours or the workgroup).
    pub to: String,
    /// The local user names the message is for. Empty means everyone: a message to the
    /// computer name or a broadcast, which every user sees in their inbox.
    pub recipients: Vec<String>,
    /// Where it came from, if it came over the network.
    pub source: Option<SocketAddr>,
    /// How it came.
    pub transport: TransportKind,
    /// The text, UTF-8, line breaks as `\n`.
    pub text: String,
    /// The message bytes as received, before decoding.
    pub raw: Vec<u8>,
}

impl NewMessage {
    /// Whether the message is for everyone rather than for named users.
    pub fn is_for_everyone(&self) -> bool {
        self.recipients.is_empty()
    }
}

/// A message as the inbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The inbox's id: unique, and increasing in the order messages were stored, never
    /// reused, so `after_id` paging never skips a message.
    pub id: i64,
    /// The message itself.
    pub message: NewMessage,
    /// Read state. For one user's view: whether that user has read it. For the view of all
    /// users: whether every addressed user has read it (for a message to everyone: whether
    /// anybody has).
    pub read: bool,
    /// Users who have read it. In one user's view only that user can appear here: users do
    /// not learn each other's reading habits.
    pub read_by: Vec<String>,
    /// When it expires unless someone reads it first, in microseconds since the Unix epoch;
    /// none for a message without an expiry (`messenger send --time`).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Whether it expired unread: it stays in the inbox, and is no longer shown as new.
    #[serde(default)]
    pub expired: bool,
}

/// Which messages to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxQuery {
    /// Whose inbox: messages addressed to this user plus messages for everyone, with this
    /// user's read flags. `None` lists every message (root's view).
    pub user: Option<String>,
    /// Only messages not yet read (by `user`; with no user, by some addressee).
    pub unread_only: bool,
    /// Only messages with an id greater than this (paging forward, or "what is new since").
    pub after_id: Option<i64>,
    /// At most this many, the oldest first.
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names_round_trip() {
        for t in [
            TransportKind::Session,
            TransportKind::Mailslot,
            TransportKind::Local,
        ] {
            assert_eq!(t.as_str().parse::<TransportKind>(), Ok(t));
        }
        assert!("smtp".parse::<TransportKind>().is_err());
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let m = StoredMessage {
            id: 7,
            message: NewMessage {
                received_at: 1_700_000_000_123_456,
                from: "HOSTA".into(),
                to: "BOB".into(),
                recipients: vec!["bob".into()],
                source: Some("[fe80::1]:139".parse().unwrap()),
                transport: TransportKind::Session,
                text: "Grüße\nzweite Zeile".into(),
                raw: vec![0, 0x14, 0xff],
            },
            read: true,
            read_by: vec!["bob".into()],
            expires_at: Some(1_700_000_060_123_456),
            expired: false,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"transport\":\"session\""), "{json}");
        let back: StoredMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}
