//! Bounds-checked reading of wire bytes and the error every decoder returns.
//!
//! A [`Reader`] never panics: every read either yields the bytes asked for or a
//! [`DecodeError`] that says where in the input decoding stopped and why. Encoders write into a
//! `Vec<u8>` through [`bytes::BufMut`]; there is no separate writer type because nothing here
//! needs one.

use std::fmt;

/// Why decoding failed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at offset {offset}")]
pub struct DecodeError {
    /// Byte offset into the decoded buffer at which the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub kind: DecodeErrorKind,
}

/// The ways input can be malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input ended before a field that must be there: `needed` more bytes were required.
    Truncated {
        /// How many bytes the field needed beyond the end of the input.
        needed: usize,
    },
    /// A field holds a value the protocol does not allow.
    InvalidValue {
        /// The field's name as the specification spells it.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// A length or count is larger than the protocol, or one of our limits, allows.
    TooLong {
        /// The field's name.
        field: &'static str,
        /// The length found.
        length: usize,
        /// The largest length accepted.
        limit: usize,
    },
    /// Structure that is wrong in a way no single field explains.
    Malformed(&'static str),
    /// Bytes left over after a complete packet where none may follow.
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed } => write!(f, "input truncated ({needed} more bytes needed)"),
            Self::InvalidValue { field, value } => write!(f, "invalid {field} {value:#x}"),
            Self::TooLong {
                field,
                length,
                limit,
            } => write!(f, "{field} of {length} bytes exceeds the limit of {limit}"),
            Self::Malformed(what) => write!(f, "malformed packet: {what}"),
            Self::TrailingBytes { count } => write!(f, "{count} unexpected trailing bytes"),
        }
    }
}

impl DecodeError {
    /// An error of `kind` at `offset`.
    pub fn new(offset: usize, kind: DecodeErrorKind) -> Self {
        Self { offset, kind }
    }

    /// An invalid value of `field` at `offset`.
    pub fn invalid(offset: usize, field: &'static str, value: impl Into<u32>) -> Self {
        Self::new(
            offset,
            DecodeErrorKind::InvalidValue {
                field,
                value: value.into(),
            },
        )
    }

    /// A structural problem at `offset`.
    pub fn malformed(offset: usize, what: &'static str) -> Self {
        Self::new(offset, DecodeErrorKind::Malformed(what))
    }

    /// Shifts the offset by `base`, for errors found in a slice that starts `base` bytes into
    /// the buffer the caller sees.
    #[must_use]
    pub fn shifted(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }
}

/// A cursor over a byte slice whose reads are all bounds-checked.
///
/// Offsets in errors are relative to the start of the slice the reader was made from, plus the
/// `base` given to [`Reader::with_base`], so that nested decoders report offsets into the
/// outermost buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// A reader at the start of `buf` whose error offsets are shifted by `base`.
    pub fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// The whole buffer this reader reads from.
    pub fn buffer(&self) -> &'a [u8] {
        self.buf
    }

    /// How many bytes have been consumed.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The absolute offset of the next byte, as error offsets count it.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// An error of `kind` at the current position.
    pub fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(self.offset(), kind)
    }

    /// An invalid value of `field` that was read `width` bytes before the current position.
    pub fn invalid_before(&self, width: usize, field: &'static str, value: u32) -> DecodeError {
        DecodeError::invalid(self.offset().saturating_sub(width), field, value)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.error(DecodeErrorKind::Truncated {
                needed: n - self.remaining(),
            }));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// The next byte without consuming it.
    pub fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error(DecodeErrorKind::Truncated { needed: 1 }))
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian u16 (NetBIOS headers).
    pub fn u16_be(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A little-endian u16 (SMB fields).
    pub fn u16_le(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A big-endian u32.
    pub fn u32_be(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A little-endian u32.
    pub fn u32_le(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Bytes up to (not including) the next NUL, consuming the NUL too. At most `limit` bytes
    /// before the NUL are accepted.
    pub fn nul_terminated(
        &mut self,
        field: &'static str,
        limit: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let rest = &self.buf[self.pos..];
        match rest.iter().position(|&b| b == 0) {
            Some(len) if len > limit => Err(self.error(DecodeErrorKind::TooLong {
                field,
                length: len,
                limit,
            })),
            Some(len) => {
                let out = &rest[..len];
                self.pos += len + 1;
                Ok(out)
            }
            None => Err(self.error(DecodeErrorKind::Truncated { needed: 1 })),
        }
    }

    /// Fails with [`DecodeErrorKind::TrailingBytes`] unless every byte was consumed.
    pub fn expect_end(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error(DecodeErrorKind::TrailingBytes {
                count: self.remaining(),
            }))
        }
    }

    /// Moves to absolute position `pos` in the buffer (used to follow offsets given inside a
    /// packet, such as SMB DataOffset).
    pub fn seek(&mut self, pos: usize) -> Result<(), DecodeError> {
        if pos > self.buf.len() {
            return Err(DecodeError::new(
                self.base + self.buf.len(),
                DecodeErrorKind::Truncated {
                    needed: pos - self.buf.len(),
                },
            ));
        }
        self.pos = pos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mixed_endianness_and_reports_truncation_offset() {
        let mut r = Reader::with_base(&[0x12, 0x34, 0x34, 0x12, 0xAA], 10);
        assert_eq!(r.u16_be().unwrap(), 0x1234);
        assert_eq!(r.u16_le().unwrap(), 0x1234);
        let err = r.u32_be().unwrap_err();
        assert_eq!(err.offset, 14);
        assert_eq!(err.kind, DecodeErrorKind::Truncated { needed: 3 });
        assert_eq!(r.u8().unwrap(), 0xAA);
        assert!(r.expect_end().is_ok());
    }

    #[test]
    fn nul_terminated_enforces_limit_and_requires_terminator() {
        let mut r = Reader::new(b"ALICE\0BOB");
        assert_eq!(r.nul_terminated("name", 15).unwrap(), b"ALICE");
        assert!(matches!(
            r.nul_terminated("name", 15).unwrap_err().kind,
            DecodeErrorKind::Truncated { .. }
        ));
        let mut r = Reader::new(b"ALICE\0");
        assert!(matches!(
            r.nul_terminated("name", 3).unwrap_err().kind,
            DecodeErrorKind::TooLong { length: 5, .. }
        ));
    }
}
