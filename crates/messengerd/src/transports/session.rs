//! The session service: directed messages over TCP (port 139, and raw SMB on other ports).
//!
//! Each connection drives a [`ReceiverSession`] from the protocol crate. The session request
//! is accepted only for one of our usable `<03>` names (or, with `[nats]`, a name the
//! organisation's directory places on another host: the gateway); a complete message goes
//! through [`Service::accept_message`], and the SMB success response is written only after
//! the inbox commit (or, for the gateway, after JetStream stored it on a quorum). The [`Gate`](crate::gate::Gate) bounds connections in all and per source and applies the source policy
//! and per-source rate limits, so one host cannot keep others out; connections it refuses are
//! answered with a NEGATIVE SESSION RESPONSE on port 139 and closed (see `gate` for why).
//! Every read and write has a deadline: a peer that stops reading our responses is as stuck
//! as one that stops sending, and must not hold its slot for ever. The session decides how
//! long a connection may last: only progress on a message extends it, and `[limits]`
//! `connection_lifetime_secs` and `max_errors_per_connection` end it whatever the peer does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use messenger_core::message::TransportKind;
use netbios::nbss::{NegativeCode, SessionPacket};
use netbios::smb::receiver::{
    CloseReason, DeliveryError, ReceiverConfig, ReceiverEvent, ReceiverSession,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::gate::Refused;
use crate::host::sockets::SessionListener;
use crate::service::{Incoming, Refusal, Service};
use crate::util::lock;

/// Bytes read from a connection at a time; a whole multi-block message of 1600 bytes in 128
/// byte blocks fits in a couple of reads.
const READ_CHUNK: usize = 4096;
/// Pause after a failed `accept` (out of file descriptors, mostly) before the next: without
/// it the loop would spin on the same error; short, so that connections resume as soon as
/// descriptors are free again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);
/// Bytes of a refused connection read (and discarded) before it is answered and closed: a
/// session request is at most 4 + 2 × 255 bytes (RFC 1002 4.3.2). Reading what has already
/// arrived lets the close be an orderly FIN, which the sender reads after our answer, instead
/// of a reset that can discard the answer.
const REFUSED_DRAIN: usize = 1024;

/// Accepts connections on `listener` until `shutdown`.
pub async fn serve(service: Arc<Service>, listener: SessionListener, shutdown: CancellationToken) {
    let mut config = if listener.session_request_required {
        ReceiverConfig::session_port()
    } else {
        ReceiverConfig::direct_port()
    };
    let limits = &service.settings.config.limits;
    config.first_request_timeout = Duration::from_secs(limits.first_request_timeout_secs);
    config.idle_timeout = Duration::from_secs(limits.request_timeout_secs);
    config.lifetime = Duration::from_secs(limits.connection_lifetime_secs);
    config.error_budget = limits.max_errors_per_connection;
    config.limits.max_message_len = service.settings.config.max_message_len();
    config.limits.max_blocks = limits.max_blocks_per_message;
    let listener_requires_session = listener.session_request_required;
    let listener = match tokio::net::TcpListener::from_std(listener.listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "session listener unusable");
            return;
        }
    };
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let admission = match service.gate.admit(peer.ip()) {
            Ok(a) => a,
            Err(refused) => {
                let code = match refused {
                    Refused::Source => {
                        tracing::info!(%peer, "connection refused: source not allowed by [policy]");
                        NegativeCode::NotListeningForCallingName
                    }
                    Refused::TotalConnections => {
                        tracing::warn!(%peer, "connection refused: max_connections reached");
                        NegativeCode::InsufficientResources
                    }
                    Refused::SourceConnections => {
                        tracing::warn!(%peer, "connection refused: max_connections_per_source reached");
                        NegativeCode::InsufficientResources
                    }
                };
                refuse(&stream, listener_requires_session, code);
                continue;
            }
        };
        let tasks = service.tasks.clone();
        let service = Arc::clone(&service);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _admission = admission;
            connection(service, stream, peer, config, shutdown)
                .instrument(tracing::debug_span!("connection", %peer))
                .await;
        });
    }
}

/// Answers a refused connection without waiting for anything, then drops it: on port 139 with
/// a NEGATIVE SESSION RESPONSE (which a sender reports as a refusal, not a network error); on
/// raw SMB ports there is no frame that says "refused" before an SMB arrives, so it is just
/// closed. Only non-blocking calls: a refused peer must not hold up the accept loop.
fn refuse(stream: &TcpStream, session_port: bool, code: NegativeCode) {
    let mut sink = [0u8; REFUSED_DRAIN];
    let _ = stream.try_read(&mut sink);
    if session_port {
        if let Ok(bytes) = SessionPacket::NegativeResponse(code).to_bytes() {
            let _ = stream.try_write(&bytes);
        }
    }
}

/// Writes `bytes`, giving up after `limit`: false if the peer is gone or not reading.
async fn write_within(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

async fn connection(
    service: Arc<Service>,
    mut stream: TcpStream,
    peer: SocketAddr,
    config: ReceiverConfig,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut session = ReceiverSession::new(config, Instant::now());
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                ReceiverEvent::Transmit(bytes) => {
                    if !write_within(&mut stream, &bytes, config.idle_timeout).await {
                        tracing::debug!("peer not reading; closing");
                        return;
                    }
                }
                ReceiverEvent::SessionRequested { called, calling } => {
                    let messenger = called.name.suffix() == netbios::name::SUFFIX_MESSENGER;
                    let ours = messenger
                        && lock(&service.names)
                            .find_usable(called.name.name_bytes())
                            .is_some();
                    let accepted = ours
                        || (messenger
                            && crate::transports::organisation::forwards(
                                &service,
                                called.name.name_bytes(),
                            )
                            .await);
                    if !accepted {
                        tracing::info!(called = %called, calling = %calling, "session request for a name that is not ours");
                    }
                    session.accept_session(Instant::now(), accepted);
                }
                ReceiverEvent::Deliver(message) => {
                    let result = if !service.gate.message_within_rate(peer.ip()) {
                        tracing::warn!(%peer, "message refused with ERRmsgoff: source over its rate limit");
                        Err(DeliveryError::MessagingOff)
                    } else {
                        let incoming = Incoming {
                            from: message.from,
                            to: message.to,
                            text: message.text,
                            to_workgroup: false,
                            source: Some(peer),
                            transport: TransportKind::Session,
                            calling_machine: message
                                .calling
                                .map(|c| messenger_core::names::display_name(&c.name))
                                .unwrap_or_default(),
                        };
                        accept_or_forward(&service, incoming, peer).await
                    };
                    session.complete_delivery(Instant::now(), result);
                }
                ReceiverEvent::Close(reason) => {
                    log_close(peer, &reason);
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        }
        let deadline = session
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(crate::util::no_deadline);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(deadline) => session.handle_timeout(Instant::now()),
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => session.handle_eof(),
                Ok(n) => session.handle_bytes(Instant::now(), &buf[..n]),
            },
        }
        if session.is_closed() && session.poll_timeout().is_none() {
            // Drain what the close produced on the next pass, then stop.
            while let Some(event) = session.poll_event() {
                match event {
                    ReceiverEvent::Transmit(bytes)
                        if !write_within(&mut stream, &bytes, config.idle_timeout).await =>
                    {
                        break;
                    }
                    ReceiverEvent::Close(reason) => log_close(peer, &reason),
                    _ => {}
                }
            }
            return;
        }
    }
}

/// Takes a complete message: into the inbox when it is for one of our names; else, with
/// `[nats]`, forwarded to the host of the organisation that holds its name (the gateway for
/// NetBIOS senders), and acknowledged once JetStream has stored it.
async fn accept_or_forward(
    service: &Arc<Service>,
    incoming: Incoming,
    peer: SocketAddr,
) -> Result<(), DeliveryError> {
    let forwardable = (
        incoming.from.clone(),
        incoming.to.clone(),
        incoming.text.clone(),
    );
    match service.accept_message(incoming).await {
        Ok(_) | Err(Refusal::Echo) => Ok(()),
        Err(Refusal::NotOurName) => {
            let (from, to, text) = forwardable;
            match crate::transports::organisation::forward(service, &from, &to, &text).await {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => {
                    tracing::warn!(%peer, code = e.code, error = %e, "a message for another host of the organisation could not be forwarded");
                    Err(DeliveryError::NoRoom)
                }
                None => {
                    tracing::info!(%peer, "message for a name that is not ours refused");
                    Err(DeliveryError::NotOurName)
                }
            }
        }
        Err(Refusal::NoRoom) => Err(DeliveryError::NoRoom),
        Err(Refusal::Policy) => Err(DeliveryError::MessagingOff),
    }
}

/// Logs why a connection ends: at info level when it was cut for holding its slot without
/// delivering (a sign of abuse), else at debug level.
fn log_close(peer: SocketAddr, reason: &CloseReason) {
    match reason {
        CloseReason::LifetimeOver => tracing::info!(
            %peer,
            "connection closed: it reached [limits] connection_lifetime_secs"
        ),
        CloseReason::TooManyErrors => tracing::info!(
            %peer,
            "connection closed: it drew more SMB errors than [limits] max_errors_per_connection"
        ),
        _ => tracing::debug!(%peer, ?reason, "closing"),
    }
}
