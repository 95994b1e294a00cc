//! Name service packets (RFC 1002 4.2, [MS-NBTE] 2.2.2): decoding, encoding and typed
//! constructors.
//!
//! [`Packet`] is a general message: a header and four sections of entries. It decodes any
//! well-formed name service datagram and re-encodes it to the same bytes: it remembers whether
//! each name was written out or compressed with a pointer, keeps RDATA it does not understand as
//! raw bytes, and keeps bytes after the last record. The constructors (`Packet::name_query`,
//! `Packet::registration_request`, ...) build the packets of RFC 1002 4.2.2–4.2.18 with the flag
//! words the reference gives, and [`Packet::kind`] tells which of them a received packet is.
//!
//! Decoding never panics, never loops without bound and allocates in proportion to the input:
//! entry counts are checked against the bytes present and capped at [`MAX_RECORDS`].

use std::fmt;
use std::net::Ipv4Addr;

use bytes::BufMut;

use crate::codec::{DecodeError, DecodeErrorKind, Reader};
use crate::name::{NetbiosName, QualifiedName, ENCODED_NAME_LEN, NAME_LEN};

/// Bytes in the header: NAME_TRN_ID, flags and four counts (RFC 1002 4.2.1.1).
pub const HEADER_LEN: usize = 12;
/// Offset of the first question's name; registration, refresh and release requests point
/// their RR_NAME here with `C0 0C` (RFC 1002 4.2.2).
pub const QUESTION_NAME_OFFSET: u16 = HEADER_LEN as u16;
/// Smallest question on the wire: a 2-byte compression pointer, type and class.
pub const MIN_QUESTION_LEN: usize = 2 + 2 + 2;
/// Smallest resource record on the wire: a 2-byte pointer, type, class, TTL and RDLENGTH.
pub const MIN_RESOURCE_RECORD_LEN: usize = 2 + 2 + 2 + 4 + 2;
/// Most entries (questions and records, all sections together) a packet may declare. Name
/// service packets carry one entry per section (RFC 1002 4.2); they are never meant to be
/// fragmented, and an Ethernet frame (1500 bytes less the 20-byte IPv4 and 8-byte UDP headers
/// and the 12-byte name service header) cannot hold more entries of the smallest size than this.
pub const MAX_RECORDS: usize = (1500 - 20 - 8 - HEADER_LEN) / MIN_QUESTION_LEN;
/// Bytes of one ADDR_ENTRY in NB RDATA: NB_FLAGS and an IPv4 address (RFC 1002 4.2.2).
pub const ADDR_ENTRY_LEN: usize = 6;
/// Bytes of one NODE_NAME entry in a node status response: the raw name and NAME_FLAGS
/// (RFC 1002 4.2.18).
pub const NODE_NAME_ENTRY_LEN: usize = NAME_LEN + 2;
/// Bytes of the STATISTICS block ending a node status response (RFC 1002 4.2.18).
pub const STATISTICS_LEN: usize = 46;
/// Most names a node status response lists: NUM_NAMES is one byte (RFC 1002 4.2.18).
pub const MAX_NODE_STATUS_NAMES: usize = u8::MAX as usize;
/// Bytes of a WACK's RDATA: the flags word of the request being acknowledged (RFC 1002 4.2.16).
pub const WACK_RDATA_LEN: usize = 2;
/// Most ADDR_ENTRYs one record can carry: RDLENGTH is 16 bits (RFC 1002 4.2.1.3).
pub const MAX_ADDR_ENTRIES: usize = u16::MAX as usize / ADDR_ENTRY_LEN;

// Flags word bits (RFC 1002 4.2.1.1; [MS-NBTE] 2.2.2 for opcode 0xF).
const FLAG_RESPONSE: u16 = 0x8000;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0x7800;
const FLAG_AUTHORITATIVE: u16 = 0x0400;
const FLAG_TRUNCATED: u16 = 0x0200;
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
const FLAG_RECURSION_AVAILABLE: u16 = 0x0080;
/// Bits that must be zero (RFC 1002 4.2.1.1).
const FLAGS_RESERVED: u16 = 0x0060;
const FLAG_BROADCAST: u16 = 0x0010;
const RCODE_MASK: u16 = 0x000F;

/// Top two bits of a length byte that mark a compression pointer (RFC 1002 4.1, RFC 1035 4.1.4).
const POINTER_TAG: u8 = 0xC0;
/// The 14 offset bits of a compression pointer.
const POINTER_OFFSET_MASK: u16 = 0x3FFF;

/// NB_FLAGS / NAME_FLAGS bit: the name is a group name (RFC 1002 4.2.2, 4.2.18).
const FLAG_GROUP: u16 = 0x8000;
/// NB_FLAGS / NAME_FLAGS owner node type field (RFC 1002 4.2.2).
const ONT_MASK: u16 = 0x6000;
/// NAME_FLAGS: the name is being released (RFC 1002 4.2.18).
const NAME_FLAG_DEREGISTERING: u16 = 0x1000;
/// NAME_FLAGS: a conflict was detected for the name (RFC 1002 4.2.18).
const NAME_FLAG_CONFLICT: u16 = 0x0800;
/// NAME_FLAGS: the name is active; always set (RFC 1002 4.2.18).
const NAME_FLAG_ACTIVE: u16 = 0x0400;
/// NAME_FLAGS: the permanent node name (RFC 1002 4.2.18).
const NAME_FLAG_PERMANENT: u16 = 0x0200;

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

/// QUESTION_TYPE / RR_TYPE (RFC 1002 4.2.1.2, 4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RrType(pub u16);

impl RrType {
    /// IP address record (redirect responses only).
    pub const A: Self = Self(0x0001);
    /// Name server record (redirect responses only).
    pub const NS: Self = Self(0x0002);
    /// Empty record of negative query responses.
    pub const NULL: Self = Self(0x000A);
    /// NetBIOS general name record: ADDR_ENTRYs.
    pub const NB: Self = Self(0x0020);
    /// NetBIOS node status.
    pub const NBSTAT: Self = Self(0x0021);
}

/// QUESTION_CLASS / RR_CLASS; always Internet in practice (RFC 1002 4.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RrClass(pub u16);

impl RrClass {
    /// The Internet class.
    pub const IN: Self = Self(0x0001);
}

/// The 12-byte header with every flag of the flags word (RFC 1002 4.2.1.1). The section counts
/// are not stored: they are the lengths of the sections of [`Packet`].
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

/// Owner node type, the ONT field of NB_FLAGS and NAME_FLAGS (RFC 1002 4.2.2; H is
/// Microsoft's use of the value the RFC reserves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeType {
    /// Broadcast node: no WINS server.
    B,
    /// Point-to-point node: WINS only.
    P,
    /// Mixed node: broadcast first, then WINS.
    M,
    /// Hybrid node: WINS first, then broadcast.
    H,
}

impl NodeType {
    /// The ONT bits in place (0x0000, 0x2000, 0x4000 or 0x6000).
    pub const fn bits(self) -> u16 {
        match self {
            Self::B => 0x0000,
            Self::P => 0x2000,
            Self::M => 0x4000,
            Self::H => 0x6000,
        }
    }

    /// The node type in the ONT bits of a flags word.
    pub const fn from_flags(flags: u16) -> Self {
        match flags & ONT_MASK {
            0x0000 => Self::B,
            0x2000 => Self::P,
            0x4000 => Self::M,
            _ => Self::H,
        }
    }
}

/// NB_FLAGS of an ADDR_ENTRY (RFC 1002 4.2.2): group bit and owner node type. Kept as the raw
/// word so that reserved bits survive a round trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbFlags(pub u16);

impl NbFlags {
    /// Flags for a name of the given kind owned by a node of `node_type`.
    pub const fn new(group: bool, node_type: NodeType) -> Self {
        Self(if group { FLAG_GROUP } else { 0 } | node_type.bits())
    }

    /// Whether the name is a group name.
    pub const fn is_group(self) -> bool {
        self.0 & FLAG_GROUP != 0
    }

    /// The owner's node type.
    pub const fn node_type(self) -> NodeType {
        NodeType::from_flags(self.0)
    }
}

impl fmt::Debug for NbFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NbFlags({:#06x} {} {:?})",
            self.0,
            if self.is_group() { "group" } else { "unique" },
            self.node_type()
        )
    }
}

/// NAME_FLAGS of a node status entry (RFC 1002 4.2.18). Kept as the raw word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameFlags(pub u16);

impl NameFlags {
    /// An active name (ACT is always set) of the given kind on a node of `node_type`.
    pub const fn active(group: bool, node_type: NodeType) -> Self {
        Self(NbFlags::new(group, node_type).0 | NAME_FLAG_ACTIVE)
    }

    /// The same flags with CNF set: the name is in conflict.
    #[must_use]
    pub const fn with_conflict(self) -> Self {
        Self(self.0 | NAME_FLAG_CONFLICT)
    }

    /// The same flags with DRG set: the name is being released.
    #[must_use]
    pub const fn with_deregistering(self) -> Self {
        Self(self.0 | NAME_FLAG_DEREGISTERING)
    }

    /// The same flags with PRM set: the permanent node name.
    #[must_use]
    pub const fn with_permanent(self) -> Self {
        Self(self.0 | NAME_FLAG_PERMANENT)
    }

    /// G: a group name.
    pub const fn is_group(self) -> bool {
        self.0 & FLAG_GROUP != 0
    }

    /// ONT: the owner's node type.
    pub const fn node_type(self) -> NodeType {
        NodeType::from_flags(self.0)
    }

    /// DRG: being released.
    pub const fn is_deregistering(self) -> bool {
        self.0 & NAME_FLAG_DEREGISTERING != 0
    }

    /// CNF: in conflict.
    pub const fn is_conflict(self) -> bool {
        self.0 & NAME_FLAG_CONFLICT != 0
    }

    /// ACT: active.
    pub const fn is_active(self) -> bool {
        self.0 & NAME_FLAG_ACTIVE != 0
    }

    /// PRM: the permanent node name.
    pub const fn is_permanent(self) -> bool {
        self.0 & NAME_FLAG_PERMANENT != 0
    }
}

impl fmt::Debug for NameFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameFlags({:#06x}", self.0)?;
        for (set, label) in [
            (self.is_group(), "G"),
            (self.is_deregistering(), "DRG"),
            (self.is_conflict(), "CNF"),
            (self.is_active(), "ACT"),
            (self.is_permanent(), "PRM"),
        ] {
            if set {
                write!(f, " {label}")?;
            }
        }
        write!(f, " {:?})", self.node_type())
    }
}

/// One ADDR_ENTRY of NB RDATA: who holds the name, and how (RFC 1002 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrEntry {
    /// NB_FLAGS.
    pub flags: NbFlags,
    /// NB_ADDRESS.
    pub address: Ipv4Addr,
}

/// One name of a node status response (RFC 1002 4.2.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeName {
    /// The 16-byte name as the node holds it (not first-level encoded).
    pub name: NetbiosName,
    /// NAME_FLAGS.
    pub flags: NameFlags,
}

/// The STATISTICS block of a node status response (RFC 1002 4.2.18), big-endian like the rest.
/// Windows fills in UNIT_ID with the adapter's MAC address; Samba sends zeros throughout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Statistics {
    /// UNIT_ID: the adapter's MAC address on Windows (`nbtstat -A` shows it).
    pub unit_id: [u8; 6],
    /// JUMPERS.
    pub jumpers: u8,
    /// TEST_RESULT.
    pub test_result: u8,
    /// VERSION_NUMBER.
    pub version_number: u16,
    /// PERIOD_OF_STATISTICS.
    pub period_of_statistics: u16,
    /// NUMBER_OF_CRCs.
    pub number_of_crcs: u16,
    /// NUMBER_ALIGNMENT_ERRORS.
    pub number_alignment_errors: u16,
    /// NUMBER_OF_COLLISIONS.
    pub number_of_collisions: u16,
    /// NUMBER_SEND_ABORTS.
    pub number_send_aborts: u16,
    /// NUMBER_GOOD_SENDS.
    pub number_good_sends: u32,
    /// NUMBER_GOOD_RECEIVES.
    pub number_good_receives: u32,
    /// NUMBER_RETRANSMITS.
    pub number_retransmits: u16,
    /// NUMBER_NO_RESOURCE_CONDITIONS.
    pub number_no_resource_conditions: u16,
    /// NUMBER_FREE_COMMAND_BLOCKS.
    pub number_free_command_blocks: u16,
    /// TOTAL_NUMBER_COMMAND_BLOCKS.
    pub total_number_command_blocks: u16,
    /// MAX_TOTAL_NUMBER_COMMAND_BLOCKS.
    pub max_total_number_command_blocks: u16,
    /// NUMBER_PENDING_SESSIONS.
    pub number_pending_sessions: u16,
    /// MAX_NUMBER_PENDING_SESSIONS.
    pub max_number_pending_sessions: u16,
    /// MAX_TOTAL_SESSIONS_POSSIBLE.
    pub max_total_sessions_possible: u16,
    /// SESSION_DATA_PACKET_SIZE.
    pub session_data_packet_size: u16,
}

impl Statistics {
    /// Zeros except UNIT_ID.
    pub fn with_unit_id(unit_id: [u8; 6]) -> Self {
        Self {
            unit_id,
            ..Self::default()
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            unit_id: r.array()?,
            jumpers: r.u8()?,
            test_result: r.u8()?,
            version_number: r.u16_be()?,
            period_of_statistics: r.u16_be()?,
            number_of_crcs: r.u16_be()?,
            number_alignment_errors: r.u16_be()?,
            number_of_collisions: r.u16_be()?,
            number_send_aborts: r.u16_be()?,
            number_good_sends: r.u32_be()?,
            number_good_receives: r.u32_be()?,
            number_retransmits: r.u16_be()?,
            number_no_resource_conditions: r.u16_be()?,
            number_free_command_blocks: r.u16_be()?,
            total_number_command_blocks: r.u16_be()?,
            max_total_number_command_blocks: r.u16_be()?,
            number_pending_sessions: r.u16_be()?,
            max_number_pending_sessions: r.u16_be()?,
            max_total_sessions_possible: r.u16_be()?,
            session_data_packet_size: r.u16_be()?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.put_slice(&self.unit_id);
        out.put_u8(self.jumpers);
        out.put_u8(self.test_result);
        for value in [
            self.version_number,
            self.period_of_statistics,
            self.number_of_crcs,
            self.number_alignment_errors,
            self.number_of_collisions,
            self.number_send_aborts,
        ] {
            out.put_u16(value);
        }
        out.put_u32(self.number_good_sends);
        out.put_u32(self.number_good_receives);
        for value in [
            self.number_retransmits,
            self.number_no_resource_conditions,
            self.number_free_command_blocks,
            self.total_number_command_blocks,
            self.max_total_number_command_blocks,
            self.number_pending_sessions,
            self.max_number_pending_sessions,
            self.max_total_sessions_possible,
            self.session_data_packet_size,
        ] {
            out.put_u16(value);
        }
    }
}

/// The RDATA of a node status response: the node's names and its statistics
/// (RFC 1002 4.2.18).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeStatus {
    /// NODE_NAME entries; at most [`MAX_NODE_STATUS_NAMES`] are encoded.
    pub names: Vec<NodeName>,
    /// STATISTICS.
    pub statistics: Statistics,
}

/// Record data, decoded as far as the record type allows.
///
/// Which variant a record decodes to depends only on its type and length, so re-encoding
/// reproduces it: NB with a multiple of six bytes is [`RData::Nb`]; NB with two bytes is a
/// WACK's [`RData::Wack`]; NBSTAT whose length matches its NUM_NAMES is [`RData::NodeStatus`];
/// empty NULL is [`RData::Null`]; everything else is [`RData::Raw`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RData {
    /// ADDR_ENTRYs of an NB record; at most [`MAX_ADDR_ENTRIES`] are encoded.
    Nb(Vec<AddrEntry>),
    /// A WACK's RDATA: the flags word of the request it acknowledges (RFC 1002 4.2.16).
    Wack {
        /// The acknowledged request's flags word.
        request_flags: u16,
    },
    /// A node status response's names and statistics.
    NodeStatus(NodeStatus),
    /// The empty RDATA of a NULL record (negative query responses).
    Null,
    /// Anything else, byte for byte; at most 65535 bytes are encoded.
    Raw(Vec<u8>),
}

impl RData {
    fn decode(rr_type: RrType, data: &[u8], offset: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::with_base(data, offset);
        match rr_type {
            RrType::NB if data.len() == WACK_RDATA_LEN => Ok(Self::Wack {
                request_flags: r.u16_be()?,
            }),
            RrType::NB if data.len() % ADDR_ENTRY_LEN == 0 => {
                let mut entries = Vec::with_capacity(data.len() / ADDR_ENTRY_LEN);
                while !r.is_empty() {
                    let flags = NbFlags(r.u16_be()?);
                    let address = Ipv4Addr::from(r.array::<4>()?);
                    entries.push(AddrEntry { flags, address });
                }
                Ok(Self::Nb(entries))
            }
            RrType::NBSTAT if is_node_status_layout(data) => {
                let count = r.u8()?;
                let mut names = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let name = NetbiosName::from_raw(r.array()?);
                    let flags = NameFlags(r.u16_be()?);
                    names.push(NodeName { name, flags });
                }
                let statistics = Statistics::decode(&mut r)?;
                r.expect_end()?;
                Ok(Self::NodeStatus(NodeStatus { names, statistics }))
            }
            RrType::NULL if data.is_empty() => Ok(Self::Null),
            _ => Ok(Self::Raw(data.to_vec())),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Nb(entries) => {
                for entry in entries.iter().take(MAX_ADDR_ENTRIES) {
                    out.put_u16(entry.flags.0);
                    out.put_slice(&entry.address.octets());
                }
            }
            Self::Wack { request_flags } => out.put_u16(*request_flags),
            Self::NodeStatus(status) => {
                let names = &status.names[..status.names.len().min(MAX_NODE_STATUS_NAMES)];
                out.put_u8(names.len() as u8);
                for entry in names {
                    out.put_slice(entry.name.as_bytes());
                    out.put_u16(entry.flags.0);
                }
                status.statistics.encode(out);
            }
            Self::Null => {}
            Self::Raw(bytes) => out.put_slice(&bytes[..bytes.len().min(usize::from(u16::MAX))]),
        }
    }
}

/// Whether NBSTAT RDATA has exactly the length its NUM_NAMES calls for.
fn is_node_status_layout(data: &[u8]) -> bool {
    data.first().is_some_and(|&count| {
        data.len() == 1 + usize::from(count) * NODE_NAME_ENTRY_LEN + STATISTICS_LEN
    })
}

/// How a name was, or is to be, written on the wire (RFC 1002 4.1 label compression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameForm {
    /// Every label written out, then the terminating zero.
    Full,
    /// The first `labels` labels written out (zero: none), then a pointer to `offset` in the
    /// message where the rest of the name is.
    Compressed {
        /// Labels written before the pointer; the first-level name counts as one.
        labels: u8,
        /// Offset of the rest of the name from the start of the message (14 bits).
        offset: u16,
    },
}

impl NameForm {
    /// The whole name as a pointer to the question name, `C0 0C`: how RR_NAME is written in
    /// registration, refresh and release requests (RFC 1002 4.2.2).
    pub const POINTER_TO_QUESTION: Self = Self::Compressed {
        labels: 0,
        offset: QUESTION_NAME_OFFSET,
    };

    /// How the (already validated) name starting at `start` is written.
    fn at(msg: &[u8], start: usize) -> Self {
        let mut pos = start;
        let mut labels: u8 = 0;
        while let Some(&len) = msg.get(pos) {
            if len == 0 {
                break;
            }
            if len & POINTER_TAG == POINTER_TAG {
                let low = msg.get(pos + 1).copied().unwrap_or(0);
                return Self::Compressed {
                    labels,
                    offset: u16::from_be_bytes([len, low]) & POINTER_OFFSET_MASK,
                };
            }
            labels = labels.saturating_add(1);
            pos += 1 + usize::from(len);
        }
        Self::Full
    }
}

/// Writes `name` in `form`.
fn encode_name(name: &QualifiedName, form: NameForm, out: &mut Vec<u8>) {
    match form {
        NameForm::Full => name.encode(out),
        NameForm::Compressed { labels, offset } => {
            if labels > 0 {
                out.put_u8(ENCODED_NAME_LEN as u8);
                out.put_slice(&name.name.first_level());
                for label in name.scope.labels().iter().take(usize::from(labels) - 1) {
                    out.put_u8(label.len() as u8);
                    out.put_slice(label);
                }
            }
            out.put_u16(u16::from(POINTER_TAG) << 8 | (offset & POINTER_OFFSET_MASK));
        }
    }
}

/// A question entry (RFC 1002 4.2.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// QUESTION_NAME.
    pub name: QualifiedName,
    /// How QUESTION_NAME is written.
    pub name_form: NameForm,
    /// QUESTION_TYPE: NB for name queries and registrations, NBSTAT for node status.
    pub question_type: RrType,
    /// QUESTION_CLASS.
    pub question_class: RrClass,
}

impl Question {
    fn new(name: QualifiedName, question_type: RrType) -> Self {
        Self {
            name,
            name_form: NameForm::Full,
            question_type,
            question_class: RrClass::IN,
        }
    }

    fn decode(msg: &[u8], start: usize) -> Result<(Self, usize), DecodeError> {
        let (name, after) = QualifiedName::decode_compressed(msg, start)?;
        let name_form = NameForm::at(msg, start);
        let mut r = Reader::new(msg);
        r.seek(after)?;
        let question = Self {
            name,
            name_form,
            question_type: RrType(r.u16_be()?),
            question_class: RrClass(r.u16_be()?),
        };
        Ok((question, r.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_name(&self.name, self.name_form, out);
        out.put_u16(self.question_type.0);
        out.put_u16(self.question_class.0);
    }
}

/// A resource record (RFC 1002 4.2.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRecord {
    /// RR_NAME.
    pub name: QualifiedName,
    /// How RR_NAME is written.
    pub name_form: NameForm,
    /// RR_TYPE.
    pub rr_type: RrType,
    /// RR_CLASS.
    pub rr_class: RrClass,
    /// TTL in seconds; zero means "infinite" in registrations and "no meaning" elsewhere.
    pub ttl: u32,
    /// RDATA; RDLENGTH follows from it.
    pub rdata: RData,
}

impl ResourceRecord {
    /// An NB record in class IN.
    pub fn nb(name: QualifiedName, name_form: NameForm, ttl: u32, entries: Vec<AddrEntry>) -> Self {
        Self {
            name,
            name_form,
            rr_type: RrType::NB,
            rr_class: RrClass::IN,
            ttl,
            rdata: RData::Nb(entries),
        }
    }

    /// The ADDR_ENTRYs, if this is an NB record.
    pub fn addr_entries(&self) -> &[AddrEntry] {
        match &self.rdata {
            RData::Nb(entries) => entries,
            _ => &[],
        }
    }

    fn decode(msg: &[u8], start: usize) -> Result<(Self, usize), DecodeError> {
        let (name, after) = QualifiedName::decode_compressed(msg, start)?;
        let name_form = NameForm::at(msg, start);
        let mut r = Reader::new(msg);
        r.seek(after)?;
        let rr_type = RrType(r.u16_be()?);
        let rr_class = RrClass(r.u16_be()?);
        let ttl = r.u32_be()?;
        let rdlength = r.u16_be()?;
        let rdata_offset = r.offset();
        let data = r.take(usize::from(rdlength))?;
        let rdata = RData::decode(rr_type, data, rdata_offset)?;
        let record = Self {
            name,
            name_form,
            rr_type,
            rr_class,
            ttl,
            rdata,
        };
        Ok((record, r.position()))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_name(&self.name, self.name_form, out);
        out.put_u16(self.rr_type.0);
        out.put_u16(self.rr_class.0);
        out.put_u32(self.ttl);
        let length_at = out.len();
        out.put_u16(0);
        self.rdata.encode(out);
        let rdlength = (out.len() - length_at - 2) as u16;
        out[length_at..length_at + 2].copy_from_slice(&rdlength.to_be_bytes());
    }
}

/// Which RFC 1002 packet a [`Packet`] is, judged from its header and first entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// NAME QUERY REQUEST (4.2.12), broadcast or unicast.
    NameQueryRequest,
    /// POSITIVE NAME QUERY RESPONSE (4.2.13).
    PositiveNameQueryResponse,
    /// NEGATIVE NAME QUERY RESPONSE (4.2.14).
    NegativeNameQueryResponse,
    /// REDIRECT NAME QUERY RESPONSE (4.2.15).
    RedirectNameQueryResponse,
    /// NAME REGISTRATION REQUEST (4.2.2), broadcast or unicast.
    NameRegistrationRequest,
    /// NAME OVERWRITE REQUEST & DEMAND (4.2.3): a registration with RD clear.
    NameOverwriteDemand,
    /// NAME REFRESH REQUEST (4.2.4), opcode 8 or 9.
    NameRefreshRequest,
    /// MULTIHOMED NAME REGISTRATION REQUEST ([MS-NBTE] 2.2.2).
    MultihomedNameRegistrationRequest,
    /// POSITIVE NAME REGISTRATION RESPONSE (4.2.5); also the answer to a refresh.
    PositiveNameRegistrationResponse,
    /// NEGATIVE NAME REGISTRATION RESPONSE (4.2.6): ACT_ERR from a defending owner, or
    /// another error from a name server.
    NegativeNameRegistrationResponse,
    /// END-NODE CHALLENGE REGISTRATION RESPONSE (4.2.7): RCODE 0 with RA clear.
    EndNodeChallengeRegistrationResponse,
    /// NAME CONFLICT DEMAND (4.2.8): a registration response with CFT_ERR.
    NameConflictDemand,
    /// NAME RELEASE REQUEST & DEMAND (4.2.9).
    NameReleaseRequest,
    /// POSITIVE NAME RELEASE RESPONSE (4.2.10).
    PositiveNameReleaseResponse,
    /// NEGATIVE NAME RELEASE RESPONSE (4.2.11).
    NegativeNameReleaseResponse,
    /// WAIT FOR ACKNOWLEDGEMENT RESPONSE (4.2.16).
    WaitForAcknowledgement,
    /// NODE STATUS REQUEST (4.2.17).
    NodeStatusRequest,
    /// NODE STATUS RESPONSE (4.2.18).
    NodeStatusResponse,
    /// Well-formed but none of the above.
    Unknown,
}

/// A name service message: header, questions, answers, authority and additional records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Packet {
    /// The header; its counts are the section lengths.
    pub header: Header,
    /// Question entries (QDCOUNT).
    pub questions: Vec<Question>,
    /// Answer records (ANCOUNT).
    pub answers: Vec<ResourceRecord>,
    /// Authority records (NSCOUNT).
    pub authority: Vec<ResourceRecord>,
    /// Additional records (ARCOUNT).
    pub additional: Vec<ResourceRecord>,
    /// Bytes after the last record. Normally empty; kept so re-encoding is exact.
    pub trailing: Vec<u8>,
}

impl Packet {
    /// Decodes a whole datagram.
    pub fn decode(msg: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(msg);
        let transaction_id = r.u16_be()?;
        let word = r.u16_be()?;
        if word & FLAGS_RESERVED != 0 {
            return Err(r.invalid_before(2, "reserved flag bits", u32::from(word)));
        }
        let header = Header::from_flags_word(transaction_id, word);
        let counts = [r.u16_be()?, r.u16_be()?, r.u16_be()?, r.u16_be()?].map(usize::from);
        let [questions, answers, authority, additional] = counts;
        let records = answers + authority + additional;
        let declared = questions + records;
        if declared > MAX_RECORDS {
            return Err(DecodeError::new(
                4,
                DecodeErrorKind::TooLong {
                    field: "entry count",
                    length: declared,
                    limit: MAX_RECORDS,
                },
            ));
        }
        let smallest = questions * MIN_QUESTION_LEN + records * MIN_RESOURCE_RECORD_LEN;
        if smallest > r.remaining() {
            return Err(r.error(DecodeErrorKind::Truncated {
                needed: smallest - r.remaining(),
            }));
        }

        let mut pos = r.position();
        let mut packet = Self {
            header,
            questions: Vec::with_capacity(questions),
            answers: Vec::with_capacity(answers),
            authority: Vec::with_capacity(authority),
            additional: Vec::with_capacity(additional),
            trailing: Vec::new(),
        };
        for _ in 0..questions {
            let (question, next) = Question::decode(msg, pos)?;
            packet.questions.push(question);
            pos = next;
        }
        for (count, section) in [
            (answers, &mut packet.answers),
            (authority, &mut packet.authority),
            (additional, &mut packet.additional),
        ] {
            for _ in 0..count {
                let (record, next) = ResourceRecord::decode(msg, pos)?;
                section.push(record);
                pos = next;
            }
        }
        packet.trailing = msg.get(pos..).unwrap_or_default().to_vec();
        Ok(packet)
    }

    /// The datagram.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out);
        out
    }

    /// Appends the datagram to `out`. Sections of more than 65535 entries are cut to 65535.
    /// Compression pointers are written as stored: they are offsets from the start of the
    /// message, whatever `out` held before.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let limit = usize::from(u16::MAX);
        let count = |n: usize| n.min(limit) as u16;
        out.put_u16(self.header.transaction_id);
        out.put_u16(self.header.flags_word());
        out.put_u16(count(self.questions.len()));
        out.put_u16(count(self.answers.len()));
        out.put_u16(count(self.authority.len()));
        out.put_u16(count(self.additional.len()));
        for question in self.questions.iter().take(limit) {
            question.encode(out);
        }
        for section in [&self.answers, &self.authority, &self.additional] {
            for record in section.iter().take(limit) {
                record.encode(out);
            }
        }
        out.put_slice(&self.trailing);
    }

    fn new(header: Header) -> Self {
        Self {
            header,
            questions: Vec::new(),
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            trailing: Vec::new(),
        }
    }

    /// A request with one question, optionally carrying an NB record in the additional
    /// section whose name points back at the question (RFC 1002 4.2.2).
    fn request(
        transaction_id: u16,
        flags: u16,
        name: QualifiedName,
        question_type: RrType,
        record: Option<(u32, AddrEntry)>,
    ) -> Self {
        let mut packet = Self::new(Header::from_flags_word(transaction_id, flags));
        if let Some((ttl, entry)) = record {
            packet.additional.push(ResourceRecord::nb(
                name.clone(),
                NameForm::POINTER_TO_QUESTION,
                ttl,
                vec![entry],
            ));
        }
        packet.questions.push(Question::new(name, question_type));
        packet
    }

    /// A response with one answer record.
    fn response(transaction_id: u16, flags: u16, answer: ResourceRecord) -> Self {
        let mut packet = Self::new(Header::from_flags_word(transaction_id, flags));
        packet.answers.push(answer);
        packet
    }

    /// NAME QUERY REQUEST (RFC 1002 4.2.12): flags `0x0110` broadcast, `0x0100` to a name
    /// server.
    pub fn name_query(transaction_id: u16, name: QualifiedName, broadcast: bool) -> Self {
        let flags = 0x0100 | broadcast_bit(broadcast);
        Self::request(transaction_id, flags, name, RrType::NB, None)
    }

    /// POSITIVE NAME QUERY RESPONSE (RFC 1002 4.2.13): `0x8500` from an end node, `0x8580`
    /// from a name server.
    pub fn positive_query_response(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entries: Vec<AddrEntry>,
        from_name_server: bool,
    ) -> Self {
        let flags = if from_name_server { 0x8580 } else { 0x8500 };
        let answer = ResourceRecord::nb(name, NameForm::Full, ttl, entries);
        Self::response(transaction_id, flags, answer)
    }

    /// NEGATIVE NAME QUERY RESPONSE (RFC 1002 4.2.14): `0x8580 | rcode` (usually NAM_ERR)
    /// with an empty NULL record.
    pub fn negative_query_response(transaction_id: u16, name: QualifiedName, rcode: Rcode) -> Self {
        let answer = ResourceRecord {
            name,
            name_form: NameForm::Full,
            rr_type: RrType::NULL,
            rr_class: RrClass::IN,
            ttl: 0,
            rdata: RData::Null,
        };
        Self::response(transaction_id, 0x8580 | u16::from(rcode.value()), answer)
    }

    /// NAME REGISTRATION REQUEST (RFC 1002 4.2.2): `0x2910` broadcast, `0x2900` to a name
    /// server; the additional record's name is the pointer `C0 0C`.
    pub fn registration_request(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entry: AddrEntry,
        broadcast: bool,
    ) -> Self {
        let flags = 0x2900 | broadcast_bit(broadcast);
        Self::request(transaction_id, flags, name, RrType::NB, Some((ttl, entry)))
    }

    /// NAME OVERWRITE REQUEST & DEMAND (RFC 1002 4.2.3): `0x2810` broadcast (RD clear),
    /// `0x2800` unicast.
    pub fn overwrite_demand(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entry: AddrEntry,
        broadcast: bool,
    ) -> Self {
        let flags = 0x2800 | broadcast_bit(broadcast);
        Self::request(transaction_id, flags, name, RrType::NB, Some((ttl, entry)))
    }

    /// NAME REFRESH REQUEST (RFC 1002 4.2.4) to a name server: `0x4000` (opcode 8).
    pub fn refresh_request(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entry: AddrEntry,
    ) -> Self {
        Self::request(transaction_id, 0x4000, name, RrType::NB, Some((ttl, entry)))
    }

    /// MULTIHOMED NAME REGISTRATION REQUEST ([MS-NBTE] 2.2.2): `0x7900`.
    pub fn multihomed_registration_request(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entry: AddrEntry,
    ) -> Self {
        Self::request(transaction_id, 0x7900, name, RrType::NB, Some((ttl, entry)))
    }

    /// POSITIVE NAME REGISTRATION RESPONSE (RFC 1002 4.2.5): `0xAD80`; `ttl` is the lifetime
    /// granted.
    pub fn positive_registration_response(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entry: AddrEntry,
    ) -> Self {
        let answer = ResourceRecord::nb(name, NameForm::Full, ttl, vec![entry]);
        Self::response(transaction_id, 0xAD80, answer)
    }

    /// NEGATIVE NAME REGISTRATION RESPONSE (RFC 1002 4.2.6): `0xAD80 | rcode`. A node
    /// defending its name sends ACT_ERR (`0xAD86`) with its own address in `entry`.
    pub fn negative_registration_response(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entry: AddrEntry,
        rcode: Rcode,
    ) -> Self {
        let answer = ResourceRecord::nb(name, NameForm::Full, ttl, vec![entry]);
        Self::response(transaction_id, 0xAD80 | u16::from(rcode.value()), answer)
    }

    /// END-NODE CHALLENGE REGISTRATION RESPONSE (RFC 1002 4.2.7): `0xAD00`; `entry` names the
    /// current owner the claimant must challenge.
    pub fn end_node_challenge_response(
        transaction_id: u16,
        name: QualifiedName,
        ttl: u32,
        entry: AddrEntry,
    ) -> Self {
        let answer = ResourceRecord::nb(name, NameForm::Full, ttl, vec![entry]);
        Self::response(transaction_id, 0xAD00, answer)
    }

    /// NAME CONFLICT DEMAND (RFC 1002 4.2.8): `0xAD87`, TTL 0, NB_FLAGS with the node type
    /// only and address 0.0.0.0.
    pub fn conflict_demand(transaction_id: u16, name: QualifiedName, node_type: NodeType) -> Self {
        let entry = AddrEntry {
            flags: NbFlags(node_type.bits()),
            address: Ipv4Addr::UNSPECIFIED,
        };
        let answer = ResourceRecord::nb(name, NameForm::Full, 0, vec![entry]);
        Self::response(transaction_id, 0xAD87, answer)
    }

    /// NAME RELEASE REQUEST & DEMAND (RFC 1002 4.2.9): `0x3010` broadcast, `0x3000` to a name
    /// server; TTL 0.
    pub fn release_request(
        transaction_id: u16,
        name: QualifiedName,
        entry: AddrEntry,
        broadcast: bool,
    ) -> Self {
        let flags = 0x3000 | broadcast_bit(broadcast);
        Self::request(transaction_id, flags, name, RrType::NB, Some((0, entry)))
    }

    /// POSITIVE or NEGATIVE NAME RELEASE RESPONSE (RFC 1002 4.2.10, 4.2.11):
    /// `0xB400 | rcode`.
    pub fn release_response(
        transaction_id: u16,
        name: QualifiedName,
        entry: AddrEntry,
        rcode: Rcode,
    ) -> Self {
        let answer = ResourceRecord::nb(name, NameForm::Full, 0, vec![entry]);
        Self::response(transaction_id, 0xB400 | u16::from(rcode.value()), answer)
    }

    /// WAIT FOR ACKNOWLEDGEMENT RESPONSE (RFC 1002 4.2.16): `0xBC00`; wait `ttl` seconds for
    /// the final answer to the request whose flags word was `request_flags`.
    pub fn wack(transaction_id: u16, name: QualifiedName, ttl: u32, request_flags: u16) -> Self {
        let answer = ResourceRecord {
            name,
            name_form: NameForm::Full,
            rr_type: RrType::NB,
            rr_class: RrClass::IN,
            ttl,
            rdata: RData::Wack { request_flags },
        };
        Self::response(transaction_id, 0xBC00, answer)
    }

    /// NODE STATUS REQUEST (RFC 1002 4.2.17): `0x0000`, unicast, normally for `*<00>`.
    pub fn node_status_request(transaction_id: u16, name: QualifiedName) -> Self {
        Self::request(transaction_id, 0x0000, name, RrType::NBSTAT, None)
    }

    /// NODE STATUS RESPONSE (RFC 1002 4.2.18): `0x8400`, echoing the requested name, TTL 0.
    pub fn node_status_response(
        transaction_id: u16,
        name: QualifiedName,
        status: NodeStatus,
    ) -> Self {
        let answer = ResourceRecord {
            name,
            name_form: NameForm::Full,
            rr_type: RrType::NBSTAT,
            rr_class: RrClass::IN,
            ttl: 0,
            rdata: RData::NodeStatus(status),
        };
        Self::response(transaction_id, 0x8400, answer)
    }

    /// Which RFC 1002 packet this is.
    pub fn kind(&self) -> PacketKind {
        let h = &self.header;
        if !h.response {
            let Some(question) = self.questions.first() else {
                return PacketKind::Unknown;
            };
            return match h.opcode {
                Opcode::QUERY => match question.question_type {
                    RrType::NB => PacketKind::NameQueryRequest,
                    RrType::NBSTAT => PacketKind::NodeStatusRequest,
                    _ => PacketKind::Unknown,
                },
                Opcode::REGISTRATION if h.recursion_desired => PacketKind::NameRegistrationRequest,
                Opcode::REGISTRATION => PacketKind::NameOverwriteDemand,
                Opcode::REFRESH | Opcode::REFRESH_ALT => PacketKind::NameRefreshRequest,
                Opcode::MULTIHOMED_REGISTRATION => PacketKind::MultihomedNameRegistrationRequest,
                Opcode::RELEASE => PacketKind::NameReleaseRequest,
                _ => PacketKind::Unknown,
            };
        }
        match h.opcode {
            Opcode::QUERY => match self.answers.first() {
                Some(answer) if answer.rr_type == RrType::NBSTAT => PacketKind::NodeStatusResponse,
                _ if !h.rcode.is_ok() => PacketKind::NegativeNameQueryResponse,
                Some(_) => PacketKind::PositiveNameQueryResponse,
                None if !self.authority.is_empty() => PacketKind::RedirectNameQueryResponse,
                None => PacketKind::Unknown,
            },
            Opcode::REGISTRATION
            | Opcode::REFRESH
            | Opcode::REFRESH_ALT
            | Opcode::MULTIHOMED_REGISTRATION => match h.rcode {
                Rcode::OK if h.recursion_available => PacketKind::PositiveNameRegistrationResponse,
                Rcode::OK => PacketKind::EndNodeChallengeRegistrationResponse,
                Rcode::CFT_ERR => PacketKind::NameConflictDemand,
                _ => PacketKind::NegativeNameRegistrationResponse,
            },
            Opcode::RELEASE if h.rcode.is_ok() => PacketKind::PositiveNameReleaseResponse,
            Opcode::RELEASE => PacketKind::NegativeNameReleaseResponse,
            Opcode::WACK => PacketKind::WaitForAcknowledgement,
            _ => PacketKind::Unknown,
        }
    }

    /// The first question.
    pub fn question(&self) -> Option<&Question> {
        self.questions.first()
    }

    /// The first answer record.
    pub fn answer(&self) -> Option<&ResourceRecord> {
        self.answers.first()
    }

    /// The record that carries the requester's or responder's data: the first answer of a
    /// response, the first additional record of a request.
    pub fn record(&self) -> Option<&ResourceRecord> {
        if self.header.response {
            self.answers.first()
        } else {
            self.additional.first()
        }
    }

    /// The name the packet is about: the question name of a request, the answer name of a
    /// response.
    pub fn subject(&self) -> Option<&QualifiedName> {
        if self.header.response {
            self.answers.first().map(|a| &a.name)
        } else {
            self.questions.first().map(|q| &q.name)
        }
    }

    /// The ADDR_ENTRYs of [`Packet::record`], or none.
    pub fn addr_entries(&self) -> &[AddrEntry] {
        self.record().map_or(&[], ResourceRecord::addr_entries)
    }

    /// The node status of a node status response.
    pub fn node_status(&self) -> Option<&NodeStatus> {
        match &self.answers.first()?.rdata {
            RData::NodeStatus(status) => Some(status),
            _ => None,
        }
    }
}

fn broadcast_bit(broadcast: bool) -> u16 {
    if broadcast {
        FLAG_BROADCAST
    } else {
        0
    }
}
