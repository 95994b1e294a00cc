//! The terminal sink: a stored message written to its recipients' login terminals like
//! `write(1)`, leaving alone a terminal whose owner said `mesg n`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use messenger_core::sanitize;

use super::{Arrival, Audience, DeliverySink};
use crate::host::utmp::LoginSession;

/// Group-write permission bit of a terminal device: `mesg y` sets it, `mesg n` clears it
/// (mesg(1)).
const TTY_GROUP_WRITE: u32 = 0o020;
/// Longest text shown on a terminal; Windows shows at most 4,095 characters ([MS-MSRP] notes
/// <24>, <26>); the full text stays in the inbox.
pub const MAX_DISPLAY_CHARS: usize = 4095;

/// A message ready to be shown.
#[derive(Debug, Clone)]
pub struct Popup {
    /// Sender name as received.
    pub from: String,
    /// Recipient name as received.
    pub to: String,
    /// Local date and time of arrival, already formatted.
    pub when: String,
    /// The text, UTF-8 with `\n` line breaks, not yet sanitized.
    pub text: String,
}

impl Popup {
    /// The classic layout: "Message from FROM to TO on DATE TIME", a blank line, the text.
    /// Everything from the network is sanitized; lines end in CRLF so the layout holds on a
    /// terminal in raw mode too.
    pub fn render(&self) -> String {
        let text: String = self.text.chars().take(MAX_DISPLAY_CHARS).collect();
        let body = sanitize::sanitize(&text);
        let mut out = String::with_capacity(body.len() + 128);
        out.push_str("\r\n\x07");
        out.push_str(&format!(
            "Message from {} to {} on {}\r\n\r\n",
            sanitize::sanitize_line(&self.from),
            sanitize::sanitize_line(&self.to),
            self.when
        ));
        for line in body.split('\n') {
            out.push_str(line);
            out.push_str("\r\n");
        }
        out
    }
}

/// Writes messages to login terminals.
#[derive(Debug, Clone)]
pub struct TerminalSink {
    dev_dir: PathBuf,
}

impl TerminalSink {
    /// A sink writing to terminals under `/dev`.
    pub fn new() -> Self {
        Self::with_dev_dir(PathBuf::from("/dev"))
    }

    /// A sink whose terminal paths are relative to `dev_dir` (tests use files there).
    pub fn with_dev_dir(dev_dir: PathBuf) -> Self {
        Self { dev_dir }
    }

    fn write_to(&self, line: &str, bytes: &[u8]) -> std::io::Result<bool> {
        let path: PathBuf = self.dev_dir.join(line);
        if !accepts_messages(&path)? {
            return Ok(false);
        }
        let mut tty = OpenOptions::new()
            .write(true)
            // A stopped or slow terminal must not block delivery to everyone else.
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(&path)?;
        tty.write_all(bytes)?;
        Ok(true)
    }
}

impl Default for TerminalSink {
    fn default() -> Self {
        Self::new()
    }
}

fn accepts_messages(path: &Path) -> std::io::Result<bool> {
    Ok(std::fs::metadata(path)?.mode() & TTY_GROUP_WRITE != 0)
}

impl TerminalSink {
    /// Writes `popup` to the terminals of `sessions`; returns the users who were shown it.
    pub fn show(&self, popup: &Popup, sessions: &[LoginSession]) -> Vec<String> {
        let rendered = popup.render();
        let mut shown = Vec::new();
        for s in sessions.iter().filter(|s| !s.line.is_empty()) {
            match self.write_to(&s.line, rendered.as_bytes()) {
                Ok(true) => {
                    if !shown.contains(&s.user) {
                        shown.push(s.user.clone());
                    }
                }
                Ok(false) => tracing::debug!(user = %s.user, tty = %s.line, "mesg n: not shown"),
                Err(e) => {
                    tracing::debug!(user = %s.user, tty = %s.line, error = %e, "terminal not writable")
                }
            }
        }
        shown
    }
}

/// Shown on a terminal means seen: the users written to are returned, and their copy is
/// marked read.
impl DeliverySink for TerminalSink {
    fn deliver(&self, arrival: &Arrival, audience: &Audience) -> Vec<String> {
        let message = &arrival.stored.message;
        let popup = Popup {
            from: message.from.clone(),
            to: message.to.clone(),
            when: local_time_string(message.received_at),
            text: message.text.clone(),
        };
        self.show(&popup, &audience.sessions)
    }
}

/// `micros` as local date and time, `YYYY-MM-DD HH:MM:SS`.
pub fn local_time_string(micros: i64) -> String {
    messenger_core::shown_time::from_micros(micros).unwrap_or_else(|| "unknown time".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn popup(text: &str) -> Popup {
        Popup {
            from: "ALICE\x1b]0;pwned\x07".into(),
            to: "BOB".into(),
            when: "2026-11-26 10:00:00".into(),
            text: text.into(),
        }
    }

    #[test]
    fn render_has_header_and_no_escape_from_the_network() {
        let out = popup("line one\n\x1b[2Jline two\u{9b}31m").render();
        assert!(out.contains("Message from ALICE"));
        assert!(out.contains("to BOB on 2026-11-26 10:00:00\r\n\r\n"));
        assert!(out.contains("line one\r\n"));
        // Only our own BEL and CR/LF control bytes remain.
        let stray: Vec<char> = out
            .chars()
            .filter(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\x07'))
            .collect();
        assert!(stray.is_empty(), "{stray:?} in {out:?}");
        assert_eq!(out.matches('\x07').count(), 1);
    }

    #[test]
    fn terminals_with_mesg_n_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pts")).unwrap();
        let yes = dir.path().join("pts/1");
        let no = dir.path().join("pts/2");
        std::fs::write(&yes, "").unwrap();
        std::fs::write(&no, "").unwrap();
        std::fs::set_permissions(&yes, std::fs::Permissions::from_mode(0o620)).unwrap();
        std::fs::set_permissions(&no, std::fs::Permissions::from_mode(0o600)).unwrap();
        let sink = TerminalSink::with_dev_dir(dir.path().to_path_buf());
        let sessions = vec![
            LoginSession {
                user: "alice".into(),
                line: "pts/1".into(),
                host: String::new(),
                pid: 1,
                seat: String::new(),
            },
            LoginSession {
                user: "bob".into(),
                line: "pts/2".into(),
                host: String::new(),
                pid: 2,
                seat: String::new(),
            },
        ];
        let shown = sink.show(&popup("hello"), &sessions);
        assert_eq!(shown, vec!["alice".to_string()]);
        assert!(std::fs::read_to_string(&yes).unwrap().contains("hello"));
        assert!(std::fs::read_to_string(&no).unwrap().is_empty());
    }

    #[test]
    fn the_audience_is_the_recipients_sessions_or_everyones() {
        let session = |user: &str, line: &str| LoginSession {
            user: user.into(),
            line: line.into(),
            host: String::new(),
            pid: 1,
            seat: String::new(),
        };
        let all = vec![
            session("alice", "pts/1"),
            session("bob", "pts/2"),
            session("alice", "pts/3"),
        ];
        let lines = |a: Audience| a.sessions.into_iter().map(|s| s.line).collect::<Vec<_>>();
        assert_eq!(
            lines(Audience::of(&["alice".into()], &all)),
            ["pts/1", "pts/3"]
        );
        assert_eq!(lines(Audience::of(&[], &all)), ["pts/1", "pts/2", "pts/3"]);
        assert!(Audience::of(&["carol".into()], &all).sessions.is_empty());
    }
}
