//! The check behind the `sanitize` fuzz target, callable from ordinary tests too (see
//! `netbios::fuzzing` for the pattern). Built only with the `fuzzing` feature, which the fuzz
//! crate and this crate's own tests enable; not part of the stable API.

use crate::sanitize::{is_bidi_control, is_invisible_format, sanitize, sanitize_line};
use netbios::oem::CodePage;

/// Whether `c` could act on a terminal: C0 (except `\n` and `\t` when `allow_layout`), DEL,
/// C1, the bidi controls and the invisible format characters.
fn is_active(c: char, allow_layout: bool) -> bool {
    if allow_layout && (c == '\n' || c == '\t') {
        return false;
    }
    c < ' ' || ('\u{7F}'..='\u{9F}').contains(&c) || is_bidi_control(c) || is_invisible_format(c)
}

/// Treats `data` as text from the network, both as UTF-8 and as each OEM code page would
/// decode it, and checks that the sanitized body and header line hold nothing a terminal
/// would act on, and that sanitizing is idempotent.
pub fn sanitize_check(data: &[u8]) {
    let page = CodePage::all()
        .nth(usize::from(data.first().copied().unwrap_or(0)) % CodePage::all().count())
        .expect("at least one code page");
    for text in [
        String::from_utf8_lossy(data).into_owned(),
        page.decode_text(data),
    ] {
        let body = sanitize(&text);
        assert!(
            !body.chars().any(|c| is_active(c, true)),
            "{text:?} -> {body:?}"
        );
        assert_eq!(sanitize(&body), body, "sanitize is not idempotent");
        let line = sanitize_line(&text);
        assert!(
            !line.chars().any(|c| is_active(c, false)),
            "{text:?} -> {line:?}"
        );
        assert_eq!(
            sanitize_line(&line),
            line,
            "sanitize_line is not idempotent"
        );
    }
}

/// Treats `data` as `smbstatus` output, JSON and plain: reading it never panics and every
/// listing stays within its bounds with usable names only (see `samba::check_listing`).
pub fn smbstatus_check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    crate::samba::check_listing(&crate::samba::SmbSessions::from_plain(&text));
    if let Ok(listing) = crate::samba::SmbSessions::from_json(&text) {
        crate::samba::check_listing(&listing);
    }
}
