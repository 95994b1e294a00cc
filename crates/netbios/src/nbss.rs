//! NetBIOS Session Service packets (RFC 1002 4.3) and an incremental framer for a TCP stream.
//!
//! Every session service packet starts with a 4-byte header: TYPE, FLAGS (bit 0 is the E bit,
//! which extends the length to 17 bits) and a big-endian LENGTH. Directed messenger traffic
//! rides on this framing: a SESSION REQUEST naming `RECIPIENT<03>`, the server's positive or
//! negative answer, then one SMB per SESSION MESSAGE.
//!
//! [`Framer`] cuts frames out of a byte stream as it arrives. It does no I/O: the connection
//! pushes what it read and pulls complete packets out.

use std::net::Ipv4Addr;

use bytes::BufMut;

use crate::codec::{DecodeError, DecodeErrorKind, Reader};
use crate::name::QualifiedName;

/// TCP port of the session service (RFC 1002 s.6, SSN_SRVC_TCP_PORT).
pub const SESSION_PORT: u16 = 139;
/// Bytes in the session packet header: TYPE, FLAGS, LENGTH (RFC 1002 4.3.1).
pub const HEADER_LEN: usize = 4;
/// Largest payload the header can describe: 16 LENGTH bits plus the E bit (RFC 1002 4.3.1).
pub const MAX_PAYLOAD_LEN: usize = 0x1_FFFF;
/// Default cap on the payload of one frame accepted by a [`Framer`]. Our limit, not the
/// protocol's: the largest messenger SMB (a 0xD0 with two long names and a lenient data block)
/// is well under 2 KiB, so anything larger on a messenger connection is not messenger traffic,
/// and refusing it early bounds the memory one connection can pin.
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024;

/// FLAGS bit 0: the length extension (RFC 1002 4.3.1).
const FLAG_E: u8 = 0x01;

/// Packet TYPE codes (RFC 1002 4.3.1).
pub mod packet_type {
    /// SESSION MESSAGE: carries one SMB.
    pub const SESSION_MESSAGE: u8 = 0x00;
    /// SESSION REQUEST: called and calling names.
    pub const SESSION_REQUEST: u8 = 0x81;
    /// POSITIVE SESSION RESPONSE.
    pub const POSITIVE_RESPONSE: u8 = 0x82;
    /// NEGATIVE SESSION RESPONSE: one error code byte.
    pub const NEGATIVE_RESPONSE: u8 = 0x83;
    /// RETARGET SESSION RESPONSE: IPv4 address and port.
    pub const RETARGET_RESPONSE: u8 = 0x84;
    /// SESSION KEEP ALIVE.
    pub const KEEP_ALIVE: u8 = 0x85;
}

/// The error code of a NEGATIVE SESSION RESPONSE (RFC 1002 4.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NegativeCode {
    /// 0x80: the called name is registered but nobody listens on it.
    NotListeningOnCalledName,
    /// 0x81: the listener does not accept this calling name.
    NotListeningForCallingName,
    /// 0x82: the called name is not on this host. For the messenger this is "the recipient is
    /// unknown", which `NET SEND` reports as error 2273.
    CalledNameNotPresent,
    /// 0x83: the called name is here but has no resources for another session.
    InsufficientResources,
    /// 0x8F: unspecified error.
    Unspecified,
    /// Any other code, kept so that a decoded packet re-encodes to the same bytes.
    Other(u8),
}

impl NegativeCode {
    /// The code from its wire byte.
    pub fn from_u8(code: u8) -> Self {
        match code {
            0x80 => Self::NotListeningOnCalledName,
            0x81 => Self::NotListeningForCallingName,
            0x82 => Self::CalledNameNotPresent,
            0x83 => Self::InsufficientResources,
            0x8F => Self::Unspecified,
            other => Self::Other(other),
        }
    }

    /// The wire byte.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::NotListeningOnCalledName => 0x80,
            Self::NotListeningForCallingName => 0x81,
            Self::CalledNameNotPresent => 0x82,
            Self::InsufficientResources => 0x83,
            Self::Unspecified => 0x8F,
            Self::Other(code) => code,
        }
    }
}

/// One session service packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPacket {
    /// SESSION MESSAGE (0x00): user data, here one SMB.
    SessionMessage(Vec<u8>),
    /// SESSION REQUEST (0x81).
    SessionRequest {
        /// The name being called; for a messenger send, `RECIPIENT<03>`.
        called: QualifiedName,
        /// The caller's own name (any suffix; receivers must accept any).
        calling: QualifiedName,
    },
    /// POSITIVE SESSION RESPONSE (0x82).
    PositiveResponse,
    /// NEGATIVE SESSION RESPONSE (0x83) with its error code.
    NegativeResponse(NegativeCode),
    /// RETARGET SESSION RESPONSE (0x84): call again at this address.
    Retarget {
        /// Address to connect to.
        addr: Ipv4Addr,
        /// Port to connect to.
        port: u16,
    },
    /// SESSION KEEP ALIVE (0x85).
    KeepAlive,
}

/// A payload longer than the 17-bit LENGTH can describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "session payload of {length} bytes exceeds the session service maximum of {MAX_PAYLOAD_LEN}"
)]
pub struct PayloadTooLong {
    /// The payload length that did not fit.
    pub length: usize,
}

/// Writes a session packet header for a payload of `len` bytes.
pub fn encode_header(packet_type: u8, len: usize, out: &mut Vec<u8>) -> Result<(), PayloadTooLong> {
    if len > MAX_PAYLOAD_LEN {
        return Err(PayloadTooLong { length: len });
    }
    out.put_u8(packet_type);
    out.put_u8(if len > 0xFFFF { FLAG_E } else { 0 });
    out.put_u16((len & 0xFFFF) as u16);
    Ok(())
}

/// Wraps one SMB (or any payload) in a SESSION MESSAGE frame.
pub fn frame_message(payload: &[u8]) -> Result<Vec<u8>, PayloadTooLong> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    encode_header(packet_type::SESSION_MESSAGE, payload.len(), &mut out)?;
    out.put_slice(payload);
    Ok(out)
}

/// The TYPE and payload length from a 4-byte header. Reserved FLAGS bits must be zero (RFC
/// 1002 4.3.1); a peer that sets them speaks something other than the session service.
fn decode_header(header: [u8; HEADER_LEN], offset: usize) -> Result<(u8, usize), DecodeError> {
    let flags = header[1];
    if flags & !FLAG_E != 0 {
        return Err(DecodeError::invalid(offset + 1, "FLAGS", flags));
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]))
        + if flags & FLAG_E != 0 { 0x1_0000 } else { 0 };
    Ok((header[0], len))
}

impl SessionPacket {
    /// The TYPE byte of this packet.
    pub fn packet_type(&self) -> u8 {
        match self {
            Self::SessionMessage(_) => packet_type::SESSION_MESSAGE,
            Self::SessionRequest { .. } => packet_type::SESSION_REQUEST,
            Self::PositiveResponse => packet_type::POSITIVE_RESPONSE,
            Self::NegativeResponse(_) => packet_type::NEGATIVE_RESPONSE,
            Self::Retarget { .. } => packet_type::RETARGET_RESPONSE,
            Self::KeepAlive => packet_type::KEEP_ALIVE,
        }
    }

    /// Appends the wire form, header included. Fails only for a session message whose payload
    /// exceeds [`MAX_PAYLOAD_LEN`] (names are bounded by their own type).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PayloadTooLong> {
        let ty = self.packet_type();
        match self {
            Self::SessionMessage(payload) => {
                encode_header(ty, payload.len(), out)?;
                out.put_slice(payload);
            }
            Self::SessionRequest { called, calling } => {
                encode_header(ty, called.encoded_len() + calling.encoded_len(), out)?;
                called.encode(out);
                calling.encode(out);
            }
            Self::PositiveResponse | Self::KeepAlive => encode_header(ty, 0, out)?,
            Self::NegativeResponse(code) => {
                encode_header(ty, 1, out)?;
                out.put_u8(code.to_u8());
            }
            Self::Retarget { addr, port } => {
                encode_header(ty, 6, out)?;
                out.put_slice(&addr.octets());
                out.put_u16(*port);
            }
        }
        Ok(())
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PayloadTooLong> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes exactly one packet that fills `buf`.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let (ty, len) = decode_header(r.array()?, 0)?;
        let payload = r.take(len)?;
        r.expect_end()?;
        Self::decode_payload(ty, payload, HEADER_LEN)
    }

    /// Decodes the payload of a packet of type `ty`; `base` is the payload's offset in the
    /// buffer the caller reports errors against.
    fn decode_payload(ty: u8, payload: &[u8], base: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::with_base(payload, base);
        let packet = match ty {
            packet_type::SESSION_MESSAGE => return Ok(Self::SessionMessage(payload.to_vec())),
            packet_type::SESSION_REQUEST => {
                let called = QualifiedName::decode(&mut r)?;
                let calling = QualifiedName::decode(&mut r)?;
                Self::SessionRequest { called, calling }
            }
            packet_type::POSITIVE_RESPONSE => Self::PositiveResponse,
            packet_type::NEGATIVE_RESPONSE => {
                Self::NegativeResponse(NegativeCode::from_u8(r.u8()?))
            }
            packet_type::RETARGET_RESPONSE => {
                let addr = Ipv4Addr::from(r.array::<4>()?);
                let port = r.u16_be()?;
                Self::Retarget { addr, port }
            }
            packet_type::KEEP_ALIVE => Self::KeepAlive,
            other => return Err(DecodeError::invalid(base - HEADER_LEN, "TYPE", other)),
        };
        r.expect_end()?;
        Ok(packet)
    }
}

/// Which packet types a [`Framer`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FramerMode {
    /// Every session service packet type (port 139, or any port where a peer may send a
    /// SESSION REQUEST first; Samba's smbd accepts one on any port).
    #[default]
    SessionService,
    /// SMB carried straight over TCP without session establishment, as `smbclient` does on any
    /// port other than 139 (the captures show the same 4-byte header with TYPE 0x00). Only
    /// SESSION MESSAGE and KEEP ALIVE are valid; any other TYPE is an error. A sender that
    /// skipped the session request uses this mode, since no session response can be due.
    DirectSmb,
}

/// Cuts session service packets out of a TCP byte stream.
///
/// Push bytes as they are read, then call [`Framer::next_frame`] until it returns `Ok(None)`.
/// The length is checked against the cap as soon as a header is complete, so an oversized
/// frame is refused before its payload is buffered. After an error the framer stays failed:
/// the stream has lost synchronisation and the connection must be closed.
#[derive(Debug, Clone)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out; compacted lazily to avoid shifting on every frame.
    start: usize,
    /// Offset in the whole stream of `buf[0]`, so errors say where in the stream they were.
    stream_offset: usize,
    max_frame_len: usize,
    mode: FramerMode,
    failed: Option<DecodeError>,
}

impl Framer {
    /// A framer accepting payloads up to `max_frame_len` bytes (clamped to
    /// [`MAX_PAYLOAD_LEN`]).
    pub fn new(mode: FramerMode, max_frame_len: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            stream_offset: 0,
            max_frame_len: max_frame_len.min(MAX_PAYLOAD_LEN),
            mode,
            failed: None,
        }
    }

    /// The mode given at construction.
    pub fn mode(&self) -> FramerMode {
        self.mode
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.stream_offset += self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// How many pushed bytes are not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete packet, `Ok(None)` if more bytes are needed, or the error that broke
    /// the stream. Error offsets count from the first byte ever pushed.
    pub fn next_frame(&mut self) -> Result<Option<SessionPacket>, DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match self.try_frame() {
            Ok(frame) => Ok(frame),
            Err(err) => {
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }

    fn try_frame(&mut self) -> Result<Option<SessionPacket>, DecodeError> {
        let avail = &self.buf[self.start..];
        let offset = self.stream_offset + self.start;
        let Some(header) = avail.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let header = [header[0], header[1], header[2], header[3]];
        let (ty, len) = decode_header(header, offset)?;
        if self.mode == FramerMode::DirectSmb
            && ty != packet_type::SESSION_MESSAGE
            && ty != packet_type::KEEP_ALIVE
        {
            return Err(DecodeError::invalid(offset, "TYPE", ty));
        }
        if len > self.max_frame_len {
            return Err(DecodeError::new(
                offset + 2,
                DecodeErrorKind::TooLong {
                    field: "LENGTH",
                    length: len,
                    limit: self.max_frame_len,
                },
            ));
        }
        let Some(payload) = avail.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        let packet = SessionPacket::decode_payload(ty, payload, offset + HEADER_LEN)?;
        self.start += HEADER_LEN + len;
        Ok(Some(packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::{NetbiosName, Scope, SUFFIX_MESSENGER};
    use crate::test_vectors::{example_hex_block, example_lines};
    use proptest::prelude::*;

    fn qn(name: &str, suffix: u8) -> QualifiedName {
        QualifiedName::new(NetbiosName::new(name.as_bytes(), suffix).unwrap())
    }

    #[test]
    fn example_09_session_request() {
        let bytes = example_hex_block("09_nbss_session_request.txt", None);
        assert_eq!(bytes.len(), 72);
        let packet = SessionPacket::decode(&bytes).unwrap();
        assert_eq!(
            packet,
            SessionPacket::SessionRequest {
                called: qn("BOB", SUFFIX_MESSENGER),
                calling: qn("ALICE", 0x00),
            }
        );
        assert_eq!(packet.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn example_10_responses() {
        let expected = [
            ("POSITIVE SESSION RESPONSE", SessionPacket::PositiveResponse),
            (
                "NEGATIVE SESSION RESPONSE, 0x82",
                SessionPacket::NegativeResponse(NegativeCode::CalledNameNotPresent),
            ),
            (
                "NEGATIVE, 0x80",
                SessionPacket::NegativeResponse(NegativeCode::NotListeningOnCalledName),
            ),
            (
                "NEGATIVE, 0x81",
                SessionPacket::NegativeResponse(NegativeCode::NotListeningForCallingName),
            ),
            (
                "NEGATIVE, 0x83",
                SessionPacket::NegativeResponse(NegativeCode::InsufficientResources),
            ),
            (
                "NEGATIVE, 0x8F",
                SessionPacket::NegativeResponse(NegativeCode::Unspecified),
            ),
            (
                "RETARGET",
                SessionPacket::Retarget {
                    addr: Ipv4Addr::new(10, 0, 0, 5),
                    port: SESSION_PORT,
                },
            ),
            ("KEEPALIVE", SessionPacket::KeepAlive),
        ];
        let lines = example_lines("10_nbss_responses.txt");
        for (label, packet) in expected {
            let bytes = lines
                .iter()
                .find(|(l, _)| l.starts_with(label))
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| panic!("example 10 has no line {label:?}"));
            assert_eq!(SessionPacket::decode(&bytes).unwrap(), packet, "{label}");
            assert_eq!(packet.to_bytes().unwrap(), bytes, "{label}");
        }
        let header = lines
            .iter()
            .find(|(l, _)| l.starts_with("SESSION MESSAGE header"))
            .map(|(_, b)| b.clone())
            .expect("example 10 has the session message header line");
        let framed = frame_message(&[0u8; 55]).unwrap();
        assert_eq!(framed[..HEADER_LEN], header[..]);
    }

    #[test]
    fn seventeen_bit_length_uses_the_e_bit() {
        let payload = vec![0xAB; 0x1_0005];
        let bytes = SessionPacket::SessionMessage(payload.clone())
            .to_bytes()
            .unwrap();
        assert_eq!(bytes[..4], [0x00, 0x01, 0x00, 0x05]);
        assert_eq!(
            SessionPacket::decode(&bytes).unwrap(),
            SessionPacket::SessionMessage(payload)
        );
        assert_eq!(
            frame_message(&vec![0; MAX_PAYLOAD_LEN + 1]),
            Err(PayloadTooLong {
                length: MAX_PAYLOAD_LEN + 1
            })
        );
    }

    #[test]
    fn rejects_reserved_flags_and_unknown_types() {
        let err = SessionPacket::decode(&[0x85, 0x02, 0, 0]).unwrap_err();
        assert_eq!(err.offset, 1);
        let err = SessionPacket::decode(&[0x86, 0, 0, 0]).unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(SessionPacket::decode(&[0x82, 0, 0, 1, 0]).is_err());
    }

    #[test]
    fn framer_handles_split_and_coalesced_frames() {
        let mut stream = Vec::new();
        SessionPacket::KeepAlive.encode(&mut stream).unwrap();
        stream.extend(frame_message(b"\xFFSMBhello").unwrap());
        SessionPacket::PositiveResponse.encode(&mut stream).unwrap();
        let mut framer = Framer::new(FramerMode::SessionService, DEFAULT_MAX_FRAME_LEN);
        let mut got = Vec::new();
        for byte in &stream {
            framer.push(std::slice::from_ref(byte));
            while let Some(p) = framer.next_frame().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(
            got,
            vec![
                SessionPacket::KeepAlive,
                SessionPacket::SessionMessage(b"\xFFSMBhello".to_vec()),
                SessionPacket::PositiveResponse
            ]
        );
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn framer_refuses_oversize_before_buffering_and_stays_failed() {
        let mut framer = Framer::new(FramerMode::SessionService, 100);
        framer.push(&[0x00, 0x00, 0x00, 101]);
        let err = framer.next_frame().unwrap_err();
        assert!(matches!(
            err.kind,
            DecodeErrorKind::TooLong { length: 101, .. }
        ));
        framer.push(&[0x85, 0, 0, 0]);
        assert_eq!(framer.next_frame().unwrap_err(), err);
    }

    #[test]
    fn direct_mode_accepts_only_messages_and_keepalives() {
        let mut framer = Framer::new(FramerMode::DirectSmb, DEFAULT_MAX_FRAME_LEN);
        framer.push(&[0x85, 0, 0, 0, 0x00, 0, 0, 1, 0xFF]);
        assert_eq!(framer.next_frame().unwrap(), Some(SessionPacket::KeepAlive));
        assert_eq!(
            framer.next_frame().unwrap(),
            Some(SessionPacket::SessionMessage(vec![0xFF]))
        );
        let request = SessionPacket::SessionRequest {
            called: qn("BOB", SUFFIX_MESSENGER),
            calling: qn("ALICE", 0),
        };
        framer.push(&request.to_bytes().unwrap());
        assert!(framer.next_frame().is_err());
    }

    fn arb_name() -> impl Strategy<Value = QualifiedName> {
        (
            proptest::array::uniform16(any::<u8>()),
            proptest::collection::vec("[A-Za-z0-9]{1,10}", 0..3),
        )
            .prop_map(|(raw, labels)| {
                let scope =
                    Scope::from_labels(labels.into_iter().map(String::into_bytes).collect())
                        .unwrap();
                QualifiedName::with_scope(NetbiosName::from_raw(raw), scope)
            })
    }

    fn arb_packet() -> impl Strategy<Value = SessionPacket> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(SessionPacket::SessionMessage),
            (arb_name(), arb_name())
                .prop_map(|(called, calling)| SessionPacket::SessionRequest { called, calling }),
            Just(SessionPacket::PositiveResponse),
            any::<u8>().prop_map(|c| SessionPacket::NegativeResponse(NegativeCode::from_u8(c))),
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, port)| SessionPacket::Retarget {
                addr: Ipv4Addr::from(a),
                port
            }),
            Just(SessionPacket::KeepAlive),
        ]
    }

    proptest! {
        #[test]
        fn packets_round_trip(packet in arb_packet()) {
            let bytes = packet.to_bytes().unwrap();
            prop_assert_eq!(SessionPacket::decode(&bytes).unwrap(), packet);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SessionPacket::decode(&data);
        }

        #[test]
        fn framer_never_panics_on_random_chunks(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(1usize..50, 0..20),
            direct in any::<bool>(),
        ) {
            let mode = if direct { FramerMode::DirectSmb } else { FramerMode::SessionService };
            let mut framer = Framer::new(mode, 256);
            let mut rest = &data[..];
            for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                rest = tail;
                framer.push(chunk);
                while let Ok(Some(_)) = framer.next_frame() {}
            }
        }

        #[test]
        fn framer_yields_the_same_packets_however_the_stream_is_cut(
            packets in proptest::collection::vec(arb_packet(), 0..6),
            cuts in proptest::collection::vec(1usize..40, 0..30),
        ) {
            let mut stream = Vec::new();
            for p in &packets {
                p.encode(&mut stream).unwrap();
            }
            let mut framer = Framer::new(FramerMode::SessionService, MAX_PAYLOAD_LEN);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                rest = tail;
                framer.push(chunk);
                while let Some(p) = framer.next_frame().unwrap() {
                    got.push(p);
                }
            }
            prop_assert_eq!(got, packets);
        }
    }
}
