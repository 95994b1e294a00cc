//! Making text from the network safe to write to a terminal.
//!
//! Anybody on the network can send us a message, and we show it on users' terminals. A
//! terminal obeys control characters and escape sequences in what it is given: they move the
//! cursor, rewrite the title, redefine keys, or (in some terminals) answer back with text that
//! the shell then reads as input. `wall` let such sequences through from command-line
//! arguments (CVE-2024-28085) and users could fake `sudo` password prompts on other users'
//! terminals; the Messenger spam of 2003 shows that strangers *will* send whatever is possible.
//! So nothing from the network reaches a terminal unchanged.
//!
//! # What is changed, and how it is shown
//!
//! | input | output | why |
//! |---|---|---|
//! | `\n`, `\t` in [`sanitize`] | kept | line structure of the message |
//! | other C0 (U+0000–U+001F), DEL (U+007F) | caret notation: ESC → `^[`, CR → `^M`, DEL → `^?` | as `cat -v` and `less` show them; readers see that something was there |
//! | C1 (U+0080–U+009F) | U+FFFD `�` | 8-bit CSI (U+009B), OSC (U+009D), DCS (U+0090) … act like `ESC [` etc. on terminals that honour C1; there is no common visible notation for them |
//! | bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the Arabic letter mark (U+061C) | U+FFFD | they reorder what follows on the line, so a message can make text appear other than it is ("Trojan Source", CVE-2021-42574) |
//! | invisible format characters: zero width space, non-joiner and joiner (U+200B–U+200D), word joiner (U+2060), zero width no-break space / BOM (U+FEFF) | U+FFFD | they take no room on the screen, so a name can look like another (`ad\u{200B}min` shows as `admin`) and text can hide what it contains |
//!
//! Every escape sequence (CSI, OSC, DCS, APC, PM, SOS, and a lone ESC) starts with ESC or with
//! a C1 character, so replacing those is enough to make all of them inert: what remains of
//! `ESC [ 2 J` is the harmless visible text `^[[2J`. We keep the rest of the sequence visible
//! rather than deleting it so that a recipient can see the message was tampered with.
//!
//! Text reaching this module is already UTF-8 (`String`), so overlong or invalid encodings of
//! control characters cannot occur: the OEM decoder has already turned every byte into a
//! character.

use std::borrow::Cow;

/// Shown in place of C1 controls, bidi formatting characters and invisible format characters.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Makes a message body safe for a terminal: keeps `\n` and `\t`, neutralises every other
/// control character, the bidi formatting characters and the invisible format characters (see
/// the module documentation).
/// Returns the input unchanged (borrowed) when nothing needed changing, the common case.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    sanitize_with(text, Mode::Body)
}

/// Makes a header field (a sender or recipient name) safe for a terminal: like [`sanitize`],
/// and `\n` and `\t` are neutralised too, so a name cannot start a new line and fake a header.
pub fn sanitize_line(text: &str) -> Cow<'_, str> {
    sanitize_with(text, Mode::Line)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Body,
    Line,
}

fn sanitize_with(text: &str, mode: Mode) -> Cow<'_, str> {
    let Some(first_bad) = text.find(|c| needs_neutralising(c, mode)) else {
        return Cow::Borrowed(text);
    };
    // Caret notation takes two bytes for one; the slack avoids a reallocation in the usual
    // case of a few control characters.
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first_bad]);
    for c in text[first_bad..].chars() {
        if needs_neutralising(c, mode) {
            push_neutralised(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `c` may not be written to a terminal as it is.
fn needs_neutralising(c: char, mode: Mode) -> bool {
    match c {
        '\n' | '\t' => mode == Mode::Line,
        '\u{0}'..='\u{1F}' | '\u{7F}' => true,
        '\u{80}'..='\u{9F}' => true,
        c => is_bidi_control(c) || is_invisible_format(c),
    }
}

/// Format characters that are invisible yet change what text is: the zero width space,
/// non-joiner and joiner, the word joiner, and the zero width no-break space (byte order
/// mark). The left-to-right and right-to-left marks (U+200E, U+200F) are not among them:
/// they occur in real Arabic and Hebrew text and reorder nothing but neutral characters next
/// to them.
pub fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// The explicit bidi embeddings, overrides and isolates (Unicode UAX #9, table 1), and the
/// Arabic letter mark, which UAX #9 treats as a strong right-to-left character that is
/// invisible: the ones that change the display order of *other* characters.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

fn push_neutralised(out: &mut String, c: char) {
    match c {
        // C0: '^' followed by the character 0x40 above it (NUL → ^@, ESC → ^[, US → ^_).
        '\u{0}'..='\u{1F}' => {
            out.push('^');
            out.push(char::from(c as u8 + 0x40));
        }
        '\u{7F}' => out.push_str("^?"),
        _ => out.push(REPLACEMENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether a terminal could take anything in `s` as a control: the property both
    /// functions guarantee.
    fn has_control(s: &str, allow_nl_tab: bool) -> bool {
        s.chars().any(|c| {
            let ok_ws = allow_nl_tab && (c == '\n' || c == '\t');
            (!ok_ws && (c < ' ' || c == '\u{7F}'))
                || ('\u{80}'..='\u{9F}').contains(&c)
                || is_bidi_control(c)
                || is_invisible_format(c)
        })
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        let s = "Hello Bob,\n\tlunch at 12? Grüße, 日本語 ✓";
        assert!(matches!(sanitize(s), Cow::Borrowed(x) if x == s));
        assert!(matches!(sanitize_line("HOST-A"), Cow::Borrowed("HOST-A")));
    }

    #[test]
    fn every_c0_control_gets_caret_notation() {
        for b in 0u8..0x20 {
            let c = char::from(b);
            let expected = match c {
                '\n' | '\t' => c.to_string(),
                _ => format!("^{}", char::from(b + 0x40)),
            };
            assert_eq!(sanitize(&c.to_string()), expected, "byte {b:#04x}");
            assert_eq!(
                sanitize_line(&c.to_string()),
                format!("^{}", char::from(b + 0x40)),
                "byte {b:#04x} in a line"
            );
        }
        assert_eq!(sanitize("\u{0}"), "^@");
        assert_eq!(sanitize("\r"), "^M");
        assert_eq!(sanitize("\x1b"), "^[");
        assert_eq!(sanitize("\x07"), "^G");
    }

    #[test]
    fn del_is_caret_question_mark() {
        assert_eq!(sanitize("a\u{7F}b"), "a^?b");
    }

    #[test]
    fn every_c1_control_is_replaced() {
        for cp in 0x80u32..=0x9F {
            let c = char::from_u32(cp).unwrap();
            assert_eq!(sanitize(&format!("x{c}y")), "x\u{FFFD}y", "U+{cp:04X}");
        }
    }

    #[test]
    fn escape_sequences_are_inert() {
        let cases = [
            // CSI: clear screen, colour, cursor movement.
            ("\x1b[2J\x1b[H", "^[[2J^[[H"),
            ("\x1b[31mred\x1b[0m", "^[[31mred^[[0m"),
            // OSC: set the window title, with BEL and with ST terminators.
            ("\x1b]0;pwned\x07", "^[]0;pwned^G"),
            ("\x1b]0;pwned\x1b\\", "^[]0;pwned^[\\"),
            // OSC 8 hyperlink and OSC 52 clipboard write.
            (
                "\x1b]8;;http://evil/\x1b\\click\x1b]8;;\x1b\\",
                "^[]8;;http://evil/^[\\click^[]8;;^[\\",
            ),
            ("\x1b]52;c;cm0gLXJmIH4=\x07", "^[]52;c;cm0gLXJmIH4=^G"),
            // DCS, SOS, PM, APC.
            ("\x1bP$q\"p\x1b\\", "^[P$q\"p^[\\"),
            ("\x1bXsos\x1b\\", "^[Xsos^[\\"),
            ("\x1b^pm\x1b\\", "^[^pm^[\\"),
            ("\x1b_apc\x1b\\", "^[_apc^[\\"),
            // 8-bit CSI, OSC, DCS and ST.
            ("\u{9B}2J", "\u{FFFD}2J"),
            ("\u{9D}0;t\u{9C}", "\u{FFFD}0;t\u{FFFD}"),
            ("\u{90}q\u{9C}", "\u{FFFD}q\u{FFFD}"),
            // Lone ESC at the end, and ESC ESC.
            ("bye\x1b", "bye^["),
            ("\x1b\x1b", "^[^["),
            // A fake prompt that erases the line first (the CVE-2024-28085 trick).
            (
                "\r\x1b[K[sudo] password for bob: ",
                "^M^[[K[sudo] password for bob: ",
            ),
        ];
        for (input, expected) in cases {
            let out = sanitize(input);
            assert_eq!(out, expected, "input {input:?}");
            assert!(!out.contains('\x1b'));
        }
    }

    #[test]
    fn bidi_controls_are_replaced() {
        for cp in (0x202Au32..=0x202E).chain(0x2066..=0x2069) {
            let c = char::from_u32(cp).unwrap();
            assert_eq!(sanitize(&format!("a{c}b")), "a\u{FFFD}b", "U+{cp:04X}");
            assert_eq!(sanitize_line(&format!("a{c}b")), "a\u{FFFD}b", "U+{cp:04X}");
        }
        // Marks that do not reorder other text stay: they occur in real Arabic and Hebrew.
        assert_eq!(sanitize("\u{200E}\u{200F}"), "\u{200E}\u{200F}");
    }

    #[test]
    fn invisible_format_characters_are_replaced() {
        for cp in [0x200Bu32, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x061C] {
            let c = char::from_u32(cp).unwrap();
            assert_eq!(sanitize(&format!("a{c}b")), "a\u{FFFD}b", "U+{cp:04X}");
            assert_eq!(sanitize_line(&format!("a{c}b")), "a\u{FFFD}b", "U+{cp:04X}");
        }
        // A name made to look like another: the disguise shows.
        assert_eq!(sanitize_line("ad\u{200B}min"), "ad\u{FFFD}min");
        assert_eq!(sanitize("\u{FEFF}hello"), "\u{FFFD}hello");
        // Their printable neighbours are untouched.
        let s = "\u{200A}\u{2010}\u{205F}\u{2061}\u{FEFE}\u{FF01}\u{061B}\u{061D}";
        assert_eq!(sanitize(s), s);
    }

    #[test]
    fn line_neutralises_newline_and_tab() {
        assert_eq!(
            sanitize_line("BOB\nMessage from ADMIN"),
            "BOB^JMessage from ADMIN"
        );
        assert_eq!(sanitize_line("a\tb"), "a^Ib");
        assert_eq!(sanitize("a\tb\nc"), "a\tb\nc");
    }

    #[test]
    fn printable_neighbours_of_controls_are_untouched() {
        let s = " ~\u{A0}\u{A1}\u{FF}\u{2029}\u{2065}\u{206A}\u{2029}\u{202F}";
        assert_eq!(sanitize(s), s);
    }

    proptest! {
        #[test]
        fn body_never_contains_controls(s in any::<String>()) {
            let out = sanitize(&s);
            prop_assert!(!has_control(&out, true), "{:?} -> {:?}", s, out);
        }

        #[test]
        fn line_never_contains_controls(s in any::<String>()) {
            let out = sanitize_line(&s);
            prop_assert!(!has_control(&out, false), "{:?} -> {:?}", s, out);
        }

        /// Biased towards the interesting characters, which `any::<String>()` rarely draws.
        #[test]
        fn control_heavy_text_is_neutralised(
            s in proptest::collection::vec(
                prop_oneof![
                    (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
                    (0x7Fu32..0xA0).prop_map(|c| char::from_u32(c).unwrap()),
                    (0x2060u32..0x2070).prop_map(|c| char::from_u32(c).unwrap()),
                    (0x2028u32..0x2030).prop_map(|c| char::from_u32(c).unwrap()),
                    (0x2008u32..0x2010).prop_map(|c| char::from_u32(c).unwrap()),
                    Just('\u{FEFF}'), Just('\u{061C}'),
                    Just('['), Just(']'), Just('^'), Just('a'),
                ],
                0..64,
            ).prop_map(|v| v.into_iter().collect::<String>())
        ) {
            let body = sanitize(&s);
            prop_assert!(!has_control(&body, true));
            prop_assert!(!body.contains('\x1b'));
            let line = sanitize_line(&s);
            prop_assert!(!has_control(&line, false));
            // Neutralising is idempotent: safe output is left alone.
            prop_assert_eq!(sanitize(&body), body.clone());
            prop_assert_eq!(sanitize_line(&line), line.clone());
        }

        #[test]
        fn text_without_controls_is_unchanged(s in "[^\\x00-\\x1f\\x7f-\\x9f\u{061C}\u{200B}-\u{200D}\u{2060}\u{FEFF}\u{202A}-\u{202E}\u{2066}-\u{2069}]*") {
            prop_assert_eq!(sanitize(&s), s.as_str());
        }
    }
}
