//! The NetBIOS datagram service (UDP 138): packet formats of RFC 1002 4.4.
//!
//! `NET SEND *` and every other mailslot message travel as NetBIOS datagrams: a 10-byte
//! header (type, flags, id, source address), then for the three data-carrying types a length,
//! a fragment offset, the source and destination names and the user data (an SMB mailslot
//! write, which the layer above decodes: this module does not look into it). The other types report errors and answer datagram
//! distribution server queries; they carry a code or a single name.
//!
//! Decoding is byte-exact: every field, including reserved flag bits, is kept, so that
//! [`Datagram::encode`] of a decoded packet gives back the same bytes. Fragments are decoded
//! and their flags and offset exposed; putting them back together is left to the caller,
//! because no sender this project talks to fragments (Windows caps mailslot writes at 512
//! bytes, below the datagram limit).

use std::fmt;
use std::net::Ipv4Addr;

use bytes::BufMut;

use crate::codec::{DecodeError, DecodeErrorKind, Reader};
use crate::name::QualifiedName;

/// UDP port of the datagram service (RFC 1002 4.4; also the SOURCE_PORT senders write).
pub const DATAGRAM_PORT: u16 = 138;
/// Largest datagram the service sends, header included (RFC 1002 6, MAX_DATAGRAM_LENGTH).
/// Larger user data must be fragmented; see [`DataMessage::fits_unfragmented`]. A receiver
/// must not rely on it: Windows sends mailslot writes of up to 512 bytes unfragmented
/// ([MS-MAIL] note <2>), which makes datagrams of up to 594 bytes with unscoped names, so
/// receive buffers should hold a whole UDP payload.
pub const MAX_DATAGRAM_LENGTH: usize = 576;
/// Bytes of the header common to every datagram type: MSG_TYPE, FLAGS, DGM_ID, SOURCE_IP,
/// SOURCE_PORT (RFC 1002 4.4.1).
pub const COMMON_HEADER_LEN: usize = 10;
/// Bytes of the header of the data-carrying types: the common header plus DGM_LENGTH and
/// PACKET_OFFSET (RFC 1002 4.4.2). DGM_LENGTH counts the bytes after it.
pub const DATA_HEADER_LEN: usize = 14;

/// MSG_TYPE of a datagram to a unique name (RFC 1002 4.4.1).
pub const DIRECT_UNIQUE: u8 = 0x10;
/// MSG_TYPE of a datagram to a group name (RFC 1002 4.4.1).
pub const DIRECT_GROUP: u8 = 0x11;
/// MSG_TYPE of a datagram to all names (RFC 1002 4.4.1).
pub const BROADCAST: u8 = 0x12;
/// MSG_TYPE of a datagram error (RFC 1002 4.4.3).
pub const DATAGRAM_ERROR: u8 = 0x13;
/// MSG_TYPE of a datagram distribution server query (RFC 1002 4.4.4).
pub const QUERY_REQUEST: u8 = 0x14;
/// MSG_TYPE of a positive answer to a query (RFC 1002 4.4.4).
pub const POSITIVE_QUERY_RESPONSE: u8 = 0x15;
/// MSG_TYPE of a negative answer to a query (RFC 1002 4.4.4).
pub const NEGATIVE_QUERY_RESPONSE: u8 = 0x16;

/// FLAGS bit M: more fragments follow (RFC 1002 4.4.1).
const FLAG_MORE: u8 = 0x01;
/// FLAGS bit F: this is the first fragment (RFC 1002 4.4.1).
const FLAG_FIRST: u8 = 0x02;
/// FLAGS bits SNT: the sending node's type (RFC 1002 4.4.1).
const FLAG_SNT_MASK: u8 = 0x0C;
const FLAG_SNT_SHIFT: u8 = 2;

/// The node type of the sender, FLAGS bits SNT (RFC 1002 4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// B node: resolves names by broadcast. What a host without a WINS server is.
    Broadcast,
    /// P node: resolves names through a name server only.
    PointToPoint,
    /// M node: broadcast first, then the name server. Samba's nmbd announces itself so.
    Mixed,
    /// The value RFC 1002 gives the NetBIOS datagram distribution server; Windows H-node
    /// hosts send it too ([MS-MAIL] note <13>).
    Nbdd,
}

impl NodeType {
    fn bits(self) -> u8 {
        match self {
            Self::Broadcast => 0,
            Self::PointToPoint => 1,
            Self::Mixed => 2,
            Self::Nbdd => 3,
        }
    }

    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => Self::Broadcast,
            1 => Self::PointToPoint,
            2 => Self::Mixed,
            _ => Self::Nbdd,
        }
    }
}

/// The FLAGS byte. The high four bits are reserved (RFC 1002 4.4.1: "must be zero") but kept
/// as received, so that re-encoding is exact.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatagramFlags(pub u8);

impl DatagramFlags {
    /// Flags of an unfragmented datagram (F set, M clear) from a node of type `node`. For a
    /// B node that is 0x02, for a Windows H node 0x0E.
    pub fn unfragmented(node: NodeType) -> Self {
        Self(FLAG_FIRST | (node.bits() << FLAG_SNT_SHIFT))
    }

    /// M: more fragments of this datagram follow.
    pub fn more(self) -> bool {
        self.0 & FLAG_MORE != 0
    }

    /// F: this is the first fragment (set on unfragmented datagrams too).
    pub fn first(self) -> bool {
        self.0 & FLAG_FIRST != 0
    }

    /// SNT: the sender's node type.
    pub fn node_type(self) -> NodeType {
        NodeType::from_bits((self.0 & FLAG_SNT_MASK) >> FLAG_SNT_SHIFT)
    }

    /// The reserved high bits, zero from every conforming sender.
    pub fn reserved(self) -> u8 {
        self.0 & 0xF0
    }
}

impl fmt::Debug for DatagramFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramFlags")
            .field("bits", &format_args!("{:#04x}", self.0))
            .field("more", &self.more())
            .field("first", &self.first())
            .field("node_type", &self.node_type())
            .finish()
    }
}

/// The header fields common to every datagram type (RFC 1002 4.4.1), MSG_TYPE aside: that is
/// implied by the [`DatagramBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatagramHeader {
    /// Fragment flags and sender node type.
    pub flags: DatagramFlags,
    /// DGM_ID: chosen by the sender, the same in every fragment of one datagram.
    pub id: u16,
    /// SOURCE_IP: the sender's address as the sender states it; a receiver sending an error
    /// back should use the address the packet came from.
    pub source_ip: Ipv4Addr,
    /// SOURCE_PORT: normally [`DATAGRAM_PORT`].
    pub source_port: u16,
}

/// The part of a DIRECT_UNIQUE, DIRECT_GROUP or BROADCAST datagram after the common header
/// (RFC 1002 4.4.2). All three carry both names: for BROADCAST the destination is ignored by
/// receivers but still present (RFC 1002 4.4.2; Samba and Wireshark parse it so).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataMessage {
    /// PACKET_OFFSET: where this fragment's user data starts in the whole datagram; 0 when
    /// unfragmented.
    pub packet_offset: u16,
    /// SOURCE_NAME: the sending name, e.g. `ALICEPC<00>`.
    pub source: QualifiedName,
    /// DESTINATION_NAME: e.g. `WORKGROUP<00>` for `NET SEND *`, `BOB<03>` for a directed
    /// mailslot message.
    pub destination: QualifiedName,
    /// USER_DATA: for the Messenger, an SMB mailslot write, kept as opaque bytes here.
    pub user_data: Vec<u8>,
}

impl DataMessage {
    /// DGM_LENGTH for this message: the bytes after the 14-byte header (RFC 1002 4.4.2; Samba
    /// computes it the same way).
    pub fn dgm_length(&self) -> usize {
        self.source.encoded_len() + self.destination.encoded_len() + self.user_data.len()
    }

    /// Whether the whole datagram stays within [`MAX_DATAGRAM_LENGTH`].
    pub fn fits_unfragmented(&self) -> bool {
        DATA_HEADER_LEN + self.dgm_length() <= MAX_DATAGRAM_LENGTH
    }
}

/// ERROR_CODE of a DATAGRAM ERROR packet (RFC 1002 4.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatagramErrorCode {
    /// 0x82: the destination name is not present at the node the datagram was sent to.
    DestinationNameNotPresent,
    /// 0x83: the source name is malformed.
    InvalidSourceName,
    /// 0x84: the destination name is malformed.
    InvalidDestinationName,
    /// Any other value, kept for exact re-encoding.
    Other(u8),
}

impl DatagramErrorCode {
    /// The code for a wire byte.
    pub fn from_u8(code: u8) -> Self {
        match code {
            0x82 => Self::DestinationNameNotPresent,
            0x83 => Self::InvalidSourceName,
            0x84 => Self::InvalidDestinationName,
            other => Self::Other(other),
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::DestinationNameNotPresent => 0x82,
            Self::InvalidSourceName => 0x83,
            Self::InvalidDestinationName => 0x84,
            Self::Other(code) => code,
        }
    }
}

/// What follows the common header; the variant is the MSG_TYPE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DatagramBody {
    /// 0x10, to a unique name (a directed mailslot message to `NAME<03>`).
    DirectUnique(DataMessage),
    /// 0x11, to a group name (`NET SEND *` to `WORKGROUP<00>`).
    DirectGroup(DataMessage),
    /// 0x12, to every name.
    Broadcast(DataMessage),
    /// 0x13, an error about a datagram this node sent.
    Error(DatagramErrorCode),
    /// 0x14, asks a datagram distribution server whether it can deliver to a name.
    QueryRequest(QualifiedName),
    /// 0x15, the server can deliver to the name.
    PositiveQueryResponse(QualifiedName),
    /// 0x16, the server cannot.
    NegativeQueryResponse(QualifiedName),
}

impl DatagramBody {
    /// The MSG_TYPE byte.
    pub fn msg_type(&self) -> u8 {
        match self {
            Self::DirectUnique(_) => DIRECT_UNIQUE,
            Self::DirectGroup(_) => DIRECT_GROUP,
            Self::Broadcast(_) => BROADCAST,
            Self::Error(_) => DATAGRAM_ERROR,
            Self::QueryRequest(_) => QUERY_REQUEST,
            Self::PositiveQueryResponse(_) => POSITIVE_QUERY_RESPONSE,
            Self::NegativeQueryResponse(_) => NEGATIVE_QUERY_RESPONSE,
        }
    }
}

/// A datagram's encoding would not fit its 16-bit length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("datagram of {length} bytes after the header does not fit DGM_LENGTH (at most {limit})")]
pub struct DatagramTooLong {
    /// The length DGM_LENGTH would have to hold.
    pub length: usize,
    /// The largest it can hold.
    pub limit: usize,
}

/// A NetBIOS datagram service packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Datagram {
    /// The common header.
    pub header: DatagramHeader,
    /// The type-specific rest.
    pub body: DatagramBody,
}

impl Datagram {
    /// The data message, for the three data-carrying types.
    pub fn data_message(&self) -> Option<&DataMessage> {
        match &self.body {
            DatagramBody::DirectUnique(m)
            | DatagramBody::DirectGroup(m)
            | DatagramBody::Broadcast(m) => Some(m),
            _ => None,
        }
    }

    /// Whether this is one fragment of a larger datagram (M set, F clear, or a non-zero
    /// PACKET_OFFSET) and so must not be handed on as a whole message.
    pub fn is_fragment(&self) -> bool {
        let flags = self.header.flags;
        flags.more() || !flags.first() || self.data_message().is_some_and(|m| m.packet_offset != 0)
    }

    /// Decodes a whole UDP payload. Bytes after the end that DGM_LENGTH gives (or, for the
    /// fixed-size types, after the last field) are rejected; use [`Datagram::decode_prefix`]
    /// to accept them.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (datagram, used) = Self::decode_prefix(buf)?;
        if used < buf.len() {
            return Err(DecodeError::new(
                used,
                DecodeErrorKind::TrailingBytes {
                    count: buf.len() - used,
                },
            ));
        }
        Ok(datagram)
    }

    /// Decodes a datagram at the start of `buf` and returns it with the number of bytes it
    /// took. DGM_LENGTH is checked against the buffer: a length beyond the end is an error,
    /// and the names and user data must fit inside it.
    pub fn decode_prefix(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::new(buf);
        let msg_type = r.u8()?;
        let flags = DatagramFlags(r.u8()?);
        let id = r.u16_be()?;
        let source_ip = Ipv4Addr::from(r.u32_be()?);
        let source_port = r.u16_be()?;
        let header = DatagramHeader {
            flags,
            id,
            source_ip,
            source_port,
        };
        let body = match msg_type {
            DIRECT_UNIQUE | DIRECT_GROUP | BROADCAST => {
                let message = decode_data_message(&mut r)?;
                match msg_type {
                    DIRECT_UNIQUE => DatagramBody::DirectUnique(message),
                    DIRECT_GROUP => DatagramBody::DirectGroup(message),
                    _ => DatagramBody::Broadcast(message),
                }
            }
            DATAGRAM_ERROR => DatagramBody::Error(DatagramErrorCode::from_u8(r.u8()?)),
            QUERY_REQUEST => DatagramBody::QueryRequest(QualifiedName::decode(&mut r)?),
            POSITIVE_QUERY_RESPONSE => {
                DatagramBody::PositiveQueryResponse(QualifiedName::decode(&mut r)?)
            }
            NEGATIVE_QUERY_RESPONSE => {
                DatagramBody::NegativeQueryResponse(QualifiedName::decode(&mut r)?)
            }
            other => return Err(DecodeError::invalid(0, "MSG_TYPE", other)),
        };
        Ok((Self { header, body }, r.position()))
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        COMMON_HEADER_LEN
            + match &self.body {
                DatagramBody::DirectUnique(m)
                | DatagramBody::DirectGroup(m)
                | DatagramBody::Broadcast(m) => 4 + m.dgm_length(),
                DatagramBody::Error(_) => 1,
                DatagramBody::QueryRequest(n)
                | DatagramBody::PositiveQueryResponse(n)
                | DatagramBody::NegativeQueryResponse(n) => n.encoded_len(),
            }
    }

    /// Encodes the datagram, computing DGM_LENGTH. Fails only if the user data is so large
    /// that DGM_LENGTH cannot hold it; [`MAX_DATAGRAM_LENGTH`] is not enforced here, because
    /// the caller decides whether to fragment.
    pub fn encode(&self) -> Result<Vec<u8>, DatagramTooLong> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.put_u8(self.body.msg_type());
        out.put_u8(self.header.flags.0);
        out.put_u16(self.header.id);
        out.put_u32(u32::from(self.header.source_ip));
        out.put_u16(self.header.source_port);
        match &self.body {
            DatagramBody::DirectUnique(m)
            | DatagramBody::DirectGroup(m)
            | DatagramBody::Broadcast(m) => {
                let length = m.dgm_length();
                let dgm_length = u16::try_from(length).map_err(|_| DatagramTooLong {
                    length,
                    limit: usize::from(u16::MAX),
                })?;
                out.put_u16(dgm_length);
                out.put_u16(m.packet_offset);
                m.source.encode(&mut out);
                m.destination.encode(&mut out);
                out.put_slice(&m.user_data);
            }
            DatagramBody::Error(code) => out.put_u8(code.to_u8()),
            DatagramBody::QueryRequest(n)
            | DatagramBody::PositiveQueryResponse(n)
            | DatagramBody::NegativeQueryResponse(n) => n.encode(&mut out),
        }
        Ok(out)
    }
}

/// Reads DGM_LENGTH, PACKET_OFFSET, both names and the user data. The reader is positioned
/// after the common header.
fn decode_data_message(r: &mut Reader<'_>) -> Result<DataMessage, DecodeError> {
    let length_at = r.offset();
    let dgm_length = usize::from(r.u16_be()?);
    let packet_offset = r.u16_be()?;
    let body_start = r.offset();
    // Never read past what DGM_LENGTH covers, and never believe it past the buffer.
    let body = r.take(dgm_length).map_err(|e| match e.kind {
        DecodeErrorKind::Truncated { needed } => DecodeError::new(
            length_at,
            DecodeErrorKind::TooLong {
                field: "DGM_LENGTH",
                length: dgm_length,
                limit: dgm_length - needed,
            },
        ),
        _ => e,
    })?;
    let mut inner = Reader::with_base(body, body_start);
    let source = QualifiedName::decode(&mut inner)?;
    let destination = QualifiedName::decode(&mut inner)?;
    let user_data = inner.rest().to_vec();
    Ok(DataMessage {
        packet_offset,
        source,
        destination,
        user_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::{NetbiosName, Scope, SUFFIX_MESSENGER};
    use proptest::prelude::*;

    fn name(n: &str, suffix: u8) -> QualifiedName {
        QualifiedName::new(NetbiosName::new_uppercase(n.as_bytes(), suffix).unwrap())
    }

    fn header() -> DatagramHeader {
        DatagramHeader {
            flags: DatagramFlags::unfragmented(NodeType::Broadcast),
            id: 0x1234,
            source_ip: Ipv4Addr::new(192, 168, 1, 10),
            source_port: DATAGRAM_PORT,
        }
    }

    #[test]
    fn flags_follow_rfc_bits() {
        assert_eq!(DatagramFlags::unfragmented(NodeType::Broadcast).0, 0x02);
        assert_eq!(DatagramFlags::unfragmented(NodeType::Nbdd).0, 0x0E);
        let f = DatagramFlags(0x0B);
        assert!(f.more() && f.first());
        assert_eq!(f.node_type(), NodeType::Mixed);
        assert_eq!(DatagramFlags(0xF2).reserved(), 0xF0);
    }

    #[test]
    fn data_message_layout_and_length() {
        let d = Datagram {
            header: header(),
            body: DatagramBody::DirectGroup(DataMessage {
                packet_offset: 0,
                source: name("alice", 0),
                destination: name("workgroup", 0),
                user_data: b"xyz".to_vec(),
            }),
        };
        let bytes = d.encode().unwrap();
        assert_eq!(bytes.len(), 14 + 34 + 34 + 3);
        assert_eq!(
            &bytes[..14],
            b"\x11\x02\x12\x34\xC0\xA8\x01\x0A\x00\x8A\x00\x47\x00\x00"
        );
        assert_eq!(d.encoded_len(), bytes.len());
        assert_eq!(Datagram::decode(&bytes).unwrap(), d);
        assert!(!d.is_fragment());
    }

    #[test]
    fn broadcast_carries_a_destination_name() {
        let d = Datagram {
            header: header(),
            body: DatagramBody::Broadcast(DataMessage {
                packet_offset: 0,
                source: name("alice", 0),
                destination: QualifiedName::new(NetbiosName::from_raw(
                    *b"*\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                )),
                user_data: Vec::new(),
            }),
        };
        let bytes = d.encode().unwrap();
        assert_eq!(bytes.len(), 14 + 68);
        assert_eq!(Datagram::decode(&bytes).unwrap(), d);
    }

    #[test]
    fn dgm_length_is_checked_against_the_buffer() {
        let d = Datagram {
            header: header(),
            body: DatagramBody::DirectUnique(DataMessage {
                packet_offset: 0,
                source: name("a", 0),
                destination: name("b", SUFFIX_MESSENGER),
                user_data: vec![1, 2, 3],
            }),
        };
        let mut bytes = d.encode().unwrap();
        // Claims more than there is.
        bytes[11] += 1;
        let err = Datagram::decode(&bytes).unwrap_err();
        assert_eq!(err.offset, 10);
        assert!(matches!(
            err.kind,
            DecodeErrorKind::TooLong {
                field: "DGM_LENGTH",
                ..
            }
        ));
        // Claims less than the names need.
        bytes[10] = 0;
        bytes[11] = 40;
        assert!(Datagram::decode(&bytes).is_err());
        // Claims less than there is: the rest is trailing.
        let mut bytes = d.encode().unwrap();
        bytes[11] -= 1;
        let err = Datagram::decode(&bytes).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TrailingBytes { count: 1 });
        let (prefix, used) = Datagram::decode_prefix(&bytes).unwrap();
        assert_eq!(used, bytes.len() - 1);
        assert_eq!(prefix.data_message().unwrap().user_data, vec![1, 2]);
    }

    #[test]
    fn fragments_are_exposed() {
        let d = Datagram {
            header: DatagramHeader {
                flags: DatagramFlags(0x01),
                ..header()
            },
            body: DatagramBody::DirectUnique(DataMessage {
                packet_offset: 512,
                source: name("a", 0),
                destination: name("b", SUFFIX_MESSENGER),
                user_data: vec![0; 4],
            }),
        };
        let back = Datagram::decode(&d.encode().unwrap()).unwrap();
        assert!(back.is_fragment());
        assert!(back.header.flags.more());
        assert!(!back.header.flags.first());
        assert_eq!(back.data_message().unwrap().packet_offset, 512);
    }

    #[test]
    fn error_and_query_packets() {
        let err = [0x13, 0x02, 0, 1, 10, 0, 0, 1, 0, 138, 0x82];
        let d = Datagram::decode(&err).unwrap();
        assert_eq!(
            d.body,
            DatagramBody::Error(DatagramErrorCode::DestinationNameNotPresent)
        );
        assert_eq!(d.encode().unwrap(), err);
        assert!(Datagram::decode(&err[..10]).is_err());
        let q = Datagram {
            header: header(),
            body: DatagramBody::QueryRequest(name("bob", SUFFIX_MESSENGER)),
        };
        let bytes = q.encode().unwrap();
        assert_eq!(bytes.len(), 10 + 34);
        assert_eq!(Datagram::decode(&bytes).unwrap(), q);
        let mut unknown = bytes.clone();
        unknown[0] = 0x17;
        assert_eq!(
            Datagram::decode(&unknown).unwrap_err().kind,
            DecodeErrorKind::InvalidValue {
                field: "MSG_TYPE",
                value: 0x17
            }
        );
    }

    #[test]
    fn oversized_user_data_is_refused_on_encode() {
        let d = Datagram {
            header: header(),
            body: DatagramBody::DirectGroup(DataMessage {
                packet_offset: 0,
                source: name("a", 0),
                destination: name("b", 0),
                user_data: vec![0; 70_000],
            }),
        };
        assert!(d.encode().is_err());
        assert!(!d.data_message().unwrap().fits_unfragmented());
    }

    fn arb_name() -> impl Strategy<Value = QualifiedName> {
        (
            proptest::array::uniform16(any::<u8>()),
            proptest::collection::vec("[A-Z]{1,10}", 0..3),
        )
            .prop_map(|(raw, labels)| {
                let scope =
                    Scope::from_labels(labels.into_iter().map(String::into_bytes).collect())
                        .unwrap_or_default();
                QualifiedName::with_scope(NetbiosName::from_raw(raw), scope)
            })
    }

    fn arb_message() -> impl Strategy<Value = DataMessage> {
        (
            any::<u16>(),
            arb_name(),
            arb_name(),
            proptest::collection::vec(any::<u8>(), 0..600),
        )
            .prop_map(
                |(packet_offset, source, destination, user_data)| DataMessage {
                    packet_offset,
                    source,
                    destination,
                    user_data,
                },
            )
    }

    fn arb_datagram() -> impl Strategy<Value = Datagram> {
        let header = (any::<u8>(), any::<u16>(), any::<u32>(), any::<u16>()).prop_map(
            |(flags, id, ip, port)| DatagramHeader {
                flags: DatagramFlags(flags),
                id,
                source_ip: Ipv4Addr::from(ip),
                source_port: port,
            },
        );
        let body = prop_oneof![
            arb_message().prop_map(DatagramBody::DirectUnique),
            arb_message().prop_map(DatagramBody::DirectGroup),
            arb_message().prop_map(DatagramBody::Broadcast),
            any::<u8>().prop_map(|c| DatagramBody::Error(DatagramErrorCode::from_u8(c))),
            arb_name().prop_map(DatagramBody::QueryRequest),
            arb_name().prop_map(DatagramBody::PositiveQueryResponse),
            arb_name().prop_map(DatagramBody::NegativeQueryResponse),
        ];
        (header, body).prop_map(|(header, body)| Datagram { header, body })
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(d in arb_datagram()) {
            let bytes = d.encode().unwrap();
            prop_assert_eq!(bytes.len(), d.encoded_len());
            prop_assert_eq!(Datagram::decode(&bytes).unwrap(), d);
        }

        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..700)) {
            if let Ok((d, used)) = Datagram::decode_prefix(&data) {
                prop_assert_eq!(d.encode().unwrap(), &data[..used]);
            }
        }

        #[test]
        fn decoder_never_panics_on_plausible_headers(
            msg_type in 0x10u8..0x17,
            len in any::<u16>(),
            rest in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut data = vec![msg_type, 2, 0, 0, 10, 0, 0, 1, 0, 138];
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(&rest);
            let _ = Datagram::decode(&data);
        }
    }
}
