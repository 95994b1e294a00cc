//! The session service: directed messages over TCP (port 139, and raw SMB on other ports).
//!
//! Each connection drives a [`ReceiverSession`] from the protocol crate. The session request
//! is accepted only for one of our usable `<03>` names; a complete message goes through
//! [`Service::accept_message`], and the SMB success response is written only after the inbox
//! commit. The [`Gate`] bounds connections in all and per source and applies the source policy
//! and per-source rate limits, so one host cannot keep others out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use messenger_core::message::Transport;
use messenger_core::policy::{RateLimiter, SourcePolicy};
use netbios::smb::receiver::{DeliveryError, ReceiverConfig, ReceiverEvent, ReceiverSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::service::{lock, Incoming, Refusal, Service};
use crate::sockets::SessionListener;

/// Bytes read from a connection at a time; a whole multi-block message of 1600 bytes in 128
/// byte blocks fits in a couple of reads.
const READ_CHUNK: usize = 4096;
/// Sources tracked by the rate limiter; see `RateLimiter` for why this bounds memory.
const MAX_RATE_LIMITED_SOURCES: usize = 4096;

/// Admission control shared by every listener.
pub struct Gate {
    permits: Arc<Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    max_per_source: usize,
    policy: SourcePolicy,
    rate: Option<Mutex<RateLimiter>>,
}

/// A connection slot; frees itself when dropped.
pub struct Admission {
    gate: Arc<Gate>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = lock(&self.gate.per_source);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Gate {
    /// A gate for `policy` with the configured limits.
    pub fn new(
        policy: SourcePolicy,
        max_connections: usize,
        max_per_source: usize,
        rate: Option<(f64, u32)>,
    ) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_connections)),
            per_source: Mutex::new(HashMap::new()),
            max_per_source,
            policy,
            rate: rate.map(|(r, b)| Mutex::new(RateLimiter::new(r, b, MAX_RATE_LIMITED_SOURCES))),
        }
    }

    /// Whether `ip` may send to us at all.
    pub fn admits_source(&self, ip: IpAddr) -> bool {
        self.policy.admits(ip)
    }

    /// Takes a connection slot for `ip`, or None when the limits are reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        let mut counts = lock(&self.per_source);
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max_per_source {
            return None;
        }
        *n += 1;
        Some(Admission {
            gate: Arc::clone(self),
            ip,
            _permit: permit,
        })
    }

    /// Whether one more message from `ip` is within its rate.
    pub fn within_rate(&self, ip: IpAddr) -> bool {
        match &self.rate {
            Some(r) => lock(r).check(ip, Instant::now()),
            None => true,
        }
    }
}

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
    config.limits.max_message_len = service.settings.config.max_message_len();
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
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip();
        if !service.gate.admits_source(ip) {
            tracing::info!(%peer, "connection from a source the policy refuses");
            drop(stream);
            continue;
        }
        let Some(admission) = service.gate.admit(ip) else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(stream);
            continue;
        };
        let service = Arc::clone(&service);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _admission = admission;
            connection(service, stream, peer, config, shutdown).await;
        });
    }
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
    let span = tracing::debug_span!("connection", %peer);
    let _enter = span.enter();
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                ReceiverEvent::Transmit(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                ReceiverEvent::SessionRequested { called, calling } => {
                    let ours = called.name.suffix() == netbios::name::SUFFIX_MESSENGER
                        && lock(&service.names)
                            .find_usable(called.name.name_bytes())
                            .is_some();
                    if !ours {
                        tracing::info!(called = %called, calling = %calling, "session request for a name that is not ours");
                    }
                    session.accept_session(Instant::now(), ours);
                }
                ReceiverEvent::Deliver(message) => {
                    let result = if !service.gate.within_rate(peer.ip()) {
                        tracing::warn!(%peer, "rate limit: message refused");
                        Err(DeliveryError::MessagingOff)
                    } else {
                        let incoming = Incoming {
                            from: message.from,
                            to: message.to,
                            text: message.text,
                            to_workgroup: false,
                            source: Some(peer),
                            transport: Transport::Session,
                            calling_machine: message
                                .calling
                                .map(|c| messenger_core::names::display_name(&c.name))
                                .unwrap_or_default(),
                        };
                        match service.accept_message(incoming).await {
                            Ok(_) => Ok(()),
                            Err(Refusal::NotOurName) => {
                                tracing::info!(%peer, "message for a name that is not ours refused");
                                Err(DeliveryError::NotOurName)
                            }
                            Err(Refusal::NoRoom) => Err(DeliveryError::NoRoom),
                            Err(Refusal::Policy) => Err(DeliveryError::MessagingOff),
                        }
                    };
                    session.complete_delivery(Instant::now(), result);
                }
                ReceiverEvent::Close(reason) => {
                    tracing::debug!(?reason, "closing");
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        }
        let deadline = session
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
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
                if let ReceiverEvent::Transmit(bytes) = event {
                    let _ = stream.write_all(&bytes).await;
                }
            }
            return;
        }
    }
}
