//! The message client's side of one TCP connection, as a state machine without I/O.
//!
//! Both the command line and the daemon send through this one implementation. The caller
//! connects (to port 139 of the address it resolved `RECIPIENT<03>` to), then loops: write
//! what [`SenderSession::poll_transmit`] yields, feed what it reads to
//! [`SenderSession::handle_bytes`] (or [`SenderSession::handle_eof`]), honour
//! [`SenderSession::poll_timeout`], until [`SenderSession::outcome`] is set; then it closes
//! the connection (REFERENCE 3.2 step 4).
//!
//! The sequence (REFERENCE 3.2, 4.2 to 4.5, [MS-MSRP] 3.2.4.4): optionally a SESSION REQUEST
//! and its positive response; then either one 0xD0 when the text fits one block, or 0xD5,
//! 0xD7 per block echoing the group id the 0xD5 response gave (0 if it gave none), and 0xD6,
//! waiting for each response before the next request.
//!
//! Samba's smbd closes the connection when the first SMB is 0xD0 (REFERENCE 0.3 item 5). The
//! close cannot be told apart from other failures on the same connection, and the connection
//! is gone, so the session ends with [`SendOutcome::RetryMultiBlock`]: the caller reconnects
//! and sends again with [`SenderOptions::multi_block`]. A caller that keeps per-peer state may
//! remember this and go straight to multi-block next time. A peer that instead answers 0xD0
//! with "unknown command" keeps the connection, so the session falls back to 0xD5 on it
//! without the caller's help.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::codec::DecodeError;
use crate::name::QualifiedName;
use crate::nbss::{self, Framer, FramerMode, NegativeCode, SessionPacket};

use super::assembler::SPEC_MAX_BLOCK_LEN;
use super::header::{command, dos, nt, SmbStatus};
use super::messenger::{
    EncodeError, EndMessage, Request, Response, SendMessage, StartMessage, TextBlock,
};
use super::receiver::MessageForm;

/// Block size senders use: every block but the last "SHOULD be exactly 128 bytes" ([MS-MSRP]
/// 3.2.4.4), the most a block may hold (2.2.3.3.1).
pub const DEFAULT_BLOCK_LEN: usize = SPEC_MAX_BLOCK_LEN;
/// How long to wait for each response. Our limit, equal to the receiver's idle timeout and
/// the session service's SSN_CLOSE_TIMEOUT (RFC 1002 s.6): a server that has not answered in
/// that time is not going to.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Our own name for the session request; `smbclient` uses `NAME<00>`.
    pub calling: QualifiedName,
    /// The recipient, `NAME<03>` ([MS-MSRP] 2.1.3).
    pub called: QualifiedName,
    /// OriginatorName: OEM bytes, uppercased by the caller if it follows Windows.
    pub from: Vec<u8>,
    /// DestinationName: OEM bytes.
    pub to: Vec<u8>,
    /// The text: OEM bytes with line breaks already in the chosen form (0x14 or CRLF).
    pub text: Vec<u8>,
}

/// How to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderOptions {
    /// Send a SESSION REQUEST first (port 139). Without it SMB frames go straight out, as
    /// `smbclient` does on other ports.
    pub session_request: bool,
    /// Use 0xD0 when the text fits in one block, as Windows does; otherwise always
    /// multi-block, as `smbclient` does.
    pub prefer_single_block: bool,
    /// Bytes per block, clamped to 1..=[`DEFAULT_BLOCK_LEN`] (the protocol maximum).
    pub block_len: usize,
    /// When a 0xD0 is refused, end with [`SendOutcome::RetryMultiBlock`] (connection closed)
    /// or fall back to 0xD5 on the same connection (command unknown) instead of failing.
    pub retry_multi_block: bool,
    /// See [`DEFAULT_RESPONSE_TIMEOUT`].
    pub response_timeout: Duration,
    /// Largest frame accepted from the server.
    pub max_frame_len: usize,
}

impl Default for SenderOptions {
    fn default() -> Self {
        Self {
            session_request: true,
            prefer_single_block: true,
            block_len: DEFAULT_BLOCK_LEN,
            retry_multi_block: true,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            max_frame_len: nbss::DEFAULT_MAX_FRAME_LEN,
        }
    }
}

impl SenderOptions {
    /// These options, but never 0xD0: for the retry after [`SendOutcome::RetryMultiBlock`].
    #[must_use]
    pub fn multi_block(self) -> Self {
        Self {
            prefer_single_block: false,
            ..self
        }
    }
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// NEGATIVE SESSION RESPONSE 0x82: the recipient's name is not on that host (`NET SEND`
    /// error 2273, NERR_NameNotFound).
    #[error("the message alias could not be found on the network")]
    NameNotFound,
    /// Any other negative session response.
    #[error("the session was refused (code {0:?})")]
    SessionRefused(NegativeCode),
    /// A RETARGET SESSION RESPONSE: the caller may connect there and start again.
    #[error("the session was redirected to {addr}:{port}")]
    Retargeted {
        /// Address to call instead.
        addr: Ipv4Addr,
        /// Port to call instead.
        port: u16,
    },
    /// ERRpaused: the message server is paused.
    #[error("the message server is paused")]
    Paused,
    /// ERRnoroom: no room to buffer the message.
    #[error("the recipient has no room for the message")]
    NoRoom,
    /// ERRmsgoff: the recipient does not receive messages.
    #[error("the recipient is not receiving messages")]
    MessagingOff,
    /// ERRrmuns: too many remote user names.
    #[error("the recipient has too many remote user names")]
    TooManyNames,
    /// STATUS_OBJECT_NAME_NOT_FOUND: the recipient does not hold the destination name.
    #[error("the recipient does not hold the destination name")]
    NotRecipient,
    /// The server does not know the messenger commands at all.
    #[error("the server does not support the messenger commands")]
    Unsupported,
    /// Any other error status.
    #[error("the message was refused with status {0:?}")]
    Refused(SmbStatus),
    /// The server closed the connection before answering.
    #[error("the connection was closed before the message was acknowledged")]
    ConnectionClosed,
    /// The server did not answer in time.
    #[error("no response from the recipient in time")]
    Timeout,
    /// The server's bytes made no sense.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The recipient acknowledged the whole message.
    Delivered(MessageForm),
    /// The server closed the connection on a 0xD0 (as Samba does): connect again and send
    /// with [`SenderOptions::multi_block`].
    RetryMultiBlock,
    /// The send failed.
    Failed(SendError),
}

/// What the session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    SessionResponse,
    /// A response to this command.
    Smb(u8),
    Nothing,
}

/// One sending connection.
#[derive(Debug)]
pub struct SenderSession {
    message: OutgoingMessage,
    options: SenderOptions,
    framer: Framer,
    awaiting: Awaiting,
    /// Offset in the text of the next 0xD7 block.
    next_offset: usize,
    group_id: u16,
    deadline: Option<Instant>,
    transmit: VecDeque<Vec<u8>>,
    outcome: Option<SendOutcome>,
}

impl SenderSession {
    /// Starts a send on a connection established at `now`. Fails if a name contains a NUL or
    /// is too long for the wire format.
    pub fn new(
        message: OutgoingMessage,
        options: SenderOptions,
        now: Instant,
    ) -> Result<Self, EncodeError> {
        // Check the names once here, so that no request built later can fail to encode.
        Request::Start(StartMessage::new(message.from.clone(), message.to.clone())).to_bytes()?;
        let options = SenderOptions {
            block_len: options.block_len.clamp(1, DEFAULT_BLOCK_LEN),
            ..options
        };
        let mode = if options.session_request {
            FramerMode::SessionService
        } else {
            FramerMode::DirectSmb
        };
        let mut session = Self {
            framer: Framer::new(mode, options.max_frame_len),
            message,
            options,
            awaiting: Awaiting::Nothing,
            next_offset: 0,
            group_id: 0,
            deadline: None,
            transmit: VecDeque::new(),
            outcome: None,
        };
        if options.session_request {
            let request = SessionPacket::SessionRequest {
                called: session.message.called.clone(),
                calling: session.message.calling.clone(),
            };
            session.send_packet(now, &request, Awaiting::SessionResponse);
        } else {
            session.send_first_smb(now);
        }
        Ok(session)
    }

    /// Bytes to write next, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// How the send ended, once it has.
    pub fn outcome(&self) -> Option<&SendOutcome> {
        self.outcome.as_ref()
    }

    /// Whether the send has ended.
    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    /// When [`SenderSession::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The clock reached `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.finish(SendOutcome::Failed(SendError::Timeout));
        }
    }

    /// The server closed the connection (or it broke).
    pub fn handle_eof(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        let outcome = if self.awaiting == Awaiting::Smb(command::SEND_MESSAGE)
            && self.options.retry_multi_block
        {
            SendOutcome::RetryMultiBlock
        } else {
            SendOutcome::Failed(SendError::ConnectionClosed)
        };
        self.finish(outcome);
    }

    /// Bytes read from the connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if self.outcome.is_some() {
            return;
        }
        self.framer.push(bytes);
        while self.outcome.is_none() {
            match self.framer.next_frame() {
                Ok(Some(packet)) => self.handle_packet(now, packet),
                Ok(None) => break,
                Err(err) => self.fail_protocol(&err),
            }
        }
    }

    fn finish(&mut self, outcome: SendOutcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
            self.awaiting = Awaiting::Nothing;
            self.deadline = None;
        }
    }

    fn fail_protocol(&mut self, err: &DecodeError) {
        self.finish(SendOutcome::Failed(SendError::Protocol(err.to_string())));
    }

    fn send_packet(&mut self, now: Instant, packet: &SessionPacket, awaiting: Awaiting) {
        match packet.to_bytes() {
            Ok(bytes) => {
                self.transmit.push_back(bytes);
                self.awaiting = awaiting;
                self.deadline = now.checked_add(self.options.response_timeout);
            }
            Err(err) => self.finish(SendOutcome::Failed(SendError::Protocol(err.to_string()))),
        }
    }

    fn send_request(&mut self, now: Instant, request: &Request) {
        let command = request.header().command;
        match request.to_bytes() {
            Ok(smb) => self.send_packet(
                now,
                &SessionPacket::SessionMessage(smb),
                Awaiting::Smb(command),
            ),
            Err(err) => self.finish(SendOutcome::Failed(SendError::Protocol(err.to_string()))),
        }
    }

    fn send_first_smb(&mut self, now: Instant) {
        if self.options.prefer_single_block && self.message.text.len() <= self.options.block_len {
            let request = Request::Send(SendMessage::new(
                self.message.from.clone(),
                self.message.to.clone(),
                self.message.text.clone(),
            ));
            self.send_request(now, &request);
        } else {
            self.send_start(now);
        }
    }

    fn send_start(&mut self, now: Instant) {
        let request = Request::Start(StartMessage::new(
            self.message.from.clone(),
            self.message.to.clone(),
        ));
        self.send_request(now, &request);
    }

    /// After the 0xD5 response and each 0xD7 response: the next block, or 0xD6.
    fn send_next_block(&mut self, now: Instant) {
        let text = &self.message.text;
        if self.next_offset < text.len() {
            let end = (self.next_offset + self.options.block_len).min(text.len());
            let chunk = text[self.next_offset..end].to_vec();
            self.next_offset = end;
            self.send_request(now, &Request::Text(TextBlock::new(self.group_id, chunk)));
        } else {
            self.send_request(now, &Request::End(EndMessage::new(self.group_id)));
        }
    }

    fn handle_packet(&mut self, now: Instant, packet: SessionPacket) {
        match (self.awaiting, packet) {
            (_, SessionPacket::KeepAlive) => {}
            (Awaiting::SessionResponse, SessionPacket::PositiveResponse) => {
                self.send_first_smb(now);
            }
            (Awaiting::SessionResponse, SessionPacket::NegativeResponse(code)) => {
                let err = match code {
                    NegativeCode::CalledNameNotPresent => SendError::NameNotFound,
                    other => SendError::SessionRefused(other),
                };
                self.finish(SendOutcome::Failed(err));
            }
            (Awaiting::SessionResponse, SessionPacket::Retarget { addr, port }) => {
                self.finish(SendOutcome::Failed(SendError::Retargeted { addr, port }));
            }
            (Awaiting::Smb(command), SessionPacket::SessionMessage(smb)) => {
                match Response::decode(&smb) {
                    Ok(response) if response.header.command == command => {
                        self.handle_response(now, command, &response)
                    }
                    Ok(response) => self.finish(SendOutcome::Failed(SendError::Protocol(format!(
                        "response to command {:#04x} while waiting for {command:#04x}",
                        response.header.command
                    )))),
                    Err(err) => self.fail_protocol(&err),
                }
            }
            (_, other) => self.finish(SendOutcome::Failed(SendError::Protocol(format!(
                "unexpected session packet type {:#04x}",
                other.packet_type()
            )))),
        }
    }

    fn handle_response(&mut self, now: Instant, command: u8, response: &Response) {
        let status = response.header.status;
        if !status.is_success() {
            if command == command::SEND_MESSAGE
                && self.options.retry_multi_block
                && is_unknown_command(&status)
            {
                self.send_start(now);
            } else {
                self.finish(SendOutcome::Failed(status_error(status)));
            }
            return;
        }
        match command {
            command::SEND_MESSAGE => {
                self.finish(SendOutcome::Delivered(MessageForm::SingleBlock));
            }
            command::SEND_START_MB => {
                self.group_id = response.group_id();
                self.next_offset = 0;
                self.send_next_block(now);
            }
            command::SEND_TEXT_MB => self.send_next_block(now),
            _ => self.finish(SendOutcome::Delivered(MessageForm::MultiBlock)),
        }
    }
}

/// Whether `status` says the command is unknown to the server.
fn is_unknown_command(status: &SmbStatus) -> bool {
    status.errsrv_code() == Some(dos::ERR_SMBCMD) || *status == SmbStatus::Nt(nt::NOT_IMPLEMENTED)
}

/// The typed failure for an error status, in either form (REFERENCE 4.8).
fn status_error(status: SmbStatus) -> SendError {
    if let Some(code) = status.errsrv_code() {
        return match code {
            dos::ERR_PAUSED => SendError::Paused,
            dos::ERR_MSGOFF => SendError::MessagingOff,
            dos::ERR_NOROOM => SendError::NoRoom,
            dos::ERR_RMUNS => SendError::TooManyNames,
            dos::ERR_SMBCMD => SendError::Unsupported,
            _ => SendError::Refused(status),
        };
    }
    match status {
        SmbStatus::Nt(nt::SHARING_PAUSED) => SendError::Paused,
        SmbStatus::Nt(nt::REQUEST_NOT_ACCEPTED) => SendError::MessagingOff,
        SmbStatus::Nt(nt::DISK_FULL) => SendError::NoRoom,
        SmbStatus::Nt(nt::OBJECT_NAME_NOT_FOUND) => SendError::NotRecipient,
        SmbStatus::Nt(nt::NOT_IMPLEMENTED) => SendError::Unsupported,
        other => SendError::Refused(other),
    }
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
