//! Messaging names: the `NAME<03>` entries the service holds, what kind each is, who owns it,
//! and how a name a user typed becomes a NetBIOS name.
//!
//! Windows knows three kinds ([MS-MSRP] 3.1.3, REFERENCE 7.1): the computer name (added when
//! the service starts, cannot be deleted), the names of logged-on users (added at logon if not
//! already in use), and aliases added with `NET NAME x /ADD`. We add an owner to each, so a
//! user can delete their own aliases and not other users' ones, and messages to an alias go to
//! its owner's inbox.

use netbios::name::{NameError, NetbiosName, MAX_NAME_CHARS};
use serde::{Deserialize, Serialize};

use crate::nerr;

/// Most messaging names one machine holds. Windows kept 256 per LANA ([MS-MSRP] notes <9>,
/// <13>); a shared Linux host has a name for every logged-in user and may need thousands, so
/// the bound is the name service's table size less the three names the host itself holds
/// (`COMPUTER<00>`, `COMPUTER<03>`, `WORKGROUP<00>`). Past it `NET NAME /ADD` fails with
/// [`nerr::NERR_TOO_MANY_NAMES`]; each user is also held to `max_names_per_user`.
pub const MAX_NAMES: usize = netbios::nbns::MAX_LOCAL_NAMES - 3;

/// What a messaging name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameKind {
    /// The computer name: messages go to every user; cannot be deleted (NERR 2278).
    Computer,
    /// A logged-in user's own name.
    User,
    /// An alias added with `NET NAME x /ADD`.
    Alias,
}

impl NameKind {
    /// The stable lower-case name used in storage and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            NameKind::Computer => "computer",
            NameKind::User => "user",
            NameKind::Alias => "alias",
        }
    }

    /// The kind named by [`NameKind::as_str`].
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "computer" => Some(NameKind::Computer),
            "user" => Some(NameKind::User),
            "alias" => Some(NameKind::Alias),
            _ => None,
        }
    }
}

/// The local account a name belongs to: messages to the name land in this user's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// Numeric user id; what permission checks compare (names can be reused, uids are what
    /// the kernel vouches for on the control socket).
    pub uid: u32,
    /// Login name; what the inbox is keyed by.
    pub name: String,
}

/// A messaging name held by this machine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessagingName {
    /// `NAME<03>`.
    pub name: NetbiosName,
    /// Computer, user or alias.
    pub kind: NameKind,
    /// Who receives messages to it (root for the computer name).
    pub owner: Owner,
}

impl MessagingName {
    /// The stored form, added at `added_at` (unix microseconds).
    pub fn to_record(&self, added_at: i64) -> NameRecord {
        NameRecord {
            name: display_name(&self.name),
            kind: self.kind,
            owner_uid: self.owner.uid,
            owner_name: self.owner.name.clone(),
            added_at,
        }
    }
}

/// A messaging name as the name table stores it and the control socket lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NameRecord {
    /// The name without padding or suffix, uppercase, e.g. `BOB`.
    pub name: String,
    /// Computer, user or alias.
    pub kind: NameKind,
    /// Owner's uid.
    pub owner_uid: u32,
    /// Owner's login name.
    pub owner_name: String,
    /// When it was added, unix microseconds.
    pub added_at: i64,
}

impl NameRecord {
    /// The in-memory form. Fails only if the stored name is not a valid messaging name.
    pub fn to_messaging_name(&self) -> Result<MessagingName, NameInputError> {
        Ok(MessagingName {
            name: parse_messaging_name(&self.name)?,
            kind: self.kind,
            owner: Owner {
                uid: self.owner_uid,
                name: self.owner_name.clone(),
            },
        })
    }
}

/// Why a name a user typed is not a messaging name; [`NameInputError::nerr`] gives the error
/// number `NET` prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameInputError {
    /// Nothing but spaces.
    #[error("the name is empty")]
    Empty,
    /// More than 15 characters.
    #[error("the name has {0} characters; messaging names have at most 15")]
    TooLong(usize),
    /// A character NetBIOS names may not contain (`\ / : * ? " < > |`, controls), or one
    /// outside ASCII.
    #[error("the name contains {0:?}, which messaging names may not contain")]
    InvalidCharacter(char),
}

impl NameInputError {
    /// The NET error number for this error. Windows XP refuses over-long names with
    /// ERROR_INVALID_PARAMETER ([MS-MSRP] note <11>) and names with forbidden characters
    /// with ERROR_INVALID_NAME.
    pub fn nerr(&self) -> u32 {
        match self {
            NameInputError::Empty | NameInputError::TooLong(_) => nerr::ERROR_INVALID_PARAMETER,
            NameInputError::InvalidCharacter(_) => nerr::ERROR_INVALID_NAME,
        }
    }
}

/// Turns a name a user typed (`bob`, `" Bob "`) into the messaging name `BOB<03>`: surrounding
/// white space dropped, ASCII uppercased as Windows does ([MS-MSRP] 2.2.2.1), at most 15
/// characters, no characters NetBIOS names forbid.
///
/// Only ASCII is accepted for now: a non-ASCII name must be converted to the OEM code page
/// first, and the code page is the daemon's configuration, not known here.
pub fn parse_messaging_name(input: &str) -> Result<NetbiosName, NameInputError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(NameInputError::Empty);
    }
    let chars = trimmed.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(NameInputError::TooLong(chars));
    }
    if let Some(bad) = trimmed.chars().find(|c| !c.is_ascii()) {
        return Err(NameInputError::InvalidCharacter(bad));
    }
    NetbiosName::messenger(trimmed).map_err(|e| match e {
        NameError::Empty => NameInputError::Empty,
        NameError::TooLong(n) => NameInputError::TooLong(n),
        NameError::InvalidCharacter(b) => NameInputError::InvalidCharacter(char::from(b)),
        // Scope errors cannot come from a bare name; report them as a bad parameter.
        _ => NameInputError::TooLong(chars),
    })
}

/// A name as users see it: no padding, no suffix, non-printable bytes as `\xNN`.
pub fn display_name(name: &NetbiosName) -> String {
    name.name_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_names_become_uppercase_messenger_names() {
        let n = parse_messaging_name(" bob ").unwrap();
        assert_eq!(n.suffix(), 0x03);
        assert_eq!(n.name_bytes(), b"BOB");
        assert_eq!(display_name(&n), "BOB");
        let n = parse_messaging_name("host-a.x").unwrap();
        assert_eq!(display_name(&n), "HOST-A.X");
        assert_eq!(
            display_name(&parse_messaging_name("abcdefghijklmno").unwrap()),
            "ABCDEFGHIJKLMNO"
        );
        // Inner spaces are allowed (Windows: "names containing spaces go in quotes").
        assert_eq!(display_name(&parse_messaging_name("a b").unwrap()), "A B");
    }

    #[test]
    fn bad_names_map_to_net_errors() {
        assert_eq!(parse_messaging_name("   ").unwrap_err().nerr(), 87);
        assert_eq!(
            parse_messaging_name("abcdefghijklmnop").unwrap_err(),
            NameInputError::TooLong(16)
        );
        assert_eq!(
            parse_messaging_name("abcdefghijklmnop").unwrap_err().nerr(),
            87
        );
        for bad in [
            "a*b", "*", "a/b", "a\\b", "a:b", "a?b", "a\"b", "a<b", "a>b", "a|b", "a\u{1b}",
        ] {
            let err = parse_messaging_name(bad).unwrap_err();
            assert_eq!(err.nerr(), 123, "{bad:?}");
        }
        assert_eq!(
            parse_messaging_name("jörg").unwrap_err(),
            NameInputError::InvalidCharacter('ö')
        );
        for code in [87, 123] {
            assert!(nerr::text(code).is_some());
        }
    }

    #[test]
    fn records_round_trip() {
        let m = MessagingName {
            name: parse_messaging_name("alias1").unwrap(),
            kind: NameKind::Alias,
            owner: Owner {
                uid: 1000,
                name: "bob".into(),
            },
        };
        let r = m.to_record(42);
        assert_eq!(r.name, "ALIAS1");
        assert_eq!(r.to_messaging_name().unwrap(), m);
        for k in [NameKind::Computer, NameKind::User, NameKind::Alias] {
            assert_eq!(NameKind::from_name(k.as_str()), Some(k));
        }
    }
}
