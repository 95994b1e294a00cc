//! The message server's side of one TCP connection, as a state machine without I/O.
//!
//! The connection feeds in what it reads ([`ReceiverSession::handle_bytes`]) and the time;
//! the session answers with [`ReceiverEvent`]s: bytes to write, a session request for the
//! caller to judge against its name table, a complete message for the caller to store, or a
//! request to close. A message is acknowledged to the sender only when the caller reports
//! with [`ReceiverSession::complete_delivery`] that it is stored, so a sender never hears
//! "delivered" for a message that a crash could still lose.
//!
//! Behaviour (REFERENCE 3.2, 4, and DESIGN "Behaviour to get right"): 0xD0 is accepted as the
//! first SMB with no NEGOTIATE, unlike Samba; 0xD5 is answered with WordCount 1 and a real
//! group id, and a mismatched id on 0xD7/0xD6 is tolerated; on ports other than 139 SMB frames
//! may come without a session request, as Samba allows. SMB-level problems (out-of-sequence
//! blocks, oversize messages, unknown commands, malformed bodies) get an SMB error and the
//! connection lives on until its error budget is spent; bytes that are not session service
//! framing or not SMB close it.
//!
//! A connection is a slot taken from everyone else, so it lasts only while it makes progress
//! on a message: only an accepted session request, a message started, a block taken and a
//! message stored extend its idle deadline. Errors, refused deliveries and keep-alives do not,
//! and however a peer keeps itself busy, the connection ends at its lifetime cap.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::{DecodeError, Reader};
use crate::name::QualifiedName;
use crate::nbss::{self, Framer, FramerMode, NegativeCode, SessionPacket};

use super::assembler::{AssembledMessage, AssemblerLimits, AssemblyError, MessageAssembler};
use super::header::{dos, nt, SmbHeader, SmbStatus};
use super::messenger::{Request, Response};

/// Time allowed from connecting to the first request (session request, or first SMB where
/// none is required). Our limit: a sender writes its session request right after the TCP
/// handshake (REFERENCE 3.2), so a connection silent for this long is not a messenger sender
/// and only holds a slot.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed between one answered request and the next SMB. Matches the session service's
/// SSN_CLOSE_TIMEOUT of 30 s (RFC 1002 s.6): a sender waits for each response and then sends
/// the next block at once ([MS-MSRP] 3.2.4.4), so a longer pause means it is gone or stalling.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a connection may last at all, counted from the accept. A sender sends each block
/// right after our answer to the one before ([MS-MSRP] 3.2.4.4), so even a largest
/// multi-block message over a slow link takes seconds, and a few messages on one connection
/// not much more. Two minutes is four idle timeouts: only a peer keeping the connection alive
/// on purpose meets this cap, and a connection that delivers nothing is gone within two
/// minutes however it keeps itself busy.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// SMB error answers a connection may draw before it is closed (the answer is still sent).
/// A sender gives up on a message at an error answer (Samba's client does, and so does ours,
/// after at most one fallback from 0xD0 to 0xD5 on "unknown command"), so a few cover a
/// client that tries something we do not support first, or several messages each refused
/// for a size limit; a peer drawing more is not a messenger sender. Refused deliveries do not
/// count: the sender did nothing wrong.
pub const ERROR_BUDGET: u32 = 8;

/// Whether a SESSION REQUEST must open the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRequestPolicy {
    /// Port 139: a session message before a session request closes the connection.
    Required,
    /// Other ports: SMB frames may come straight away, as `smbclient -p PORT` sends them and
    /// Samba accepts them; a session request first is still honoured.
    Optional,
}

/// How a [`ReceiverSession`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Whether a session request is required.
    pub session_request: SessionRequestPolicy,
    /// See [`FIRST_REQUEST_TIMEOUT`].
    pub first_request_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`CONNECTION_LIFETIME`].
    pub lifetime: Duration,
    /// See [`ERROR_BUDGET`]; 0 counts as 1.
    pub error_budget: u32,
    /// Limits on message size.
    pub limits: AssemblerLimits,
    /// Largest session message accepted; see [`nbss::DEFAULT_MAX_FRAME_LEN`].
    pub max_frame_len: usize,
}

impl ReceiverConfig {
    /// Settings for the session service port 139: a session request is required.
    pub fn session_port() -> Self {
        Self {
            session_request: SessionRequestPolicy::Required,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            lifetime: CONNECTION_LIFETIME,
            error_budget: ERROR_BUDGET,
            limits: AssemblerLimits::default(),
            max_frame_len: nbss::DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// Settings for any other port: SMB frames are accepted without a session request.
    pub fn direct_port() -> Self {
        Self {
            session_request: SessionRequestPolicy::Optional,
            ..Self::session_port()
        }
    }
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self::session_port()
    }
}

/// Which command form carried a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageForm {
    /// One 0xD0.
    SingleBlock,
    /// 0xD5, 0xD7 ×n, 0xD6.
    MultiBlock,
}

/// A complete message received on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// OriginatorName, raw OEM bytes.
    pub from: Vec<u8>,
    /// DestinationName, raw OEM bytes. The caller checks it against its names.
    pub to: Vec<u8>,
    /// The text, raw OEM bytes, trailing NULs removed; line breaks not yet folded.
    pub text: Vec<u8>,
    /// The called name of the session request, if there was one.
    pub called: Option<QualifiedName>,
    /// The calling name of the session request, if there was one.
    pub calling: Option<QualifiedName>,
    /// Which form carried it.
    pub form: MessageForm,
}

/// Why the session asks for the connection to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The caller refused the session request; a negative response was sent first.
    SessionRejected,
    /// The peer made no progress on a message in time.
    Timeout,
    /// The connection reached its lifetime cap ([`ReceiverConfig::lifetime`]).
    LifetimeOver,
    /// The peer drew more SMB errors than the budget allows
    /// ([`ReceiverConfig::error_budget`]).
    TooManyErrors,
    /// The bytes are not session service framing or not SMB1.
    Malformed(DecodeError),
    /// The peer broke the session protocol (no session request on port 139, a second
    /// session request, a session response sent to a server).
    ProtocolViolation(&'static str),
    /// The peer closed its side.
    PeerClosed,
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverEvent {
    /// Write these bytes to the connection.
    Transmit(Vec<u8>),
    /// A session request arrived: answer with [`ReceiverSession::accept_session`] (accept
    /// only if `called` is one of our `<03>` names, REFERENCE 3.2).
    SessionRequested {
        /// The name called.
        called: QualifiedName,
        /// The caller's name.
        calling: QualifiedName,
    },
    /// A complete message: store it, then answer with
    /// [`ReceiverSession::complete_delivery`]. Nothing else is processed until then.
    Deliver(IncomingMessage),
    /// Close the connection after writing any bytes from earlier events.
    Close(CloseReason),
}

/// Why the caller could not take a message; each maps to the error the sender sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No room to store it: ERRnoroom ([MS-MSRP] 3.2.4.5).
    NoRoom,
    /// Messages are switched off: ERRmsgoff.
    MessagingOff,
    /// The service is paused: ERRpaused.
    Paused,
    /// The destination is not one of our names: ERRerror, or STATUS_OBJECT_NAME_NOT_FOUND when
    /// the sender understands NT status (there is no messenger-specific code for this).
    NotOurName,
}

impl DeliveryError {
    fn codes(self) -> (u16, u32) {
        match self {
            Self::NoRoom => (dos::ERR_NOROOM, nt::DISK_FULL),
            Self::MessagingOff => (dos::ERR_MSGOFF, nt::REQUEST_NOT_ACCEPTED),
            Self::Paused => (dos::ERR_PAUSED, nt::SHARING_PAUSED),
            Self::NotOurName => (dos::ERR_ERROR, nt::OBJECT_NAME_NOT_FOUND),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Nothing received yet.
    Start,
    /// A session request waits for [`ReceiverSession::accept_session`].
    AwaitingAccept,
    /// Reading SMBs.
    Ready,
    /// A message waits for [`ReceiverSession::complete_delivery`]; the header is the request
    /// to answer.
    AwaitingDelivery(SmbHeader),
    /// Done; every input is ignored.
    Closed,
}

/// One receiving connection.
#[derive(Debug)]
pub struct ReceiverSession {
    config: ReceiverConfig,
    phase: Phase,
    framer: Framer,
    assembler: MessageAssembler,
    called: Option<QualifiedName>,
    calling: Option<QualifiedName>,
    /// The group id the next 0xD5 gets. Starts at 1: [MS-MSRP] 2.2.3.2.2 makes it a session
    /// number, and 0 is what servers that have none send.
    next_group_id: u16,
    /// The idle deadline: moved on only by progress on a message.
    deadline: Option<Instant>,
    /// The lifetime cap; `None` only if it does not fit in an `Instant`.
    end_of_life: Option<Instant>,
    /// When the pending delivery was handed to the caller: the time it takes is not the
    /// peer's, so a refused delivery gives it back to the idle deadline.
    delivery_since: Option<Instant>,
    /// SMB error answers drawn so far.
    errors: u32,
    /// The peer closed while a delivery was pending: close once it is answered.
    eof_pending: bool,
    events: VecDeque<ReceiverEvent>,
}

impl ReceiverSession {
    /// A session for a connection accepted at `now`.
    pub fn new(config: ReceiverConfig, now: Instant) -> Self {
        Self {
            config,
            phase: Phase::Start,
            framer: Framer::new(FramerMode::SessionService, config.max_frame_len),
            assembler: MessageAssembler::new(config.limits),
            called: None,
            calling: None,
            next_group_id: 1,
            deadline: now.checked_add(config.first_request_timeout),
            end_of_life: now.checked_add(config.lifetime),
            delivery_since: None,
            errors: 0,
            eof_pending: false,
            events: VecDeque::new(),
        }
    }

    /// Whether the session has asked to close (or been closed).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Bytes read from the connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        self.framer.push(bytes);
        self.process(now);
    }

    /// The peer closed its side of the connection. A pending delivery is still answered by
    /// the caller (the message may already be stored); the close follows it.
    pub fn handle_eof(&mut self) {
        match self.phase {
            Phase::Closed => {}
            Phase::AwaitingDelivery(_) => self.eof_pending = true,
            _ => self.close(CloseReason::PeerClosed),
        }
    }

    /// The caller's verdict on the session request from [`ReceiverEvent::SessionRequested`].
    /// Refusing sends NEGATIVE SESSION RESPONSE 0x82, "called name not present", and closes.
    pub fn accept_session(&mut self, now: Instant, accept: bool) {
        if self.phase != Phase::AwaitingAccept {
            return;
        }
        if accept {
            self.send_packet(&SessionPacket::PositiveResponse);
            self.phase = Phase::Ready;
            self.deadline = now.checked_add(self.config.idle_timeout);
            self.process(now);
        } else {
            self.send_packet(&SessionPacket::NegativeResponse(
                NegativeCode::CalledNameNotPresent,
            ));
            self.close(CloseReason::SessionRejected);
        }
    }

    /// The caller's verdict on the message from [`ReceiverEvent::Deliver`]: `Ok` once it is
    /// durably stored. Only now is the sender answered.
    pub fn complete_delivery(&mut self, now: Instant, result: Result<(), DeliveryError>) {
        let Phase::AwaitingDelivery(header) = self.phase else {
            return;
        };
        let waited = self
            .delivery_since
            .take()
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        let response = match result {
            Ok(()) => {
                self.deadline = now.checked_add(self.config.idle_timeout);
                Response::success(&header)
            }
            Err(err) => {
                self.deadline = self.deadline.and_then(|d| d.checked_add(waited));
                let (dos_code, nt_code) = err.codes();
                error_response(&header, dos_code, nt_code)
            }
        };
        self.send_response(&response);
        if self.eof_pending {
            self.close(CloseReason::PeerClosed);
            return;
        }
        self.phase = Phase::Ready;
        self.process(now);
    }

    /// The next thing the caller must do.
    pub fn poll_event(&mut self) -> Option<ReceiverEvent> {
        self.events.pop_front()
    }

    /// When [`ReceiverSession::handle_timeout`] must next be called: the idle deadline or
    /// the lifetime cap, whichever comes first. `None` while the caller owes an answer: the
    /// time the caller takes is not the peer's fault.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Start | Phase::Ready => match (self.deadline, self.end_of_life) {
                (Some(d), Some(e)) => Some(d.min(e)),
                (d, e) => d.or(e),
            },
            _ => None,
        }
    }

    /// The clock reached `now`: closes the connection if the peer has been too slow or it
    /// has lasted its lifetime.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// Closes the connection if a deadline has passed at `now`; whether it did.
    fn expire(&mut self, now: Instant) -> bool {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {
                let over_lifetime = self.end_of_life.is_some_and(|e| now >= e);
                self.close(if over_lifetime {
                    CloseReason::LifetimeOver
                } else {
                    CloseReason::Timeout
                });
                true
            }
            _ => false,
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.deadline = None;
            self.assembler.reset();
            self.events.push_back(ReceiverEvent::Close(reason));
        }
    }

    fn send_packet(&mut self, packet: &SessionPacket) {
        match packet.to_bytes() {
            Ok(bytes) => self.events.push_back(ReceiverEvent::Transmit(bytes)),
            Err(_) => self.close(CloseReason::ProtocolViolation("response too long to frame")),
        }
    }

    fn send_response(&mut self, response: &Response) {
        self.send_packet(&SessionPacket::SessionMessage(response.to_bytes()));
    }

    /// Handles buffered frames until one needs the caller's answer or more bytes are needed.
    fn process(&mut self, now: Instant) {
        while matches!(self.phase, Phase::Start | Phase::Ready) {
            // Bytes that arrive after a deadline (the caller saw them before its timer) are
            // not served: the connection is over.
            if self.expire(now) {
                break;
            }
            match self.framer.next_frame() {
                Ok(Some(packet)) => self.handle_packet(now, packet),
                Ok(None) => break,
                Err(err) => self.close(CloseReason::Malformed(err)),
            }
        }
    }

    fn handle_packet(&mut self, now: Instant, packet: SessionPacket) {
        match packet {
            // Keep-alives neither count as a request nor extend the deadline: a messenger
            // sender has no reason to idle on the connection.
            SessionPacket::KeepAlive => {}
            SessionPacket::SessionRequest { called, calling } => {
                if self.phase == Phase::Start {
                    self.called = Some(called.clone());
                    self.calling = Some(calling.clone());
                    self.phase = Phase::AwaitingAccept;
                    self.events
                        .push_back(ReceiverEvent::SessionRequested { called, calling });
                } else {
                    // RFC 1002 5.3: one session per connection. Samba closes here too.
                    self.close(CloseReason::ProtocolViolation("second session request"));
                }
            }
            SessionPacket::SessionMessage(smb) => {
                if self.phase == Phase::Start {
                    if self.config.session_request == SessionRequestPolicy::Required {
                        self.close(CloseReason::ProtocolViolation(
                            "session message before a session request",
                        ));
                        return;
                    }
                    self.phase = Phase::Ready;
                }
                self.handle_smb(now, &smb);
            }
            SessionPacket::PositiveResponse
            | SessionPacket::NegativeResponse(_)
            | SessionPacket::Retarget { .. } => self.close(CloseReason::ProtocolViolation(
                "session response sent to a server",
            )),
        }
    }

    fn handle_smb(&mut self, now: Instant, smb: &[u8]) {
        // A payload without a valid SMB header is not a messenger client: close. A valid
        // header with a bad body is a sender bug: answer with an error, keep the connection.
        let header = match SmbHeader::decode(&mut Reader::new(smb)) {
            Ok(header) => header,
            Err(err) => {
                self.close(CloseReason::Malformed(err));
                return;
            }
        };
        // A valid header alone is not progress: only a message started or a block taken
        // moves the idle deadline on (a delivery does once it is stored).
        let request = match Request::decode(smb) {
            Ok(request) => request,
            Err(_) => {
                let response = error_response(&header, dos::ERR_ERROR, nt::INVALID_SMB);
                self.send_error(&response);
                return;
            }
        };
        let answer = match request {
            Request::Send(m) => match self.assembler.single(&m.from, &m.to, &m.data) {
                Ok(message) => {
                    self.deliver(now, m.header, message, MessageForm::SingleBlock);
                    return;
                }
                Err(err) => Err(assembly_error_response(&m.header, &err)),
            },
            Request::Start(m) => {
                // Restarting a message in progress throws the progress away.
                let progress = !self.assembler.in_progress();
                self.assembler.start(&m.from, &m.to);
                let group_id = self.next_group_id;
                self.next_group_id = self.next_group_id.checked_add(1).unwrap_or(1);
                Ok((Response::start_accepted(&m.header, group_id), progress))
            }
            // The group id is not checked: Samba's client sends 0 whatever it was given, and
            // there is only one message in progress per connection anyway.
            Request::Text(m) => match self.assembler.text(&m.data) {
                Ok(()) => Ok((Response::success(&m.header), true)),
                Err(err) => Err(assembly_error_response(&m.header, &err)),
            },
            Request::End(m) => match self.assembler.end() {
                Ok(message) => {
                    self.deliver(now, m.header, message, MessageForm::MultiBlock);
                    return;
                }
                Err(err) => Err(assembly_error_response(&m.header, &err)),
            },
            Request::Unsupported(m) => Err(error_response(
                &m.header,
                dos::ERR_SMBCMD,
                nt::SMB_BAD_COMMAND,
            )),
        };
        match answer {
            Ok((response, progress)) => {
                if progress {
                    self.deadline = now.checked_add(self.config.idle_timeout);
                }
                self.send_response(&response);
            }
            Err(response) => self.send_error(&response),
        }
    }

    /// Sends an error answer and closes the connection once the error budget is spent.
    fn send_error(&mut self, response: &Response) {
        self.send_response(response);
        self.errors = self.errors.saturating_add(1);
        if self.errors >= self.config.error_budget.max(1) {
            self.close(CloseReason::TooManyErrors);
        }
    }

    fn deliver(
        &mut self,
        now: Instant,
        header: SmbHeader,
        message: AssembledMessage,
        form: MessageForm,
    ) {
        self.delivery_since = Some(now);
        self.phase = Phase::AwaitingDelivery(header);
        self.events
            .push_back(ReceiverEvent::Deliver(IncomingMessage {
                from: message.from,
                to: message.to,
                text: message.text,
                called: self.called.clone(),
                calling: self.calling.clone(),
                form,
            }));
    }
}

/// An error response in the form the sender asked for: NT status if its Flags2 says it
/// understands them, else the DOS class ERRSRV and `dos_code`. Messenger senders send Flags2 0
/// ([MS-MSRP] 2.2.3.x), so they get DOS errors, which every messenger client understands.
fn error_response(request: &SmbHeader, dos_code: u16, nt_code: u32) -> Response {
    let status = if request.wants_nt_status() {
        SmbStatus::Nt(nt_code)
    } else {
        SmbStatus::errsrv(dos_code)
    };
    Response::error(request, status)
}

fn assembly_error_response(request: &SmbHeader, err: &AssemblyError) -> Response {
    match err {
        // Samba answers STATUS_INVALID_PARAMETER here (REFERENCE 4.8).
        AssemblyError::OutOfSequence => {
            error_response(request, dos::ERR_ERROR, nt::INVALID_PARAMETER)
        }
        // "No room to buffer the message" is exactly what a size limit means ([MS-MSRP]
        // 3.2.4.5), and tells the sender to stop.
        _ => error_response(request, dos::ERR_NOROOM, nt::DISK_FULL),
    }
}

#[cfg(test)]
#[path = "receiver_tests.rs"]
mod tests;
