//! The SMB1 messenger commands: 0xD0, 0xD5, 0xD7, 0xD6 and their responses ([MS-MSRP] 2.2.3,
//! REFERENCE 4.2 to 4.6).
//!
//! After the header every SMB1 message has a parameter block (WordCount, then that many
//! little-endian 16-bit words) and a data block (ByteCount, then the bytes) ([MS-CIFS]
//! 2.2.3.2, 2.2.3.3). Inside the data block the messenger uses buffer-format bytes: 0x04 before
//! a NUL-terminated string, 0x01 before a length-prefixed data block.
//!
//! Strings are OEM bytes and stay bytes here: they are never read as Unicode, whatever Flags2
//! says (REFERENCE 4.1). Decoding is lenient where real senders differ from the specification
//! and Samba's server is too (buffer-format values, DataLength against ByteCount, extra words or
//! bytes); encoding always writes the canonical form, so a canonical message decodes and
//! re-encodes to the same bytes.

use bytes::BufMut;

use crate::codec::{DecodeError, Reader};

use super::header::{command, SmbHeader, SmbStatus, HEADER_LEN};

/// Buffer format 0x04: a NUL-terminated ASCII (OEM) string follows ([MS-CIFS] 2.2.1.1).
pub const BUFFER_FORMAT_STRING: u8 = 0x04;
/// Buffer format 0x01: a data block follows, a u16 length then the bytes ([MS-CIFS] 2.2.1.1).
pub const BUFFER_FORMAT_DATA: u8 = 0x01;
/// Longest originator or destination name accepted, NUL excluded. The specification allows 15
/// ([MS-MSRP] 2.2.3.1.1), but `smbclient -M` sends the user name as originator and the host
/// string as typed, which can be longer; 255 bounds the field while accepting them.
pub const MAX_NAME_FIELD_LEN: usize = 255;

/// SMB_COM_SEND_MESSAGE (0xD0) request: a whole message in one block ([MS-MSRP] 2.2.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    /// The header; its ids are echoed in the response.
    pub header: SmbHeader,
    /// OriginatorName, OEM bytes without the NUL.
    pub from: Vec<u8>,
    /// DestinationName, OEM bytes without the NUL.
    pub to: Vec<u8>,
    /// The text exactly as DataLength delimits it (trailing NULs are stripped by the
    /// assembler, not here, so the bytes re-encode unchanged).
    pub data: Vec<u8>,
}

/// SMB_COM_SEND_START_MB_MESSAGE (0xD5) request ([MS-MSRP] 2.2.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartMessage {
    /// The header.
    pub header: SmbHeader,
    /// OriginatorName, OEM bytes without the NUL.
    pub from: Vec<u8>,
    /// DestinationName, OEM bytes without the NUL.
    pub to: Vec<u8>,
}

/// SMB_COM_SEND_TEXT_MB_MESSAGE (0xD7) request: one chunk of text ([MS-MSRP] 2.2.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBlock {
    /// The header.
    pub header: SmbHeader,
    /// MessageGroupId as the sender echoes it from the 0xD5 response.
    pub group_id: u16,
    /// This chunk of the text.
    pub data: Vec<u8>,
}

/// SMB_COM_SEND_END_MB_MESSAGE (0xD6) request ([MS-MSRP] 2.2.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndMessage {
    /// The header.
    pub header: SmbHeader,
    /// MessageGroupId.
    pub group_id: u16,
}

/// Any other SMB, including the obsolete 0xD1 to 0xD4: kept whole so that it can be answered
/// with an error that echoes its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The header.
    pub header: SmbHeader,
    /// Everything after the header, undecoded.
    pub body: Vec<u8>,
}

/// An SMB a message server receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 0xD0.
    Send(SendMessage),
    /// 0xD5.
    Start(StartMessage),
    /// 0xD7.
    Text(TextBlock),
    /// 0xD6.
    End(EndMessage),
    /// Anything else.
    Unsupported(Unsupported),
}

/// An SMB a message server sends back. Messenger responses carry only a status and, for
/// 0xD5, the message group id; words and bytes are kept generally so that any response
/// re-encodes exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The header; `status` says whether the request succeeded.
    pub header: SmbHeader,
    /// The parameter words.
    pub words: Vec<u16>,
    /// The data block.
    pub bytes: Vec<u8>,
}

/// The two SMB blocks after the header.
struct Blocks<'a> {
    words: &'a [u8],
    words_offset: usize,
    bytes: &'a [u8],
    bytes_offset: usize,
}

/// Reads WordCount + words and ByteCount + bytes. Bytes after the data block are ignored:
/// servers (Samba among them) tolerate padding there, and nothing in it is meaningful.
fn read_blocks<'a>(r: &mut Reader<'a>) -> Result<Blocks<'a>, DecodeError> {
    let word_count = r.u8()?;
    let words_offset = r.offset();
    let words = r.take(usize::from(word_count) * 2)?;
    let byte_count = r.u16_le()?;
    let bytes_offset = r.offset();
    let bytes = r.take(usize::from(byte_count))?;
    Ok(Blocks {
        words,
        words_offset,
        bytes,
        bytes_offset,
    })
}

impl Blocks<'_> {
    /// The first parameter word, which must be there.
    fn first_word(&self, field: &'static str) -> Result<u16, DecodeError> {
        match self.words {
            [lo, hi, ..] => Ok(u16::from_le_bytes([*lo, *hi])),
            _ => Err(DecodeError::invalid(
                self.words_offset.saturating_sub(1),
                field,
                (self.words.len() / 2) as u32,
            )),
        }
    }
}

/// Reads a buffer-format byte and the NUL-terminated string after it. The format byte's value
/// is not checked: Samba's server skips it unread, and a wrong value costs nothing when the
/// layout is fixed by the command.
fn read_string(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u8>, DecodeError> {
    r.u8()?;
    Ok(r.nul_terminated(field, MAX_NAME_FIELD_LEN)?.to_vec())
}

/// Reads a buffer-format byte, DataLength and the data. DataLength is taken over ByteCount,
/// bounded by what the data block really holds, as Samba's server does (a DataLength that
/// overshoots is clamped rather than refused).
fn read_data(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    r.u8()?;
    let len = usize::from(r.u16_le()?);
    Ok(r.take(len.min(r.remaining()))?.to_vec())
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    out.put_u8(BUFFER_FORMAT_STRING);
    out.put_slice(s);
    out.put_u8(0);
}

fn write_data(out: &mut Vec<u8>, data: &[u8]) {
    out.put_u8(BUFFER_FORMAT_DATA);
    out.put_u16_le(data.len() as u16);
    out.put_slice(data);
}

/// Writes header, words and bytes.
fn write_smb(header: &SmbHeader, words: &[u16], bytes: &[u8], out: &mut Vec<u8>) {
    header.encode(out);
    out.put_u8(words.len() as u8);
    for w in words {
        out.put_u16_le(*w);
    }
    out.put_u16_le(bytes.len() as u16);
    out.put_slice(bytes);
}

/// Why a request could not be encoded: a field is too long for its length field, or a string
/// holds a NUL that would end it early on the receiving side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A name contains a NUL byte.
    #[error("the {0} name contains a NUL byte")]
    NulInName(&'static str),
    /// The name is longer than [`MAX_NAME_FIELD_LEN`].
    #[error("the {0} name is longer than {MAX_NAME_FIELD_LEN} bytes")]
    NameTooLong(&'static str),
    /// The data block is longer than a 16-bit ByteCount allows.
    #[error("the message data of {0} bytes does not fit an SMB data block")]
    DataTooLong(usize),
}

/// Largest data in one request: ByteCount is 16 bits and the 0xD0 layout puts two names and
/// three format bytes and a length before the data ([MS-CIFS] 2.2.3.3).
const MAX_DATA_LEN: usize = u16::MAX as usize - 2 * (MAX_NAME_FIELD_LEN + 2) - 3;

fn check_name(name: &[u8], field: &'static str) -> Result<(), EncodeError> {
    if name.contains(&0) {
        return Err(EncodeError::NulInName(field));
    }
    if name.len() > MAX_NAME_FIELD_LEN {
        return Err(EncodeError::NameTooLong(field));
    }
    Ok(())
}

fn check_data(data: &[u8]) -> Result<(), EncodeError> {
    if data.len() > MAX_DATA_LEN {
        return Err(EncodeError::DataTooLong(data.len()));
    }
    Ok(())
}

impl Request {
    /// The header of any request.
    pub fn header(&self) -> &SmbHeader {
        match self {
            Self::Send(m) => &m.header,
            Self::Start(m) => &m.header,
            Self::Text(m) => &m.header,
            Self::End(m) => &m.header,
            Self::Unsupported(m) => &m.header,
        }
    }

    /// Decodes one SMB (the payload of a session message). The header's command picks the
    /// layout; commands other than 0xD0, 0xD5, 0xD6 and 0xD7 become [`Request::Unsupported`].
    pub fn decode(smb: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(smb);
        let header = SmbHeader::decode(&mut r)?;
        Ok(match header.command {
            command::SEND_MESSAGE => {
                let blocks = read_blocks(&mut r)?;
                let mut b = Reader::with_base(blocks.bytes, blocks.bytes_offset);
                let from = read_string(&mut b, "OriginatorName")?;
                let to = read_string(&mut b, "DestinationName")?;
                let data = read_data(&mut b)?;
                Self::Send(SendMessage {
                    header,
                    from,
                    to,
                    data,
                })
            }
            command::SEND_START_MB => {
                let blocks = read_blocks(&mut r)?;
                let mut b = Reader::with_base(blocks.bytes, blocks.bytes_offset);
                let from = read_string(&mut b, "OriginatorName")?;
                let to = read_string(&mut b, "DestinationName")?;
                Self::Start(StartMessage { header, from, to })
            }
            command::SEND_TEXT_MB => {
                let blocks = read_blocks(&mut r)?;
                let group_id = blocks.first_word("WordCount")?;
                let mut b = Reader::with_base(blocks.bytes, blocks.bytes_offset);
                let data = read_data(&mut b)?;
                Self::Text(TextBlock {
                    header,
                    group_id,
                    data,
                })
            }
            command::SEND_END_MB => {
                let blocks = read_blocks(&mut r)?;
                let group_id = blocks.first_word("WordCount")?;
                Self::End(EndMessage { header, group_id })
            }
            _ => Self::Unsupported(Unsupported {
                header,
                body: r.rest().to_vec(),
            }),
        })
    }

    /// Appends the canonical wire form (the SMB only; wrap it with
    /// [`crate::nbss::frame_message`]).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Send(m) => {
                check_name(&m.from, "originator")?;
                check_name(&m.to, "destination")?;
                check_data(&m.data)?;
                let mut bytes = Vec::with_capacity(m.from.len() + m.to.len() + m.data.len() + 7);
                write_string(&mut bytes, &m.from);
                write_string(&mut bytes, &m.to);
                write_data(&mut bytes, &m.data);
                write_smb(&m.header, &[], &bytes, out);
            }
            Self::Start(m) => {
                check_name(&m.from, "originator")?;
                check_name(&m.to, "destination")?;
                let mut bytes = Vec::with_capacity(m.from.len() + m.to.len() + 4);
                write_string(&mut bytes, &m.from);
                write_string(&mut bytes, &m.to);
                write_smb(&m.header, &[], &bytes, out);
            }
            Self::Text(m) => {
                check_data(&m.data)?;
                let mut bytes = Vec::with_capacity(m.data.len() + 3);
                write_data(&mut bytes, &m.data);
                write_smb(&m.header, &[m.group_id], &bytes, out);
            }
            Self::End(m) => write_smb(&m.header, &[m.group_id], &[], out),
            Self::Unsupported(m) => {
                m.header.encode(out);
                out.put_slice(&m.body);
            }
        }
        Ok(())
    }

    /// The canonical wire form as a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }
}

impl SendMessage {
    /// A 0xD0 request with a header as Windows senders build it (only Command set).
    pub fn new(from: Vec<u8>, to: Vec<u8>, data: Vec<u8>) -> Self {
        Self {
            header: SmbHeader::request(command::SEND_MESSAGE),
            from,
            to,
            data,
        }
    }
}

impl StartMessage {
    /// A 0xD5 request with a header as Windows senders build it.
    pub fn new(from: Vec<u8>, to: Vec<u8>) -> Self {
        Self {
            header: SmbHeader::request(command::SEND_START_MB),
            from,
            to,
        }
    }
}

impl TextBlock {
    /// A 0xD7 request with a header as Windows senders build it.
    pub fn new(group_id: u16, data: Vec<u8>) -> Self {
        Self {
            header: SmbHeader::request(command::SEND_TEXT_MB),
            group_id,
            data,
        }
    }
}

impl EndMessage {
    /// A 0xD6 request with a header as Windows senders build it.
    pub fn new(group_id: u16) -> Self {
        Self {
            header: SmbHeader::request(command::SEND_END_MB),
            group_id,
        }
    }
}

impl Response {
    /// Success with WordCount 0 and ByteCount 0: the answer to 0xD0, 0xD7 and 0xD6.
    pub fn success(request: &SmbHeader) -> Self {
        Self {
            header: SmbHeader::response_to(request, SmbStatus::SUCCESS),
            words: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// Success of 0xD5 with WordCount 1 and the message group id ([MS-MSRP] 2.2.3.2.2).
    pub fn start_accepted(request: &SmbHeader, group_id: u16) -> Self {
        Self {
            header: SmbHeader::response_to(request, SmbStatus::SUCCESS),
            words: vec![group_id],
            bytes: Vec::new(),
        }
    }

    /// An error response with WordCount 0 and ByteCount 0.
    pub fn error(request: &SmbHeader, status: SmbStatus) -> Self {
        Self {
            header: SmbHeader::response_to(request, status),
            words: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// The message group id of a 0xD5 response: the first word, or 0 when the server sent
    /// none, as Samba's server does and Samba's client assumes (REFERENCE 4.3).
    pub fn group_id(&self) -> u16 {
        self.words.first().copied().unwrap_or(0)
    }

    /// Decodes one response SMB. Bytes after the data block are ignored.
    pub fn decode(smb: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(smb);
        let header = SmbHeader::decode(&mut r)?;
        // An error response may legitimately stop after the header with WordCount 0 and no
        // ByteCount on some old servers; treat a bare header as "no words, no bytes".
        if r.is_empty() {
            return Ok(Self {
                header,
                words: Vec::new(),
                bytes: Vec::new(),
            });
        }
        let blocks = read_blocks(&mut r)?;
        let words = blocks
            .words
            .chunks_exact(2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .collect();
        Ok(Self {
            header,
            words,
            bytes: blocks.bytes.to_vec(),
        })
    }

    /// Appends the wire form.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // WordCount is one byte and ByteCount 16 bits; a response built by this crate never
        // comes near either, and truncating keeps the output self-consistent if one did.
        let words = &self.words[..self.words.len().min(usize::from(u8::MAX))];
        let bytes = &self.bytes[..self.bytes.len().min(usize::from(u16::MAX))];
        write_smb(&self.header, words, bytes, out);
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 3 + self.words.len() * 2 + self.bytes.len());
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
#[path = "messenger_tests.rs"]
mod tests;
