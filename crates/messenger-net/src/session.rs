//! A directed message over the NetBIOS session service: the tokio driver of
//! `netbios::smb::SenderSession`.
//!
//! One TCP connection per attempt: connect, let the state machine write the session request
//! and the SMBs and read the answers, close. Two things make a second connection necessary,
//! and both are handled here:
//!
//! - Samba's smbd drops the connection when the first SMB is a bare 0xD0 (REFERENCE 0.3 item
//!   5); the state machine then says "retry multi-block" and we send again as 0xD5/0xD7/0xD6,
//!   which every receiver takes.
//! - A RETARGET SESSION RESPONSE names another address and port to call (RFC 1002 4.3.5);
//!   we follow it a bounded number of times.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use netbios::nbss::NegativeCode;
use netbios::smb::{
    MessageForm, OutgoingMessage, SendError, SendOutcome, SenderOptions, SenderSession,
};
use netbios::NetbiosName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::NetError;
use crate::Settings;

/// Longest wait for the TCP connection. Our limit: RFC 1002 gives none, and Windows' own TCP
/// gives up after about 21 s (three SYNs); a receiver on the local network answers within
/// milliseconds, so 10 s only matters for hosts that are gone, where a faster answer is
/// kinder.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for each answer (session response, SMB response): SSN_CLOSE_TIMEOUT of RFC
/// 1002 s.6, as in the state machine.
pub const RESPONSE_TIMEOUT: Duration = netbios::smb::sender::DEFAULT_RESPONSE_TIMEOUT;

/// Retargets followed before giving up: SSN_RETRY_COUNT of RFC 1002 s.6.
pub const MAX_RETARGETS: usize = 4;

/// Bytes read from the socket at a time; the largest answer is a few dozen bytes.
const READ_BUF_LEN: usize = 4096;

/// Whether a connection starts with a SESSION REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionRequest {
    /// On port 139 only, as `smbclient` does: on any other port the receiver takes SMB frames
    /// straight away (Samba, and our service on its raw ports).
    #[default]
    Auto,
    /// Always, whatever the port.
    Always,
    /// Never.
    Never,
}

impl SessionRequest {
    /// Whether to send one when calling `port`.
    pub fn wanted(self, port: u16) -> bool {
        match self {
            SessionRequest::Auto => port == netbios::nbss::SESSION_PORT,
            SessionRequest::Always => true,
            SessionRequest::Never => false,
        }
    }
}

/// A directed message, encoded for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directed {
    /// The name called in the session request, `NAME<03>`.
    pub called: NetbiosName,
    /// OriginatorName, OEM.
    pub from: Vec<u8>,
    /// DestinationName, OEM.
    pub to: Vec<u8>,
    /// The text, OEM, line breaks in their wire form.
    pub text: Vec<u8>,
}

/// Delivers `message` to the session service at `addr`. Returns the form that carried it.
pub async fn send_directed(
    settings: &Settings,
    addr: SocketAddrV4,
    message: &Directed,
) -> Result<MessageForm, NetError> {
    let recipient = settings.code_page.decode(&message.to);
    let mut addr = addr;
    let mut options = SenderOptions {
        session_request: settings.session_request.wanted(addr.port()),
        response_timeout: settings.timeouts.response,
        ..SenderOptions::default()
    };
    let mut retargets = 0;
    let mut retried_multi_block = false;
    loop {
        let outgoing = OutgoingMessage {
            calling: settings.source_name(),
            called: settings.qualify(message.called),
            from: message.from.clone(),
            to: message.to.clone(),
            text: message.text.clone(),
        };
        let outcome = one_connection(settings, addr, outgoing, options).await?;
        match outcome {
            SendOutcome::Delivered(form) => return Ok(form),
            SendOutcome::RetryMultiBlock if !retried_multi_block => {
                tracing::debug!(%addr, "connection closed on 0xD0; sending again as multi-block");
                retried_multi_block = true;
                options = options.multi_block();
            }
            SendOutcome::Failed(SendError::Retargeted { addr: to, port })
                if retargets < MAX_RETARGETS =>
            {
                retargets += 1;
                tracing::debug!(from = %addr, to = %to, port, "session retargeted");
                addr = SocketAddrV4::new(to, port);
            }
            SendOutcome::RetryMultiBlock => {
                return Err(failure(&recipient, addr, SendError::ConnectionClosed));
            }
            SendOutcome::Failed(err) => return Err(failure(&recipient, addr, err)),
        }
    }
}

/// Runs one connection to its outcome.
async fn one_connection(
    settings: &Settings,
    addr: SocketAddrV4,
    message: OutgoingMessage,
    options: SenderOptions,
) -> Result<SendOutcome, NetError> {
    let peer = SocketAddr::V4(addr);
    let mut stream =
        match tokio::time::timeout(settings.timeouts.connect, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(NetError::Io {
                    what: "connecting to the session service",
                    peer,
                    source,
                })
            }
            Err(_) => {
                return Err(NetError::Timeout {
                    what: "connecting to the session service",
                    peer,
                    after: settings.timeouts.connect,
                })
            }
        };
    // Small request/response exchanges: do not let Nagle hold back the next block.
    let _ = stream.set_nodelay(true);
    let mut session = SenderSession::new(message, options, Instant::now()).map_err(|e| {
        NetError::InvalidName {
            name: String::new(),
            reason: e.to_string(),
        }
    })?;
    let mut buf = vec![0u8; READ_BUF_LEN];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if let Err(e) = stream.write_all(&bytes).await {
                if is_closed(&e) {
                    session.handle_eof();
                    break;
                }
                return Err(NetError::Io {
                    what: "writing to the session",
                    peer,
                    source: e,
                });
            }
        }
        if let Some(outcome) = session.outcome() {
            let outcome = outcome.clone();
            // Best effort: the answer is in, a failed shutdown changes nothing.
            let _ = stream.shutdown().await;
            return Ok(outcome);
        }
        let read = match session.poll_timeout() {
            Some(deadline) => {
                match tokio::time::timeout_at(
                    tokio::time::Instant::from_std(deadline),
                    stream.read(&mut buf),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => {
                        session.handle_timeout(Instant::now());
                        continue;
                    }
                }
            }
            None => stream.read(&mut buf).await,
        };
        match read {
            Ok(0) => session.handle_eof(),
            Ok(n) => session.handle_bytes(Instant::now(), &buf[..n]),
            Err(e) if is_closed(&e) => session.handle_eof(),
            Err(e) => {
                return Err(NetError::Io {
                    what: "reading from the session",
                    peer,
                    source: e,
                })
            }
        }
    }
}

/// Errors that mean "the peer closed the connection" rather than a local failure: a peer that
/// closes with unread data in its buffer (smbd refusing a 0xD0) sends a reset.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// The user-facing error for a failed send (REFERENCE 4.8).
fn failure(recipient: &str, addr: SocketAddrV4, err: SendError) -> NetError {
    let recipient = recipient.to_owned();
    let peer = SocketAddr::V4(addr);
    match err {
        SendError::NameNotFound
        | SendError::NotRecipient
        | SendError::SessionRefused(NegativeCode::NotListeningOnCalledName) => {
            NetError::NameNotFound { name: recipient }
        }
        SendError::Paused => NetError::Paused { recipient },
        SendError::Timeout => NetError::Timeout {
            what: "waiting for the recipient's answer",
            peer,
            after: RESPONSE_TIMEOUT,
        },
        other => NetError::Refused {
            recipient,
            reason: other.to_string(),
        },
    }
}
