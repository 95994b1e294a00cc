//! The 32-byte SMB1 header ([MS-CIFS] 2.2.3.1) and the status it carries, for the messenger
//! commands of the session service and the mailslot writes of the datagram service alike.
//! It depends on nothing but the codec, so that both can build on it.
//!
//! Messenger SMBs are sent without NEGOTIATE, so the header is mostly zero: senders set only
//! Protocol and Command ([MS-MSRP] 2.2.3.x). Everything is still decoded and kept so that a
//! header re-encodes to the bytes it came from and a response can echo the request's PID, MID,
//! TID and UID as servers do.

use bytes::BufMut;

use crate::codec::{DecodeError, Reader};

/// The 4-byte protocol identifier every SMB1 message starts with ([MS-CIFS] 2.2.3.1).
pub const PROTOCOL_ID: [u8; 4] = [0xFF, b'S', b'M', b'B'];
/// Bytes in the SMB1 header ([MS-CIFS] 2.2.3.1).
pub const HEADER_LEN: usize = 32;
/// Flags bit set in every response ([MS-CIFS] 2.2.3.1, SMB_FLAGS_REPLY).
pub const FLAGS_REPLY: u8 = 0x80;
/// Flags2 bit that says Status holds a 32-bit NT status rather than a DOS class and code
/// ([MS-CIFS] 2.2.3.1, SMB_FLAGS2_NT_STATUS).
pub const FLAGS2_NT_STATUS: u16 = 0x4000;
/// Flags2 bit that announces Unicode strings ([MS-CIFS] 2.2.3.1). Messenger strings are OEM
/// whatever this says (REFERENCE 4.1), so the codec never looks at it.
pub const FLAGS2_UNICODE: u16 = 0x8000;

/// SMB command codes used or answered by the message server, and the transaction that carries
/// mailslot writes ([MS-CIFS] 2.2.2.1, REFERENCE 0.3).
pub mod command {
    /// SMB_COM_TRANSACTION: every mailslot write ([MS-CIFS] 2.2.4.33, [MS-MAIL] 2.2.1).
    pub const TRANSACTION: u8 = 0x25;
    /// SMB_COM_SEND_MESSAGE: a whole message in one block ([MS-MSRP] 2.2.3.1).
    pub const SEND_MESSAGE: u8 = 0xD0;
    /// SMBsendb, send broadcast message: obsolete core command, answered with an error.
    pub const SEND_BROADCAST: u8 = 0xD1;
    /// SMBfwdname, forward user name: obsolete, answered with an error.
    pub const FORWARD_NAME: u8 = 0xD2;
    /// SMBcancelf, cancel forward: obsolete, answered with an error.
    pub const CANCEL_FORWARD: u8 = 0xD3;
    /// SMBgetmac, get machine name: obsolete, answered with an error.
    pub const GET_MACHINE_NAME: u8 = 0xD4;
    /// SMB_COM_SEND_START_MB_MESSAGE ([MS-MSRP] 2.2.3.2).
    pub const SEND_START_MB: u8 = 0xD5;
    /// SMB_COM_SEND_END_MB_MESSAGE ([MS-MSRP] 2.2.3.4).
    pub const SEND_END_MB: u8 = 0xD6;
    /// SMB_COM_SEND_TEXT_MB_MESSAGE ([MS-MSRP] 2.2.3.3).
    pub const SEND_TEXT_MB: u8 = 0xD7;
}

/// DOS error classes and the ERRSRV codes a message server returns ([MS-CIFS] 2.2.2.4; the
/// messenger codes, which [MS-CIFS] leaves out, from Samba `libcli/util/doserr.h`).
pub mod dos {
    /// Class 0x02, ERRSRV: errors of the server daemon.
    pub const ERRSRV: u8 = 0x02;
    /// ERRSRV 1, ERRerror: non-specific error, also used for an invalid SMB.
    pub const ERR_ERROR: u16 = 0x0001;
    /// ERRSRV 22, ERRsmbcmd (ERRbadcmd): the command code is not recognised.
    pub const ERR_SMBCMD: u16 = 0x0016;
    /// ERRSRV 81, ERRpaused: the message server is paused.
    pub const ERR_PAUSED: u16 = 0x0051;
    /// ERRSRV 82, ERRmsgoff: not receiving messages.
    pub const ERR_MSGOFF: u16 = 0x0052;
    /// ERRSRV 83, ERRnoroom: no room to buffer the message ([MS-MSRP] 3.2.4.5).
    pub const ERR_NOROOM: u16 = 0x0053;
    /// ERRSRV 87, ERRrmuns: too many remote user names.
    pub const ERR_RMUNS: u16 = 0x0057;
}

/// NT status values equivalent to the messenger's DOS errors ([MS-CIFS] 2.2.2.4, [MS-SMB] 2.2.2.4;
/// the messenger ones as Samba maps them, REFERENCE 4.8).
pub mod nt {
    /// STATUS_SUCCESS.
    pub const SUCCESS: u32 = 0x0000_0000;
    /// STATUS_INVALID_SMB (ERRSRV/ERRerror).
    pub const INVALID_SMB: u32 = 0x0001_0002;
    /// STATUS_SMB_BAD_COMMAND (ERRSRV/ERRsmbcmd).
    pub const SMB_BAD_COMMAND: u32 = 0x0016_0002;
    /// STATUS_NOT_IMPLEMENTED, which some servers send for a command they do not know.
    pub const NOT_IMPLEMENTED: u32 = 0xC000_0002;
    /// STATUS_INVALID_PARAMETER: Samba's answer to a 0xD7/0xD6 without a 0xD5 first.
    pub const INVALID_PARAMETER: u32 = 0xC000_000D;
    /// STATUS_OBJECT_NAME_NOT_FOUND: the message is for a name this host does not hold.
    pub const OBJECT_NAME_NOT_FOUND: u32 = 0xC000_0034;
    /// STATUS_DISK_FULL (ERRnoroom).
    pub const DISK_FULL: u32 = 0xC000_007F;
    /// STATUS_SHARING_PAUSED (ERRpaused).
    pub const SHARING_PAUSED: u32 = 0xC000_00CF;
    /// STATUS_REQUEST_NOT_ACCEPTED (ERRmsgoff); Samba's answer when it has no message command.
    pub const REQUEST_NOT_ACCEPTED: u32 = 0xC000_00D0;
    /// The ERRSRV code `code` in NT form: [MS-CIFS] writes DOS server errors as
    /// `code << 16 | class` (STATUS_INVALID_SMB is ERRSRV/1, 0x00010002).
    pub const fn from_errsrv(code: u16) -> u32 {
        ((code as u32) << 16) | super::dos::ERRSRV as u32
    }
}

/// The Status field: a DOS class and code, or a 32-bit NT status ([MS-CIFS] 2.2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmbStatus {
    /// DOS form: ErrorClass, a reserved byte (kept for exact re-encoding), ErrorCode.
    Dos {
        /// Error class (0 success, 1 ERRDOS, 2 ERRSRV, 3 ERRHRD).
        class: u8,
        /// The reserved byte between class and code; zero when we send.
        reserved: u8,
        /// Error code within the class.
        code: u16,
    },
    /// NT form: a 32-bit NTSTATUS ([MS-ERREF] 2.3).
    Nt(u32),
}

impl SmbStatus {
    /// Success in DOS form (all four bytes zero), what messenger senders put in requests.
    pub const SUCCESS: SmbStatus = SmbStatus::Dos {
        class: 0,
        reserved: 0,
        code: 0,
    };

    /// An ERRSRV error in DOS form.
    pub const fn errsrv(code: u16) -> Self {
        Self::Dos {
            class: dos::ERRSRV,
            reserved: 0,
            code,
        }
    }

    /// Whether this is success. In either form that is all bytes zero.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Self::Dos {
                class: 0,
                code: 0,
                ..
            } | Self::Nt(nt::SUCCESS)
        )
    }

    /// The error as an ERRSRV code, if it is one: in DOS form with class ERRSRV, or in NT form
    /// written the [MS-CIFS] way for DOS server errors (`code << 16 | 2`).
    pub fn errsrv_code(&self) -> Option<u16> {
        match *self {
            Self::Dos {
                class: dos::ERRSRV,
                code,
                ..
            } => Some(code),
            Self::Nt(status) if status & 0xFF00_FFFF == u32::from(dos::ERRSRV) => {
                Some((status >> 16) as u16)
            }
            _ => None,
        }
    }

    /// The four Status bytes as they appear on the wire.
    fn to_wire(self) -> [u8; 4] {
        match self {
            Self::Dos {
                class,
                reserved,
                code,
            } => {
                let c = code.to_le_bytes();
                [class, reserved, c[0], c[1]]
            }
            Self::Nt(status) => status.to_le_bytes(),
        }
    }

    /// Whether this is the NT form.
    pub fn is_nt(&self) -> bool {
        matches!(self, Self::Nt(_))
    }
}

/// The 32-byte SMB1 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SmbHeader {
    /// The command code.
    pub command: u8,
    /// Status; decoding picks its form from [`FLAGS2_NT_STATUS`] in `flags2` (and the encoder
    /// keeps the two in step, see [`SmbHeader::encode`]).
    pub status: SmbStatus,
    /// Flags; [`FLAGS_REPLY`] marks a response.
    pub flags: u8,
    /// Flags2. Receivers ignore it except for the status form.
    pub flags2: u16,
    /// High 16 bits of the process id.
    pub pid_high: u16,
    /// SecurityFeatures (signature); zero without a negotiated session.
    pub security_features: [u8; 8],
    /// Reserved.
    pub reserved: u16,
    /// Tree id; echoed in responses.
    pub tid: u16,
    /// Low 16 bits of the process id; echoed in responses.
    pub pid_low: u16,
    /// User id; echoed in responses.
    pub uid: u16,
    /// Multiplex id; echoed in responses so the sender can match them.
    pub mid: u16,
}

impl SmbHeader {
    /// A request header as messenger senders build it: only Protocol and Command set
    /// ([MS-MSRP] 2.2.3.1.1: "All other fields in the SMB header MUST be set to 0x00").
    pub fn request(command: u8) -> Self {
        Self {
            command,
            status: SmbStatus::SUCCESS,
            flags: 0,
            flags2: 0,
            pid_high: 0,
            security_features: [0; 8],
            reserved: 0,
            tid: 0,
            pid_low: 0,
            uid: 0,
            mid: 0,
        }
    }

    /// A response header for `request`: same command and ids, [`FLAGS_REPLY`] set, and
    /// `status`, whose form decides the NT-status bit of Flags2.
    pub fn response_to(request: &SmbHeader, status: SmbStatus) -> Self {
        Self {
            command: request.command,
            status,
            flags: FLAGS_REPLY,
            flags2: if status.is_nt() { FLAGS2_NT_STATUS } else { 0 },
            pid_high: request.pid_high,
            security_features: [0; 8],
            reserved: 0,
            tid: request.tid,
            pid_low: request.pid_low,
            uid: request.uid,
            mid: request.mid,
        }
    }

    /// Whether the sender of this request said it understands NT status codes.
    pub fn wants_nt_status(&self) -> bool {
        self.flags2 & FLAGS2_NT_STATUS != 0
    }

    /// Appends the 32 header bytes. For a non-zero status the NT-status bit of Flags2 is
    /// written to match the form of `status`, so that the bytes always say how to read them.
    /// A zero status reads the same in both forms, and in a request the bit means "I
    /// understand NT status", so then Flags2 is written as it is.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let wire_status = self.status.to_wire();
        let flags2 = match self.status {
            _ if wire_status == [0; 4] => self.flags2,
            SmbStatus::Nt(_) => self.flags2 | FLAGS2_NT_STATUS,
            SmbStatus::Dos { .. } => self.flags2 & !FLAGS2_NT_STATUS,
        };
        out.put_slice(&PROTOCOL_ID);
        out.put_u8(self.command);
        out.put_slice(&wire_status);
        out.put_u8(self.flags);
        out.put_u16_le(flags2);
        out.put_u16_le(self.pid_high);
        out.put_slice(&self.security_features);
        out.put_u16_le(self.reserved);
        out.put_u16_le(self.tid);
        out.put_u16_le(self.pid_low);
        out.put_u16_le(self.uid);
        out.put_u16_le(self.mid);
    }

    /// Reads a header. Fails if fewer than 32 bytes remain or the protocol id is not
    /// `\xFFSMB` (such a payload is not SMB1 at all).
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.offset();
        let protocol: [u8; 4] = r.array()?;
        if protocol != PROTOCOL_ID {
            return Err(DecodeError::invalid(
                start,
                "Protocol",
                u32::from_be_bytes(protocol),
            ));
        }
        let command = r.u8()?;
        let status_bytes: [u8; 4] = r.array()?;
        let flags = r.u8()?;
        let flags2 = r.u16_le()?;
        let status = if flags2 & FLAGS2_NT_STATUS != 0 {
            SmbStatus::Nt(u32::from_le_bytes(status_bytes))
        } else {
            SmbStatus::Dos {
                class: status_bytes[0],
                reserved: status_bytes[1],
                code: u16::from_le_bytes([status_bytes[2], status_bytes[3]]),
            }
        };
        Ok(Self {
            command,
            status,
            flags,
            flags2,
            pid_high: r.u16_le()?,
            security_features: r.array()?,
            reserved: r.u16_le()?,
            tid: r.u16_le()?,
            pid_low: r.u16_le()?,
            uid: r.u16_le()?,
            mid: r.u16_le()?,
        })
    }
}
