//! What a directed message looks like in the stream, and the checks on what is read back.

use serde::{Deserialize, Serialize};

use messenger_core::config::{DEFAULT_MAX_RECEIVE_LEN, WINDOWS_MAX_MESSAGE_LEN};

use crate::subject::EncodedName;

/// Longest text, in characters, a message may carry: the same as the longest message this
/// service takes over NetBIOS by default.
pub const MAX_TEXT_CHARS: usize = DEFAULT_MAX_RECEIVE_LEN;
/// Longest text without `/LONG`: what Windows' NET SEND allows.
pub const CLASSIC_TEXT_CHARS: usize = WINDOWS_MAX_MESSAGE_LEN;
/// Longest broadcast text, in characters: the Windows rule for `NET SEND *` and `/DOMAIN`,
/// the same as over the mailslot.
pub const BROADCAST_TEXT_CHARS: usize = netbios::mailslot::MAX_BROADCAST_TEXT_CHARS;
/// Longest expiry a message may carry, in seconds: a day, the longest `messenger send --time`
/// (`messenger_ipc::MAX_EXPIRE_SECS`); a longer one is refused as hostile.
pub const MAX_EXPIRES_IN_SECS: u64 = 24 * 60 * 60;
/// Largest payload read from the stream, in bytes: the longest text at four bytes a character
/// plus JSON escaping and the names, with room to spare. Anything larger is refused unread.
pub const MAX_PAYLOAD: usize = 8 * 1024;
/// Length of a message id: 128 random bits in hex.
pub const MESSAGE_ID_LEN: usize = 32;

/// A message id: 128 random bits as 32 lowercase hex digits, sent as `Nats-Msg-Id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

impl MessageId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; MESSAGE_ID_LEN / 2];
        getrandom::fill(&mut bytes).expect("the system's random source is readable");
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageId {
    type Error = WireError;

    fn try_from(s: String) -> Result<Self, WireError> {
        if s.len() == MESSAGE_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s))
        } else {
            Err(WireError::BadId)
        }
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> String {
        id.0
    }
}

/// A directed message as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireMessage {
    /// The id, also sent as `Nats-Msg-Id`.
    pub id: MessageId,
    /// The sender's name as signed.
    pub from: String,
    /// The sending host.
    pub from_host: String,
    /// The messaging name it is for.
    pub to: String,
    /// The text, UTF-8, line breaks as `\n`.
    pub text: String,
    /// Seconds after it is stored in the receiving inbox until it expires unless read
    /// (`messenger send --time`); absent for a message that does not expire. Relative, so
    /// that the hosts' clocks need not agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

impl WireMessage {
    /// The payload to publish.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a message of strings serializes")
    }

    /// Reads and checks a payload from the stream: every field is validated, as with a
    /// packet from the network.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(WireError::TooLarge(payload.len()));
        }
        let message: WireMessage =
            serde_json::from_slice(payload).map_err(|_| WireError::Malformed)?;
        for name in [&message.from, &message.from_host, &message.to] {
            EncodedName::new(name).map_err(|_| WireError::BadName)?;
        }
        let chars = message.text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(WireError::TextTooLong(chars));
        }
        if message.text.trim().is_empty() {
            return Err(WireError::Empty);
        }
        if message
            .expires_in_secs
            .is_some_and(|secs| secs == 0 || secs > MAX_EXPIRES_IN_SECS)
        {
            return Err(WireError::BadExpiry);
        }
        Ok(message)
    }
}

impl WireMessage {
    /// Checks a broadcast's text against [`BROADCAST_TEXT_CHARS`].
    pub fn check_broadcast_length(&self) -> Result<(), WireError> {
        match self.text.chars().count() {
            chars if chars > BROADCAST_TEXT_CHARS => Err(WireError::TextTooLong(chars)),
            _ => Ok(()),
        }
    }
}

/// How far a directed message got, as its receiving host reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptState {
    /// It is in the recipient's inbox.
    Delivered,
    /// Nobody read it before its expiry (`messenger send --time`).
    Expired,
    /// A recipient acknowledged it (dismissed or confirmed its notification, listed it, or
    /// had it shown on their terminal).
    Read,
}

/// Largest receipt payload read, in bytes: an id, a state and a host name fit in a tenth.
pub const MAX_RECEIPT_PAYLOAD: usize = 512;

/// A receipt, published by the receiving host on the message's receipt subject
/// ([`crate::subject::receipt_subject`]). Nobody stores it: a sender that waits has
/// subscribed before it published the message, and nobody else cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireReceipt {
    /// The message it is about.
    pub id: MessageId,
    /// How far it got.
    pub state: ReceiptState,
    /// The host reporting it.
    pub host: String,
}

impl WireReceipt {
    /// The payload to publish.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a receipt of strings serializes")
    }

    /// Reads and checks a receipt, as untrusted as any payload.
    pub fn decode(payload: &[u8]) -> Result<Self, WireError> {
        if payload.len() > MAX_RECEIPT_PAYLOAD {
            return Err(WireError::TooLarge(payload.len()));
        }
        let receipt: WireReceipt =
            serde_json::from_slice(payload).map_err(|_| WireError::Malformed)?;
        EncodedName::new(&receipt.host).map_err(|_| WireError::BadName)?;
        Ok(receipt)
    }
}

/// Why a payload read from the stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Larger than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes is too large")]
    TooLarge(usize),
    /// Not a message.
    #[error("payload is not a message")]
    Malformed,
    /// A message id that is not 32 hex digits.
    #[error("bad message id")]
    BadId,
    /// A name that is not a messaging name.
    #[error("bad name")]
    BadName,
    /// Text over [`MAX_TEXT_CHARS`].
    #[error("text of {0} characters is too long")]
    TextTooLong(usize),
    /// Empty text.
    #[error("empty text")]
    Empty,
    /// An expiry of zero or longer than [`MAX_EXPIRES_IN_SECS`].
    #[error("bad expiry")]
    BadExpiry,
    /// A message in a user's queue addressed to someone else.
    #[error("addressed to another recipient than its queue's")]
    WrongRecipient,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> WireMessage {
        WireMessage {
            id: MessageId::random(),
            from: "ALICE".into(),
            from_host: "HOSTA".into(),
            to: "BOB".into(),
            text: "hello".into(),
            expires_in_secs: None,
        }
    }

    #[test]
    fn a_message_round_trips() {
        let m = message();
        assert_eq!(WireMessage::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn an_expiry_is_carried_only_when_there_is_one_and_checked() {
        let m = message();
        assert!(!String::from_utf8(m.encode()).unwrap().contains("expires"));
        let mut m = message();
        m.expires_in_secs = Some(30);
        assert_eq!(WireMessage::decode(&m.encode()), Ok(m.clone()));
        for bad in [0, MAX_EXPIRES_IN_SECS + 1] {
            m.expires_in_secs = Some(bad);
            assert_eq!(WireMessage::decode(&m.encode()), Err(WireError::BadExpiry));
        }
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let (a, b) = (MessageId::random(), MessageId::random());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), MESSAGE_ID_LEN);
    }

    #[test]
    fn receipts_round_trip_and_hostile_ones_are_refused() {
        let r = WireReceipt {
            id: MessageId::random(),
            state: ReceiptState::Read,
            host: "HOSTB".into(),
        };
        assert_eq!(WireReceipt::decode(&r.encode()), Ok(r.clone()));
        assert!(String::from_utf8(r.encode())
            .unwrap()
            .contains(r#""state":"read""#));
        let mut bad = r.clone();
        bad.host = "A.>".into();
        assert_eq!(WireReceipt::decode(&bad.encode()), Err(WireError::BadName));
        assert_eq!(
            WireReceipt::decode(&vec![b' '; MAX_RECEIPT_PAYLOAD + 1]),
            Err(WireError::TooLarge(MAX_RECEIPT_PAYLOAD + 1))
        );
        let unknown = br#"{"id":"00000000000000000000000000000000","state":"burned","host":"H"}"#;
        assert_eq!(WireReceipt::decode(unknown), Err(WireError::Malformed));
    }

    #[test]
    fn hostile_payloads_are_refused() {
        assert_eq!(
            WireMessage::decode(&vec![b' '; MAX_PAYLOAD + 1]),
            Err(WireError::TooLarge(MAX_PAYLOAD + 1))
        );
        assert_eq!(WireMessage::decode(b"{"), Err(WireError::Malformed));
        let mut m = message();
        m.to = "A.>.*.TOO-LONG-FOR-NETBIOS".into();
        assert_eq!(WireMessage::decode(&m.encode()), Err(WireError::BadName));
        let mut m = message();
        m.text = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            WireMessage::decode(&m.encode()),
            Err(WireError::TextTooLong(MAX_TEXT_CHARS + 1))
        );
        let bad_id = br#"{"id":"0000000000000000000000000000000Z","from":"A","from_host":"H","to":"B","text":"t"}"#;
        assert_eq!(WireMessage::decode(bad_id), Err(WireError::Malformed));
        let extra = br#"{"id":"00000000000000000000000000000000","from":"A","from_host":"H","to":"B","text":"t","x":1}"#;
        assert_eq!(WireMessage::decode(extra), Err(WireError::Malformed));
    }
}
