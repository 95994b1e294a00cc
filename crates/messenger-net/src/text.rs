//! Message text as it goes on the wire: OEM code page, line breaks, length limits.
//!
//! Line breaks are sent as CR LF, the form `smbclient -M` uses, rather than Windows' single
//! 0x14 byte: Samba's receiver turns CR LF into LF but passes 0x14 through as a raw control
//! character, while Windows receivers and ours treat CR LF as a line break too
//! ([MS-MSRP] 2.2.3.1.1; REFERENCE 4.9). CR LF is the one form every receiver shows right.
//!
//! Broadcasts are the exception: they use Windows' 0x14. Samba never receives mailslot
//! messages (nmbd has no `\MAILSLOT\MESSNGR` handler), every receiver that does treats 0x14 as
//! a line break, and one byte per break keeps a 128-character broadcast within the 128 bytes
//! the datagram allows.

use netbios::oem::{CodePage, LineBreaks};

use crate::error::NetError;

/// The line-break form of directed messages (see the module documentation).
pub const DIRECTED_LINE_BREAKS: LineBreaks = LineBreaks::Samba;

/// The line-break form of broadcasts (see the module documentation).
pub const BROADCAST_LINE_BREAKS: LineBreaks = LineBreaks::Windows;

/// Longest directed message by default, in OEM bytes: "Text … MUST be 652 bytes or less"
/// ([MS-MSRP] 3.2.4.4). Windows receivers may refuse more.
pub const WINDOWS_MAX_TEXT_LEN: usize = messenger_core::config::WINDOWS_MAX_MESSAGE_LEN;

/// Longest directed message when longer ones are allowed: what Samba's receiver and sender
/// buffer (smbclient(1), `-M`: "truncated if over 1600 bytes"), and what our receiver takes by
/// default.
pub const LONG_MAX_TEXT_LEN: usize = 1600;

/// Longest broadcast (`NET SEND *`, `/DOMAIN`), in characters: "Broadcast messages can
/// contain up to 128 characters" (Windows XP `net send` reference).
pub const BROADCAST_MAX_CHARS: usize = 128;

/// How long a directed message may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LengthLimit {
    /// [`WINDOWS_MAX_TEXT_LEN`].
    #[default]
    Windows,
    /// [`LONG_MAX_TEXT_LEN`], for receivers that take it (Samba, this project).
    Long,
}

impl LengthLimit {
    /// The limit in bytes.
    pub fn max_bytes(self) -> usize {
        match self {
            LengthLimit::Windows => WINDOWS_MAX_TEXT_LEN,
            LengthLimit::Long => LONG_MAX_TEXT_LEN,
        }
    }

    /// From the control protocol's `allow_long` flag.
    pub fn from_allow_long(allow_long: bool) -> Self {
        if allow_long {
            LengthLimit::Long
        } else {
            LengthLimit::Windows
        }
    }
}

/// Encodes the text of a directed message: code page, CR LF line breaks, length checked after
/// encoding (the limits are in bytes on the wire).
pub fn encode_directed(
    text: &str,
    code_page: CodePage,
    limit: LengthLimit,
) -> Result<Vec<u8>, NetError> {
    if text.is_empty() {
        return Err(NetError::Empty);
    }
    let bytes = code_page.encode_text(text, DIRECTED_LINE_BREAKS)?;
    let max = limit.max_bytes();
    if bytes.len() > max {
        return Err(NetError::TooLong {
            len: bytes.len(),
            max,
            unit: "bytes",
            hint: match limit {
                LengthLimit::Windows => {
                    " (longer messages can be allowed for receivers that take them, such as Samba)"
                }
                LengthLimit::Long => "",
            },
        });
    }
    Ok(bytes)
}

/// Encodes the text of a broadcast, limited to [`BROADCAST_MAX_CHARS`] characters as on
/// Windows (counted before encoding, as the user typed them; a line break counts as one).
pub fn encode_broadcast(text: &str, code_page: CodePage) -> Result<Vec<u8>, NetError> {
    if text.is_empty() {
        return Err(NetError::Empty);
    }
    let bytes = code_page.encode_text(text, BROADCAST_LINE_BREAKS)?;
    let chars = code_page.decode_text(&bytes).chars().count();
    if chars > BROADCAST_MAX_CHARS {
        return Err(NetError::TooLong {
            len: chars,
            max: BROADCAST_MAX_CHARS,
            unit: "characters",
            hint: " for a broadcast",
        });
    }
    Ok(bytes)
}

/// Encodes a name (sender, recipient, workgroup) for the wire: OEM, uppercased as Windows
/// does ([MS-MSRP] 3.2.4.4), at most 15 bytes.
pub fn encode_name(name: &str, code_page: CodePage) -> Result<Vec<u8>, NetError> {
    let invalid = |reason: String| NetError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let trimmed = name.trim();
    let bytes = code_page
        .encode(trimmed)
        .map_err(|e| invalid(e.to_string()))?;
    let upper = code_page.uppercase(&bytes);
    netbios::NetbiosName::new(&upper, 0).map_err(|e| invalid(e.to_string()))?;
    Ok(upper)
}

/// Encodes the sender's name (OriginatorName, the mailslot's From): OEM, uppercased as
/// Windows does ([MS-MSRP] 3.2.4.4), cut to the 15 bytes of a NetBIOS name because receivers
/// such as Windows keep no more ([MS-MSRP] 2.2.3.1.1). Unlike a recipient it need not be a
/// valid NetBIOS name (login names may be longer or hold other characters): characters the
/// code page lacks become `?`; only NUL is refused, as it would end the field.
pub fn encode_sender(name: &str, code_page: CodePage) -> Result<Vec<u8>, NetError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.contains('\0') {
        return Err(NetError::InvalidName {
            name: name.to_owned(),
            reason: "a sender name must be non-empty and contain no NUL".to_owned(),
        });
    }
    let mut bytes = code_page.uppercase(&code_page.encode_lossy(trimmed).bytes);
    bytes.truncate(netbios::name::MAX_NAME_CHARS);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_text_uses_crlf_and_the_byte_limit() {
        let b = encode_directed("a\nb", CodePage::Cp850, LengthLimit::Windows).unwrap();
        assert_eq!(b, b"a\r\nb");
        let long = "x".repeat(WINDOWS_MAX_TEXT_LEN);
        assert!(encode_directed(&long, CodePage::Cp850, LengthLimit::Windows).is_ok());
        let err = encode_directed(&format!("{long}y"), CodePage::Cp850, LengthLimit::Windows)
            .unwrap_err();
        assert!(matches!(
            err,
            NetError::TooLong {
                len: 653,
                max: 652,
                ..
            }
        ));
        assert_eq!(err.nerr(), 87);
        assert!(encode_directed(&format!("{long}y"), CodePage::Cp850, LengthLimit::Long).is_ok());
        // Line breaks become two bytes on the wire, and the limit is on the wire.
        let lines = "\n".repeat(400);
        assert!(encode_directed(&lines, CodePage::Cp850, LengthLimit::Windows).is_err());
        assert!(matches!(
            encode_directed("", CodePage::Cp850, LengthLimit::Windows),
            Err(NetError::Empty)
        ));
    }

    #[test]
    fn unrepresentable_characters_are_reported() {
        let err = encode_directed("hi Привет", CodePage::Cp850, LengthLimit::Windows).unwrap_err();
        assert!(err.to_string().contains('П'), "{err}");
        assert!(err.is_input_error());
        assert_eq!(
            encode_directed("Привет", CodePage::Cp866, LengthLimit::Windows).unwrap(),
            b"\x8F\xE0\xA8\xA2\xA5\xE2"
        );
    }

    #[test]
    fn broadcasts_count_characters() {
        let ok = "é".repeat(BROADCAST_MAX_CHARS);
        assert_eq!(encode_broadcast(&ok, CodePage::Cp850).unwrap().len(), 128);
        assert!(matches!(
            encode_broadcast(&format!("{ok}!"), CodePage::Cp850),
            Err(NetError::TooLong { len: 129, .. })
        ));
    }

    #[test]
    fn names_are_uppercased_oem() {
        assert_eq!(encode_name("alice", CodePage::Cp850).unwrap(), b"ALICE");
        assert_eq!(encode_name("josé", CodePage::Cp850).unwrap(), b"JOS\x90");
        assert!(encode_name("much-too-long-a-name", CodePage::Cp850).is_err());
        assert!(encode_name("a*b", CodePage::Cp850).is_err());
    }

    #[test]
    fn sender_names_are_cut_not_refused() {
        assert_eq!(
            encode_sender("firstname.lastname", CodePage::Cp850).unwrap(),
            b"FIRSTNAME.LASTN"
        );
        assert!(encode_sender("", CodePage::Cp850).is_err());
        assert!(encode_sender("a\0b", CodePage::Cp850).is_err());
    }
}
