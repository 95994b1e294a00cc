//! NetBIOS names: the 16-byte name, its suffix, the scope, and their wire encodings.
//!
//! A NetBIOS name is 16 arbitrary bytes ([MS-NBTE] 2.2.1): by convention 15 bytes of name
//! padded with spaces and a 16th byte, the suffix, that says which service the name belongs to
//! (0x03 for the Messenger). Names are OEM bytes, never assumed to be UTF-8; uppercasing is the
//! caller's choice ([`NetbiosName::new_uppercase`]). On the wire each byte is split into two
//! nibbles written as `'A' + nibble` (first-level encoding, RFC 1001 14.1), and the 32 letters
//! form the first label of a DNS-style label sequence followed by the scope's labels (second-level
//! encoding, RFC 1002 4.1).

use std::fmt;

use bytes::BufMut;

use crate::codec::{DecodeError, DecodeErrorKind, Reader};

/// Bytes in a NetBIOS name, suffix included (RFC 1001 14.1).
pub const NAME_LEN: usize = 16;
/// Bytes available for the name proper; the 16th is the suffix ([MS-NBTE] 2.2.1, `NET NAME`
/// "as many as 15 characters").
pub const MAX_NAME_CHARS: usize = 15;
/// Length of the first-level encoded name, the first label on the wire (RFC 1002 4.1).
pub const ENCODED_NAME_LEN: usize = 32;
/// Largest label of the scope (RFC 1002 4.1, as in DNS: 63 bytes).
pub const MAX_LABEL_LEN: usize = 63;
/// Largest whole encoded name, length bytes and terminator included (RFC 1002 4.1).
pub const MAX_ENCODED_LEN: usize = 255;
/// Largest number of compression pointers followed while decoding one name. Pointers must also
/// point strictly backwards, so this is a second fence, not the only one.
pub const MAX_POINTER_HOPS: usize = 8;

/// Suffix of Messenger service names such as `ALICE<03>` ([MS-MSRP] 1.9, 3.1.1).
pub const SUFFIX_MESSENGER: u8 = 0x03;
/// Suffix of the Workstation service name and of the domain/workgroup group name
/// ([MS-NBTE] note <2>); `NET SEND *` is addressed to `WORKGROUP<00>`.
pub const SUFFIX_WORKSTATION: u8 = 0x00;
/// Suffix of the file Server service name ([MS-NBTE] note <2>).
pub const SUFFIX_SERVER: u8 = 0x20;
/// Suffix of the browser election group name of a domain ([MS-NBTE] note <3>).
pub const SUFFIX_BROWSER_ELECTION: u8 = 0x1E;

/// Characters Windows refuses in NetBIOS computer names and message aliases; also `*`, which
/// is reserved for the wildcard and for names not defended on the network ([MS-NBTE] 3.1.4.1).
const FORBIDDEN_CHARS: &[u8] = b"\\/:*?\"<>|";

/// Why a string is not a valid NetBIOS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty or only spaces.
    #[error("the name is empty")]
    Empty,
    /// The name has more than 15 bytes.
    #[error("the name is {0} bytes long; NetBIOS names have at most 15")]
    TooLong(usize),
    /// The name contains a byte that may not appear in a NetBIOS name.
    #[error("the name contains the character {0:#04x}, which NetBIOS names may not contain")]
    InvalidCharacter(u8),
    /// A scope label is empty or longer than 63 bytes, or the scope makes the encoded name
    /// longer than 255 bytes.
    #[error("invalid NetBIOS scope: {0}")]
    InvalidScope(&'static str),
}

/// A 16-byte NetBIOS name: 15 bytes of space-padded name and a suffix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetbiosName {
    bytes: [u8; NAME_LEN],
}

impl NetbiosName {
    /// A name from OEM bytes and a suffix. The bytes are used as they are (not uppercased);
    /// trailing spaces are padding and are ignored. Fails if the name is empty, longer than 15
    /// bytes, or contains a control character or one of `\ / : * ? " < > |`.
    pub fn new(name: &[u8], suffix: u8) -> Result<Self, NameError> {
        let trimmed = trim_trailing_spaces(name);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        if trimmed.len() > MAX_NAME_CHARS {
            return Err(NameError::TooLong(trimmed.len()));
        }
        if let Some(&bad) = trimmed
            .iter()
            .find(|&&b| b < 0x20 || b == 0x7F || FORBIDDEN_CHARS.contains(&b))
        {
            return Err(NameError::InvalidCharacter(bad));
        }
        let mut bytes = [b' '; NAME_LEN];
        bytes[..trimmed.len()].copy_from_slice(trimmed);
        bytes[NAME_LEN - 1] = suffix;
        Ok(Self { bytes })
    }

    /// Like [`NetbiosName::new`], with ASCII letters uppercased first, as Windows does with
    /// every name it registers or looks up ([MS-MSRP] 2.2.2.1).
    pub fn new_uppercase(name: &[u8], suffix: u8) -> Result<Self, NameError> {
        let upper: Vec<u8> = name.iter().map(u8::to_ascii_uppercase).collect();
        Self::new(&upper, suffix)
    }

    /// A messaging name `NAME<03>` from a user-typed string, uppercased.
    pub fn messenger(name: &str) -> Result<Self, NameError> {
        Self::new_uppercase(name.as_bytes(), SUFFIX_MESSENGER)
    }

    /// The 16 bytes exactly as they are, as found on the wire. No validation: received names
    /// may contain anything.
    pub const fn from_raw(bytes: [u8; NAME_LEN]) -> Self {
        Self { bytes }
    }

    /// The wildcard name `*` followed by fifteen NUL bytes, used in node status requests
    /// (RFC 1002 4.2.17; Samba `nbtname.c`).
    pub const fn star() -> Self {
        let mut bytes = [0u8; NAME_LEN];
        bytes[0] = b'*';
        Self { bytes }
    }

    /// Whether this is the node-status wildcard.
    pub fn is_star(&self) -> bool {
        *self == Self::star()
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; NAME_LEN] {
        &self.bytes
    }

    /// The suffix (16th byte).
    pub fn suffix(&self) -> u8 {
        self.bytes[NAME_LEN - 1]
    }

    /// The same name with another suffix.
    #[must_use]
    pub fn with_suffix(&self, suffix: u8) -> Self {
        let mut bytes = self.bytes;
        bytes[NAME_LEN - 1] = suffix;
        Self { bytes }
    }

    /// The name without its padding and suffix (for `*`, just `*`).
    pub fn name_bytes(&self) -> &[u8] {
        if self.is_star() {
            return &self.bytes[..1];
        }
        trim_trailing_spaces(&self.bytes[..MAX_NAME_CHARS])
    }

    /// Whether the name proper (suffix aside) equals `other`'s, ignoring ASCII case, as
    /// [MS-MSRP] 2.2.2.1 compares names.
    pub fn same_name_as(&self, other: &NetbiosName) -> bool {
        self.bytes[..MAX_NAME_CHARS].eq_ignore_ascii_case(&other.bytes[..MAX_NAME_CHARS])
    }

    /// The first-level encoding: 32 letters `A`–`P` (RFC 1001 14.1).
    pub fn first_level(&self) -> [u8; ENCODED_NAME_LEN] {
        let mut out = [0u8; ENCODED_NAME_LEN];
        for (i, b) in self.bytes.iter().enumerate() {
            out[2 * i] = b'A' + (b >> 4);
            out[2 * i + 1] = b'A' + (b & 0x0F);
        }
        out
    }

    /// Decodes the 32 letters of a first-level encoded name. `offset` is where they start, for
    /// error reporting.
    pub fn from_first_level(encoded: &[u8], offset: usize) -> Result<Self, DecodeError> {
        if encoded.len() != ENCODED_NAME_LEN {
            return Err(DecodeError::invalid(
                offset,
                "encoded name length",
                encoded.len() as u32,
            ));
        }
        let mut bytes = [0u8; NAME_LEN];
        for (i, pair) in encoded.chunks_exact(2).enumerate() {
            let nibble = |pos: usize| -> Result<u8, DecodeError> {
                let c = pair[pos];
                if (b'A'..=b'P').contains(&c) {
                    Ok(c - b'A')
                } else {
                    Err(DecodeError::invalid(
                        offset + 2 * i + pos,
                        "encoded name character",
                        c,
                    ))
                }
            };
            bytes[i] = (nibble(0)? << 4) | nibble(1)?;
        }
        Ok(Self { bytes })
    }
}

impl fmt::Display for NetbiosName {
    /// `NAME<03>`, with bytes outside printable ASCII shown as `\xNN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.name_bytes() {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        write!(f, "<{:02x}>", self.suffix())
    }
}

impl fmt::Debug for NetbiosName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetbiosName({self})")
    }
}

fn trim_trailing_spaces(name: &[u8]) -> &[u8] {
    let end = name.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &name[..end]
}

/// The NetBIOS scope ID: DNS-style labels appended to every name; empty on almost every
/// network (RFC 1001 14.2). Nodes see only names in their own scope.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    labels: Vec<Vec<u8>>,
}

impl Scope {
    /// The empty scope.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A scope from its dotted form, e.g. `NETBIOS.COM`. An empty string is the empty scope.
    pub fn parse(dotted: &str) -> Result<Self, NameError> {
        if dotted.is_empty() {
            return Ok(Self::empty());
        }
        let labels: Vec<Vec<u8>> = dotted.split('.').map(|l| l.as_bytes().to_vec()).collect();
        Self::from_labels(labels)
    }

    /// A scope from its labels, checked against the RFC 1002 4.1 limits.
    pub fn from_labels(labels: Vec<Vec<u8>>) -> Result<Self, NameError> {
        if labels.iter().any(|l| l.is_empty()) {
            return Err(NameError::InvalidScope("empty label"));
        }
        if labels.iter().any(|l| l.len() > MAX_LABEL_LEN) {
            return Err(NameError::InvalidScope("label longer than 63 bytes"));
        }
        let scope = Self { labels };
        if 1 + ENCODED_NAME_LEN + scope.encoded_len() + 1 > MAX_ENCODED_LEN {
            return Err(NameError::InvalidScope(
                "encoded name longer than 255 bytes",
            ));
        }
        Ok(scope)
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels.
    pub fn labels(&self) -> &[Vec<u8>] {
        &self.labels
    }

    /// Bytes the labels take on the wire (length bytes included, terminator not).
    fn encoded_len(&self) -> usize {
        self.labels.iter().map(|l| 1 + l.len()).sum()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&String::from_utf8_lossy(label))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self:?})", self = self.to_string())
    }
}

/// A name as it travels: the 16-byte name plus the scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualifiedName {
    /// The 16-byte name.
    pub name: NetbiosName,
    /// The scope it lives in.
    pub scope: Scope,
}

impl QualifiedName {
    /// `name` in the empty scope.
    pub fn new(name: NetbiosName) -> Self {
        Self {
            name,
            scope: Scope::empty(),
        }
    }

    /// `name` in `scope`.
    pub fn with_scope(name: NetbiosName, scope: Scope) -> Self {
        Self { name, scope }
    }

    /// Bytes of the uncompressed wire form: 34 with the empty scope.
    pub fn encoded_len(&self) -> usize {
        1 + ENCODED_NAME_LEN + self.scope.encoded_len() + 1
    }

    /// Writes the uncompressed second-level encoding (RFC 1002 4.1).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(ENCODED_NAME_LEN as u8);
        out.put_slice(&self.name.first_level());
        for label in &self.scope.labels {
            out.put_u8(label.len() as u8);
            out.put_slice(label);
        }
        out.put_u8(0);
    }

    /// Reads an uncompressed name, as the session and datagram services carry them. A
    /// compression pointer here is an error.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.offset();
        let mut labels = Vec::new();
        let name = read_first_label(r)?;
        let mut total = 1 + ENCODED_NAME_LEN;
        loop {
            let len_offset = r.offset();
            let len = r.u8()?;
            total += 1;
            match len & 0xC0 {
                0x00 if len == 0 => break,
                0x00 => {
                    let label = r.take(len as usize)?;
                    total += label.len();
                    if total + 1 > MAX_ENCODED_LEN {
                        return Err(too_long(start, total + 1));
                    }
                    labels.push(label.to_vec());
                }
                0xC0 => {
                    return Err(DecodeError::malformed(
                        len_offset,
                        "compression pointer where names are never compressed",
                    ))
                }
                _ => return Err(DecodeError::invalid(len_offset, "label type", len)),
            }
        }
        Ok(Self {
            name,
            scope: Scope { labels },
        })
    }

    /// Reads a name that may use compression pointers, as name service packets may (RFC 1002
    /// 4.1, 4.2.1). `msg` is the whole message, `start` the name's offset in it. Returns the
    /// name and the offset just past it in the original position (past the pointer if it
    /// ended in one). Pointers must point strictly before the label that holds them, which
    /// rules out loops; at most [`MAX_POINTER_HOPS`] are followed.
    pub fn decode_compressed(msg: &[u8], start: usize) -> Result<(Self, usize), DecodeError> {
        let mut pos = start;
        let mut end_after: Option<usize> = None;
        let mut hops = 0;
        let mut first: Option<NetbiosName> = None;
        let mut labels = Vec::new();
        let mut total = 0usize;
        loop {
            let len = *msg
                .get(pos)
                .ok_or_else(|| DecodeError::new(pos, DecodeErrorKind::Truncated { needed: 1 }))?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    pos += 1;
                    break;
                }
                0x00 => {
                    let body = pos + 1;
                    let label = msg.get(body..body + len as usize).ok_or_else(|| {
                        DecodeError::new(
                            msg.len(),
                            DecodeErrorKind::Truncated {
                                needed: body + len as usize - msg.len(),
                            },
                        )
                    })?;
                    total += 1 + label.len();
                    if total + 1 > MAX_ENCODED_LEN {
                        return Err(too_long(start, total + 1));
                    }
                    if first.is_none() {
                        if label.len() != ENCODED_NAME_LEN {
                            return Err(DecodeError::invalid(
                                pos,
                                "encoded name length",
                                u32::from(len),
                            ));
                        }
                        first = Some(NetbiosName::from_first_level(label, body)?);
                    } else {
                        labels.push(label.to_vec());
                    }
                    pos = body + label.len();
                }
                0xC0 => {
                    let low = *msg.get(pos + 1).ok_or_else(|| {
                        DecodeError::new(pos + 1, DecodeErrorKind::Truncated { needed: 1 })
                    })?;
                    let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                    hops += 1;
                    if target >= pos || hops > MAX_POINTER_HOPS {
                        return Err(DecodeError::invalid(
                            pos,
                            "compression pointer",
                            target as u32,
                        ));
                    }
                    end_after.get_or_insert(pos + 2);
                    pos = target;
                }
                _ => return Err(DecodeError::invalid(pos, "label type", u32::from(len))),
            }
        }
        let name = first.ok_or_else(|| DecodeError::malformed(start, "empty name"))?;
        Ok((
            Self {
                name,
                scope: Scope { labels },
            },
            end_after.unwrap_or(pos),
        ))
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scope.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}.{}", self.name, self.scope)
        }
    }
}

fn read_first_label(r: &mut Reader<'_>) -> Result<NetbiosName, DecodeError> {
    let len_offset = r.offset();
    let len = r.u8()?;
    if usize::from(len) != ENCODED_NAME_LEN {
        return Err(DecodeError::invalid(
            len_offset,
            "encoded name length",
            u32::from(len),
        ));
    }
    let at = r.offset();
    NetbiosName::from_first_level(r.take(ENCODED_NAME_LEN)?, at)
}

fn too_long(start: usize, length: usize) -> DecodeError {
    DecodeError::new(
        start,
        DecodeErrorKind::TooLong {
            field: "encoded name",
            length,
            limit: MAX_ENCODED_LEN,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_bob_03_as_in_rfc_example() {
        let bob = NetbiosName::messenger("bob").unwrap();
        assert_eq!(&bob.first_level(), b"ECEPECCACACACACACACACACACACACAAD");
        assert_eq!(bob.to_string(), "BOB<03>");
    }

    #[test]
    fn star_name_is_star_and_fifteen_nuls() {
        assert_eq!(
            &NetbiosName::star().first_level(),
            b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(NetbiosName::star().to_string(), "*<00>");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(NetbiosName::messenger(""), Err(NameError::Empty));
        assert_eq!(NetbiosName::messenger("   "), Err(NameError::Empty));
        assert_eq!(
            NetbiosName::messenger("ABCDEFGHIJKLMNOP"),
            Err(NameError::TooLong(16))
        );
        assert_eq!(
            NetbiosName::messenger("A*B"),
            Err(NameError::InvalidCharacter(b'*'))
        );
        assert_eq!(
            NetbiosName::new(b"A\x1bB", 3),
            Err(NameError::InvalidCharacter(0x1b))
        );
        assert!(NetbiosName::messenger("ABCDEFGHIJKLMNO").is_ok());
    }

    #[test]
    fn scope_round_trips_and_is_limited() {
        let q = QualifiedName::with_scope(
            NetbiosName::messenger("FRED").unwrap(),
            Scope::parse("NETBIOS.COM").unwrap(),
        );
        let mut out = Vec::new();
        q.encode(&mut out);
        assert_eq!(out.len(), q.encoded_len());
        assert_eq!(&out[33..], b"\x07NETBIOS\x03COM\x00");
        let back = QualifiedName::decode(&mut Reader::new(&out)).unwrap();
        assert_eq!(back, q);
        assert!(Scope::parse("a..b").is_err());
        assert!(Scope::parse(&"x".repeat(64)).is_err());
    }

    #[test]
    fn compression_pointer_loops_and_forward_pointers_are_rejected() {
        // A pointer to itself.
        let msg = [0xC0, 0x00];
        assert!(QualifiedName::decode_compressed(&msg, 0).is_err());
        // A forward pointer.
        let msg = [0xC0, 0x02, 0x00];
        assert!(QualifiedName::decode_compressed(&msg, 0).is_err());
        // Label types 01 and 10 are reserved.
        assert!(QualifiedName::decode_compressed(&[0x40], 0).is_err());
        assert!(QualifiedName::decode_compressed(&[0x80], 0).is_err());
    }

    #[test]
    fn compression_pointer_is_followed() {
        let q = QualifiedName::new(NetbiosName::messenger("ALICE").unwrap());
        let mut msg = vec![0u8; 12];
        q.encode(&mut msg);
        msg.extend_from_slice(&[0xC0, 0x0C, 0xFF]);
        let (back, end) = QualifiedName::decode_compressed(&msg, 46).unwrap();
        assert_eq!(back, q);
        assert_eq!(end, 48);
        let (direct, end) = QualifiedName::decode_compressed(&msg, 12).unwrap();
        assert_eq!(direct, q);
        assert_eq!(end, 46);
    }

    proptest! {
        #[test]
        fn any_raw_name_round_trips(raw in proptest::array::uniform16(any::<u8>())) {
            let name = NetbiosName::from_raw(raw);
            let q = QualifiedName::new(name);
            let mut out = Vec::new();
            q.encode(&mut out);
            prop_assert_eq!(QualifiedName::decode(&mut Reader::new(&out)).unwrap(), q.clone());
            prop_assert_eq!(QualifiedName::decode_compressed(&out, 0).unwrap(), (q, out.len()));
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = QualifiedName::decode(&mut Reader::new(&data));
            for start in 0..data.len().min(8) {
                let _ = QualifiedName::decode_compressed(&data, start);
            }
        }
    }
}
