//! Subjects and directory keys.
//!
//! NetBIOS names may contain `.`, `*`, `>` and spaces, each of which means something in a
//! NATS subject (a token separator, wildcards) or is not allowed in a key-value key. Names
//! therefore never appear as they are: they are parsed as messaging names (which validates
//! length and characters and uppercases) and their bytes are hex-encoded. The only way to
//! build a subject or key here is from an [`EncodedName`].

use messenger_core::names::{parse_messaging_name, NameInputError};

/// The stream holding directed messages to hosts.
pub const STREAM: &str = "MESSENGER";
/// The stream holding the queues of users logged in nowhere. Apart from [`STREAM`] so that an
/// account can let a host consume any user's queue (users roam) but only its own host
/// messages: NATS permissions match whole subject tokens, and `host-<hex>` and `user-<hex>`
/// consumers of one stream could not be told apart by a wildcard.
pub const USER_STREAM: &str = "MESSENGER_USERS";
/// The prefix of a host's message subject; the encoded host name follows.
pub const HOST_SUBJECT_PREFIX: &str = "messenger.host.";
/// The prefix of a user's message subject: messages waiting for a user who is logged in
/// nowhere; the encoded user name follows.
pub const USER_SUBJECT_PREFIX: &str = "messenger.user.";
/// The directory bucket.
pub const DIRECTORY_BUCKET: &str = "messenger-names";
/// The stream holding broadcasts (`*`, `/DOMAIN`): kept apart from directed messages because
/// they are kept for a much shorter time.
pub const BROADCAST_STREAM: &str = "MESSENGER_BCAST";
/// The prefix of a workgroup's broadcast subject; the encoded workgroup name follows.
pub const WORKGROUP_SUBJECT_PREFIX: &str = "messenger.workgroup.";
/// The prefix of a message's receipt subject; the message id follows.
pub const RECEIPT_SUBJECT_PREFIX: &str = "messenger.receipt.";

/// The prefix of the reply subjects of the host `host` (`_INBOX_<hex>`): JetStream's answers
/// and the messages its consumers pull arrive there, so it must be the host's alone.
pub fn host_inbox_prefix(host: &EncodedName) -> String {
    format!("_INBOX_{}", host.hex())
}

/// The subject of `id`'s receipts: the id is 32 hex digits, so it adds exactly one token.
pub fn receipt_subject(id: &crate::wire::MessageId) -> String {
    format!("{RECEIPT_SUBJECT_PREFIX}{}", id.as_str())
}

/// A validated messaging name, hex-encoded: only `[0-9a-f]`, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncodedName {
    hex: String,
    display: String,
}

impl EncodedName {
    /// Validates `name` as a messaging name and encodes it.
    pub fn new(name: &str) -> Result<Self, NameInputError> {
        let parsed = parse_messaging_name(name)?;
        let bytes = parsed.name_bytes();
        let mut hex = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            hex.push_str(&format!("{b:02x}"));
        }
        Ok(Self {
            hex,
            display: String::from_utf8_lossy(bytes).into_owned(),
        })
    }

    /// The encoded form.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The name as parsed (uppercase, no padding), for messages to people.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The subject that carries messages to the host with this name.
    pub fn host_subject(&self) -> String {
        format!("{HOST_SUBJECT_PREFIX}{}", self.hex)
    }

    /// The durable consumer name of the host with this name.
    pub fn host_consumer(&self) -> String {
        format!("host-{}", self.hex)
    }

    /// The subject that carries messages to the user with this name while they are logged in
    /// nowhere.
    pub fn user_subject(&self) -> String {
        format!("{USER_SUBJECT_PREFIX}{}", self.hex)
    }

    /// The durable consumer name of the user with this name: it exists from the user's first
    /// login on, and whichever host they are logged in on pulls from it.
    pub fn user_consumer(&self) -> String {
        format!("user-{}", self.hex)
    }

    /// The subject that carries broadcasts to the workgroup with this name.
    pub fn workgroup_subject(&self) -> String {
        format!("{WORKGROUP_SUBJECT_PREFIX}{}", self.hex)
    }

    /// The durable consumer through which the host with this name receives its workgroup's
    /// broadcasts.
    pub fn broadcast_consumer(&self) -> String {
        format!("bcast-{}", self.hex)
    }

    /// The directory key of a messaging name.
    pub fn name_key(&self) -> String {
        format!("name.{}", self.hex)
    }

    /// The directory key of a host: its IPv4 addresses, so that a host can tell whether a name
    /// is held on its own subnet.
    pub fn host_key(&self) -> String {
        format!("host.{}", self.hex)
    }

    /// The directory key of a user: where they are logged in now.
    pub fn user_key(&self) -> String {
        format!("user.{}", self.hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_plain_token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }

    #[test]
    fn hostile_names_cannot_inject_subject_tokens_or_wildcards() {
        for name in ["A.B", "*", ">", "X Y", "A.*.>", "..", "BOB.>"] {
            let Ok(encoded) = EncodedName::new(name) else {
                continue;
            };
            assert!(
                is_plain_token(encoded.hex()),
                "{name:?} -> {}",
                encoded.hex()
            );
            let subject = encoded.host_subject();
            // Exactly the prefix's tokens plus one: the name adds no separator.
            assert_eq!(subject.split('.').count(), 3, "{subject}");
            assert!(!subject.contains('*') && !subject.contains('>') && !subject.contains(' '));
            assert_eq!(encoded.name_key().split('.').count(), 2);
            assert_eq!(encoded.user_subject().split('.').count(), 3);
            assert_eq!(encoded.workgroup_subject().split('.').count(), 3);
        }
    }

    #[test]
    fn separators_and_spaces_encode_to_one_literal_token() {
        let dot = EncodedName::new("A.B").expect("dots are allowed in names");
        let space = EncodedName::new("X Y").expect("spaces are allowed in names");
        assert_eq!(dot.hex(), "412e42");
        assert_eq!(space.hex(), "582059");
        assert_eq!(dot.host_subject(), "messenger.host.412e42");
        assert_eq!(dot.name_key(), "name.412e42");
    }

    #[test]
    fn wildcards_are_not_names_at_all() {
        // Refused before encoding; were they not, hex would still make them literal.
        for name in ["*", ">", "A*", "B>", "A.*", "BOB.>"] {
            assert!(EncodedName::new(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn names_are_uppercased_before_encoding() {
        assert_eq!(
            EncodedName::new("bob").unwrap(),
            EncodedName::new("BOB").unwrap()
        );
        assert_eq!(EncodedName::new(" bob ").unwrap().display(), "BOB");
    }

    #[test]
    fn invalid_names_are_refused() {
        assert!(EncodedName::new("").is_err());
        assert!(EncodedName::new("ABCDEFGHIJKLMNOPQ").is_err());
        assert!(EncodedName::new("NÄME").is_err());
    }
}
