//! What a notification says: pure functions from a message to the text a notification server
//! is given, and the plan for the messages left unread at start.
//!
//! Everything in a message came from the network. Its text goes through the terminal's
//! sanitizer first ([`messenger_core::sanitize::sanitize`]: control characters, bidi overrides and
//! invisible characters made visible), and then, when the notification server interprets
//! markup in bodies (it announces `body-markup`), `&`, `<`, `>`, `'` and `"` become entities:
//! a text with `<b>`, `&amp;` or `<a href>` shows exactly those characters, never formatting
//! or a link.

use messenger_core::sanitize::{sanitize, sanitize_line};
use messenger_ipc::MessageView;

/// The application name every notification carries.
pub const APP_NAME: &str = "Messenger";

/// Unread messages shown one by one at start; the rest are counted in one summary
/// notification. A screen holds only a few notifications, and a stack of thirty hides the
/// desktop while saying no more than "30 unread" does.
pub const CATCH_UP_SHOWN: usize = 3;

/// Most characters of a text put in a notification. The service takes longer texts when so
/// configured; a notification is not the place to read them (notification servers lay out
/// and keep every character), and the whole text is in `messenger inbox`.
pub const MAX_BODY_CHARS: usize = 4000;

/// Characters of a sender or recipient name shown; NetBIOS names are 15, names typed by local
/// senders are longer at most by a little.
pub const MAX_NAME_CHARS: usize = 64;

/// The summary line: "Message from FROM to TO", as the Windows pop-up's title said it.
pub fn summary(m: &MessageView) -> String {
    format!("Message from {} to {}", name(&m.from), name(&m.to))
}

/// The body: the time it arrived, then the text; markup-escaped when `markup` (the server
/// interprets markup in bodies).
pub fn body(m: &MessageView, markup: bool) -> String {
    let mut text = sanitize(&m.text).into_owned();
    if let Some((cut, _)) = text.char_indices().nth(MAX_BODY_CHARS) {
        text.truncate(cut);
        text.push_str("\n[…] (the whole text: messenger inbox)");
    }
    let body = format!("{}\n{}", local_time(&m.received_at), text);
    if markup {
        escape_markup(&body)
    } else {
        body
    }
}

/// The summary notification for unread messages not shown one by one.
pub fn more_summary(more: u64) -> (String, String) {
    let noun = if more == 1 { "message" } else { "messages" };
    (
        format!("and {more} more unread {noun}"),
        format!("and {more} more: messenger inbox --unread"),
    )
}

fn name(n: &str) -> String {
    let safe = sanitize_line(n.trim_end());
    match safe.char_indices().nth(MAX_NAME_CHARS) {
        Some((cut, _)) => format!("{}…", &safe[..cut]),
        None => safe.into_owned(),
    }
}

/// `received_at` (RFC 3339) in the local time zone, as `YYYY-MM-DD HH:MM:SS`; the text as it
/// came (made safe) if it does not parse.
fn local_time(rfc3339: &str) -> String {
    messenger_core::shown_time::from_rfc3339(rfc3339)
        .unwrap_or_else(|| sanitize_line(rfc3339).into_owned())
}

/// Escapes the characters the notification markup (a subset of XML) gives a meaning.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What to show at start, from the newest unread messages (oldest first, at most
/// [`CATCH_UP_SHOWN`] of them asked for) and the number of older unread ones: the summary of
/// the older ones first (so that it sits below them on the screen), then each message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    /// How many unread messages the summary notification counts (none: no summary).
    pub more: u64,
    /// The messages shown one by one, oldest first.
    pub shown: Vec<MessageView>,
}

impl CatchUp {
    /// The plan for `newest` unread (oldest first) and `older` left out of them.
    pub fn plan(mut newest: Vec<MessageView>, older: u64) -> Self {
        newest.retain(|m| !m.read);
        let extra = newest.len().saturating_sub(CATCH_UP_SHOWN);
        let shown = newest.split_off(extra);
        Self {
            more: older + extra as u64,
            shown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messenger_ipc::Audience;

    fn view(id: i64, text: &str) -> MessageView {
        MessageView {
            id,
            received_at: "2026-11-26T10:18:52Z".into(),
            from: "ALICE\x1b]0;x\x07".into(),
            to: "BOB".into(),
            text: text.into(),
            source: None,
            transport: "session".into(),
            read: false,
            expires_at: None,
            expired: false,
            audience: Audience::User,
        }
    }

    #[test]
    fn markup_in_a_text_is_shown_literally_where_the_server_reads_markup() {
        let m = view(1, "<b>x</b> &amp; <a href=\"http://e\">l</a>");
        let b = body(&m, true);
        assert!(
            b.ends_with(
                "\n&lt;b&gt;x&lt;/b&gt; &amp;amp; &lt;a href=&quot;http://e&quot;&gt;l&lt;/a&gt;"
            ),
            "{b}"
        );
        // A server that shows bodies as plain text gets the characters themselves.
        assert!(body(&m, false).ends_with("\n<b>x</b> &amp; <a href=\"http://e\">l</a>"));
    }

    #[test]
    fn control_characters_are_neutralised_before_escaping() {
        let m = view(1, "a\x1b[2Jb\u{202E}c\n<i>");
        let b = body(&m, true);
        assert!(!b.contains('\x1b') && !b.contains('\u{202E}'), "{b:?}");
        assert!(b.ends_with("a^[[2Jb\u{FFFD}c\n&lt;i&gt;"), "{b:?}");
        let s = summary(&m);
        assert_eq!(s, "Message from ALICE^[]0;x^G to BOB");
    }

    #[test]
    fn the_body_starts_with_the_time_and_long_texts_are_cut() {
        let m = view(1, &"y".repeat(MAX_BODY_CHARS + 10));
        let b = body(&m, false);
        let first = b.lines().next().unwrap();
        assert_eq!(first.len(), "2026-11-26 10:18:52".len(), "{first}");
        assert!(b.contains(&"y".repeat(MAX_BODY_CHARS)));
        assert!(!b.contains(&"y".repeat(MAX_BODY_CHARS + 1)));
        assert!(b.ends_with("messenger inbox)"));
    }

    #[test]
    fn catch_up_shows_a_few_and_counts_the_rest() {
        let few: Vec<_> = (1..=2).map(|i| view(i, "t")).collect();
        assert_eq!(
            CatchUp::plan(few.clone(), 0),
            CatchUp {
                more: 0,
                shown: few
            }
        );
        let page: Vec<_> = (10..=14).map(|i| view(i, "t")).collect();
        let plan = CatchUp::plan(page, 37);
        assert_eq!(plan.more, 37 + 2);
        assert_eq!(
            plan.shown.iter().map(|m| m.id).collect::<Vec<_>>(),
            [12, 13, 14]
        );
        assert_eq!(more_summary(39).1, "and 39 more: messenger inbox --unread");
    }
}
