//! `inbox`: the messages received for the caller, oldest first, and with `--follow` new ones
//! as they arrive.
//!
//! The service sends a listing in pages (at most `MAX_PAGE_MESSAGES` each, so that any inbox
//! can be listed); this command asks for page after page until it has shown what was asked
//! for: by default the newest [`DEFAULT_LIMIT`], with `--json` or `--after` everything.
//!
//! Messages are shown as the Messenger's pop-up showed them ("Message from X to Y on DATE
//! TIME", then the text; KB 330904), with every character from the network made safe for the
//! terminal. `--json` prints one JSON object per message and line instead, unsanitized but
//! escaped by JSON itself. Messages shown are marked read unless `--keep-unread`.

use std::io::Write;

use messenger_core::sanitize::sanitize;
use messenger_ipc::{Client, MessageView, Reply, Request, MAX_PAGE_MESSAGES};

use crate::cli::{InboxArgs, Limit};
use crate::context::Context;
use crate::output::{self, Exit};

/// Runs `inbox`.
pub fn run(ctx: &Context, args: InboxArgs) -> Exit {
    let connect = || match ctx.connect() {
        Ok(c) => Ok(c),
        Err(e) if e.not_running() => {
            output::net_error(messenger_core::nerr::NERR_MSG_NOT_STARTED);
            Err(Exit::NotRunning)
        }
        Err(e) => {
            output::error(&e.to_string());
            Err(Exit::Failed)
        }
    };
    let mut client = match connect() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    // Subscribe before listing, so that nothing arriving in between is missed; what the
    // stream repeats from the listing is skipped by id.
    let mut follower = None;
    if args.follow {
        let mut f = match connect() {
            Ok(c) => c,
            Err(exit) => return exit,
        };
        match f.call(&Request::InboxFollow {
            all_users: args.all,
            after_id: None,
        }) {
            Ok(Reply::Following) => follower = Some(f),
            other => return output::failed_reply(other),
        }
    }
    let mut last_id = i64::MIN;
    if let Err(exit) = list(&mut client, &args, &mut last_id) {
        return exit;
    }
    let Some(mut follower) = follower else {
        return Exit::Ok;
    };
    if let Err(e) = follower.wait_forever() {
        output::error(&e.to_string());
        return Exit::Failed;
    }
    loop {
        match follower.next_reply() {
            Ok(Reply::Message(m)) => {
                if m.id <= last_id {
                    continue;
                }
                last_id = m.id;
                let mut out = std::io::stdout().lock();
                if let Err(e) = show(&mut out, &m, args.json).and_then(|()| out.flush()) {
                    return output_failed(&e);
                }
                if !args.keep_unread && !args.all {
                    mark_read(&mut client, std::slice::from_ref(&m));
                }
            }
            Ok(Reply::Expired { id }) => {
                if !args.json {
                    println!("(Message #{id} expired unread.)");
                }
            }
            Ok(Reply::Lagged { missed, after_id }) => {
                let hint = after_id.map_or_else(String::new, |id| {
                    format!(": `messenger inbox --after {id}` shows them")
                });
                eprintln!("({missed} messages arrived too fast to follow{hint}.)");
            }
            Ok(Reply::Error(e)) => {
                output::net_error_with_detail(e.code, Some(&e.message));
                return Exit::for_code(e.code);
            }
            Ok(_) => {}
            Err(messenger_ipc::ClientError::Closed) => {
                eprintln!("The Messenger service stopped.");
                return Exit::NotRunning;
            }
            Err(e) => {
                output::error(&e.to_string());
                return Exit::Failed;
            }
        }
    }
}

/// Messages a listing for people shows without `--limit`: a screenful or two, the newest;
/// the listing ends with how many older ones there are and how to see them.
pub const DEFAULT_LIMIT: u64 = 100;

/// Shows the listing `args` asks for, page by page, marking each page read once shown (unless
/// `--keep-unread`). `last_id` ends as the highest id shown.
fn list(client: &mut Client, args: &InboxArgs, last_id: &mut i64) -> Result<(), Exit> {
    let limit = match args.limit {
        Some(limit) => limit,
        None if args.json || args.after.is_some() => Limit::All,
        None => Limit::Count(DEFAULT_LIMIT),
    };
    let wanted = match limit {
        Limit::All => None,
        Limit::Count(n) => Some(n),
    };
    // Without --after, a count means the newest N; the first page starts at the first of them.
    let mut last = wanted.filter(|_| args.after.is_none());
    let mut after = args.after;
    let mut shown: u64 = 0;
    let mut older = 0;
    let mut more;
    loop {
        let page_limit = wanted.map_or(MAX_PAGE_MESSAGES, |w| {
            usize::try_from(w - shown)
                .unwrap_or(usize::MAX)
                .min(MAX_PAGE_MESSAGES)
        });
        let request = Request::InboxList {
            unread_only: args.unread,
            all_users: args.all,
            after_id: after,
            limit: Some(page_limit),
            last: last.take(),
        };
        let (messages, page_more, page_older) = match client.call(&request) {
            Ok(Reply::Messages {
                messages,
                more,
                older,
            }) => (messages, more, older),
            other => return Err(output::failed_reply(other)),
        };
        if shown == 0 {
            older = page_older;
        }
        more = page_more;
        // A page is written in one go: a write per message would cost a system call each.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for m in &messages {
            show(&mut out, m, args.json).map_err(|e| output_failed(&e))?;
            *last_id = (*last_id).max(m.id);
        }
        out.flush().map_err(|e| output_failed(&e))?;
        drop(out);
        shown += messages.len() as u64;
        if !args.keep_unread && !args.all {
            mark_read(client, &messages);
        }
        let Some(last_shown) = messages.last() else {
            break;
        };
        after = Some(last_shown.id);
        if !more || wanted.is_some_and(|w| shown >= w) {
            break;
        }
    }
    let hint = hint(older, more.then_some(*last_id), args.unread);
    if let Some(hint) = hint {
        // With --json standard output is for JSON only.
        if args.json {
            eprintln!("{hint}");
        } else {
            println!("{hint}");
        }
    }
    Ok(())
}

/// The closing line of a listing that left messages out: how many, and how to see them.
fn hint(older: u64, more_after: Option<i64>, unread: bool) -> Option<String> {
    let what = if unread {
        "unread messages"
    } else {
        "messages"
    };
    match (older, more_after) {
        (0, None) => None,
        (n, None) => Some(format!(
            "({n} older {what} not shown: `--limit all` shows every one, `--limit N` the newest N.)"
        )),
        (_, Some(id)) => Some(format!("(More {what} follow: `--after {id}` shows them.)")),
    }
}

fn mark_read(client: &mut Client, messages: &[MessageView]) {
    let ids: Vec<i64> = messages.iter().filter(|m| !m.read).map(|m| m.id).collect();
    if ids.is_empty() {
        return;
    }
    if let Err(e) = client.call(&Request::InboxMarkRead { ids }) {
        output::error(&format!("cannot mark the messages read: {e}"));
    }
}

fn show(out: &mut impl Write, m: &MessageView, json: bool) -> std::io::Result<()> {
    if json {
        match serde_json::to_string(m) {
            Ok(line) => writeln!(out, "{line}")?,
            Err(e) => output::error(&format!("cannot encode message {}: {e}", m.id)),
        }
        return Ok(());
    }
    write!(out, "{}", format_message(m))
}

/// The exit for a listing that could not be written: a reader that stopped early (`| head`)
/// is not an error worth a message.
fn output_failed(e: &std::io::Error) -> Exit {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Exit::Ok;
    }
    output::error(&format!("cannot write the messages: {e}"));
    Exit::Failed
}

/// A message as a pop-up showed it, made safe for a terminal.
fn format_message(m: &MessageView) -> String {
    let mut header = format!(
        "Message from {} to {} on {}",
        output::safe(&m.from),
        output::safe(&m.to),
        local_time(&m.received_at)
    );
    let mut notes = Vec::new();
    if m.expired {
        // Expired unread: no longer news, whoever lists it now.
        notes.push(match &m.expires_at {
            Some(at) => format!("expired {}", local_time(at)),
            None => "expired".to_owned(),
        });
    } else if !m.read {
        notes.push("new".to_owned());
    }
    if let (Some(at), false) = (&m.expires_at, m.expired) {
        notes.push(format!("expires {}", local_time(at)));
    }
    match (&m.source, m.transport.as_str()) {
        (Some(source), transport) => notes.push(format!(
            "{} from {}",
            output::safe(transport),
            output::safe(source)
        )),
        (None, transport) => notes.push(output::safe(transport).into_owned()),
    }
    header.push_str(&format!(" [#{}, {}]", m.id, notes.join(", ")));
    format!("{header}\n\n{}\n\n", sanitize(&m.text))
}

/// `received_at` (RFC 3339) in the local time zone, as `YYYY-MM-DD HH:MM:SS`; the text as it
/// came if it does not parse.
fn local_time(rfc3339: &str) -> String {
    messenger_core::shown_time::from_rfc3339(rfc3339)
        .unwrap_or_else(|| output::safe(rfc3339).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(text: &str) -> MessageView {
        MessageView {
            id: 7,
            received_at: "2026-11-26T10:18:52Z".into(),
            from: "ALICE\x1b]0;pwned\x07".into(),
            to: "BOB".into(),
            text: text.into(),
            source: Some("10.0.0.5:49152".into()),
            transport: "session".into(),
            read: false,
            audience: messenger_ipc::Audience::User,
            expires_at: None,
            expired: false,
        }
    }

    #[test]
    fn an_expiring_or_expired_message_says_so() {
        let mut m = view("server going down");
        m.expires_at = Some("2026-11-26T10:19:52Z".into());
        let s = format_message(&m);
        assert!(s.contains("[#7, new, expires 2026-11-26 "), "{s}");
        m.expired = true;
        let s = format_message(&m);
        assert!(s.contains("[#7, expired 2026-11-26 "), "{s}");
        assert!(!s.contains("new"), "{s}");
    }

    #[test]
    fn messages_are_shown_safely() {
        let s = format_message(&view("line one\n\x1b[2Jline two\u{202E}"));
        assert!(!s.contains('\x1b'));
        assert!(!s.contains('\x07'));
        assert!(!s.contains('\u{202E}'));
        assert!(
            s.starts_with("Message from ALICE^[]0;pwned^G to BOB on "),
            "{s}"
        );
        assert!(s.contains("[#7, new, session from 10.0.0.5:49152]"), "{s}");
        assert!(s.contains("line one\n^[[2Jline two"), "{s}");
    }

    #[test]
    fn a_listing_that_left_messages_out_says_how_to_see_them() {
        assert_eq!(hint(0, None, false), None);
        let h = hint(250, None, true).unwrap();
        assert!(h.contains("250 older unread messages"), "{h}");
        assert!(h.contains("--limit all"), "{h}");
        let h = hint(0, Some(77), false).unwrap();
        assert!(h.contains("--after 77"), "{h}");
    }

    #[test]
    fn times_are_local_and_bad_ones_shown_as_is() {
        assert_eq!(local_time("not a time\x1b"), "not a time^[");
        let t = local_time("2026-11-26T10:18:52Z");
        assert_eq!(t.len(), 19, "{t}");
    }
}
