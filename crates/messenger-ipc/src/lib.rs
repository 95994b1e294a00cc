//! The control-socket protocol between `messengerd` and the `messenger` command line.
//!
//! One request per line, one or more replies per line, both JSON: easy to read with `socat`,
//! stable across versions because every field is named. The daemon learns who is calling from
//! the socket's peer credentials, never from anything in a request, so nothing here carries an
//! identity.
//!
//! Errors carry the NET error number Windows users know (`NET HELPMSG 2278`), so the command
//! line can print the familiar text and the right exit status.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Version of this protocol; `Status` reports it so a command line can tell an old daemon.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest line either side accepts. A message is at most a few KiB; an inbox listing of many
/// messages is the largest reply, and listings are paged (see [`MAX_PAGE_MESSAGES`]), so
/// 16 MiB is generous while still bounding what a misbehaving peer can make the other side
/// buffer.
pub const MAX_LINE_LEN: usize = 16 * 1024 * 1024;

/// Most messages one `InboxList` reply holds. A message of the longest text the service takes
/// by default (1600 bytes) is at most about 10 KB of JSON (a control character escapes to six
/// bytes), so a full page stays under [`MAX_LINE_LEN`]; the daemon also stops a page early
/// when the encoded messages would reach [`MAX_PAGE_BYTES`], whatever their length. A
/// thousand typical messages are a few hundred KB: few round trips for a large inbox.
pub const MAX_PAGE_MESSAGES: usize = 1000;

/// Most bytes of encoded messages in one `InboxList` reply: the line cap less room for the
/// reply's other fields.
pub const MAX_PAGE_BYTES: usize = MAX_LINE_LEN - 64 * 1024;

/// How long the command line waits for a reply before giving up on a stuck daemon. Sends wait
/// for the network (name resolution and a few round trips), so this is longer than any of the
/// protocol timeouts a send can run into.
pub const CLIENT_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the command line asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is the service running, and how is it set up?
    Status,
    /// The messaging names of this computer.
    NameList,
    /// Add a messaging name owned by the caller (`NET NAME X /ADD`).
    NameAdd {
        /// The name as typed.
        name: String,
    },
    /// Delete a messaging name (`NET NAME X /DELETE`).
    NameDelete {
        /// The name as typed.
        name: String,
    },
    /// One page of the messages received for the caller (for root with `all_users`, for
    /// everyone), oldest first. Page on with `after_id` set to the last id received while the
    /// reply says `more`.
    InboxList {
        /// Only messages the caller has not read.
        #[serde(default)]
        unread_only: bool,
        /// Root only: every user's messages.
        #[serde(default)]
        all_users: bool,
        /// Only messages with an id greater than this.
        #[serde(default)]
        after_id: Option<i64>,
        /// At most this many messages in the reply; the daemon never sends more than
        /// [`MAX_PAGE_MESSAGES`], nor more than fit in [`MAX_PAGE_BYTES`].
        #[serde(default)]
        limit: Option<usize>,
        /// Only the newest this many of the messages that match: the page starts at the first
        /// of them, and the reply's `older` says how many older ones were left out.
        #[serde(default)]
        last: Option<u64>,
    },
    /// Mark messages as read for the caller.
    InboxMarkRead {
        /// Message ids.
        ids: Vec<i64>,
    },
    /// Stream messages for the caller as they arrive: the daemon answers `Following`, then a
    /// `Message` reply per message, in id order, until the client hangs up. With `after_id`
    /// the stream starts with the messages already in the inbox after that id, so a follower
    /// that reconnects resumes where it stopped without a gap. When the service could not keep
    /// up with a slow follower it says so with `Lagged` and goes on with newer messages.
    InboxFollow {
        /// Root only: every user's messages.
        #[serde(default)]
        all_users: bool,
        /// Replay the messages with an id greater than this first (read or not; see their
        /// `read`).
        #[serde(default)]
        after_id: Option<i64>,
    },
    /// Send a message through the daemon.
    Send {
        /// Who gets it.
        target: SendTarget,
        /// Sender name to show; only root may set one other than the caller's login name.
        #[serde(default)]
        from: Option<String>,
        /// The text, UTF-8; the daemon converts it to the OEM code page.
        text: String,
        /// Allow texts longer than the Windows limit (for receivers that take them).
        #[serde(default)]
        allow_long: bool,
        /// Wait up to this many seconds (at most [`MAX_WAIT_SECS`]) for each recipient to
        /// read the message, and say in each result's `receipt` whether they did.
        #[serde(default)]
        wait_secs: Option<u64>,
        /// The message expires after this many seconds (msg.exe's /TIME; see
        /// [`check_expire_secs`]) unless someone read it by then: it stays in the inbox marked
        /// expired, and followers are told (`Expired`). Only this computer's service keeps
        /// an expiry; a message that leaves it cannot carry one.
        #[serde(default)]
        expire_secs: Option<u64>,
    },
    /// Store a message that Samba's smbd received for this host (`messenger deliver`, run as
    /// smbd's `message command`). Only root and smbd's guest account may ask.
    Deliver(Delivery),
}

/// A message smbd received on the network, as its `message command` is told of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Sender name (`%f`).
    pub from: String,
    /// The name the sender called (`%L`), when known: a user's name or alias routes the
    /// message to that user; anything else makes it a message to this computer.
    #[serde(default)]
    pub to: Option<String>,
    /// The sending machine's NetBIOS name (`%m`).
    pub machine: String,
    /// The sending machine's IP address (`%I`).
    pub address: std::net::IpAddr,
    /// The text, UTF-8 (smbd converted it from the DOS code page).
    pub text: String,
}

/// Recipients of a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SendTarget {
    /// A user or computer messaging name, or an IP address or DNS host name.
    Name {
        /// As typed.
        name: String,
    },
    /// Every messaging name of a workgroup or domain (`*`, `/DOMAIN[:X]`); `None` means this
    /// computer's own workgroup.
    Workgroup {
        /// The workgroup, if not our own.
        name: Option<String>,
    },
    /// Every user session on this computer (`/USERS`).
    Users,
}

/// A daemon's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The request failed.
    Error(IpcError),
    /// Done; nothing to report.
    Done,
    /// Answer to `Status`.
    Status(StatusInfo),
    /// Answer to `NameList`.
    Names {
        /// The names.
        names: Vec<NameInfo>,
    },
    /// Answer to `InboxList`: one page.
    Messages {
        /// Oldest first.
        messages: Vec<MessageView>,
        /// Whether more messages match after the last one of this page.
        #[serde(default)]
        more: bool,
        /// Matching messages older than this page that `last` left out.
        #[serde(default)]
        older: u64,
    },
    /// How many messages were marked read.
    MarkedRead {
        /// Count.
        count: usize,
    },
    /// `InboxFollow` started; `Message` replies follow.
    Following,
    /// One message of an `InboxFollow` stream.
    Message(MessageView),
    /// The follow stream fell behind and `missed` messages after `after_id` (the last id this
    /// stream sent, if any) were not sent on it. They are in the inbox: a follower that must
    /// not miss any lists the inbox after `after_id`, or follows again with that `after_id`.
    /// Newer messages keep coming on the stream.
    Lagged {
        /// How many messages the stream skipped.
        missed: u64,
        /// The last id sent on this stream before the gap (the `after_id` it was started
        /// with if it had sent none).
        #[serde(default)]
        after_id: Option<i64>,
    },
    /// One of an `InboxFollow` stream: a message sent with an expiry (`expire_secs`) was not
    /// read in time and is now expired. It stays in the inbox (its view says `expired`); a
    /// desktop takes down its notification.
    Expired {
        /// Its inbox id.
        id: i64,
    },
    /// A delivered message is in the inbox under this id.
    Delivered {
        /// Its inbox id.
        id: i64,
    },
    /// Outcome of a send, one entry per recipient.
    Sent {
        /// Per recipient.
        results: Vec<SendResult>,
    },
}

impl Reply {
    /// A failed request: NET or Win32 error `code`, and what went wrong in words.
    pub fn error(code: u32, message: impl Into<String>) -> Self {
        Reply::Error(IpcError {
            code,
            message: message.into(),
        })
    }

    /// The outcome of a send with one entry per recipient.
    pub fn sent(results: impl IntoIterator<Item = SendResult>) -> Self {
        Reply::Sent {
            results: results.into_iter().collect(),
        }
    }
}

/// An error with its NET error number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} (error {code})")]
pub struct IpcError {
    /// NET or Win32 error number (`NET HELPMSG code`).
    pub code: u32,
    /// What went wrong, in words.
    pub message: String,
}

/// The service's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// [`PROTOCOL_VERSION`] of the daemon.
    pub protocol_version: u32,
    /// The daemon's version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// This computer's NetBIOS name.
    pub computer_name: String,
    /// Its workgroup.
    pub workgroup: String,
    /// IPv4 addresses the name service runs on.
    pub addresses: Vec<String>,
    /// Messages in the caller's inbox that are unread.
    pub unread: u64,
}

/// One messaging name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameInfo {
    /// The name (no suffix, no padding).
    pub name: String,
    /// `computer`, `user` or `alias`.
    pub kind: String,
    /// The user who owns it (the logged-in user, the one who added it; none for the computer).
    pub owner: Option<String>,
    /// `registering`, `registered`, `conflict` or `releasing`.
    pub state: String,
}

/// A received message as the command line shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// Inbox id.
    pub id: i64,
    /// When it arrived, RFC 3339.
    pub received_at: String,
    /// Sender name as received.
    pub from: String,
    /// Recipient name as received.
    pub to: String,
    /// The text (UTF-8, line breaks as `\n`, not yet made safe for a terminal).
    pub text: String,
    /// Sender's address and port, when it came over the network.
    pub source: Option<String>,
    /// `session`, `mailslot` or `local`.
    pub transport: String,
    /// Whether the caller has read it.
    pub read: bool,
    /// Who it is for. A daemon that does not say is read as [`Audience::User`].
    #[serde(default)]
    pub audience: Audience,
    /// When it expires (or expired) unless read, RFC 3339; none for a message without an
    /// expiry.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Whether it expired unread (see `Request::Send`'s `expire_secs`).
    #[serde(default)]
    pub expired: bool,
}

/// Who a message is for, as far as the receiving computer can tell: what a desktop needs to
/// show a message to everyone more urgently than one to a single user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// One user: their name or one of their aliases.
    #[default]
    User,
    /// Several users named by the sender's service (`/USERS`: everyone logged in).
    Users,
    /// Everyone on this computer: a broadcast to the workgroup or domain (`*`, `/DOMAIN`),
    /// or a message to the computer's name.
    Everyone,
}

impl Audience {
    /// Whether the message went to more than one person (`*`, `/DOMAIN`, `/USERS`, the
    /// computer's name): a broadcast.
    pub fn is_broadcast(self) -> bool {
        !matches!(self, Audience::User)
    }

    /// The audience of a message stored for `recipients` (the users it is for; none for
    /// everyone).
    pub fn of_recipients(recipients: &[String]) -> Self {
        match recipients.len() {
            0 => Audience::Everyone,
            1 => Audience::User,
            _ => Audience::Users,
        }
    }
}

/// Outcome of a send to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// The recipient as the user should see it.
    pub recipient: String,
    /// None when it was delivered.
    pub error: Option<IpcError>,
    /// For a send that waited (`wait_secs`) and was delivered: whether it was read.
    #[serde(default)]
    pub receipt: Option<Receipt>,
    /// What the sender should know about a delivered message besides (it waits for its
    /// recipient to log on somewhere).
    #[serde(default)]
    pub notice: Option<String>,
}

/// What a sender who waits learns about a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Receipt {
    /// The recipient read it: dismissed or confirmed its notification, listed it with
    /// `messenger inbox`, or had it shown on their terminal.
    Read,
    /// Nobody it is for read it within the wait.
    NotReadInTime,
    /// The receiver only reports that it accepted the message (Windows, Samba, another
    /// host over NetBIOS): whether anyone read it cannot be known.
    AcceptedOnly,
    /// Nobody read it before its expiry (`expire_secs`): it is marked expired and no longer
    /// shown. The wait ends then, however long it was to be.
    Expired,
}

/// The longest a send may wait for its recipients to read it: a day, past which a sender's
/// terminal is better served by `messenger inbox` on the other side than by a waiting
/// process (msg.exe's /TIME has no limit, but nobody waits longer in practice).
pub const MAX_WAIT_SECS: u64 = 24 * 60 * 60;

/// The longest expiry a send may ask for (`expire_secs`): a day, as for [`MAX_WAIT_SECS`].
/// An expiry says "this stops mattering soon" (a server going down in five minutes, a
/// meeting about to start); a message that matters for longer is one to keep, and the
/// inbox's retention limits look after old messages. The bound also keeps the expiry time
/// far from overflowing the inbox's microsecond clock.
pub const MAX_EXPIRE_SECS: u64 = 24 * 60 * 60;

/// Checks an expiry in seconds (`messenger send --time`, the `expire_secs` of a send): at
/// least a second and at most [`MAX_EXPIRE_SECS`]. The command line checks before it asks,
/// and the service checks again, with this one function, since any local user can write
/// requests by hand. The error is the line to show.
pub fn check_expire_secs(secs: u64) -> Result<Duration, String> {
    if secs == 0 {
        return Err("The expiry time must be at least 1 second.".into());
    }
    if secs > MAX_EXPIRE_SECS {
        return Err(format!(
            "The expiry time may be at most {MAX_EXPIRE_SECS} seconds (a day)."
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket does not exist or nobody listens: the service is not running.
    #[error("cannot reach the Messenger service at {path}: {source}")]
    NotRunning {
        /// The socket path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("talking to the Messenger service failed: {0}")]
    Io(#[from] io::Error),
    /// The daemon sent something that is not a reply.
    #[error("the Messenger service sent a reply this program does not understand: {0}")]
    BadReply(String),
    /// The daemon closed the connection.
    #[error("the Messenger service closed the connection")]
    Closed,
}

/// Encodes one line: the JSON of `value` and a newline.
pub fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

/// Decodes one line (with or without its newline).
pub fn decode_line<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, serde_json::Error> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    serde_json::from_slice(line)
}

/// A blocking connection to the daemon, for the command line.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::NotRunning {
            path: path.display().to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(CLIENT_REPLY_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends `request` and waits for the first reply.
    pub fn call(&mut self, request: &Request) -> Result<Reply, ClientError> {
        self.writer.write_all(&encode_line(request))?;
        self.next_reply()
    }

    /// Waits for the next reply (for streams such as `InboxFollow`).
    pub fn next_reply(&mut self) -> Result<Reply, ClientError> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE_LEN as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        if line.len() > MAX_LINE_LEN {
            return Err(ClientError::BadReply("reply longer than the limit".into()));
        }
        decode_line(&line).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// Waits up to `timeout` for each reply from now on (a send that waits for its readers
    /// takes as long as its wait).
    pub fn set_reply_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        Ok(())
    }

    /// Waits without a timeout from now on (for `--follow`).
    pub fn wait_forever(&mut self) -> Result<(), ClientError> {
        self.reader.get_ref().set_read_timeout(None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_as_single_lines() {
        let requests = vec![
            Request::Status,
            Request::NameAdd {
                name: "pager".into(),
            },
            Request::InboxList {
                unread_only: true,
                all_users: false,
                after_id: Some(4),
                limit: None,
                last: Some(100),
            },
            Request::Send {
                target: SendTarget::Workgroup {
                    name: Some("OTHER".into()),
                },
                from: None,
                text: "line one\nline \"two\"".into(),
                allow_long: false,
                wait_secs: Some(30),
                expire_secs: Some(60),
            },
            Request::InboxFollow {
                all_users: false,
                after_id: Some(12),
            },
        ];
        for r in requests {
            let line = encode_line(&r);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(decode_line::<Request>(&line).unwrap(), r);
        }
        for reply in [
            Reply::Lagged {
                missed: 7,
                after_id: Some(41),
            },
            Reply::Lagged {
                missed: 1,
                after_id: None,
            },
            Reply::Expired { id: 9 },
        ] {
            assert_eq!(decode_line::<Reply>(&encode_line(&reply)).unwrap(), reply);
        }
        let reply = Reply::Error(IpcError {
            code: 2278,
            message: "The computer name could not be deleted.".into(),
        });
        assert_eq!(decode_line::<Reply>(&encode_line(&reply)).unwrap(), reply);
    }

    #[test]
    fn minimal_hand_written_requests_parse() {
        let r: Request = decode_line(br#"{"op":"inbox_list"}"#).unwrap();
        assert_eq!(
            r,
            Request::InboxList {
                unread_only: false,
                all_users: false,
                after_id: None,
                limit: None,
                last: None,
            }
        );
        assert!(decode_line::<Request>(br#"{"op":"format_disk"}"#).is_err());
        // A follower of an older command line resumes nothing.
        let r: Request = decode_line(br#"{"op":"inbox_follow"}"#).unwrap();
        assert_eq!(
            r,
            Request::InboxFollow {
                all_users: false,
                after_id: None
            }
        );
        // A message from a daemon that does not tell the audience is for one user.
        let r: Reply = decode_line(
            br#"{"reply":"message","id":3,"received_at":"2026-11-26T10:18:52Z","from":"A","to":"B","text":"t","source":null,"transport":"local","read":false}"#,
        )
        .unwrap();
        let Reply::Message(m) = r else {
            panic!("{r:?}")
        };
        assert_eq!(m.audience, Audience::User);
        assert!(!m.audience.is_broadcast());
        assert_eq!((m.expires_at, m.expired), (None, false));
        // A send from an older command line has no expiry.
        let r: Request =
            decode_line(br#"{"op":"send","target":{"kind":"users"},"text":"t"}"#).unwrap();
        assert!(
            matches!(
                r,
                Request::Send {
                    expire_secs: None,
                    ..
                }
            ),
            "{r:?}"
        );
        // A reply from a daemon that does not page yet reads as a last page.
        let r: Reply = decode_line(br#"{"reply":"messages","messages":[]}"#).unwrap();
        assert_eq!(
            r,
            Reply::Messages {
                messages: Vec::new(),
                more: false,
                older: 0
            }
        );
    }

    #[test]
    fn a_full_page_of_the_longest_messages_fits_in_a_line() {
        // The longest default text and long names, every character one that JSON escapes to
        // six bytes. (Longer ones, under a raised max_message_len, make the daemon cut the
        // page by MAX_PAGE_BYTES instead.)
        let worst = MessageView {
            id: i64::MAX,
            received_at: "2026-11-26T10:18:52.123456Z".into(),
            from: "\u{1}".repeat(128),
            to: "\u{1}".repeat(128),
            text: "\u{1}".repeat(1600),
            source: Some("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".into()),
            transport: "mailslot".into(),
            read: false,
            audience: Audience::Everyone,
            expires_at: Some("2026-11-26T10:18:52.123456Z".into()),
            expired: true,
        };
        let page = Reply::Messages {
            messages: vec![worst; MAX_PAGE_MESSAGES],
            more: true,
            older: u64::MAX,
        };
        let len = encode_line(&page).len();
        assert!(len <= MAX_LINE_LEN, "{len}");
    }

    #[test]
    fn expiry_times_are_checked_in_one_place() {
        assert!(check_expire_secs(0)
            .unwrap_err()
            .contains("at least 1 second"));
        assert_eq!(check_expire_secs(1), Ok(Duration::from_secs(1)));
        assert_eq!(
            check_expire_secs(MAX_EXPIRE_SECS),
            Ok(Duration::from_secs(MAX_EXPIRE_SECS))
        );
        assert!(check_expire_secs(MAX_EXPIRE_SECS + 1)
            .unwrap_err()
            .contains("at most 86400 seconds"));
        assert!(check_expire_secs(u64::MAX).is_err());
    }

    #[test]
    fn client_reports_not_running_for_missing_socket() {
        let dir = tempfile::tempdir().unwrap();
        let err = Client::connect(&dir.path().join("none.sock")).unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }));
    }
}
