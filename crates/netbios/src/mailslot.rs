//! Mailslot writes (SMB_COM_TRANSACTION over a NetBIOS datagram) and the Messenger payload.
//!
//! `NET SEND *`, `NET SEND /DOMAIN` and WinPopup deliver messages as a one-way write to the
//! mailslot `\MAILSLOT\MESSNGR`, carried as the user data of a NetBIOS datagram ([MS-MAIL]
//! 2.2.1, 3.2.3). The write is an SMB_COM_TRANSACTION (0x25) with 17 parameter words, three
//! setup words (opcode 1 = write, priority, class 2 = unreliable) and the mailslot name, after
//! which the data sits at DataOffset. The Messenger's data is three NUL-terminated OEM strings,
//! `From\0To\0Text\0`, with no type byte in front ([`MessengerMessage`]).
//!
//! [`MailslotWrite`] decodes any mailslot write (browser announcements to
//! `\MAILSLOT\BROWSE` too, with their payload kept as opaque bytes) and re-encodes it byte for
//! byte: the SMB header, every parameter word and the padding before the data are kept as
//! received. The SMB header is the one of [`crate::smb::header`]; mailslot writes use none of the
//! session-side SMB code.
//!
//! [`build_broadcast`] and [`build_directed`] make the datagrams a sender needs.

use std::net::Ipv4Addr;

use bytes::BufMut;

use crate::codec::{DecodeError, DecodeErrorKind, Reader};
use crate::name::QualifiedName;
use crate::nbdgm::{
    DataMessage, Datagram, DatagramBody, DatagramFlags, DatagramHeader, NodeType, DATAGRAM_PORT,
    MAX_DATAGRAM_LENGTH,
};
use crate::smb::header::{command, SmbHeader, HEADER_LEN as SMB_HEADER_LEN};

/// SMB_COM_TRANSACTION, the command of every mailslot write ([MS-CIFS] 2.2.4.33).
pub const SMB_COM_TRANSACTION: u8 = command::TRANSACTION;
/// WordCount of a mailslot write: 14 transaction words and 3 setup words ([MS-MAIL] 2.2.1).
pub const MAILSLOT_WORD_COUNT: u8 = 17;
/// SetupCount of a mailslot write ([MS-MAIL] 2.2.1).
pub const MAILSLOT_SETUP_COUNT: u8 = 3;
/// Setup\[0\], MailSlotOpcode: the only opcode, write ([MS-MAIL] 2.2.1).
pub const MAILSLOT_OPCODE_WRITE: u16 = 0x0001;
/// Setup\[2\], Class 2: second-class (unreliable, may be broadcast) delivery, the class every
/// datagram mailslot write uses ([MS-MAIL] 2.2.1, 3.2.3).
pub const MAILSLOT_CLASS_UNRELIABLE: u16 = 2;
/// The prefix every mailslot name starts with, compared without regard to case ([MS-MAIL]
/// 2.2.1).
pub const MAILSLOT_PREFIX: &[u8] = b"\\MAILSLOT\\";
/// The Messenger's mailslot ([MS-MSRP] 2.1.2).
pub const MESSENGER_MAILSLOT: &[u8] = b"\\MAILSLOT\\MESSNGR";
/// The browser's mailslot, which nmbd and Windows announce themselves on ([MS-BRWS] 2.1).
pub const BROWSE_MAILSLOT: &[u8] = b"\\MAILSLOT\\BROWSE";
/// Offset of the byte area from the start of the SMB: header, WordCount, 17 words, ByteCount.
const BYTE_AREA_OFFSET: usize = SMB_HEADER_LEN + 1 + 2 * MAILSLOT_WORD_COUNT as usize + 2;
/// Windows aligns the data of a mailslot write to 4 bytes from the SMB header (the [MS-MAIL]
/// section 4 capture; Windows 98 WinPopup captures show DataOffset 88 for
/// `\MAILSLOT\MESSNGR`).
const DATA_ALIGNMENT: usize = 4;

/// Largest Messenger payload in one mailslot write over NetBIOS: 432 bytes less the name
/// after `\MAILSLOT\` rounded up to 4, which is 424 for `MESSNGR` ([MS-MAIL] note <2>).
pub const MAX_MESSENGER_PAYLOAD: usize = 424;
/// Largest whole mailslot SMB Windows sends over NetBIOS ([MS-MAIL] note <2>).
pub const MAX_MAILSLOT_SMB_LEN: usize = 512;
/// Largest text of a broadcast (`NET SEND *`, `/DOMAIN`) in characters (Windows XP `net send`
/// command reference). With single-byte code pages that is also the byte count.
pub const MAX_BROADCAST_TEXT_CHARS: usize = 128;

/// The SMB header Windows clients write on mailslot writes, as in the [MS-MAIL] section 4
/// capture: Flags 0x18, Flags2 0x0004, PIDLow 0xFEFF, everything else zero.
fn windows_header() -> SmbHeader {
    SmbHeader {
        flags: 0x18,
        flags2: 0x0004,
        pid_low: 0xFEFF,
        ..SmbHeader::request(SMB_COM_TRANSACTION)
    }
}

/// The parameter words of a mailslot write other than those derived from the data
/// (DataCount, DataOffset) and those fixed by [MS-MAIL] 2.2.1 (SetupCount, the opcode). All
/// are kept as received; receivers must not rely on them ([MS-MAIL] 3.2.5.1, note <11>).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionWords {
    /// TotalParameterCount: 0 on mailslot writes.
    pub total_parameter_count: u16,
    /// TotalDataCount: equal to DataCount from every sender seen.
    pub total_data_count: u16,
    /// MaxParameterCount: 0, or 2 from Windows clients ([MS-MAIL] note <6>).
    pub max_parameter_count: u16,
    /// MaxDataCount: 0.
    pub max_data_count: u16,
    /// MaxSetupCount: 0.
    pub max_setup_count: u8,
    /// Reserved1: 0.
    pub reserved1: u8,
    /// Flags: 0, or 0x0002 (no response) from Windows clients.
    pub flags: u16,
    /// Timeout: 0.
    pub timeout: u32,
    /// Reserved2: 0.
    pub reserved2: u16,
    /// ParameterCount: 0.
    pub parameter_count: u16,
    /// ParameterOffset: usually equal to DataOffset.
    pub parameter_offset: u16,
    /// Reserved3, the byte after SetupCount: 0.
    pub reserved3: u8,
    /// Setup\[1\], Priority: 0–9; senders use 0 ([MS-MAIL] 2.2.1).
    pub priority: u16,
    /// Setup\[2\], Class: [`MAILSLOT_CLASS_UNRELIABLE`] on datagrams.
    pub class: u16,
}

/// Which field values a built mailslot write carries. Receivers ignore the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransactionStyle {
    /// What Windows clients send ([MS-MAIL] section 4 and notes <6>): SMB Flags 0x18,
    /// Flags2 0x0004, PIDLow 0xFEFF, MaxParameterCount 2, transaction Flags 0x0002.
    #[default]
    Windows,
    /// Only the fields [MS-MAIL] 2.2.1 requires; everything optional is zero.
    Minimal,
}

/// An SMB_COM_TRANSACTION mailslot write ([MS-MAIL] 2.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailslotWrite {
    /// The SMB header as received. Receivers ignore every field but Protocol and Command
    /// ([MS-MAIL] 3.2.5.1).
    pub header: SmbHeader,
    /// The parameter words as received.
    pub words: TransactionWords,
    /// ByteCount as received. Receivers ignore it ([MS-MAIL] 3.2.5.1, note <11>) because
    /// senders disagree about it; the data is found through DataOffset and DataCount.
    pub byte_count: u16,
    /// The mailslot name without its terminating NUL, e.g. `\MAILSLOT\MESSNGR`.
    pub name: Vec<u8>,
    /// Bytes between the name's NUL and DataOffset: alignment padding from Windows, none from
    /// Samba.
    pub padding: Vec<u8>,
    /// The DataCount bytes at DataOffset: the mailslot message.
    pub data: Vec<u8>,
    /// Bytes after the data, normally none; kept for exact re-encoding.
    pub trailing: Vec<u8>,
}

/// Why a mailslot write or Messenger message cannot be built or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailslotError {
    /// A part is longer than a protocol field or a limit allows.
    #[error("{what} is {length} bytes long; at most {limit} are allowed")]
    TooLong {
        /// Which part.
        what: &'static str,
        /// Its length.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// A string that is sent NUL-terminated contains a NUL.
    #[error("{0} contains a NUL byte")]
    ContainsNul(&'static str),
    /// The mailslot name does not start with `\MAILSLOT\`.
    #[error("a mailslot name must start with \\MAILSLOT\\")]
    NotAMailslot,
}

fn too_long(what: &'static str, length: usize, limit: usize) -> MailslotError {
    MailslotError::TooLong {
        what,
        length,
        limit,
    }
}

fn check_limit(what: &'static str, length: usize, limit: usize) -> Result<(), MailslotError> {
    if length > limit {
        Err(too_long(what, length, limit))
    } else {
        Ok(())
    }
}

fn u16_field(what: &'static str, value: usize) -> Result<u16, MailslotError> {
    u16::try_from(value).map_err(|_| too_long(what, value, usize::from(u16::MAX)))
}

impl MailslotWrite {
    /// A write of `data` to the mailslot `name` (e.g. [`MESSENGER_MAILSLOT`]), with the data
    /// aligned to 4 bytes as Windows does and the field values of `style`.
    pub fn new(name: &[u8], data: Vec<u8>, style: TransactionStyle) -> Result<Self, MailslotError> {
        if name.contains(&0) {
            return Err(MailslotError::ContainsNul("the mailslot name"));
        }
        if !is_mailslot_name(name) {
            return Err(MailslotError::NotAMailslot);
        }
        let name_end = BYTE_AREA_OFFSET + name.len() + 1;
        let data_offset = name_end.next_multiple_of(DATA_ALIGNMENT);
        let padding = vec![0; data_offset - name_end];
        let data_offset16 = u16_field("the data offset", data_offset)?;
        let data_count = u16_field("the mailslot data", data.len())?;
        let byte_count = u16_field("the byte area", name.len() + 1 + padding.len() + data.len())?;
        let (header, max_parameter_count, flags) = match style {
            TransactionStyle::Windows => (windows_header(), 2, 0x0002),
            TransactionStyle::Minimal => (SmbHeader::request(SMB_COM_TRANSACTION), 0, 0),
        };
        Ok(Self {
            header,
            words: TransactionWords {
                total_data_count: data_count,
                max_parameter_count,
                flags,
                parameter_offset: data_offset16,
                priority: 0,
                class: MAILSLOT_CLASS_UNRELIABLE,
                ..TransactionWords::default()
            },
            byte_count,
            name: name.to_vec(),
            padding,
            data,
            trailing: Vec::new(),
        })
    }

    /// Whether this is a write to `mailslot`, compared without regard to ASCII case as
    /// mailslot names are ([MS-MAIL] 2.2.1).
    pub fn is_to(&self, mailslot: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(mailslot)
    }

    /// Whether this is a write to `\MAILSLOT\MESSNGR`.
    pub fn is_messenger(&self) -> bool {
        self.is_to(MESSENGER_MAILSLOT)
    }

    /// DataOffset as encoded: right after the name's NUL and the padding.
    pub fn data_offset(&self) -> usize {
        BYTE_AREA_OFFSET + self.name.len() + 1 + self.padding.len()
    }

    /// Bytes of the encoded SMB.
    pub fn encoded_len(&self) -> usize {
        self.data_offset() + self.data.len() + self.trailing.len()
    }

    /// Decodes a mailslot write from the user data of a datagram. The data is taken from
    /// DataOffset and DataCount, which must lie within `smb` and not overlap the mailslot
    /// name; ByteCount is kept but not trusted.
    pub fn decode(smb: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(smb);
        // The whole header is taken at once, so a short one is reported as truncated at its
        // start; within 32 bytes only the protocol id can be wrong.
        let raw: [u8; SMB_HEADER_LEN] = r.array()?;
        let header = SmbHeader::decode(&mut Reader::new(&raw))?;
        if header.command != SMB_COM_TRANSACTION {
            return Err(DecodeError::invalid(4, "Command", header.command));
        }
        let word_count = r.u8()?;
        if word_count != MAILSLOT_WORD_COUNT {
            return Err(r.invalid_before(1, "WordCount", word_count.into()));
        }
        let total_parameter_count = r.u16_le()?;
        let total_data_count = r.u16_le()?;
        let max_parameter_count = r.u16_le()?;
        let max_data_count = r.u16_le()?;
        let max_setup_count = r.u8()?;
        let reserved1 = r.u8()?;
        let flags = r.u16_le()?;
        let timeout = r.u32_le()?;
        let reserved2 = r.u16_le()?;
        let parameter_count = r.u16_le()?;
        let parameter_offset = r.u16_le()?;
        let data_count = usize::from(r.u16_le()?);
        let data_offset_at = r.offset();
        let data_offset = usize::from(r.u16_le()?);
        let setup_count = r.u8()?;
        if setup_count != MAILSLOT_SETUP_COUNT {
            return Err(r.invalid_before(1, "SetupCount", setup_count.into()));
        }
        let reserved3 = r.u8()?;
        let opcode = r.u16_le()?;
        if opcode != MAILSLOT_OPCODE_WRITE {
            return Err(r.invalid_before(2, "MailSlotOpcode", opcode.into()));
        }
        let priority = r.u16_le()?;
        let class = r.u16_le()?;
        let byte_count = r.u16_le()?;
        let name_at = r.offset();
        let name = r.nul_terminated("MailslotName", r.remaining())?;
        if !is_mailslot_name(name) {
            return Err(DecodeError::malformed(
                name_at,
                "transaction name is not a mailslot",
            ));
        }
        let name_end = r.position();
        if data_offset < name_end {
            return Err(DecodeError::malformed(
                data_offset_at,
                "DataOffset points into the mailslot name",
            ));
        }
        let data_end = data_offset + data_count;
        if data_end > smb.len() {
            return Err(DecodeError::new(
                smb.len(),
                DecodeErrorKind::Truncated {
                    needed: data_end - smb.len(),
                },
            ));
        }
        Ok(Self {
            header,
            words: TransactionWords {
                total_parameter_count,
                total_data_count,
                max_parameter_count,
                max_data_count,
                max_setup_count,
                reserved1,
                flags,
                timeout,
                reserved2,
                parameter_count,
                parameter_offset,
                reserved3,
                priority,
                class,
            },
            byte_count,
            name: name.to_vec(),
            padding: smb[name_end..data_offset].to_vec(),
            data: smb[data_offset..data_end].to_vec(),
            trailing: smb[data_end..].to_vec(),
        })
    }

    /// Encodes the write, with DataCount and DataOffset computed from the data and padding and
    /// everything else as it is in `self`. Fails only if a length does not fit its 16-bit
    /// field.
    pub fn encode(&self) -> Result<Vec<u8>, MailslotError> {
        let data_offset = u16_field("the data offset", self.data_offset())?;
        let data_count = u16_field("the mailslot data", self.data.len())?;
        let w = &self.words;
        let mut out = Vec::with_capacity(self.encoded_len());
        self.header.encode(&mut out);
        out.put_u8(MAILSLOT_WORD_COUNT);
        out.put_u16_le(w.total_parameter_count);
        out.put_u16_le(w.total_data_count);
        out.put_u16_le(w.max_parameter_count);
        out.put_u16_le(w.max_data_count);
        out.put_u8(w.max_setup_count);
        out.put_u8(w.reserved1);
        out.put_u16_le(w.flags);
        out.put_u32_le(w.timeout);
        out.put_u16_le(w.reserved2);
        out.put_u16_le(w.parameter_count);
        out.put_u16_le(w.parameter_offset);
        out.put_u16_le(data_count);
        out.put_u16_le(data_offset);
        out.put_u8(MAILSLOT_SETUP_COUNT);
        out.put_u8(w.reserved3);
        out.put_u16_le(MAILSLOT_OPCODE_WRITE);
        out.put_u16_le(w.priority);
        out.put_u16_le(w.class);
        out.put_u16_le(self.byte_count);
        out.put_slice(&self.name);
        out.put_u8(0);
        out.put_slice(&self.padding);
        out.put_slice(&self.data);
        out.put_slice(&self.trailing);
        Ok(out)
    }
}

fn is_mailslot_name(name: &[u8]) -> bool {
    name.len() >= MAILSLOT_PREFIX.len()
        && name[..MAILSLOT_PREFIX.len()].eq_ignore_ascii_case(MAILSLOT_PREFIX)
}

/// The data of a write to `\MAILSLOT\MESSNGR`: sender, recipient and text, each an OEM string
/// with no type byte in front (Windows 98 WinPopup captures; [MS-MSRP] 3.2.4.5 names the
/// fields). For a broadcast the recipient is the domain or workgroup name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MessengerMessage {
    /// The sender's name, in the sender's OEM code page.
    pub from: Vec<u8>,
    /// The recipient: a messaging name, or the domain for broadcasts.
    pub to: Vec<u8>,
    /// The text, with line breaks as the sender wrote them (0x14 from Windows).
    pub text: Vec<u8>,
}

impl MessengerMessage {
    /// A message from OEM bytes; none of the three may contain a NUL.
    pub fn new(
        from: impl Into<Vec<u8>>,
        to: impl Into<Vec<u8>>,
        text: impl Into<Vec<u8>>,
    ) -> Result<Self, MailslotError> {
        let message = Self {
            from: from.into(),
            to: to.into(),
            text: text.into(),
        };
        message.check_no_nul()?;
        Ok(message)
    }

    fn check_no_nul(&self) -> Result<(), MailslotError> {
        for (what, part) in [
            ("the sender", &self.from),
            ("the recipient", &self.to),
            ("the text", &self.text),
        ] {
            if part.contains(&0) {
                return Err(MailslotError::ContainsNul(what));
            }
        }
        Ok(())
    }

    /// Decodes `From\0To\0Text\0`. The sender and recipient must be NUL-terminated; the text
    /// may lack its NUL (some senders drop it), and anything after the text's NUL is ignored.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        let from = r.nul_terminated("From", r.remaining())?.to_vec();
        let to = r.nul_terminated("To", r.remaining())?.to_vec();
        let rest = r.rest();
        let text = match rest.iter().position(|&b| b == 0) {
            Some(end) => &rest[..end],
            None => rest,
        };
        Ok(Self {
            from,
            to,
            text: text.to_vec(),
        })
    }

    /// Bytes of the encoded payload.
    pub fn encoded_len(&self) -> usize {
        self.from.len() + self.to.len() + self.text.len() + 3
    }

    /// Encodes `From\0To\0Text\0`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        for part in [&self.from, &self.to, &self.text] {
            out.put_slice(part);
            out.put_u8(0);
        }
        out
    }
}

/// How a mailslot datagram was addressed; the datagram type it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addressing {
    /// DIRECT_UNIQUE: to one name, such as `BOB<03>`.
    Unique,
    /// DIRECT_GROUP: to a group name, such as `WORKGROUP<00>` for `NET SEND *`.
    Group,
    /// BROADCAST: to every name.
    Broadcast,
}

/// A Messenger message received as a datagram: who sent it to which name, and the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessengerDatagram {
    /// The datagram header (source address as the sender states it, id, flags).
    pub header: DatagramHeader,
    /// The datagram type.
    pub addressing: Addressing,
    /// The NetBIOS name the datagram came from.
    pub source: QualifiedName,
    /// The NetBIOS name it was sent to; a receiver accepts only its own names and its
    /// workgroup.
    pub destination: QualifiedName,
    /// The mailslot write that carried the message.
    pub write: MailslotWrite,
    /// The message.
    pub message: MessengerMessage,
}

impl MessengerDatagram {
    /// Decodes a UDP 138 payload and returns the Messenger message it carries, or `None` if it
    /// is a valid datagram of another kind (a browser announcement, an error, a query). A
    /// fragment is an error: fragmented Messenger datagrams are not reassembled, since
    /// Windows never sends a mailslot write larger than one datagram ([MS-MAIL] note <2>).
    pub fn decode(buf: &[u8]) -> Result<Option<Self>, DecodeError> {
        let datagram = Datagram::decode(buf)?;
        let (addressing, message) = match datagram.body {
            DatagramBody::DirectUnique(m) => (Addressing::Unique, m),
            DatagramBody::DirectGroup(m) => (Addressing::Group, m),
            DatagramBody::Broadcast(m) => (Addressing::Broadcast, m),
            _ => return Ok(None),
        };
        let user_data_at = buf.len() - message.user_data.len();
        let flags = datagram.header.flags;
        if flags.more() || !flags.first() || message.packet_offset != 0 {
            return Err(DecodeError::malformed(
                1,
                "fragmented datagrams are not reassembled",
            ));
        }
        let write =
            MailslotWrite::decode(&message.user_data).map_err(|e| e.shifted(user_data_at))?;
        if !write.is_messenger() {
            return Ok(None);
        }
        let payload = MessengerMessage::decode(&write.data)
            .map_err(|e| e.shifted(user_data_at + write.data_offset()))?;
        Ok(Some(Self {
            header: datagram.header,
            addressing,
            source: message.source,
            destination: message.destination,
            write,
            message: payload,
        }))
    }
}

/// What every datagram a sender builds has in common.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendParams {
    /// The sending name, by convention `COMPUTER<00>` ([MS-MAIL] 3.2.3).
    pub source: QualifiedName,
    /// This host's address, as the datagram states it.
    pub source_ip: Ipv4Addr,
    /// DGM_ID; the caller picks a new one per datagram.
    pub datagram_id: u16,
    /// The node type to announce in FLAGS: [`NodeType::Broadcast`] for a host without WINS.
    pub node_type: NodeType,
    /// Which optional field values the SMB carries.
    pub style: TransactionStyle,
}

impl SendParams {
    /// Parameters for a B node with Windows-style field values.
    pub fn new(source: QualifiedName, source_ip: Ipv4Addr, datagram_id: u16) -> Self {
        Self {
            source,
            source_ip,
            datagram_id,
            node_type: NodeType::Broadcast,
            style: TransactionStyle::Windows,
        }
    }
}

/// Builds the datagram of `NET SEND *` or `NET SEND /DOMAIN:name`: a DIRECT_GROUP datagram to
/// `domain` (normally `DOMAIN<00>`, KB Q168893) carrying a write to `\MAILSLOT\MESSNGR`. The
/// message's recipient should be the domain name too. Fails if the text is longer than a
/// broadcast may be ([`MAX_BROADCAST_TEXT_CHARS`]) or any other limit is exceeded.
pub fn build_broadcast(
    params: &SendParams,
    domain: &QualifiedName,
    message: &MessengerMessage,
) -> Result<Datagram, MailslotError> {
    check_limit(
        "the broadcast text",
        message.text.len(),
        MAX_BROADCAST_TEXT_CHARS,
    )?;
    let body = build_message(params, domain, message)?;
    Ok(Datagram {
        header: header(params),
        body: DatagramBody::DirectGroup(body),
    })
}

/// Builds a directed mailslot message: a DIRECT_UNIQUE datagram to `recipient` (normally
/// `NAME<03>`) carrying a write to `\MAILSLOT\MESSNGR`, the path Windows takes for names
/// ending in `*` and WinPopup takes always ([MS-MSRP] note <25>).
///
/// Both builders enforce [`MAX_MESSENGER_PAYLOAD`], [`MAX_MAILSLOT_SMB_LEN`] and
/// [`MAX_DATAGRAM_LENGTH`]. The last binds first: with two unscoped names a 576-byte datagram
/// leaves 406 bytes for `From\0To\0Text\0`. Keeping to it means receivers with a 576-byte
/// datagram buffer, such as Samba's nmbd, get the whole message.
pub fn build_directed(
    params: &SendParams,
    recipient: &QualifiedName,
    message: &MessengerMessage,
) -> Result<Datagram, MailslotError> {
    let body = build_message(params, recipient, message)?;
    Ok(Datagram {
        header: header(params),
        body: DatagramBody::DirectUnique(body),
    })
}

fn header(params: &SendParams) -> DatagramHeader {
    DatagramHeader {
        flags: DatagramFlags::unfragmented(params.node_type),
        id: params.datagram_id,
        source_ip: params.source_ip,
        source_port: DATAGRAM_PORT,
    }
}

fn build_message(
    params: &SendParams,
    destination: &QualifiedName,
    message: &MessengerMessage,
) -> Result<DataMessage, MailslotError> {
    message.check_no_nul()?;
    let payload = message.encode();
    check_limit(
        "the Messenger payload",
        payload.len(),
        MAX_MESSENGER_PAYLOAD,
    )?;
    let write = MailslotWrite::new(MESSENGER_MAILSLOT, payload, params.style)?;
    let smb = write.encode()?;
    check_limit("the mailslot SMB", smb.len(), MAX_MAILSLOT_SMB_LEN)?;
    let body = DataMessage {
        packet_offset: 0,
        source: params.source.clone(),
        destination: destination.clone(),
        user_data: smb,
    };
    check_limit(
        "the datagram",
        crate::nbdgm::DATA_HEADER_LEN + body.dgm_length(),
        MAX_DATAGRAM_LENGTH,
    )?;
    Ok(body)
}

#[cfg(test)]
#[path = "mailslot_tests.rs"]
mod tests;
