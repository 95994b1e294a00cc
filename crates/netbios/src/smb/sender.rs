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
mod tests {
    use super::*;
    use crate::name::{NetbiosName, SUFFIX_MESSENGER};
    use crate::smb::header::SmbHeader;
    use crate::smb::receiver::{
        DeliveryError, IncomingMessage, ReceiverConfig, ReceiverEvent, ReceiverSession,
    };
    use crate::test_vectors::capture_tcp_streams;
    use proptest::prelude::*;

    fn qn(name: &str, suffix: u8) -> QualifiedName {
        QualifiedName::new(NetbiosName::new(name.as_bytes(), suffix).unwrap())
    }

    fn message(text: &[u8]) -> OutgoingMessage {
        OutgoingMessage {
            calling: qn("ALICE", 0),
            called: qn("BOB", SUFFIX_MESSENGER),
            from: b"ALICE".to_vec(),
            to: b"BOB".to_vec(),
            text: text.to_vec(),
        }
    }

    /// How the in-memory server behaves.
    #[derive(Clone, Copy)]
    struct Server {
        config: ReceiverConfig,
        /// Accept the session request.
        accept: bool,
        /// Close the connection when the first SMB is 0xD0, as Samba's smbd does.
        samba_d0_close: bool,
        /// What delivery reports.
        delivery: Result<(), DeliveryError>,
    }

    impl Default for Server {
        fn default() -> Self {
            Self {
                config: ReceiverConfig::session_port(),
                accept: true,
                samba_d0_close: false,
                delivery: Ok(()),
            }
        }
    }

    /// The SMB command in a session-message frame, if it is one.
    fn smb_command(frame: &[u8]) -> Option<u8> {
        match SessionPacket::decode(frame).ok()? {
            SessionPacket::SessionMessage(smb) => smb.get(4).copied(),
            _ => None,
        }
    }

    /// Runs one connection between a sender and a receiver in memory, moving bytes both ways
    /// until the sender has an outcome. Returns the outcome, the delivered messages and the
    /// commands the sender sent.
    fn run(
        msg: &OutgoingMessage,
        options: SenderOptions,
        server: Server,
    ) -> (SendOutcome, Vec<IncomingMessage>, Vec<u8>) {
        let now = Instant::now();
        let mut tx = SenderSession::new(msg.clone(), options, now).unwrap();
        let mut rx = ReceiverSession::new(server.config, now);
        let mut delivered = Vec::new();
        let mut commands = Vec::new();
        for _ in 0..10_000 {
            if let Some(outcome) = tx.outcome() {
                return (outcome.clone(), delivered, commands);
            }
            while let Some(bytes) = tx.poll_transmit() {
                if let Some(cmd) = smb_command(&bytes) {
                    if server.samba_d0_close && commands.is_empty() && cmd == command::SEND_MESSAGE
                    {
                        tx.handle_eof();
                        return (tx.outcome().unwrap().clone(), delivered, commands);
                    }
                    commands.push(cmd);
                }
                rx.handle_bytes(now, &bytes);
            }
            while let Some(event) = rx.poll_event() {
                match event {
                    ReceiverEvent::Transmit(bytes) => tx.handle_bytes(now, &bytes),
                    ReceiverEvent::SessionRequested { called, .. } => {
                        rx.accept_session(now, server.accept && called == msg.called)
                    }
                    ReceiverEvent::Deliver(m) => {
                        delivered.push(m);
                        rx.complete_delivery(now, server.delivery);
                    }
                    ReceiverEvent::Close(_) => tx.handle_eof(),
                }
            }
        }
        panic!("the conversation did not finish");
    }

    #[test]
    fn short_text_goes_as_one_block() {
        let msg = message(b"Lunch?\x14At noon");
        let (outcome, delivered, commands) = run(&msg, SenderOptions::default(), Server::default());
        assert_eq!(outcome, SendOutcome::Delivered(MessageForm::SingleBlock));
        assert_eq!(commands, vec![command::SEND_MESSAGE]);
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].text, msg.text);
        assert_eq!(delivered[0].from, b"ALICE");
        assert_eq!(delivered[0].called, Some(qn("BOB", SUFFIX_MESSENGER)));
    }

    #[test]
    fn long_text_goes_in_blocks_of_128() {
        let text: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        let msg = message(&text);
        let (outcome, delivered, commands) = run(&msg, SenderOptions::default(), Server::default());
        assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
        assert_eq!(commands, vec![0xD5, 0xD7, 0xD7, 0xD7, 0xD6]);
        assert_eq!(delivered[0].text, text);
        assert_eq!(delivered[0].form, MessageForm::MultiBlock);
    }

    #[test]
    fn multi_block_can_be_forced_and_handles_empty_text() {
        let opts = SenderOptions::default().multi_block();
        let (outcome, delivered, commands) = run(&message(b"hi"), opts, Server::default());
        assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
        assert_eq!(commands, vec![0xD5, 0xD7, 0xD6]);
        assert_eq!(delivered[0].text, b"hi");
        let (outcome, delivered, commands) = run(&message(b""), opts, Server::default());
        assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
        assert_eq!(commands, vec![0xD5, 0xD6]);
        assert_eq!(delivered[0].text, b"");
    }

    #[test]
    fn without_session_request_on_a_direct_port() {
        let opts = SenderOptions {
            session_request: false,
            ..SenderOptions::default()
        };
        let server = Server {
            config: ReceiverConfig::direct_port(),
            ..Server::default()
        };
        let (outcome, delivered, _) = run(&message(b"direct"), opts, server);
        assert_eq!(outcome, SendOutcome::Delivered(MessageForm::SingleBlock));
        assert_eq!(delivered[0].called, None);
    }

    #[test]
    fn d0_closed_by_samba_is_retried_as_multi_block_on_a_new_connection() {
        let msg = message(b"short");
        let server = Server {
            samba_d0_close: true,
            ..Server::default()
        };
        let (outcome, delivered, _) = run(&msg, SenderOptions::default(), server);
        assert_eq!(outcome, SendOutcome::RetryMultiBlock);
        assert!(delivered.is_empty());
        let (outcome, delivered, commands) =
            run(&msg, SenderOptions::default().multi_block(), server);
        assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
        assert_eq!(commands, vec![0xD5, 0xD7, 0xD6]);
        assert_eq!(delivered[0].text, b"short");

        let no_retry = SenderOptions {
            retry_multi_block: false,
            ..SenderOptions::default()
        };
        let (outcome, _, _) = run(&msg, no_retry, server);
        assert_eq!(outcome, SendOutcome::Failed(SendError::ConnectionClosed));
    }

    #[test]
    fn d0_unknown_to_the_server_falls_back_on_the_same_connection() {
        let now = Instant::now();
        let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
        tx.poll_transmit().unwrap();
        tx.handle_bytes(now, &[0x82, 0, 0, 0]);
        let d0 = tx.poll_transmit().unwrap();
        assert_eq!(smb_command(&d0), Some(command::SEND_MESSAGE));
        let refusal = Response::error(
            &SmbHeader::request(command::SEND_MESSAGE),
            SmbStatus::errsrv(dos::ERR_SMBCMD),
        );
        tx.handle_bytes(now, &nbss::frame_message(&refusal.to_bytes()).unwrap());
        assert_eq!(
            smb_command(&tx.poll_transmit().unwrap()),
            Some(command::SEND_START_MB)
        );
        assert!(!tx.is_finished());
    }

    #[test]
    fn unknown_recipient_is_name_not_found() {
        let server = Server {
            accept: false,
            ..Server::default()
        };
        let (outcome, delivered, commands) = run(&message(b"x"), SenderOptions::default(), server);
        assert_eq!(outcome, SendOutcome::Failed(SendError::NameNotFound));
        assert!(delivered.is_empty() && commands.is_empty());
    }

    #[test]
    fn delivery_errors_reach_the_sender_typed() {
        for (err, expected) in [
            (DeliveryError::NoRoom, SendError::NoRoom),
            (DeliveryError::MessagingOff, SendError::MessagingOff),
            (DeliveryError::Paused, SendError::Paused),
            (
                DeliveryError::NotOurName,
                SendError::Refused(SmbStatus::errsrv(dos::ERR_ERROR)),
            ),
        ] {
            for text in [&b"short"[..], &[b'y'; 200][..]] {
                let server = Server {
                    delivery: Err(err),
                    ..Server::default()
                };
                let (outcome, _, _) = run(&message(text), SenderOptions::default(), server);
                assert_eq!(outcome, SendOutcome::Failed(expected.clone()));
            }
        }
    }

    #[test]
    fn oversize_text_is_refused_with_no_room() {
        let mut server = Server::default();
        server.config.limits.max_message_len = 256;
        let (outcome, delivered, commands) =
            run(&message(&[b'z'; 300]), SenderOptions::default(), server);
        assert_eq!(outcome, SendOutcome::Failed(SendError::NoRoom));
        assert!(delivered.is_empty());
        assert_eq!(commands, vec![0xD5, 0xD7, 0xD7, 0xD7]);
    }

    #[test]
    fn nt_status_errors_are_mapped() {
        for (status, expected) in [
            (nt::SHARING_PAUSED, SendError::Paused),
            (nt::REQUEST_NOT_ACCEPTED, SendError::MessagingOff),
            (nt::DISK_FULL, SendError::NoRoom),
            (nt::OBJECT_NAME_NOT_FOUND, SendError::NotRecipient),
            (nt::from_errsrv(dos::ERR_RMUNS), SendError::TooManyNames),
            (
                nt::INVALID_PARAMETER,
                SendError::Refused(SmbStatus::Nt(nt::INVALID_PARAMETER)),
            ),
        ] {
            assert_eq!(status_error(SmbStatus::Nt(status)), expected);
        }
    }

    /// Our sender against smbd's recorded answers: positive session response, 0xD5 answered
    /// with WordCount 0 (group id 0 is echoed), Flags2 0x4003, each 0xD7 and 0xD6 answered.
    #[test]
    fn sender_accepts_samba_responses_from_the_capture() {
        let server = capture_tcp_streams("samba-4.17-multiblock-message.pcap")
            .into_iter()
            .find(|s| s.src_port == nbss::SESSION_PORT)
            .unwrap();
        let mut frames = crate::nbss::Framer::new(FramerMode::SessionService, 1 << 16);
        frames.push(&server.bytes);
        let now = Instant::now();
        let text = vec![b'k'; 300];
        let opts = SenderOptions {
            block_len: 127,
            ..SenderOptions::default().multi_block()
        };
        let mut tx = SenderSession::new(message(&text), opts, now).unwrap();
        let mut sent = Vec::new();
        while let Some(packet) = frames.next_frame().unwrap() {
            while let Some(bytes) = tx.poll_transmit() {
                sent.push(bytes);
            }
            tx.handle_bytes(now, &packet.to_bytes().unwrap());
        }
        assert_eq!(
            tx.outcome(),
            Some(&SendOutcome::Delivered(MessageForm::MultiBlock))
        );
        let blocks: Vec<TextBlock> = sent
            .iter()
            .filter_map(|f| match SessionPacket::decode(f).ok()? {
                SessionPacket::SessionMessage(smb) => match Request::decode(&smb).ok()? {
                    Request::Text(t) => Some(t),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(
            blocks.iter().map(|b| b.data.len()).collect::<Vec<_>>(),
            vec![127, 127, 46]
        );
        assert!(blocks.iter().all(|b| b.group_id == 0));
    }

    #[test]
    fn group_id_from_the_start_response_is_echoed() {
        let now = Instant::now();
        let opts = SenderOptions {
            session_request: false,
            ..SenderOptions::default().multi_block()
        };
        let mut tx = SenderSession::new(message(b"abc"), opts, now).unwrap();
        assert_eq!(smb_command(&tx.poll_transmit().unwrap()), Some(0xD5));
        let start = Response::start_accepted(&SmbHeader::request(command::SEND_START_MB), 0x4242);
        tx.handle_bytes(now, &nbss::frame_message(&start.to_bytes()).unwrap());
        let SessionPacket::SessionMessage(smb) =
            SessionPacket::decode(&tx.poll_transmit().unwrap()).unwrap()
        else {
            panic!("expected a session message");
        };
        assert_eq!(
            Request::decode(&smb).unwrap(),
            Request::Text(TextBlock::new(0x4242, b"abc".to_vec()))
        );
    }

    #[test]
    fn response_timeout_and_protocol_errors() {
        let now = Instant::now();
        let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
        assert_eq!(tx.poll_timeout(), Some(now + DEFAULT_RESPONSE_TIMEOUT));
        tx.handle_timeout(now + Duration::from_secs(29));
        assert!(!tx.is_finished());
        // Keep-alives do not count as an answer.
        tx.handle_bytes(now, &[0x85, 0, 0, 0]);
        tx.handle_timeout(now + DEFAULT_RESPONSE_TIMEOUT);
        assert_eq!(tx.outcome(), Some(&SendOutcome::Failed(SendError::Timeout)));

        let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
        tx.handle_bytes(now, &[0x84, 0, 0, 6, 10, 0, 0, 5, 0, 139]);
        assert_eq!(
            tx.outcome(),
            Some(&SendOutcome::Failed(SendError::Retargeted {
                addr: Ipv4Addr::new(10, 0, 0, 5),
                port: nbss::SESSION_PORT
            }))
        );

        let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
        tx.handle_bytes(now, &[0x83, 0, 0, 1, 0x83]);
        assert_eq!(
            tx.outcome(),
            Some(&SendOutcome::Failed(SendError::SessionRefused(
                NegativeCode::InsufficientResources
            )))
        );

        let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
        tx.handle_bytes(now, &[0x82, 0, 0, 0]);
        let wrong = Response::success(&SmbHeader::request(command::SEND_END_MB));
        tx.handle_bytes(now, &nbss::frame_message(&wrong.to_bytes()).unwrap());
        assert!(matches!(
            tx.outcome(),
            Some(SendOutcome::Failed(SendError::Protocol(_)))
        ));

        let mut bad = message(b"x");
        bad.from = b"AL\0ICE".to_vec();
        assert!(SenderSession::new(bad, SenderOptions::default(), now).is_err());
    }

    proptest! {
        #[test]
        fn sender_never_panics_on_arbitrary_responses(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(1usize..64, 0..20),
            positive_first in any::<bool>(),
            session_request in any::<bool>(),
        ) {
            let now = Instant::now();
            let opts = SenderOptions { session_request, ..SenderOptions::default() };
            let mut tx = SenderSession::new(message(&[b'q'; 200]), opts, now).unwrap();
            let mut stream = Vec::new();
            if positive_first {
                stream.extend([0x82, 0, 0, 0]);
            }
            stream.extend(data);
            let mut rest = &stream[..];
            for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
                let (chunk, tail) = rest.split_at(cut.min(rest.len()));
                rest = tail;
                tx.handle_bytes(now, chunk);
                while tx.poll_transmit().is_some() {}
            }
            tx.handle_eof();
            prop_assert!(tx.is_finished());
        }

        #[test]
        fn any_text_round_trips_through_sender_and_receiver(
            text in proptest::collection::vec(1u8..=255, 0..1600),
            single in any::<bool>(),
            block_len in 1usize..=128,
        ) {
            let opts = SenderOptions {
                prefer_single_block: single,
                block_len,
                ..SenderOptions::default()
            };
            let mut server = Server::default();
            server.config.limits.max_blocks = 1600;
            let (outcome, delivered, _) = run(&message(&text), opts, server);
            prop_assert!(matches!(outcome, SendOutcome::Delivered(_)));
            prop_assert_eq!(&delivered[0].text, &text);
        }
    }
}
