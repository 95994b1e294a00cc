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
//!
//! The parts live in submodules, all re-exported here: [`header`] (the header and its flags),
//! [`flags`] (NB_FLAGS and NAME_FLAGS), [`records`] (questions, resource records and their
//! RDATA) and [`node_status`] (the RDATA of a node status response).

use std::net::Ipv4Addr;

use bytes::BufMut;

use crate::codec::{DecodeError, DecodeErrorKind, Reader};
use crate::name::QualifiedName;

pub mod flags;
pub mod header;
pub mod node_status;
pub mod records;

pub use flags::{NameFlags, NbFlags, NodeType};
pub use header::{Header, Opcode, Rcode, HEADER_LEN};
pub use node_status::{
    NodeName, NodeStatus, Statistics, MAX_NODE_STATUS_NAMES, NODE_NAME_ENTRY_LEN, STATISTICS_LEN,
};
pub use records::{
    AddrEntry, NameForm, Question, RData, ResourceRecord, RrClass, RrType, ADDR_ENTRY_LEN,
    MAX_ADDR_ENTRIES, MIN_QUESTION_LEN, MIN_RESOURCE_RECORD_LEN, QUESTION_NAME_OFFSET,
    WACK_RDATA_LEN,
};

use header::{broadcast_bit, FLAGS_RESERVED};

/// Most entries (questions and records, all sections together) a packet may declare. Name
/// service packets carry one entry per section (RFC 1002 4.2); they are never meant to be
/// fragmented, and an Ethernet frame (1500 bytes less the 20-byte IPv4 and 8-byte UDP headers
/// and the 12-byte name service header) cannot hold more entries of the smallest size than this.
pub const MAX_RECORDS: usize = (1500 - 20 - 8 - HEADER_LEN) / MIN_QUESTION_LEN;

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
