//! OEM code pages and line breaks: how message text travels as bytes.
//!
//! Messenger text and names are sent in the sender's OEM code page, not in Unicode
//! ([MS-MSRP] 3.2.4.1, 3.2.4.4; Samba converts them to and from its "DOS charset"). Inside this
//! project text is UTF-8, so every received message is decoded from, and every sent message
//! encoded to, a [`CodePage`] chosen by configuration (CP850 unless told otherwise).
//!
//! Line breaks differ by sender: Windows turns every line break into the single byte 0x14
//! (DC4; [MS-MSRP] 2.2.3.1.1 and notes <4>, <7>), `smbclient` sends CRLF. A receiver treats
//! 0x14, CRLF, LFCR, CR and LF alike ([`normalise_line_breaks`]); a sender picks one of the
//! two forms with [`LineBreaks`].
//!
//! Decoding never fails: a byte the code page leaves undefined becomes U+FFFD. Encoding either
//! fails on the first character the code page cannot represent ([`CodePage::encode`]) or
//! replaces each such character with `?` and counts them ([`CodePage::encode_lossy`]), so that
//! the caller can tell the user how much was lost.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The byte Windows senders put for a line break (DC4; [MS-MSRP] 2.2.3.1.1, note <4>).
pub const WINDOWS_LINE_BREAK: u8 = 0x14;

/// What an unrepresentable character becomes in lossy encoding. `?` is what Windows' own
/// best-fit conversion falls back to, and it is ASCII, so it exists in every OEM code page.
pub const REPLACEMENT_BYTE: u8 = b'?';

/// An OEM or Windows single-byte code page that message text may be written in.
///
/// The set is what the `yore` crate provides: the DOS/OEM pages used by `NET SEND` on the
/// various language versions of Windows, and the Windows ANSI pages 1250–1258 for peers that
/// (wrongly, but in practice) send ANSI text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CodePage {
    /// CP437, the original IBM PC page (US English DOS and Windows).
    Cp437,
    /// CP737, Greek.
    Cp737,
    /// CP850, Western European DOS; the default because most Western European Windows
    /// installations used it as their OEM page.
    #[default]
    Cp850,
    /// CP852, Central European.
    Cp852,
    /// CP855, Cyrillic (IBM).
    Cp855,
    /// CP857, Turkish.
    Cp857,
    /// CP860, Portuguese.
    Cp860,
    /// CP861, Icelandic.
    Cp861,
    /// CP862, Hebrew.
    Cp862,
    /// CP863, Canadian French.
    Cp863,
    /// CP864, Arabic.
    Cp864,
    /// CP865, Nordic.
    Cp865,
    /// CP866, Russian (the OEM page of Russian Windows).
    Cp866,
    /// CP869, modern Greek.
    Cp869,
    /// CP874, Thai.
    Cp874,
    /// Windows-1250, Central European ANSI.
    Cp1250,
    /// Windows-1251, Cyrillic ANSI.
    Cp1251,
    /// Windows-1252, Western European ANSI.
    Cp1252,
    /// Windows-1253, Greek ANSI.
    Cp1253,
    /// Windows-1254, Turkish ANSI.
    Cp1254,
    /// Windows-1255, Hebrew ANSI.
    Cp1255,
    /// Windows-1256, Arabic ANSI.
    Cp1256,
    /// Windows-1257, Baltic ANSI.
    Cp1257,
    /// Windows-1258, Vietnamese ANSI.
    Cp1258,
}

/// A code page name that [`CodePage::from_name`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown code page {0:?} (known: {known})", known = CodePage::known_names())]
pub struct UnknownCodePage(pub String);

/// A character that the code page cannot represent, found by [`CodePage::encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the character {character:?} (at character {index}) cannot be written in {code_page}")]
pub struct Unmappable {
    /// The character.
    pub character: char,
    /// Its position in the text, counted in characters from 0.
    pub index: usize,
    /// The code page that lacks it.
    pub code_page: CodePage,
}

/// The result of lossy encoding: the bytes, and how many characters had to be replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    /// The encoded text, with [`REPLACEMENT_BYTE`] for each unrepresentable character.
    pub bytes: Vec<u8>,
    /// How many characters were replaced; 0 means the encoding is exact.
    pub replaced: usize,
}

/// Every page with its canonical name, in the order [`CodePage::known_names`] lists them.
const ALL: &[(CodePage, &str)] = &[
    (CodePage::Cp437, "cp437"),
    (CodePage::Cp737, "cp737"),
    (CodePage::Cp850, "cp850"),
    (CodePage::Cp852, "cp852"),
    (CodePage::Cp855, "cp855"),
    (CodePage::Cp857, "cp857"),
    (CodePage::Cp860, "cp860"),
    (CodePage::Cp861, "cp861"),
    (CodePage::Cp862, "cp862"),
    (CodePage::Cp863, "cp863"),
    (CodePage::Cp864, "cp864"),
    (CodePage::Cp865, "cp865"),
    (CodePage::Cp866, "cp866"),
    (CodePage::Cp869, "cp869"),
    (CodePage::Cp874, "cp874"),
    (CodePage::Cp1250, "cp1250"),
    (CodePage::Cp1251, "cp1251"),
    (CodePage::Cp1252, "cp1252"),
    (CodePage::Cp1253, "cp1253"),
    (CodePage::Cp1254, "cp1254"),
    (CodePage::Cp1255, "cp1255"),
    (CodePage::Cp1256, "cp1256"),
    (CodePage::Cp1257, "cp1257"),
    (CodePage::Cp1258, "cp1258"),
];

impl CodePage {
    /// Every supported code page.
    pub fn all() -> impl Iterator<Item = CodePage> {
        ALL.iter().map(|&(cp, _)| cp)
    }

    /// The page called `name`, ignoring case. Accepted spellings: `cp850`, `850`, `ibm850`,
    /// `ibm-850`, `cp-850`, and for the ANSI pages also `windows-1252`; these are the
    /// spellings iconv, Samba's `dos charset` and Windows use.
    pub fn from_name(name: &str) -> Result<Self, UnknownCodePage> {
        let lower = name.trim().to_ascii_lowercase();
        let number = ["windows-", "windows", "ibm-", "ibm", "cp-", "cp"]
            .iter()
            .find_map(|prefix| lower.strip_prefix(prefix))
            .unwrap_or(&lower);
        ALL.iter()
            .find(|(_, canonical)| canonical.strip_prefix("cp") == Some(number))
            .map(|&(cp, _)| cp)
            .ok_or_else(|| UnknownCodePage(name.to_owned()))
    }

    /// The canonical name, such as `cp850`.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(cp, _)| *cp == self)
            .map_or("cp850", |&(_, name)| name)
    }

    /// The canonical names of all pages, comma-separated, for help and error texts.
    pub fn known_names() -> String {
        ALL.iter().map(|&(_, n)| n).collect::<Vec<_>>().join(", ")
    }

    fn table(self) -> &'static dyn yore::CodePage {
        use yore::code_pages as y;
        match self {
            Self::Cp437 => &y::CP437,
            Self::Cp737 => &y::CP737,
            Self::Cp850 => &y::CP850,
            Self::Cp852 => &y::CP852,
            Self::Cp855 => &y::CP855,
            Self::Cp857 => &y::CP857,
            Self::Cp860 => &y::CP860,
            Self::Cp861 => &y::CP861,
            Self::Cp862 => &y::CP862,
            Self::Cp863 => &y::CP863,
            Self::Cp864 => &y::CP864,
            Self::Cp865 => &y::CP865,
            Self::Cp866 => &y::CP866,
            Self::Cp869 => &y::CP869,
            Self::Cp874 => &y::CP874,
            Self::Cp1250 => &y::CP1250,
            Self::Cp1251 => &y::CP1251,
            Self::Cp1252 => &y::CP1252,
            Self::Cp1253 => &y::CP1253,
            Self::Cp1254 => &y::CP1254,
            Self::Cp1255 => &y::CP1255,
            Self::Cp1256 => &y::CP1256,
            Self::Cp1257 => &y::CP1257,
            Self::Cp1258 => &y::CP1258,
        }
    }

    /// Decodes bytes to text. Total: bytes the page leaves undefined become U+FFFD. Line breaks
    /// are left as they are; see [`CodePage::decode_text`].
    pub fn decode(self, bytes: &[u8]) -> String {
        self.table().decode_lossy(bytes).into_owned()
    }

    /// Decodes message text: line breaks in any of the received forms become `\n` first
    /// ([`normalise_line_breaks`]), then the bytes are decoded as by [`CodePage::decode`].
    pub fn decode_text(self, bytes: &[u8]) -> String {
        self.decode(&normalise_line_breaks(bytes))
    }

    /// The byte for one character, if the page has it.
    pub fn encode_char(self, c: char) -> Option<u8> {
        let mut buf = [0u8; 4];
        match self.table().encode(c.encode_utf8(&mut buf)) {
            Ok(bytes) if bytes.len() == 1 => Some(bytes[0]),
            _ => None,
        }
    }

    /// Encodes text exactly, failing on the first character the page cannot represent.
    pub fn encode(self, text: &str) -> Result<Vec<u8>, Unmappable> {
        if let Ok(bytes) = self.table().encode(text) {
            return Ok(bytes.into_owned());
        }
        // Slow path only to say which character failed.
        text.chars()
            .enumerate()
            .map(|(index, character)| {
                self.encode_char(character).ok_or(Unmappable {
                    character,
                    index,
                    code_page: self,
                })
            })
            .collect()
    }

    /// Encodes text, replacing each character the page cannot represent with
    /// [`REPLACEMENT_BYTE`] and counting the replacements.
    pub fn encode_lossy(self, text: &str) -> Encoded {
        if let Ok(bytes) = self.table().encode(text) {
            return Encoded {
                bytes: bytes.into_owned(),
                replaced: 0,
            };
        }
        let mut out = Encoded::default();
        for c in text.chars() {
            match self.encode_char(c) {
                Some(b) => out.bytes.push(b),
                None => {
                    out.bytes.push(REPLACEMENT_BYTE);
                    out.replaced += 1;
                }
            }
        }
        out
    }

    /// Encodes message text exactly, with every line break (`\n`, `\r\n`, `\n\r`, `\r`)
    /// written in the form `breaks` asks for.
    pub fn encode_text(self, text: &str, breaks: LineBreaks) -> Result<Vec<u8>, Unmappable> {
        let normalised = normalise_str_line_breaks(text);
        // Encode line by line so that the break bytes are never looked up in the page: 0x14
        // is a graphic character in some of them.
        let mut out = Vec::with_capacity(normalised.len());
        let mut index = 0;
        for (i, line) in normalised.split('\n').enumerate() {
            if i > 0 {
                out.extend_from_slice(breaks.bytes());
                index += 1;
            }
            let bytes = self.encode(line).map_err(|mut e| {
                e.index += index;
                e
            })?;
            index += line.chars().count();
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Like [`CodePage::encode_text`], but replacing unrepresentable characters as
    /// [`CodePage::encode_lossy`] does.
    pub fn encode_text_lossy(self, text: &str, breaks: LineBreaks) -> Encoded {
        let normalised = normalise_str_line_breaks(text);
        let mut out = Encoded::default();
        for (i, line) in normalised.split('\n').enumerate() {
            if i > 0 {
                out.bytes.extend_from_slice(breaks.bytes());
            }
            let part = self.encode_lossy(line);
            out.bytes.extend_from_slice(&part.bytes);
            out.replaced += part.replaced;
        }
        out
    }

    /// Uppercases a name held in this code page, as Windows does with every NetBIOS name
    /// ([MS-MSRP] 2.2.2.1, [MS-NBTE] note <1>). ASCII letters are uppercased directly; any
    /// other byte is decoded, uppercased in Unicode, and replaced only if the uppercase form
    /// is a single character that exists in the page (so `é` becomes `É` in CP850, while `ß`,
    /// whose uppercase is two letters, stays as it is).
    pub fn uppercase(self, name: &[u8]) -> Vec<u8> {
        name.iter().map(|&b| self.uppercase_byte(b)).collect()
    }

    fn uppercase_byte(self, b: u8) -> u8 {
        if b.is_ascii() {
            return b.to_ascii_uppercase();
        }
        let decoded = self.decode(&[b]);
        let mut chars = decoded.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return b;
        };
        let mut upper = c.to_uppercase();
        match (upper.next(), upper.next()) {
            (Some(u), None) if u != c => match self.encode_char(u) {
                Some(ub) if self.decode(&[ub]).starts_with(u) => ub,
                _ => b,
            },
            _ => b,
        }
    }
}

impl fmt::Display for CodePage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CodePage {
    type Err = UnknownCodePage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s)
    }
}

/// The two ways a sender can write a line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LineBreaks {
    /// One 0x14 byte per line break, as Windows `NET SEND` writes them ([MS-MSRP] <4>).
    #[default]
    Windows,
    /// CR LF, as `smbclient -M` sends them.
    Samba,
}

impl LineBreaks {
    /// The bytes written for one line break.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Self::Windows => &[WINDOWS_LINE_BREAK],
            Self::Samba => b"\r\n",
        }
    }
}

/// Whether `b` may start a line break: 0x14, CR or LF.
fn is_break_byte(b: u8) -> bool {
    matches!(b, WINDOWS_LINE_BREAK | b'\r' | b'\n')
}

/// Length of the line break starting at `bytes[0]`, or 0 if there is none there. CRLF and LFCR
/// count as one break; CRCR, LFLF and everything with 0x14 count each byte as its own break.
fn break_len(bytes: &[u8]) -> usize {
    match bytes {
        [b'\r', b'\n', ..] | [b'\n', b'\r', ..] => 2,
        [b, ..] if is_break_byte(*b) => 1,
        _ => 0,
    }
}

/// Turns every line break in OEM bytes — 0x14, CRLF, LFCR, CR or LF — into a single LF.
/// Borrows when there is nothing to change (the common case of an LF-only or one-line text).
pub fn normalise_line_breaks(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.iter().any(|&b| b == WINDOWS_LINE_BREAK || b == b'\r') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match break_len(&bytes[i..]) {
            0 => {
                out.push(bytes[i]);
                i += 1;
            }
            n => {
                out.push(b'\n');
                i += n;
            }
        }
    }
    Cow::Owned(out)
}

/// [`normalise_line_breaks`] for UTF-8 text, where the break characters are the same ASCII
/// bytes and can never be part of a multi-byte sequence.
fn normalise_str_line_breaks(text: &str) -> Cow<'_, str> {
    match normalise_line_breaks(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Only ASCII bytes were replaced by ASCII bytes, so the result is still UTF-8.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// The lines of OEM text, split at every line break of any form. A text with `n` breaks has
/// `n + 1` lines; a trailing break gives a last, empty line.
pub fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match break_len(&bytes[i..]) {
            0 => i += 1,
            n => {
                lines.push(&bytes[start..i]);
                i += n;
                start = i;
            }
        }
    }
    lines.push(&bytes[start..]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_case_insensitive_and_unknown_names_fail() {
        assert_eq!(CodePage::from_name("cp850"), Ok(CodePage::Cp850));
        assert_eq!(CodePage::from_name("CP437"), Ok(CodePage::Cp437));
        assert_eq!(CodePage::from_name("IBM866"), Ok(CodePage::Cp866));
        assert_eq!(CodePage::from_name("852"), Ok(CodePage::Cp852));
        assert_eq!(CodePage::from_name("Windows-1252"), Ok(CodePage::Cp1252));
        assert_eq!("cp1251".parse(), Ok(CodePage::Cp1251));
        assert!(CodePage::from_name("cp65001").is_err());
        assert!(CodePage::from_name("").is_err());
        assert!(CodePage::from_name("utf-8").is_err());
        let err = CodePage::from_name("latin9").unwrap_err();
        assert!(err.to_string().contains("cp850"));
        assert_eq!(CodePage::default(), CodePage::Cp850);
        for cp in CodePage::all() {
            assert_eq!(CodePage::from_name(cp.name()), Ok(cp));
        }
    }

    #[test]
    fn cp850_and_cp866_known_bytes() {
        assert_eq!(CodePage::Cp850.decode(&[0x82, 0x81, 0xE1]), "éüß");
        assert_eq!(CodePage::Cp850.encode("Grüße").unwrap(), b"Gr\x81\xE1e");
        assert_eq!(CodePage::Cp866.decode(&[0x8F, 0xE0, 0xA8]), "При");
        assert_eq!(CodePage::Cp437.encode_char('█'), Some(0xDB));
    }

    #[test]
    fn encoding_reports_unmappable_characters() {
        let err = CodePage::Cp850.encode("ok Привет").unwrap_err();
        assert_eq!(err.character, 'П');
        assert_eq!(err.index, 3);
        let lossy = CodePage::Cp850.encode_lossy("ok Привет 🦀");
        assert_eq!(lossy.bytes, b"ok ?????? ?");
        assert_eq!(lossy.replaced, 7);
        assert_eq!(CodePage::Cp850.encode_lossy("plain").replaced, 0);
    }

    #[test]
    fn decoding_is_total_for_incomplete_pages() {
        // CP857 leaves 0xE7 undefined.
        let text = CodePage::Cp857.decode(b"a\xE7b");
        assert_eq!(text, "a\u{FFFD}b");
    }

    #[test]
    fn every_line_break_form_is_one_break() {
        let input = b"a\x14b\r\nc\n\rd\re\nf";
        assert_eq!(&*normalise_line_breaks(input), b"a\nb\nc\nd\ne\nf");
        assert_eq!(
            split_lines(input),
            vec![&b"a"[..], b"b", b"c", b"d", b"e", b"f"]
        );
        assert_eq!(&*normalise_line_breaks(b"x\r\n\r\ny"), b"x\n\ny");
        assert_eq!(&*normalise_line_breaks(b"x\n\ny"), b"x\n\ny");
        assert_eq!(split_lines(b"end\r\n"), vec![&b"end"[..], b""]);
        assert!(matches!(normalise_line_breaks(b"a\nb"), Cow::Borrowed(_)));
    }

    #[test]
    fn line_breaks_are_written_in_the_chosen_form() {
        let text = "Server down\r\nin 5 minutes\nbye";
        assert_eq!(
            CodePage::Cp850
                .encode_text(text, LineBreaks::Windows)
                .unwrap(),
            b"Server down\x14in 5 minutes\x14bye"
        );
        assert_eq!(
            CodePage::Cp850
                .encode_text(text, LineBreaks::Samba)
                .unwrap(),
            b"Server down\r\nin 5 minutes\r\nbye"
        );
        let lossy = CodePage::Cp850.encode_text_lossy("Привет\nok", LineBreaks::Windows);
        assert_eq!(lossy.bytes, b"??????\x14ok");
        assert_eq!(lossy.replaced, 6);
        let err = CodePage::Cp850
            .encode_text("ab\ncП", LineBreaks::Samba)
            .unwrap_err();
        assert_eq!(err.index, 4);
        assert_eq!(CodePage::Cp850.decode_text(b"a\x14b\r\nc"), "a\nb\nc");
    }

    #[test]
    fn uppercasing_follows_the_code_page() {
        assert_eq!(CodePage::Cp850.uppercase(b"alice"), b"ALICE");
        // é (0x82) -> É (0x90) in CP850; ß (0xE1) has no one-letter uppercase.
        assert_eq!(CodePage::Cp850.uppercase(b"\x82\xE1"), b"\x90\xE1");
        // CP866: п (0xAF) -> П (0x8F).
        assert_eq!(CodePage::Cp866.uppercase(b"\xAF"), b"\x8F");
        // CP437 has ÿ (0x98) but not Ÿ: it stays.
        assert_eq!(CodePage::Cp437.uppercase(b"\x98"), b"\x98");
        assert_eq!(CodePage::Cp437.uppercase(b"\x82"), b"\x90");
    }

    proptest! {
        #[test]
        fn representable_text_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            for cp in CodePage::all() {
                let text = cp.decode(&bytes);
                if text.contains('\u{FFFD}') {
                    continue;
                }
                let back = cp.encode(&text).unwrap();
                prop_assert_eq!(cp.decode(&back), text);
                prop_assert_eq!(cp.encode_lossy(&cp.decode(&back)).replaced, 0);
            }
        }

        #[test]
        fn normalised_text_has_only_lf_breaks(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let n = normalise_line_breaks(&bytes);
            prop_assert!(!n.iter().any(|&b| b == b'\r' || b == WINDOWS_LINE_BREAK));
            prop_assert_eq!(split_lines(&bytes).len(), n.iter().filter(|&&b| b == b'\n').count() + 1);
        }

        #[test]
        fn cp850_text_round_trips_through_windows_breaks(lines in proptest::collection::vec("[a-zA-Z0-9 éüßÄ]{0,20}", 1..5)) {
            let text = lines.join("\n");
            let bytes = CodePage::Cp850.encode_text(&text, LineBreaks::Windows).unwrap();
            prop_assert_eq!(CodePage::Cp850.decode_text(&bytes), text.clone());
            let bytes = CodePage::Cp850.encode_text(&text, LineBreaks::Samba).unwrap();
            prop_assert_eq!(CodePage::Cp850.decode_text(&bytes), text);
        }
    }
}
