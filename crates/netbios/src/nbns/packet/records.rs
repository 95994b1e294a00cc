//! Question entries and resource records (RFC 1002 4.2.1.2, 4.2.1.3): names with their
//! compression, and RDATA decoded as far as the record type allows.

use std::net::Ipv4Addr;

use bytes::BufMut;

use super::flags::{NameFlags, NbFlags};
use super::header::HEADER_LEN;
use super::node_status::{
    NodeName, NodeStatus, Statistics, MAX_NODE_STATUS_NAMES, NODE_NAME_ENTRY_LEN, STATISTICS_LEN,
};
use crate::codec::{DecodeError, Reader};
use crate::name::{NetbiosName, QualifiedName, ENCODED_NAME_LEN};

/// Offset of the first question's name; registration, refresh and release requests point
/// their RR_NAME here with `C0 0C` (RFC 1002 4.2.2).
pub const QUESTION_NAME_OFFSET: u16 = HEADER_LEN as u16;
/// Smallest question on the wire: a 2-byte compression pointer, type and class.
pub const MIN_QUESTION_LEN: usize = 2 + 2 + 2;
/// Smallest resource record on the wire: a 2-byte pointer, type, class, TTL and RDLENGTH.
pub const MIN_RESOURCE_RECORD_LEN: usize = 2 + 2 + 2 + 4 + 2;
/// Bytes of one ADDR_ENTRY in NB RDATA: NB_FLAGS and an IPv4 address (RFC 1002 4.2.2).
pub const ADDR_ENTRY_LEN: usize = 6;
/// Bytes of a WACK's RDATA: the flags word of the request being acknowledged (RFC 1002 4.2.16).
pub const WACK_RDATA_LEN: usize = 2;
/// Most ADDR_ENTRYs one record can carry: RDLENGTH is 16 bits (RFC 1002 4.2.1.3).
pub const MAX_ADDR_ENTRIES: usize = u16::MAX as usize / ADDR_ENTRY_LEN;

/// Top two bits of a length byte that mark a compression pointer (RFC 1002 4.1, RFC 1035 4.1.4).
const POINTER_TAG: u8 = 0xC0;
/// The 14 offset bits of a compression pointer.
const POINTER_OFFSET_MASK: u16 = 0x3FFF;

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

/// One ADDR_ENTRY of NB RDATA: who holds the name, and how (RFC 1002 4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrEntry {
    /// NB_FLAGS.
    pub flags: NbFlags,
    /// NB_ADDRESS.
    pub address: Ipv4Addr,
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
    pub(super) fn new(name: QualifiedName, question_type: RrType) -> Self {
        Self {
            name,
            name_form: NameForm::Full,
            question_type,
            question_class: RrClass::IN,
        }
    }

    pub(super) fn decode(msg: &[u8], start: usize) -> Result<(Self, usize), DecodeError> {
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

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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

    pub(super) fn decode(msg: &[u8], start: usize) -> Result<(Self, usize), DecodeError> {
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

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
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
