//! The 12-byte name service header and the fields of its flags word, OPCODE and RCODE among
//! them (RFC 1002 4.2.1.1, [MS-NBTE] 2.2.2).

use std::fmt;

/// Bytes in the header: NAME_TRN_ID, flags and four counts (RFC 1002 4.2.1.1).
pub const HEADER_LEN: usize = 12;

// Flags word bits (RFC 1002 4.2.1.1; [MS-NBTE] 2.2.2 for opcode 0xF).
const FLAG_RESPONSE: u16 = 0x8000;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0x7800;
const FLAG_AUTHORITATIVE: u16 = 0x0400;
const FLAG_TRUNCATED: u16 = 0x0200;
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
const FLAG_RECURSION_AVAILABLE: u16 = 0x0080;
/// Bits that must be zero (RFC 1002 4.2.1.1).
pub(super) const FLAGS_RESERVED: u16 = 0x0060;
const FLAG_BROADCAST: u16 = 0x0010;
const RCODE_MASK: u16 = 0x000F;

/// The 4-bit OPCODE of the flags word (RFC 1002 4.2.1.1, [MS-NBTE] 2.2.2).
///
/// A newtype rather than an enum so that every value, named or not, survives a round trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Opcode(u8);

impl Opcode {
    /// Name query and node status.
    pub const QUERY: Self = Self(0x0);
    /// Name registration and overwrite.
    pub const REGISTRATION: Self = Self(0x5);
    /// Name release.
    pub const RELEASE: Self = Self(0x6);
    /// Wait for acknowledgement (WACK).
    pub const WACK: Self = Self(0x7);
    /// Name refresh, the value NT sends (RFC 1002 4.2.1.1 table).
    pub const REFRESH: Self = Self(0x8);
    /// Name refresh, the value of the RFC 1002 4.2.4 diagram; accepted like 8.
    pub const REFRESH_ALT: Self = Self(0x9);
    /// Multihomed name registration ([MS-NBTE] 2.2.2).
    pub const MULTIHOMED_REGISTRATION: Self = Self(0xF);

    /// An opcode from its 4-bit value; higher bits are dropped.
    pub const fn new(value: u8) -> Self {
        Self(value & 0x0F)
    }

    /// The 4-bit value.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// Whether this is either refresh opcode (8 or 9).
    pub fn is_refresh(self) -> bool {
        self == Self::REFRESH || self == Self::REFRESH_ALT
    }
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::QUERY => "QUERY",
            Self::REGISTRATION => "REGISTRATION",
            Self::RELEASE => "RELEASE",
            Self::WACK => "WACK",
            Self::REFRESH => "REFRESH",
            Self::REFRESH_ALT => "REFRESH_ALT",
            Self::MULTIHOMED_REGISTRATION => "MULTIHOMED_REGISTRATION",
            _ => return write!(f, "Opcode({:#x})", self.0),
        };
        f.write_str(name)
    }
}

/// The 4-bit RCODE of a response (RFC 1002 4.2.1.1, 4.2.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rcode(u8);

impl Rcode {
    /// No error.
    pub const OK: Self = Self(0);
    /// Format error: the request could not be understood.
    pub const FMT_ERR: Self = Self(1);
    /// Server failure.
    pub const SRV_ERR: Self = Self(2);
    /// The name does not exist.
    pub const NAM_ERR: Self = Self(3);
    /// Unsupported request.
    pub const IMP_ERR: Self = Self(4);
    /// Refused for policy reasons.
    pub const RFS_ERR: Self = Self(5);
    /// Active error: the name is owned by another node.
    pub const ACT_ERR: Self = Self(6);
    /// Conflict: the name is owned by more than one node.
    pub const CFT_ERR: Self = Self(7);

    /// An RCODE from its 4-bit value; higher bits are dropped.
    pub const fn new(value: u8) -> Self {
        Self(value & 0x0F)
    }

    /// The 4-bit value.
    pub const fn value(self) -> u8 {
        self.0
    }

    /// Whether this is [`Rcode::OK`].
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }
}

impl fmt::Debug for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::OK => "OK",
            Self::FMT_ERR => "FMT_ERR",
            Self::SRV_ERR => "SRV_ERR",
            Self::NAM_ERR => "NAM_ERR",
            Self::IMP_ERR => "IMP_ERR",
            Self::RFS_ERR => "RFS_ERR",
            Self::ACT_ERR => "ACT_ERR",
            Self::CFT_ERR => "CFT_ERR",
            _ => return write!(f, "Rcode({})", self.0),
        };
        f.write_str(name)
    }
}

/// The 12-byte header with every flag of the flags word (RFC 1002 4.2.1.1). The section counts
/// are not stored: they are the lengths of the sections of [`Packet`](super::Packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// NAME_TRN_ID: chosen by the requester, echoed in responses, used to match them.
    pub transaction_id: u16,
    /// R: a response rather than a request.
    pub response: bool,
    /// OPCODE.
    pub opcode: Opcode,
    /// AA: the responder is authoritative for the name.
    pub authoritative_answer: bool,
    /// TC: the packet was truncated (a long address list did not fit).
    pub truncated: bool,
    /// RD: the requester wants the server to handle the request fully (set in registrations,
    /// clear in overwrite demands).
    pub recursion_desired: bool,
    /// RA: set by a name server that supports recursion; clear in end-node challenges.
    pub recursion_available: bool,
    /// B: the packet was broadcast.
    pub broadcast: bool,
    /// RCODE.
    pub rcode: Rcode,
}

impl Header {
    /// A header with the given flags word, as the RFC 1002 diagrams write them. Reserved bits
    /// are dropped.
    pub fn from_flags_word(transaction_id: u16, word: u16) -> Self {
        Self {
            transaction_id,
            response: word & FLAG_RESPONSE != 0,
            opcode: Opcode::new(((word & OPCODE_MASK) >> OPCODE_SHIFT) as u8),
            authoritative_answer: word & FLAG_AUTHORITATIVE != 0,
            truncated: word & FLAG_TRUNCATED != 0,
            recursion_desired: word & FLAG_RECURSION_DESIRED != 0,
            recursion_available: word & FLAG_RECURSION_AVAILABLE != 0,
            broadcast: word & FLAG_BROADCAST != 0,
            rcode: Rcode::new((word & RCODE_MASK) as u8),
        }
    }

    /// The flags word.
    pub fn flags_word(&self) -> u16 {
        let bit = |set: bool, mask: u16| if set { mask } else { 0 };
        bit(self.response, FLAG_RESPONSE)
            | (u16::from(self.opcode.value()) << OPCODE_SHIFT)
            | bit(self.authoritative_answer, FLAG_AUTHORITATIVE)
            | bit(self.truncated, FLAG_TRUNCATED)
            | bit(self.recursion_desired, FLAG_RECURSION_DESIRED)
            | bit(self.recursion_available, FLAG_RECURSION_AVAILABLE)
            | bit(self.broadcast, FLAG_BROADCAST)
            | u16::from(self.rcode.value())
    }
}

/// The B bit of the flags word, if `broadcast`.
pub(super) fn broadcast_bit(broadcast: bool) -> u16 {
    if broadcast {
        FLAG_BROADCAST
    } else {
        0
    }
}
